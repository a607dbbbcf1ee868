"""The multi-host test bed (scripts/setup.d/test-hosts.sh) is several servers: each host answers SSH at its own
address with its own host key, runs its own Docker engine and keeps its own /var/lib/quayside; the hosts reach each
other and the loopback registry over the bridge and nothing beyond it, this (the root) namespace reaches what they
publish, and the root namespace's own engine and docker0 stay as they were."""

from __future__ import annotations

import json
import subprocess
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest

from tests.support.docker import docker, unique_name
from tests.support.hosts import HostBed, TestHost
from tests.support.polling import wait_for

APP = "quayside-test/app"
TAG = "v1"
# The paths each host has of its own, beside /run (its docker.sock: see the engine's test).
OWN_PATHS = ["/var/lib/quayside", "/etc/docker", "/var/log", "/tmp", "/root/.docker"]

Serve = Callable[[TestHost], tuple[str, int]]


@pytest.fixture
def serve(host_bed: HostBed) -> Iterator[Serve]:
    """serve(host) runs the demo app from the registry on `host`, its port 80 published on a port Docker picks;
    returns the container's name and that port. The containers are removed after the test."""
    started: dict[TestHost, list[str]] = {}

    def run(host: TestHost) -> tuple[str, int]:
        name = unique_name("qs-hosts-bench")
        started.setdefault(host, []).append(name)
        image = f"{host_bed.registry}/{APP}:{TAG}"
        published = host.run(f"docker run -d --name {name} -p 80 {image} >/dev/null && docker port {name} 80/tcp")
        return name, int(published.stdout.splitlines()[0].rsplit(":", 1)[1])

    try:
        yield run
    finally:
        for host, names in started.items():
            host.run(f"docker rm -f {' '.join(names)}", check=False)


def answers_with_the_app(version: str, ask: Callable[[], str]) -> Callable[[], bool]:
    """A probe: `ask()` gets the app's `GET /` body, which starts with the version it serves; any error is a no."""

    def probe() -> bool:
        try:
            return ask().startswith(f"{version} ")
        except (OSError, subprocess.SubprocessError):
            return False

    return probe


def body_from_root(url: str) -> str:
    with urllib.request.urlopen(url, timeout=2) as reply:
        return str(reply.read().decode())


def registry_digest(registry: str) -> str:
    """The digest the registry's demo app tag names, asked at the address the hosts pull from."""
    request = urllib.request.Request(
        f"http://{registry}/v2/{APP}/manifests/{TAG}",
        method="HEAD",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        return str(reply.headers["Docker-Content-Digest"])


def test_the_bed_has_at_least_three_hosts_each_answering_ssh_at_its_own_address_as_itself(host_bed: HostBed) -> None:
    assert len(host_bed.hosts) >= 3
    assert len({host.address for host in host_bed.hosts}) == len(host_bed.hosts)
    for host in host_bed.hosts:
        assert host.port == 22
        assert host.run("uname -n").stdout.strip() == host.name


def test_each_host_presents_its_own_host_key_and_a_client_expecting_another_hosts_key_refuses_it(
    host_bed: HostBed, tmp_path: Path
) -> None:
    keys = []
    for host in host_bed.hosts:
        scanned = subprocess.run(
            ["ssh-keyscan", "-t", "ed25519", host.address], capture_output=True, text=True, timeout=30, check=True
        ).stdout.split()
        keys.append(scanned[1:3])
        assert scanned[1:3] == host.host_key_file.read_text().split()[:2], host.name
    assert len({key[1] for key in keys}) == len(host_bed.hosts)

    first, second = host_bed.hosts[:2]
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"{first.address} {' '.join(keys[1])}\n")
    argv = first.ssh_argv("true")
    argv[argv.index(f"UserKnownHostsFile={first.known_hosts}")] = f"UserKnownHostsFile={wrong}"
    refused = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert refused.returncode == 255, f"{first.name} was taken for {second.name}: {refused.stderr}"


def test_each_host_refuses_a_key_it_does_not_know(host_bed: HostBed) -> None:
    for host in host_bed.hosts:
        argv = host.ssh_argv("true")
        argv[argv.index("-i") + 1] = "/dev/null"
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        assert done.returncode == 255, f"{host.name}: {done.stderr}"


