"""proxy.sh: one kamal-proxy shared by the services of a server; its routes live on a volume."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from components import steps
from tests.integration.conftest import Service, derived_image, new_service, share_proxy
from tests.support import images
from tests.support.docker import docker, free_loopback_port
from tests.support.load import Load
from tests.support.remote import fixed_network
from tests.support.stacks import registry_pinned
from tests.support.testbed import TestServer, registry_address


def started(service: Service) -> list[str]:
    """The proxy container's ID and start time."""
    return docker("inspect", "--format", "{{.Id}} {{.State.StartedAt}}", service.proxy).split()


def leave_proxy(service: Service) -> subprocess.CompletedProcess[str]:
    """proxy.sh remove, as the service's destroy runs it."""
    args = steps.PROXY.argv("remove", network=service.name, name=service.proxy, proxy_network=service.proxy_network)
    return service.run(steps.PROXY.name, *args)


def networks(service: Service) -> list[str]:
    return docker("inspect", "--format", "{{range $net, $_ := .NetworkSettings.Networks}}{{$net}} {{end}}",
                  service.proxy).split()  # fmt: skip


@pytest.fixture
def early_service(test_server: TestServer, daemon_json_left_as_found: None) -> Iterator[Service]:
    """A second service whose network sorts before the first one's, as Docker orders a container's networks."""
    service = new_service(test_server, prefix="a")
    try:
        yield service
    finally:
        service.remove_everything()


def test_booting_the_proxy_again_with_the_same_options_changes_nothing(service: Service) -> None:
    before = started(service)

    again = service.boot_proxy()

    assert again.returncode == 0, again.stderr
    assert f"{service.proxy} up" in again.stdout
    assert started(service) == before


def test_pinning_the_proxys_tag_to_the_content_it_runs_reboots_nothing(service: Service) -> None:
    """A proxy booted before its image was pinned (or by a service that does not pin) is asked for the same."""
    unpinned = f"{registry_address()}/{images.KAMAL_PROXY}"
    assert service.boot_proxy("--image", unpinned).returncode == 0
    before = started(service)

    pinned = service.boot_proxy("--image", registry_pinned(images.KAMAL_PROXY))

    assert pinned.returncode == 0, pinned.stderr
    assert f"{service.proxy} up" in pinned.stdout
    assert started(service) == before


def test_new_content_under_the_proxys_pinned_tag_takes_over_and_its_routes_come_back(service: Service) -> None:
    repository = f"{registry_address()}/quayside-test/proxy-pin-{service.name}"
    digests = []
    for build in ("first", "second"):
        ref = f"{repository}:v0.9.2"
        subprocess.run(["docker", "build", "--quiet", "--tag", ref, "-"], text=True, capture_output=True, check=True,
                       input=f"FROM {images.KAMAL_PROXY}\nLABEL build={build}\n", timeout=120)  # fmt: skip
        docker("push", "--quiet", ref)
        pushed = docker("image", "inspect", "--format", "{{index .RepoDigests 0}}", ref)
        digests.append(f"{ref}@{pushed.split('@')[1]}")
    try:
        assert service.boot_proxy("--image", digests[0]).returncode == 0
        service.deploy("web", "v1")
        before = started(service)

        rebooted = service.boot_proxy("--image", digests[1])

        assert rebooted.returncode == 0, rebooted.stderr
        assert "handed over" in rebooted.stdout
        assert started(service)[0] != before[0]
        assert docker("inspect", "--format", "{{.Config.Image}}", service.proxy) == digests[1]
        assert service.get("web")[1].split()[0] == "v1"  # from the state volume
        assert f"{service.proxy} up" in service.boot_proxy("--image", digests[1]).stdout
    finally:
        service.boot_proxy()  # back on the local image, so this test's images can go
        docker("image", "rm", f"{repository}:v0.9.2", *(pin.replace(":v0.9.2@", "@") for pin in digests), check=False)


