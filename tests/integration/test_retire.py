"""retire.sh: what Pulumi's delete of a version's swap command does on the server."""

from __future__ import annotations

from pathlib import Path

from tests.integration.conftest import Service
from tests.support import images
from tests.support.remote import REMOTE_ROOT, run_script, settle


def test_retiring_a_replaced_version_keeps_it_stopped_and_the_live_one_serving(service: Service) -> None:
    service.deploy("web", "v1")
    service.deploy("web", "v2")

    with service.load("web") as load:
        load.wait_for_requests(100)
        retired = service.retire("web", "v1")
        load.wait_for_requests(load.report.total + 100)
    report = load.report

    assert retired.returncode == 0, retired.stderr
    assert "kept for rollback" in retired.stdout
    assert report.failures == [], report.summary()
    assert set(report.versions()) == {"v2"}, report.summary()
    assert service.containers("web") == {
        service.container("web", "v1"): "exited",
        service.container("web", "v2"): "running",
    }
    assert service.audit_events()[-1] == ("web", "v1", "retire")


def test_retiring_a_version_that_still_runs_beside_the_live_one_stops_it(service: Service) -> None:
    service.deploy("web", "v1")
    service.deploy("web", "v2")
    service.deploy("web", "v1")  # a rollback: v2 is now the stopped one; start it by hand as a leftover
    service.server.run(f"docker start {service.container('web', 'v2')}")

    retired = service.retire("web", "v2")

    assert retired.returncode == 0, retired.stderr
    assert service.containers("web") == {
        service.container("web", "v1"): "running",
        service.container("web", "v2"): "exited",
    }
    assert service.get("web")[1].split()[0] == "v1"


def test_retiring_a_removed_role_removes_its_route_containers_and_env_file_only(
    service: Service, other_service: Service
) -> None:
    service.deploy("web", "v1")
    service.deploy("api", "v1")
    service.deploy("api", "v2")
    # Another service with a role of the same name on the same proxy must not notice either.
    other_service.run("host.sh", "--service", other_service.name)
    other_service.proxy = service.proxy
    other_service.http_port = service.http_port
    assert service.boot_proxy(network=other_service.name).returncode == 0
    other_service.deploy("api", "v3")

    with service.load("web") as web, other_service.load("api") as other_api:
        web.wait_for_requests(100)
        retired = service.retire("api", "v2")
        web.wait_for_requests(web.report.total + 100)
        other_api.wait_for_requests(100)

    assert retired.returncode == 0, retired.stderr
    assert "role api removed" in retired.stdout
    assert service.get("api")[0] == 404
    assert f"{service.name}-api " not in service.proxy_routes()
    assert service.containers("api") == {}
    assert not Path(f"{REMOTE_ROOT}/{service.name}/env/api.env").exists()
    assert Path(f"{REMOTE_ROOT}/{service.name}/env/web.env").exists()
    assert web.report.failures == [] and set(web.report.versions()) == {"v1"}, web.report.summary()
    assert other_api.report.failures == [] and set(other_api.report.versions()) == {"v3"}, other_api.report.summary()
    assert service.containers("web") == {service.container("web", "v1"): "running"}
    assert other_service.containers("api") == {other_service.container("api", "v3"): "running"}
    assert service.audit_events()[-1] == ("api", "v2", "retire")


def test_retiring_a_removed_role_twice_is_harmless(service: Service) -> None:
    service.deploy("web", "v1")

    first = service.retire("web", "v1")
    second = service.retire("web", "v1")

    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert service.containers("web") == {}


def test_retiring_a_role_without_the_proxy_keeps_the_running_version(service: Service) -> None:
    service.deploy("worker", "v1", "--no-proxy", "--readiness-delay", "1")
    service.deploy("worker", "v2", "--no-proxy", "--readiness-delay", "1")

    kept = service.retire("worker", "v1", "--no-proxy")
    removed = service.retire("worker", "v2", "--no-proxy")

    assert kept.returncode == 0 and "kept for rollback" in kept.stdout, kept.stdout + kept.stderr
    assert removed.returncode == 0 and "role worker removed" in removed.stdout, removed.stdout + removed.stderr
    assert service.containers("worker") == {}


def test_retiring_an_old_version_while_the_live_one_is_not_running_keeps_the_role(service: Service) -> None:
    """Docker restarting the live container (here: paused) at retire time must not read as a removed role."""
    service.deploy("web", "v1")
    service.deploy("web", "v2")
    live = service.container("web", "v2")
    service.server.run(f"docker pause {live}")
    try:
        retired = service.retire("web", "v1")
    finally:
        service.server.run(f"docker unpause {live}")

    assert retired.returncode == 0, retired.stderr
    assert "kept for rollback" in retired.stdout, retired.stdout
    assert service.containers("web") == {service.container("web", "v1"): "exited", live: "running"}
    assert service.get("web")[1].split()[0] == "v2"


def swap_leaving_the_stop_under_way(service: Service, tag: str, stop_timeout: str) -> None:
    """swap.sh to `tag`, returning while the old container stops in the background (Service.run would wait)."""
    args = service.swap_args("web", images.app(tag), tag, "--stop-timeout", stop_timeout)
    swapped = run_script(service.server, service.name, "swap.sh", args)
    assert swapped.returncode == 0, swapped.stderr


def test_retiring_a_version_the_swap_still_stops_in_the_background_does_not_wait_for_its_stop(
    service: Service,
) -> None:
    """The app ignores SIGTERM: its stop takes the whole --stop-timeout, which the old command's delete need not
    wait for, since the swap that replaced it is stopping it already."""
    service.deploy("web", "noterm-v1", "--stop-timeout", "10")
    swap_leaving_the_stop_under_way(service, "noterm-v2", "10")

    args = ["--service", service.name, "--role", "web", "--version", "noterm-v1", "--proxy-name", service.proxy]
    retired = run_script(service.server, service.name, "retire.sh", args)
    still_stopping = service.containers("web")[service.container("web", "noterm-v1")]

    assert retired.returncode == 0, retired.stderr
    assert "web noterm-v1 is being stopped in the background and kept for rollback" in retired.stdout
    assert still_stopping == "running", "retire waited for the stop it did not need to wait for"
    assert service.audit_events()[-1] == ("web", "noterm-v1", "retire")
    settle(service.server, service.name, "web")
    assert service.containers("web") == {
        service.container("web", "noterm-v1"): "exited",
        service.container("web", "noterm-v2"): "running",
    }


def test_retiring_the_version_whose_swap_stops_the_others_waits_and_removes_the_role(service: Service) -> None:
    """Its own swap's background stop is no reason to skip: with no other version live, the role was removed."""
    service.deploy("web", "noterm-v1", "--stop-timeout", "3")
    swap_leaving_the_stop_under_way(service, "noterm-v2", "3")

    retired = service.retire("web", "noterm-v2")

    assert retired.returncode == 0, retired.stderr
    assert "waiting for the lock" in retired.stdout and "role web removed" in retired.stdout, retired.stdout
    assert service.containers("web") == {}