def test_each_host_runs_a_docker_engine_of_its_own_with_its_docker0_inside_its_namespace(host_bed: HostBed) -> None:
    ids = []
    for host in host_bed.hosts:
        engine, addresses = host.run("docker info --format '{{.ID}}' && ip -j -4 addr show").stdout.splitlines()
        ids.append(engine)
        interfaces = {link["ifname"]: link for link in json.loads(addresses)}
        assert "docker0" in interfaces, f"{host.name} has no docker0"
        assert [address["local"] for address in interfaces["eth0"]["addr_info"]] == [host.address], host.name
    assert len(set(ids)) == len(host_bed.hosts)
    assert host_bed.root_engine_id not in ids


def test_a_container_started_on_one_host_is_listed_by_that_host_alone(host_bed: HostBed, serve: Serve) -> None:
    first, *others = host_bed.hosts
    name, _ = serve(first)
    assert name in first.run("docker ps --format '{{.Names}}'").stdout.split()
    for other in others:
        assert name not in other.run("docker ps --all --format '{{.Names}}'").stdout.split(), other.name
    assert name not in docker("ps", "--all", "--format", "{{.Names}}").split(), "the root namespace's engine"


def test_a_port_published_on_one_host_answers_another_host_at_the_first_hosts_address(
    host_bed: HostBed, serve: Serve
) -> None:
    first, second = host_bed.hosts[:2]
    _, port = serve(first)
    url = f"http://{first.address}:{port}/"

    def asked_from_second() -> str:
        return second.run(f"curl -fsS -m 2 {url}", timeout=10).stdout

    wait_for(f"{url} answering {second.name}", answers_with_the_app(TAG, asked_from_second), seconds=30)


def test_this_namespace_reaches_the_port_each_host_publishes_at_the_hosts_address(
    host_bed: HostBed, serve: Serve
) -> None:
    for host in host_bed.hosts:
        url = f"http://{host.address}:{serve(host)[1]}/"
        wait_for(
            f"{url} answering the root namespace", answers_with_the_app(TAG, partial(body_from_root, url)), seconds=30
        )


def test_each_host_pulls_a_test_image_from_the_loopback_registry_at_the_bridge_address(host_bed: HostBed) -> None:
    assert host_bed.registry.startswith(f"{host_bed.gateway}:")
    image = f"{host_bed.registry}/{APP}:{TAG}"
    digest = registry_digest(host_bed.registry)
    # Removed first, so that the pull fetches it; left after, as a server keeps what it pulled.
    pull = f"docker image rm --force {image} >/dev/null 2>&1; docker pull --quiet {image} >/dev/null"
    inspect = f"docker image inspect --format '{{{{json .RepoDigests}}}}' {image}"
    for host in host_bed.hosts:
        pulled = host.run(f"{pull} && {inspect}", timeout=120).stdout
        assert f"{host_bed.registry}/{APP}@{digest}" in json.loads(pulled), host.name


def test_a_host_has_no_route_beyond_the_bridge(host_bed: HostBed) -> None:
    # A documentation address (TEST-NET-3): `ip route get` asks the routing table and sends nothing.
    ask = "ip -4 route show default; ip route get 203.0.113.1 >/dev/null 2>&1 && echo routed || echo unreachable"
    for host in host_bed.hosts:
        assert host.run(ask).stdout == "unreachable\n", host.name


def test_a_file_written_under_a_hosts_own_paths_is_seen_by_no_other_host_nor_this_namespace(host_bed: HostBed) -> None:
    first, *others = host_bed.hosts
    written = [f"{path}/bench-{uuid.uuid4().hex[:8]}" for path in OWN_PATHS]
    first.run(" && ".join(f"echo {first.name} > {file}" for file in written))
    try:
        for file in written:
            assert first.seen_from_root(file).read_text().strip() == first.name
            assert not Path(file).exists(), f"the root namespace sees {file}"
        for other in others:
            seen = other.run(f"ls -d {' '.join(written)}", check=False).stdout.split()
            assert seen == [], f"{other.name} sees {seen}"
    finally:
        first.run(f"rm -f {' '.join(written)}")


def test_the_root_namespace_keeps_the_engine_and_docker0_it_had_when_the_bed_was_made(host_bed: HostBed) -> None:
    assert docker("info", "--format", "{{.ID}}") == host_bed.root_engine_id
    assert int(Path("/sys/class/net/docker0/ifindex").read_text()) == host_bed.root_docker0_index
    root_docker0 = subprocess.run(
        ["ip", "-4", "-o", "addr", "show", "dev", "docker0"], capture_output=True, text=True, check=True
    ).stdout
    assert f" {host_bed.root_docker0_address} " in root_docker0
