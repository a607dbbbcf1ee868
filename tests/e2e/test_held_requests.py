"""Requests held through a Postgres restart, through `pulumi up` of quayside's program on the loopback server: with
`accessories.postgres.hold_requests`, kamal-proxy queues the roles' requests while a settings change restarts
Postgres and lets them on once it answers; without it, requests that need the database fail meanwhile. A new major
version of Postgres is one `up` too: the rows dumped and restored, the requests held meanwhile.

The role under load asks Postgres on every request (quayside-test/db-app: busybox httpd running psql per request)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from pulumi import automation as auto

from tests.support import images
from tests.support.docker import docker
from tests.support.engine import live_restore_enabled, restarts_under
from tests.support.load import Load, LoadReport
from tests.support.stacks import PROXY_PORT, DemoStack, Events, changes, registry_postgres, unique_service
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


def sql(demo: DemoStack, statement: str) -> str:
    """psql as the service's user in its Postgres container, over the local socket."""
    user = demo.service.replace("-", "_")
    container = f"{demo.service}-postgres"
    return docker("exec", container, "psql", "-v", "ON_ERROR_STOP=1", "-X", "-q", "-tA", "-U", user, "-c", statement)


def up_under_database_load(demo: DemoStack, events: Events | None = None, request_timeout: float = 5.0) -> LoadReport:
    """Load on the backend role through `pulumi up`; a request that waits longer than `request_timeout` failed."""
    with Load(PROXY_PORT, demo.host("backend"), path=DB_PATH, workers=2, request_timeout=request_timeout) as load:
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


def test_a_new_postgres_major_in_one_up_keeps_every_row_and_fails_no_request(database_demo: DemoStack) -> None:
    demo = database_demo
    postgres = demo.config["quayside:accessories"]["postgres"]
    sql(demo, "CREATE TABLE orders (id int PRIMARY KEY, item text NOT NULL)")
    sql(demo, "INSERT INTO orders SELECT n, 'item-' || n FROM generate_series(1, 1000) AS n")
    assert sql(demo, "SHOW server_version_num")[:2] == "15"
    postgres["image"] = f"{registry_address()}/{images.POSTGRES_NEXT_MAJOR}"
    postgres["version"] = "17"

    plan = demo.preview()
    events = Events()
    # A held request waits for the whole dump and restore, up to the hold's 30 s.
    report = up_under_database_load(demo, events, request_timeout=31)

    words = "Postgres 15 to 17: the cluster dumped by 15 and restored into a new data directory by 17, the roles' "
    assert f"{demo.service}-postgres: {words}requests held meanwhile, each up to 30s" in plan.stdout, plan.stdout
    assert events.changed().get(f"{demo.service}-postgres-container") == ["update"], events.changed()
    assert report.failures == [] and set(report.versions()) == {"v1"}, report.summary()
    assert sql(demo, "SHOW server_version_num")[:2] == "17"
    assert sql(demo, "SELECT count(*), min(item), max(id) FROM orders") == "1000|item-1|1000"
    kept = subprocess.run(
        ["sh", "-c", f"cat {demo.service_dir}/postgres/data-15-*/PG_VERSION"], capture_output=True, text=True
    )
    assert kept.stdout.strip() == "15", f"Postgres 15's data directory is kept: {kept.stderr}"
    print(f"Postgres 15 to 17 under load: {report.summary()[:160]}; longest request {longest(report):.2f} s")
    assert changes(demo.preview().change_summary) == set(), "a second plan changes nothing"

    postgres["image"] = registry_postgres()
    postgres["version"] = "15"
    with pytest.raises(auto.CommandError) as refused:
        demo.preview()
    assert "holds Postgres 17's cluster, and" in str(refused.value), str(refused.value)
    assert "a major version cannot go back; set version (or the image's tag) to 17 or later" in str(refused.value)
    print(next(line for line in str(refused.value).splitlines() if "cannot go back" in line))
