"""The mechanism quayside relies on, shown with the real kamal-proxy and nothing of ours:
route by Host header, switch targets under load without a failed request, refuse an unhealthy target."""

from __future__ import annotations

import http.client
import subprocess
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.support import images
from tests.support.docker import docker, free_loopback_port, remove_containers, unique_name
from tests.support.load import Load


@dataclass
class ProxyBench:
    network: str
    proxy: str
    port: int
    containers: list[str] = field(default_factory=list)

    def start_app(self, tag: str) -> str:
        name = unique_name(f"qs-bench-app-{tag}")
        docker("run", "-d", "--name", name, "--network", self.network, images.app(tag))
        self.containers.append(name)
        return name

    def deploy(self, service: str, target: str, host: str, *, timeout: str = "20s") -> subprocess.CompletedProcess[str]:
        argv = [
            "docker", "exec", self.proxy, "kamal-proxy", "deploy", service, "--target", f"{target}:80",
            "--host", host, "--health-check-path", "/up", "--health-check-interval", "500ms",
            "--deploy-timeout", timeout, "--drain-timeout", "5s",
        ]  # fmt: skip
        return subprocess.run(argv, capture_output=True, text=True, timeout=120)

    def get(self, host: str) -> tuple[int, str]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            connection.request("GET", "/", headers={"Host": host})
            reply = connection.getresponse()
            return reply.status, reply.read().decode()
        finally:
            connection.close()


@pytest.fixture
def bench() -> Iterator[ProxyBench]:
    network = unique_name("qs-bench-net")
    proxy = unique_name("qs-bench-proxy")
    port = free_loopback_port()
    docker("network", "create", network)
    docker("run", "-d", "--name", proxy, "--network", network, "-p", f"127.0.0.1:{port}:80", images.KAMAL_PROXY)
    state = ProxyBench(network, proxy, port)
    try:
        yield state
    finally:
        remove_containers(proxy, *state.containers)
        docker("network", "rm", network, check=False)


def test_proxy_routes_by_host_header_to_the_deployed_container(bench: ProxyBench) -> None:
    first = bench.start_app("v1")
    second = bench.start_app("v2")
    assert bench.deploy("one", first, "one.test").returncode == 0
    assert bench.deploy("two", second, "two.test").returncode == 0

    assert bench.get("one.test")[1].split()[0] == "v1"
    assert bench.get("two.test")[1].split()[0] == "v2"
    assert bench.get("unknown.test")[0] == 404


def test_deploy_to_a_second_container_switches_with_no_failed_request(bench: ProxyBench) -> None:
    old = bench.start_app("v1")
    assert bench.deploy("web", old, "web.test").returncode == 0
    new = bench.start_app("v2")

    with Load(bench.port, "web.test") as load:
        load.wait_for_requests(200)
        deployed = bench.deploy("web", new, "web.test")
        returned = load.elapsed()
        load.wait_for_requests(load.report.total + 200)
    report = load.report
    # Requests that began before the deploy returned may reach either container: it switched meanwhile.
    after = [r.version for r in report.responses if r.at > returned]

    assert deployed.returncode == 0, deployed.stderr
    assert report.failures == [], report.summary()
    assert report.version_sequence() == ["v1", "v2"], report.summary()
    assert after and set(after) == {"v2"}, f"begun after the deploy returned: {Counter(after)}"
    print(f"switch under load: {report.summary()}")


def test_deploy_to_a_never_healthy_container_fails_and_the_old_one_keeps_answering(bench: ProxyBench) -> None:
    old = bench.start_app("v1")
    assert bench.deploy("web", old, "web.test").returncode == 0
    broken = bench.start_app("never-healthy")

    with Load(bench.port, "web.test") as load:
        load.wait_for_requests(100)
        deployed = bench.deploy("web", broken, "web.test", timeout="3s")
        load.wait_for_requests(load.report.total + 100)
    report = load.report

    assert deployed.returncode != 0
    assert "healthy" in (deployed.stderr + deployed.stdout).lower(), deployed.stderr
    assert report.failures == [], report.summary()
    assert set(report.versions()) == {"v1"}, report.summary()