def test_a_new_proxy_image_takes_over_under_load_refusing_no_connection_and_losing_no_request(service: Service) -> None:
    """Two kinds of client on two roles: one opening a connection per request (any refused or reset one fails), one
    keeping its connection alive, which sends a request again when a proxy closes that connection between two
    requests, as browsers do."""
    service.deploy("web", "v1")
    service.deploy("api", "v1")
    upgrade = images.KAMAL_PROXY_NEXT
    before = started(service)[0]
    fresh = Load(service.http_port, service.host("web"), keep_alive=False)
    kept = Load(service.http_port, service.host("api"), retry_closed_keep_alive=True)
    try:
        with fresh, kept:
            fresh.wait_for_requests(100)
            handed = service.boot_proxy("--image", upgrade)
            fresh.wait_for_requests(fresh.report.total + 200)
            kept.wait_for_requests(kept.report.total + 200)

        assert handed.returncode == 0, handed.stderr
        assert "handed over" in handed.stdout, handed.stdout
        assert started(service)[0] != before
        assert docker("inspect", "--format", "{{.Config.Image}}", service.proxy) == upgrade
        for report in (fresh.report, kept.report):
            assert report.failures == [] and set(report.versions()) == {"v1"}, report.summary()
        print(f"\nproxy handed over: a connection per request {fresh.report.summary()[:60]}; kept alive "
              f"{kept.report.summary()[:90]}")  # fmt: skip
        assert docker("ps", "--all", "--quiet", "--filter", f"name=^{service.proxy}_standby$") == ""
        rules = subprocess.run(["iptables", "-t", "nat", "-S"], capture_output=True, text=True, check=True).stdout
        assert f"quayside-proxy-handover:{service.proxy}" not in rules
        assert f"{service.proxy} up" in service.boot_proxy("--image", upgrade).stdout
    finally:
        service.boot_proxy()


def test_a_new_proxy_image_that_never_answers_changes_nothing_and_fails_no_request(service: Service) -> None:
    service.deploy("web", "v1")
    broken = derived_image(
        f"quayside-test/kamal-proxy:broken-{service.name}",
        f'FROM {images.KAMAL_PROXY_NEXT}\nCMD ["kamal-proxy", "nonsense"]\n',
    )
    before = started(service)
    try:
        with service.load("web") as load:
            load.wait_for_requests(100)
            refused = service.boot_proxy("--image", broken)
            load.wait_for_requests(load.report.total + 100)

        assert refused.returncode == 1
        assert f"did not answer with the routes {service.proxy} serves: {service.proxy} serves on" in refused.stderr
        assert started(service) == before
        assert load.report.failures == [], load.report.summary()
        assert docker("ps", "--all", "--quiet", "--filter", f"name=^{service.proxy}_standby$") == ""
    finally:
        docker("image", "rm", broken, check=False)


def test_booting_a_stopped_proxy_starts_it_again(service: Service) -> None:
    service.deploy("web", "v1")
    docker("stop", service.proxy)

    again = service.boot_proxy()

    assert again.returncode == 0, again.stderr
    assert service.get("web")[1].split()[0] == "v1"


def test_new_proxy_options_of_the_only_service_reboot_it_and_its_routes_come_back(service: Service) -> None:
    service.deploy("web", "v1")
    before = started(service)

    service.http_port = free_loopback_port()
    rebooted = service.boot_proxy()

    assert rebooted.returncode == 0, rebooted.stderr
    assert "booted" in rebooted.stdout
    assert started(service)[0] != before[0]
    assert service.get("web")[1].split()[0] == "v1"  # from the state volume
    assert f"{service.proxy} up" in service.boot_proxy().stdout
    swapped, report = service.swap_under_load("web", "v2")
    assert swapped.returncode == 0, swapped.stderr
    assert report.failures == [] and report.version_sequence() == ["v1", "v2"], report.summary()


