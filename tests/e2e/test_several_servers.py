"""One service on several servers, through `pulumi up` of quayside's own program and the real engine, on the
multi-host test bed (each host a network namespace with its own sshd and Docker engine): roles placed on some
servers, Postgres on a server of its own reached over the private network, rollouts all or none, servers joining
and leaving a role, and a server that does not answer. HTTP load runs on each host's proxy; every failed request
counts.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from pulumi import automation as auto

from tests.support import images
from tests.support.hosts import HostBed
from tests.support.load import LoadReport
from tests.support.polling import wait_for
from tests.support.several import SeveralStack
from tests.support.stacks import PROXY, Events, unique_service


@pytest.fixture
def several(tmp_path: Path, host_bed: HostBed) -> Iterator[SeveralStack]:
    stack = SeveralStack.create(tmp_path, host_bed, unique_service("multi"))
    try:
        stack.up()
        yield stack
    finally:
        stack.destroy()


def up_under_load(
    stack: SeveralStack, placed: dict[str, list[str]], events: Events | None = None, *, retry: bool = False
) -> tuple[str | None, dict[str, LoadReport]]:
    """`pulumi up` with load on each (role, server) of `placed`; returns the error of a failed up (None when it
    succeeded) and each load's report, keyed `role@server`. `retry`: as Load's retry_closed_keep_alive."""
    error: str | None = None
    with ExitStack() as running:
        loads = {
            f"{role}@{server}": running.enter_context(stack.load(role, server, retry_closed_keep_alive=retry))
            for role, servers in placed.items()
            for server in servers
        }
        for load in loads.values():
            load.wait_for_requests(50)
        try:
            stack.up(events)
        except auto.errors.CommandError as failed:
            error = str(failed)
        for load in loads.values():
            load.wait_for_requests(load.report.total + 50)
    return error, {name: load.report for name, load in loads.items()}


def no_failures(reports: dict[str, LoadReport]) -> list[str]:
    return [f"{name}: {report.summary()}" for name, report in reports.items() if report.failures]


def test_a_service_on_three_servers_answers_on_every_server_of_each_role(several: SeveralStack) -> None:
    for role, servers in {"web": ["app-1", "app-2"], "backend": ["app-1", "app-2"], "api": ["app-2"]}.items():
        for server in servers:
            assert several.get(role, server)[0] == 200, (role, server)
    assert several.get("api", "app-1")[0] == 404, "api is not placed on app-1"
    assert several.containers("db", "web") == {}, "db holds the database only"


def test_the_roles_reach_postgres_on_its_own_server_over_the_private_network(several: SeveralStack) -> None:
    worker = next(name for name in several.containers("app-1", "worker"))
    wait_for("the worker's query answered", lambda: "42" in several.logs("app-1", worker).split(), seconds=60)
    postgres = f"{several.service}-postgres"
    published = several.hosts["db"].run(shlex.join(["docker", "port", postgres, "5432"])).stdout.split()
    assert published == [f"{several.hosts['db'].address}:5432"], "Postgres listens on db's private address only"


def test_a_migration_runs_once_per_version_not_once_per_server(several: SeveralStack) -> None:
    audit = "".join(
        several.hosts[server].run(f"cat /var/lib/quayside/{several.service}/audit.log", check=False).stdout
        for server in ("app-1", "app-2")
    )

    migrations = [line.split() for line in audit.splitlines() if line.split()[3:4] == ["migrate"]]
    assert [(fields[1], fields[2].split("@")[0]) for fields in migrations] == [("backend", "v2")], audit


def test_an_image_change_with_boot_limit_one_switches_the_servers_one_after_the_other(several: SeveralStack) -> None:
    several.roles["web"]["image"] = several.image("v2")

    error, reports = up_under_load(several, {"web": ["app-1", "app-2"]})

    assert error is None, error
    assert no_failures(reports) == []
    assert several.get("web", "app-1") == (200, "v2") and several.get("web", "app-2") == (200, "v2")
    switched = {server: several.switched_at("web", server) for server in ("app-1", "app-2")}
    began = {server: several.deploy_began_at("web", server) for server in ("app-1", "app-2")}
    assert switched["app-1"] <= began["app-2"], (switched, began)


def test_a_health_check_failing_on_one_server_leaves_no_server_on_the_new_version(several: SeveralStack) -> None:
    # The new version mounts a path of its server over its health file: on app-1 a file, which it writes; on app-2
    # a directory, which it cannot write, so the app stops before it listens.
    probe = f"/var/lib/quayside/{several.service}-probe"
    several.hosts["app-1"].run(shlex.join(["touch", probe]))
    several.hosts["app-2"].run(shlex.join(["mkdir", "-p", probe]))
    several.roles["web"] |= {"image": several.image("v2"), "volumes": [f"{probe}:/www/up"]}
    try:
        error, reports = up_under_load(several, {"web": ["app-1", "app-2"]})
    finally:
        for server in ("app-1", "app-2"):
            several.hosts[server].run(shlex.join(["rm", "-rf", probe]))

    assert error is not None and "app-2" in error and "/up" in error, error
    assert no_failures(reports) == []
    for server in ("app-1", "app-2"):
        assert several.get("web", server) == (200, "v1"), server
        # app-1 may answer v2 between its switch and the way back; it ends on v1.
        assert reports[f"web@{server}"].version_sequence()[-1] == "v1", reports[f"web@{server}"].summary()
        assert "" not in reports[f"web@{server}"].versions(), "an empty answer: " + reports[f"web@{server}"].summary()
    assert reports["web@app-2"].version_sequence() == ["v1"], reports["web@app-2"].summary()


def test_a_server_added_to_a_role_and_one_removed_drop_no_request_where_the_role_stays(
    several: SeveralStack,
) -> None:
    several.roles["web"]["servers"] = ["app-2", "db"]

    error, reports = up_under_load(several, {"web": ["app-2"]})

    assert error is None, error
    assert no_failures(reports) == []
    assert several.get("web", "db") == (200, "v1")
    assert several.containers("app-1", "web") == {}
    assert several.get("web", "app-1")[0] == 404


def test_a_server_whose_sshd_is_down_ends_up_at_once_naming_it_and_the_others_keep_serving(
    several: SeveralStack, host_bed: HostBed
) -> None:
    several.roles["web"]["image"] = several.image("v2")
    down = several.hosts["app-2"]
    with host_bed.sshd_stopped(down):
        error, reports = up_under_load(several, {"web": ["app-1"]})

    assert error is not None and f"quayside: servers.app-2: {down.address}:22 refuses SSH connections" in error, error
    assert no_failures(reports) == []
    assert several.get("web", "app-1") == (200, "v1")


def test_a_one_server_stack_moved_to_servers_keeps_its_containers_and_deletes_nothing(
    tmp_path: Path, host_bed: HostBed
) -> None:
    stack = SeveralStack.create(tmp_path, host_bed, unique_service("move"))
    servers = stack.config["quayside:servers"]
    stack.config["quayside:server"] = {key: value for key, value in servers["app-1"].items() if key != "private_ip"}
    del stack.config["quayside:servers"], stack.config["quayside:accessories"]
    stack.config["quayside:roles"] = {
        name: {key: value for key, value in role.items() if key not in ("servers", "boot")}
        for name, role in stack.roles.items()
        if name in ("web", "backend")
    }
    try:
        stack.up()
        before = stack.containers("app-1", "web")
        stack.config["quayside:servers"] = {
            "app-1": {**stack.config.pop("quayside:server"), "private_ip": servers["app-1"]["private_ip"]}
        }
        events = Events()

        error, reports = up_under_load(stack, {"web": ["app-1"]}, events)

        assert error is None, error
        assert no_failures(reports) == []
        deleted = {name: ops for name, ops in events.changed().items() if "delete" in ops or "replace" in ops}
        assert deleted == {}, deleted
        assert stack.containers("app-1", "web") == before, "web's container kept running as it was"
        assert reports["web@app-1"].version_sequence() == ["v1"]
    finally:
        stack.destroy()


def test_details_and_logs_show_each_role_on_each_of_its_servers(several: SeveralStack) -> None:
    details = several.quayside("details")
    logs = several.quayside("logs", "web", "--lines", "20")
    one = several.quayside("logs", "web", "--host", "app-2", "--lines", "20")

    assert details.returncode == 0, details.stderr
    web_rows = [line for line in details.stdout.splitlines() if line.split()[:1] == ["web"]]
    assert {server for row in web_rows for server in ("app-1", "app-2") if server in row.split()} == {
        "app-1", "app-2",
    }, details.stdout  # fmt: skip
    assert not [line for line in details.stdout.splitlines() if line.split()[:1] == ["api"] and "app-1" in line]
    assert logs.returncode == 0, logs.stderr
    assert {line.split(" | ")[0] for line in logs.stdout.splitlines() if " | " in line} == {"app-1", "app-2"}
    assert one.returncode == 0 and "app-1 | " not in one.stdout and "listening" in one.stdout, one.stdout


def test_a_rollback_puts_the_previous_version_back_on_every_server_of_the_role(several: SeveralStack) -> None:
    several.roles["web"]["image"] = several.image("v2")
    several.up()
    assert several.get("web", "app-1") == (200, "v2") and several.get("web", "app-2") == (200, "v2")

    with ExitStack() as running:
        loads = [running.enter_context(several.load("web", server)) for server in ("app-1", "app-2")]
        for load in loads:
            load.wait_for_requests(50)
        rolled = several.quayside("rollback", "web")
        for load in loads:
            load.wait_for_requests(load.report.total + 50)

    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    assert [load.report.failures for load in loads] == [[], []], [load.report.summary() for load in loads]
    assert several.get("web", "app-1") == (200, "v1") and several.get("web", "app-2") == (200, "v1")


def test_a_new_kamal_proxy_takes_over_on_every_server_under_load_and_loses_no_request(several: SeveralStack) -> None:
    """The proxy's version changes to another build: on each server a standby of it takes the new connections while
    the old proxy drains and the new one starts. Clients that keep their connection alive send a request again when
    a proxy closes it between two requests, as browsers do (a client opening a connection per request meets no
    refused or reset connection: tests/integration/test_proxy.py)."""
    repository, next_tag = images.KAMAL_PROXY_NEXT.split(":")
    next_build = several.image(next_tag, repository)
    placed = {"web": ["app-1", "app-2"], "backend": ["app-1", "app-2"], "api": ["app-2"]}
    routes = {server: proxy_routes(several, server) for server in ("app-1", "app-2")}
    several.config["quayside:proxy"]["version"] = next_tag

    error, reports = up_under_load(several, placed, retry=True)

    assert error is None, error
    assert no_failures(reports) == [], no_failures(reports)
    for server in ("app-1", "app-2"):
        image = several.hosts[server].run(shlex.join(["docker", "inspect", "--format", "{{.Config.Image}}", PROXY]))
        assert image.stdout.strip().startswith(next_build), image.stdout
        assert proxy_routes(several, server) == routes[server], "every route kept"
    retried = sum(report.retried for report in reports.values())
    total = sum(report.total for report in reports.values())
    print(f"kamal-proxy v0.9.2 to v0.9.2-next on 2 servers under load: 0 failed of {total} ({retried} retried)")


def proxy_routes(stack: SeveralStack, server: str) -> list[str]:
    listing = stack.hosts[server].run(shlex.join(["docker", "exec", PROXY, "kamal-proxy", "list"])).stdout
    return sorted(line.split()[0] for line in listing.splitlines()[1:] if line.strip())
