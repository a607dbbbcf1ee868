"""proxy.sh: one kamal-proxy shared by the services of a server; its routes live on a volume."""

from __future__ import annotations

from tests.integration.conftest import Service
from tests.support.docker import docker, free_loopback_port


def started(service: Service) -> list[str]:
    """The proxy container's ID and start time."""
    return docker("inspect", "--format", "{{.Id}} {{.State.StartedAt}}", service.proxy).split()


def share_proxy(owner: Service, guest: Service) -> None:
    """The guest service joins the owner's proxy, as a second service on the same server does."""
    assert guest.run("host.sh", "--service", guest.name).returncode == 0
    guest.proxy, guest.http_port, guest.https_port = owner.proxy, owner.http_port, owner.https_port
    guest.state_volume = owner.state_volume
    booted = guest.boot_proxy()
    assert booted.returncode == 0, booted.stderr


def test_booting_the_proxy_again_with_the_same_options_changes_nothing(service: Service) -> None:
    before = started(service)

    again = service.boot_proxy()

    assert again.returncode == 0, again.stderr
    assert f"{service.proxy} up" in again.stdout
    assert started(service) == before


def test_booting_a_stopped_proxy_starts_it_again(service: Service) -> None:
    service.deploy("web", "v1")
    docker("stop", service.proxy)

    again = service.boot_proxy()

    assert again.returncode == 0, again.stderr
    assert service.get("web")[1].split()[0] == "v1"


def test_new_proxy_options_reboot_it_and_every_service_keeps_its_routes(
    service: Service, other_service: Service
) -> None:
    share_proxy(service, other_service)
    service.deploy("web", "v1")
    other_service.deploy("api", "v2")
    before = started(service)

    service.http_port = free_loopback_port()
    rebooted = service.boot_proxy()

    assert rebooted.returncode == 0, rebooted.stderr
    assert "booted" in rebooted.stdout
    assert started(service)[0] != before[0]
    # Routes came back from the state volume; the new container rejoined the other service's network too.
    assert service.get("web")[1].split()[0] == "v1"
    assert other_service.get("api", port=service.http_port)[1].split()[0] == "v2"
    assert f"{service.proxy} up" in service.boot_proxy().stdout

    # A swap through the rebooted proxy still switches without a failed request.
    swapped, report = service.swap_under_load("web", "v2")
    assert swapped.returncode == 0, swapped.stderr
    assert report.failures == [] and report.version_sequence() == ["v1", "v2"], report.summary()


def test_two_services_asking_for_other_options_reboot_the_proxy_only_when_their_own_change(
    service: Service, other_service: Service
) -> None:
    share_proxy(service, other_service)
    other_service.http_port = free_loopback_port()
    changed = other_service.boot_proxy()
    assert changed.returncode == 0 and "booted" in changed.stdout, changed.stdout + changed.stderr
    before = started(service)

    unchanged = [service.boot_proxy(), other_service.boot_proxy(), service.boot_proxy()]

    assert [done.returncode for done in unchanged] == [0, 0, 0], [done.stderr for done in unchanged]
    assert "keeps the options another service booted it with" in unchanged[0].stdout, unchanged[0].stdout
    assert started(service) == before


def test_removing_the_proxy_waits_until_no_service_uses_it(service: Service, other_service: Service) -> None:
    share_proxy(service, other_service)
    service.deploy("web", "v1")
    other_service.deploy("api", "v2")
    assert service.retire("web", "v1").returncode == 0

    kept = service.run("proxy.sh", "remove", "--network", service.name, "--name", service.proxy)

    assert kept.returncode == 0, kept.stderr
    assert "still routes 1 service" in kept.stdout
    assert service.name not in docker("inspect", "--format", "{{json .NetworkSettings.Networks}}", service.proxy)
    assert other_service.get("api", port=service.http_port)[1].split()[0] == "v2"

    assert other_service.retire("api", "v2").returncode == 0
    removed = other_service.run("proxy.sh", "remove", "--network", other_service.name, "--name", service.proxy)

    assert removed.returncode == 0, removed.stderr
    assert docker("ps", "--all", "--quiet", "--filter", f"name=^{service.proxy}$") == ""
    assert docker("volume", "inspect", "--format", "{{.Name}}", service.state_volume) == service.state_volume
    again = other_service.run("proxy.sh", "remove", "--network", other_service.name, "--name", service.proxy)
    assert again.returncode == 0 and "nothing to do" in again.stdout


def test_proxy_options_are_checked_before_anything_changes(service: Service) -> None:
    before = started(service)

    wrong_action = service.run("proxy.sh", "reboot", "--network", service.name)
    no_image = service.run("proxy.sh", "boot", "--network", service.name, "--name", service.proxy)

    assert wrong_action.returncode == 1
    assert wrong_action.stderr == "proxy: first argument must be boot or remove, not 'reboot'\n"
    assert no_image.returncode == 1 and no_image.stderr == "proxy: missing required option --image\n"
    assert started(service) == before