def test_a_service_asking_for_other_proxy_options_than_another_is_refused_and_nothing_changes(
    service: Service, other_service: Service
) -> None:
    share_proxy(service, other_service)
    service.deploy("web", "v1")
    before = started(service)

    other_service.http_port = free_loopback_port()
    refused = other_service.boot_proxy()

    assert refused.returncode == 1
    assert refused.stderr == (
        f"proxy: service '{service.name}' shares this server's kamal-proxy and asked for"
        f" http=127.0.0.1:{service.http_port}, this one for http=127.0.0.1:{other_service.http_port}: set proxy.bind"
        " and proxy.http_port alike in both stacks (the proxy changes once every service on it asks for the same)\n"
    )
    assert started(service) == before
    assert service.get("web")[1].split()[0] == "v1"


def test_a_shared_proxy_changes_once_every_service_asks_for_the_same_and_keeps_every_route(
    service: Service, other_service: Service
) -> None:
    share_proxy(service, other_service)
    service.deploy("web", "v1")
    other_service.deploy("api", "v2")
    new_port = free_loopback_port()
    other_service.http_port = new_port
    assert other_service.boot_proxy().returncode == 1
    before = started(service)

    service.http_port = new_port
    agreed = service.boot_proxy()

    assert agreed.returncode == 0, agreed.stderr
    assert "booted" in agreed.stdout and started(service)[0] != before[0]
    # Both routes came back from the state volume; the new container is on both services' networks, and on the
    # fixed networks where their containers are its targets.
    assert service.get("web")[1].split()[0] == "v1"
    assert other_service.get("api")[1].split()[0] == "v2"
    services = [service.name, other_service.name]
    assert sorted(networks(service)) == sorted([service.proxy_network, *services, *map(fixed_network, services)])
    assert f"{service.proxy} up" in other_service.boot_proxy().stdout


def test_a_service_joining_and_leaving_the_proxy_refuses_no_connection_of_another(
    service: Service, early_service: Service
) -> None:
    """Docker gives the proxy's published ports to its first network by name: the proxy's own, which sorts first,
    so a service whose network sorts before the others' joining and leaving moves nothing."""
    service.deploy("web", "v1")

    with service.load("web") as load:
        load.wait_for_requests(100)
        for _round in range(3):
            share_proxy(service, early_service)
            load.wait_for_requests(load.report.total + 100)
            left = leave_proxy(early_service)
            assert left.returncode == 0, left.stderr
            load.wait_for_requests(load.report.total + 100)

    assert load.report.failures == [], load.report.summary()
    assert networks(service) == [service.proxy_network, service.name, fixed_network(service.name)]
    print(f"a service joined and left the proxy 3 times: {load.report.summary()}")


def test_removing_the_proxy_waits_until_no_service_uses_it(service: Service, other_service: Service) -> None:
    share_proxy(service, other_service)
    service.deploy("web", "v1")
    other_service.deploy("api", "v2")
    assert service.retire("web", "v1").returncode == 0

    kept = leave_proxy(service)

    assert kept.returncode == 0, kept.stderr
    assert "still routes 1 service" in kept.stdout
    assert networks(service) == [service.proxy_network, other_service.name, fixed_network(other_service.name)]
    assert other_service.get("api", port=service.http_port)[1].split()[0] == "v2"

    assert other_service.retire("api", "v2").returncode == 0
    removed = leave_proxy(other_service)

    assert removed.returncode == 0, removed.stderr
    assert docker("ps", "--all", "--quiet", "--filter", f"name=^{service.proxy}$") == ""
    assert docker("volume", "inspect", "--format", "{{.Name}}", service.state_volume) == service.state_volume
    assert docker("network", "ls", "--quiet", "--filter", f"name=^{service.proxy_network}$") == ""
    again = leave_proxy(other_service)
    assert again.returncode == 0 and "nothing to do" in again.stdout


def test_proxy_options_are_checked_before_anything_changes(service: Service) -> None:
    before = started(service)

    wrong_action = service.run("proxy.sh", "reboot", "--network", service.name)
    no_image = service.run(
        "proxy.sh", "boot", "--network", service.name, "--name", service.proxy, "--proxy-network", service.proxy_network
    )

    assert wrong_action.returncode == 1
    assert wrong_action.stderr == "proxy: first argument must be boot or remove, not 'reboot'\n"
    assert no_image.returncode == 1 and no_image.stderr == "proxy: missing required option --image\n"
    assert started(service) == before
