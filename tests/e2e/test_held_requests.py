"""Requests held through a Postgres restart, through `pulumi up` of quayside's program on the loopback server: with
`accessories.postgres.hold_requests`, kamal-proxy queues the roles' requests while a settings change restarts
Postgres and lets them on once it answers; without it, requests that need the database fail meanwhile.

The role under load asks Postgres on every request (quayside-test/db-app: busybox httpd running psql per request)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.engine import live_restore_enabled, restarts_under
from tests.support.load import Load, LoadReport
from tests.support.stacks import PROXY_PORT, DemoStack, Events, registry_postgres, unique_service
from tests.support.testbed import TestServer, registry_address

DB_PATH = "/cgi-bin/db"


@pytest.fixture
def database_demo(tmp_path: Path, test_server: TestServer) -> Iterator[DemoStack]:
    """The demo stack with Postgres, its backend role the db-app, which holds requests for 30 s at most."""
    demo = DemoStack.create(tmp_path, test_server, unique_service("held"))
    demo.config["quayside:accessories"] = {
        "postgres": {"image": registry_postgres(), "version": "15", "hold_requests": "30s"}
    }
    backend = demo.roles["backend"]
    backend["image"] = f"{registry_address()}/quayside-test/db-app:v1"
    backend["env"]["secret"] = ["DATABASE_URL"]
    del backend["migrate"]
    demo.secrets["postgres_password"] = "pg-pass-7a41c0"
    try:
        demo.up()
        yield demo
    finally:
        demo.destroy()
        subprocess.run(["rm", "-rf", str(demo.service_dir)], check=False)


def up_under_database_load(demo: DemoStack, events: Events | None = None) -> LoadReport:
    with Load(PROXY_PORT, demo.host("backend"), path=DB_PATH, workers=2) as load:
        load.wait_for_requests(50)
        demo.up(events)
        load.wait_for_requests(load.report.total + 50)
    return load.report


def longest(report: LoadReport) -> float:
    return max(response.done - response.at for response in report.responses)


def test_a_postgres_restart_holds_the_roles_requests_and_drops_none_and_without_the_hold_they_fail(
    database_demo: DemoStack,
) -> None:
    demo = database_demo
    postgres = demo.config["quayside:accessories"]["postgres"]
    assert demo.get("backend")[0] == 200
    postgres["settings"] = {"max_connections": 50}
    events = Events()

    held = up_under_database_load(demo, events)

    assert events.changed().get(f"{demo.service}-postgres-container") == ["update"], events.changed()
    assert held.failures == [] and set(held.versions()) == {"v1"}, held.summary()
    assert longest(held) < 30, "a request waited longer than the hold allows"
    print(f"Postgres restarted, requests held: {held.summary()}; longest request {longest(held):.2f} s")

    del postgres["hold_requests"]
    postgres["settings"] = {"max_connections": 60}

    dropped = up_under_database_load(demo)

    assert dropped.failures, f"without the hold, no request needed the database: {dropped.summary()}"
    print(f"Postgres restarted, nothing held: {len(dropped.failures)} failed of {dropped.total}")


def test_three_restarts_of_dockerd_under_load_on_a_role_that_asks_postgres_fail_no_request(
    database_demo: DemoStack,
) -> None:
    """Through an engine restart a role's container keeps finding Postgres by its name, as kamal-proxy keeps finding
    the container by its address (tests/e2e/test_deploys.py restarts the engine under load on a plain role)."""
    assert live_restore_enabled(), "the engine runs without live-restore: host.sh writes it to daemon.json and reloads"
    with Load(PROXY_PORT, database_demo.host("backend"), path=DB_PATH, workers=2) as load:
        load.wait_for_requests(50)
        restarts = restarts_under(load, times=3, responses_between=100)
    report = load.report

    print(f"{restarts} under load on Postgres: {report.summary()[:160]}")
    assert report.failures == [], report.summary()
