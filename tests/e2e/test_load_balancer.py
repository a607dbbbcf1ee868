"""A load balancer in front of several servers (`load_balancer: {provider: kamal-proxy, server: lb}`), through
`pulumi up` of quayside's program on the multi-host test bed: the bed's third host runs the balancer, the other
two the roles, whose own proxies then listen on their private addresses only. Load goes to the balancer's address,
as users' requests would, and every failed request counts.
"""

from __future__ import annotations

import http.client
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.acme import HTTPS_PORT, AcmeBed
from tests.support.hosts import HostBed
from tests.support.load import Load, LoadReport
from tests.support.polling import wait_for
from tests.support.several import PROXY_PORT, BalancedStack
from tests.support.stacks import unique_service


@pytest.fixture
def balanced(tmp_path: Path, host_bed: HostBed) -> Iterator[BalancedStack]:
    stack = BalancedStack.create(tmp_path, host_bed, unique_service("lb"))
    try:
        stack.up()
        yield stack
    finally:
        stack.destroy()


def up_through_balancer(stack: BalancedStack, role: str) -> LoadReport:
    with stack.balanced_load(role) as load:
        load.wait_for_requests(100)
        stack.up()
        load.wait_for_requests(load.report.total + 100)
    return load.report


def test_each_role_answers_through_the_balancer_from_every_server_of_it_and_a_new_image_drops_nothing(
    balanced: BalancedStack,
) -> None:
    web = {balanced.container_of("web", server) for server in ("app-1", "app-2")}
    assert balanced.answering("web") == web, "both servers of web answer through the balancer"
    assert balanced.answering("api") == {balanced.container_of("api", "app-1")}
    outputs = balanced.stack().outputs()["load_balancer"].value
    assert outputs["server"] == "lb"
    assert outputs["targets"]["web"] == [f"{balanced.hosts[s].address}:80" for s in ("app-1", "app-2")]

    balanced.roles["web"]["image"] = balanced.image("v2")
    report = up_through_balancer(balanced, "web")

    assert report.failures == [], report.summary()
    assert {version for _, version, _ in (balanced.through_balancer("web") for _ in range(10))} == {"v2"}
    print(f"a new image of web on 2 servers, through the balancer: {report.tally()}")


def test_a_server_whose_engine_stops_is_routed_around_and_serves_again_once_it_is_back(
    balanced: BalancedStack, host_bed: HostBed
) -> None:
    app_2 = balanced.container_of("web", "app-2")
    with balanced.balanced_load("web") as load:
        load.wait_for_requests(200)
        stopped = load.elapsed()
        with host_bed.engine_stopped(balanced.hosts["app-2"]):
            load.wait_for_requests(load.report.total + 1000, timeout=60)
            details = balanced.quayside("details").stdout
        wait_for(
            "app-2 answering through the balancer again",
            lambda: app_2 in balanced.answering("web", 6),
            seconds=90,
            detail=lambda: balanced.state_of("app-2"),
        )
        load.wait_for_requests(load.report.total + 100)
    app_1, app_2 = (f"{balanced.hosts[server].address}:80" for server in ("app-1", "app-2"))
    rows = [line.split() for line in details.splitlines()]
    assert ["web", "lb", app_1, "healthy", "(200)"] in rows, details
    assert ["web", "lb", app_2, "failing", "(no", "answer)"] in rows, details
    # A request in flight when the engine stopped may fail too, so what counts as before the stop ended before it.
    failures = [r for r in load.report.failures if r.done >= stopped]
    window = max((r.done for r in failures), default=stopped) - stopped
    first = [f"{r.done - stopped:.2f}s {r.status}" for r in failures[:5]]
    print(f"app-2's engine stopped under load: {len(failures)} failed of {load.report.total}, all within "
          f"{window:.2f} s of the stop; first failures: {first}")  # fmt: skip
    # kamal-proxy checks each target every 500 ms (health.interval) and takes a failing one out after a check.
    assert window < 5, f"failures went on for {window:.2f} s after the stop"
    assert [r for r in load.report.failures if r.done < stopped] == []


