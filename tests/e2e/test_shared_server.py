"""Two services on one server share its kamal-proxy (as Kamal's apps share one): what one service's `pulumi up`
and `pulumi destroy` do on the server never interrupts the other's traffic, and proxy options the other did not
ask for are refused before anything changes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from pulumi import automation as auto

from tests.support.docker import docker
from tests.support.stacks import PROXY, DemoStack, registry_image, service_containers, unique_service
from tests.support.testbed import TestServer


@pytest.fixture
def loaded(tmp_path: Path, test_server: TestServer) -> Iterator[DemoStack]:
    # Its network sorts after the neighbour's: a network the proxy joins before its own in name order is what
    # moved the proxy's published ports.
    stack = DemoStack.create(tmp_path / "loaded", test_server, unique_service("e2e-z"))
    stack.up()
    try:
        yield stack
    finally:
        stack.destroy()


@pytest.fixture
def neighbour(tmp_path: Path, test_server: TestServer) -> Iterator[DemoStack]:
    stack = DemoStack.create(tmp_path / "neighbour", test_server, unique_service("e2e-a"))
    try:
        yield stack
    finally:
        stack.destroy()


def proxy_started() -> str:
    return docker("inspect", "--format", "{{.Id}} {{.State.StartedAt}}", PROXY)


def test_another_service_deployed_changed_and_destroyed_three_times_drops_no_request(
    loaded: DemoStack, neighbour: DemoStack
) -> None:
    proxy_before = proxy_started()

    with loaded.load("web") as load:
        load.wait_for_requests(100)
        for _round in range(3):
            neighbour.roles["web"]["image"] = registry_image("v1")
            assert neighbour.up().summary.result == "succeeded"
            assert neighbour.get("web") == (200, "v1")
            neighbour.roles["web"]["image"] = registry_image("v2")
            assert neighbour.up().summary.result == "succeeded"
            assert neighbour.get("web") == (200, "v2")
            neighbour.destroy()
            assert service_containers(neighbour.service) == []
            load.wait_for_requests(load.report.total + 100)

    assert load.report.failures == [], load.report.summary()
    assert proxy_started() == proxy_before
    print(f"another service deployed, changed and destroyed 3 times: {load.report.summary()}")


def test_a_service_asking_for_other_proxy_options_is_refused_in_one_line_and_nothing_changes(
    loaded: DemoStack, neighbour: DemoStack
) -> None:
    proxy_before = proxy_started()
    neighbour.config["quayside:proxy"]["http_port"] = 8080

    with loaded.load("web") as load:
        load.wait_for_requests(100)
        with pytest.raises(auto.errors.CommandError) as refused:
            neighbour.up()
        load.wait_for_requests(load.report.total + 100)

    # The service it names is the first in name order on the proxy: the loaded one, or another the server runs.
    assert re.search(
        r"service '[a-z0-9-]+' shares this server's kamal-proxy and asked for http=127\.0\.0\.1:80, this one for"
        r" http=127\.0\.0\.1:8080: set proxy\.bind and proxy\.http_port alike in both stacks",
        str(refused.value),
    ), str(refused.value)
    assert load.report.failures == [], load.report.summary()
    assert proxy_started() == proxy_before
    assert service_containers(neighbour.service) == []
    assert loaded.get("web") == (200, "v1")
