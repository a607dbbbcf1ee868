"""balancer.sh on the test server: a role's route on a load balancer's kamal-proxy, claimed as a role's own route is,
so a service whose role's route would bear the same name (service `<s>-b`'s web, service `<s>`'s b-web) on a
server both use is refused, and neither loses a request."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from components import steps
from tests.integration.conftest import Service
from tests.support import images
from tests.support.docker import docker, unique_name
from tests.support.remote import REMOTE_ROOT


@pytest.fixture
def upstream(service: Service) -> Iterator[str]:
    """ADDRESS:80 of an app on the proxy's network: what a server's own proxy is to the balancer."""
    name = unique_name("upstream")
    docker("run", "--detach", "--name", name, "--network", service.proxy_network, images.app("v3"))
    try:
        yield f"{docker('inspect', '--format', '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}', name)}:80"
    finally:
        docker("rm", "--force", name, check=False)


def balancer(service: Service, action: str, role: str, *targets: str) -> subprocess.CompletedProcess[str]:
    """balancer.sh ACTION for the service's role on the server's (shared) proxy, as components/load_balancer.py runs
    it."""
    values: dict[str, object] = {"service": service.name, "role": role, "proxy_name": service.proxy}
    if action == "deploy":
        values |= {
            "target": list(targets), "host": [service.host(role)], "health_path": "/up",
            "health_interval": "500ms", "health_timeout": "2s", "deploy_timeout": "10s", "drain_timeout": "2s",
        }  # fmt: skip
    return service.run(steps.BALANCER.name, *steps.BALANCER.argv(action, **values))


def test_a_balancer_route_another_services_role_holds_is_refused_and_the_role_keeps_serving(
    service: Service, namesake: Service, upstream: str, server_hostname: str
) -> None:
    service.deploy("b-web", "v1")

    with service.load("b-web") as load:
        load.wait_for_requests(50)
        refused = balancer(namesake, "deploy", "web", upstream)
        removed = balancer(namesake, "remove", "web")
        load.wait_for_requests(load.report.total + 50)

    assert refused.returncode == 1
    assert refused.stderr == (
        f"balancer: kamal-proxy's route {service.name}-b-web on {server_hostname} belongs to service "
        f"'{service.name}' role 'b-web': rename service '{namesake.name}' or its role 'web' so SERVICE-ROLE differs\n"
    )
    assert (removed.returncode, removed.stdout) == (0, "balancer: web: the balancer has no route for it\n")
    assert load.report.failures == [] and set(load.report.versions()) == {"v1"}, load.report.summary()


def test_a_role_cannot_take_a_route_a_balancer_holds_until_the_balancer_removes_it(
    service: Service, namesake: Service, upstream: str, server_hostname: str
) -> None:
    deployed = balancer(namesake, "deploy", "web", upstream)
    assert deployed.returncode == 0, deployed.stderr

    with namesake.load("web") as load:
        load.wait_for_requests(50)
        refused = service.swap("b-web", "v1")
        load.wait_for_requests(load.report.total + 50)

    assert refused.returncode == 1
    assert refused.stderr == (
        f"swap: kamal-proxy's route {service.name}-b-web on {server_hostname} belongs to service "
        f"'{namesake.name}' role 'web' (its route on the load balancer): rename service '{service.name}' or its role "
        "'b-web' so SERVICE-ROLE differs\n"
    )
    assert load.report.failures == [] and set(load.report.versions()) == {"v3"}, load.report.summary()
    assert service.containers("b-web") == {}

    removed = balancer(namesake, "remove", "web")

    assert (removed.returncode, removed.stdout) == (0, "balancer: web: route removed from the balancer\n")
    assert service.server.run(f"test -e {REMOTE_ROOT}/routes.d/{service.name}-b-web", check=False).returncode == 1
    service.deploy("b-web", "v1")
    assert service.get("b-web")[1].split()[0] == "v1"