def test_a_server_added_to_a_role_and_removed_again_drops_no_request_through_the_balancer(
    balanced: BalancedStack,
) -> None:
    balanced.roles["api"]["servers"] = ["app-1", "app-2"]
    added = up_through_balancer(balanced, "api")

    assert added.failures == [], added.summary()
    assert balanced.answering("api") == {balanced.container_of("api", s) for s in ("app-1", "app-2")}

    balanced.roles["api"]["servers"] = ["app-1"]
    removed = up_through_balancer(balanced, "api")

    assert removed.failures == [], removed.summary()
    assert balanced.answering("api") == {balanced.container_of("api", "app-1")}
    assert balanced.containers("app-2", "api") == {}, "api is retired on app-2"
    print(f"api added on app-2: {added.tally()}; removed: {removed.tally()}")


def test_tls_ends_at_the_balancer_with_certificates_from_the_acme_server_and_plain_http_redirects(
    tmp_path: Path, host_bed: HostBed
) -> None:
    balancer = host_bed.hosts[2]
    with AcmeBed.start(host_bed, balancer, tmp_path / "acme") as acme:
        stack = BalancedStack.create(tmp_path / "project", host_bed, unique_service("lbtls"))
        stack.config["quayside:proxy"] = {"image": acme.proxy_repository, "version": acme.proxy_tag, "ssl": True}
        trust = ssl.create_default_context(cafile=str(acme.root))
        try:
            stack.up()

            with Load(HTTPS_PORT, stack.host_name("web"), workers=2, address=balancer.address, tls=trust) as load:
                load.wait_for_requests(200, timeout=60)
            plain = http.client.HTTPConnection(balancer.address, PROXY_PORT, timeout=10)
            plain.request("GET", "/", headers={"Host": stack.host_name("web")})
            redirect = plain.getresponse()

            assert load.report.failures == [] and set(load.report.versions()) == {"v1"}, load.report.summary()
            assert (redirect.status, redirect.getheader("Location")) == (301, f"https://{stack.host_name('web')}/")
            assert len(acme.certificates_fetched()) == 1, "web's hostname's, got by the balancer at its first handshake"
            assert stack.get("web", "app-1") == (200, "v1"), "a role's own proxy serves plain HTTP, no redirect"
            print(f"HTTPS through the balancer, checked against the ACME server's root: {load.report.tally()}")

            # A new build of kamal-proxy takes over on every server, the balancer's too, keeping the certificate.
            certificate = served_certificate(balancer.address, stack.host_name("web"), trust)
            stack.config["quayside:proxy"]["version"] = acme.proxy_next_tag
            with Load(
                HTTPS_PORT, stack.host_name("web"), workers=2, address=balancer.address, tls=trust,
                retry_closed_keep_alive=True,
            ) as upgraded:  # fmt: skip
                upgraded.wait_for_requests(100, timeout=60)
                stack.up()
                upgraded.wait_for_requests(upgraded.report.total + 100)

            assert upgraded.report.failures == [], upgraded.report.summary()
            assert served_certificate(balancer.address, stack.host_name("web"), trust) == certificate
            assert len(acme.certificates_fetched()) == 1, "the certificate came with the state volume"
            print(f"kamal-proxy upgraded under HTTPS load through the balancer: {upgraded.report.summary()[:90]}")
        finally:
            stack.destroy()


def served_certificate(address: str, hostname: str, trust: ssl.SSLContext) -> bytes:
    """The certificate the proxy at `address` serves for `hostname` (DER), checked against `trust`."""
    with (
        socket.create_connection((address, HTTPS_PORT), timeout=10) as raw,
        trust.wrap_socket(raw, server_hostname=hostname) as tls,
    ):
        certificate = tls.getpeercert(binary_form=True)
    assert certificate is not None
    return certificate
