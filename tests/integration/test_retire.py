"""retire.sh: what Pulumi's delete of a role's swap command does on the server when the role leaves the stack."""

from __future__ import annotations

import uuid
from pathlib import Path

from tests.integration.conftest import Service
from tests.support import images
from tests.support.remote import REMOTE_ROOT, run_script


def test_retiring_a_removed_role_removes_its_route_containers_and_env_file_only(
    service: Service, other_service: Service
) -> None:
    service.deploy("web", "v1")
    service.deploy("api", "v1")
    service.deploy("api", "v2")
    # Another service with a role of the same name on the same proxy must not notice either.
    assert other_service.run("host.sh", "--service", other_service.name, "--stack-id", uuid.uuid4().hex).returncode == 0
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


def test_retiring_a_role_without_the_proxy_removes_its_containers(service: Service) -> None:
    service.deploy("worker", "v1", "--no-proxy", "--readiness-delay", "1")
    service.deploy("worker", "v2", "--no-proxy", "--readiness-delay", "1")

    removed = service.retire("worker", "v2", "--no-proxy")

    assert removed.returncode == 0 and "role worker removed" in removed.stdout, removed.stdout + removed.stderr
    assert "containers removed: 2" in removed.stdout, removed.stdout
    assert service.containers("worker") == {}


def swap_leaving_the_stop_under_way(service: Service, tag: str, stop_timeout: str) -> None:
    """swap.sh to `tag`, returning while the old container stops in the background (Service.run would wait)."""
    args = service.swap_args("web", images.app(tag), tag, "--stop-timeout", stop_timeout)
    swapped = run_script(service.server, service.name, "swap.sh", args)
    assert swapped.returncode == 0, swapped.stderr


def test_retiring_the_version_whose_swap_stops_the_others_waits_and_removes_the_role(service: Service) -> None:
    """The swap's old container stops in the background (the app ignores SIGTERM): the role's removal waits for
    that stop, then removes every container of the role."""
    service.deploy("web", "noterm-v1", "--stop-timeout", "3")
    swap_leaving_the_stop_under_way(service, "noterm-v2", "3")

    retired = service.retire("web", "noterm-v2")

    assert retired.returncode == 0, retired.stderr
    assert "waiting for the lock" in retired.stdout and "role web removed" in retired.stdout, retired.stdout
    assert service.containers("web") == {}
