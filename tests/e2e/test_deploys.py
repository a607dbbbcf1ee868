"""What `pulumi up` of quayside's own program does to a running app, through the real engine and plugins, on the
loopback server, with HTTP load counted through every change: which commands Pulumi replaces, when the old
version's delete runs, which swaps run side by side, what a failure leaves serving, and what never leaks.

Each test deploys the three demo roles of Pulumi.local.yaml (web v1, backend v2 with a migration, api v3) as a
service of its own, changes one thing, and destroys the service at the end.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pulumi import automation as auto

from tests.support.engine import live_restore_enabled, restarts_under
from tests.support.load import LoadReport
from tests.support.polling import wait_for
from tests.support.processes import ProcessWatch
from tests.support.pulumi_engine import pulumi_cli
from tests.support.stacks import (
    PROXY_PORT,
    STACK,
    DemoStack,
    Events,
    changes,
    container_name,
    container_states,
    pinned_version,
    proxy_deploys,
    proxy_routes,
    registry_image,
    registry_postgres,
    service_containers,
    sql,
    unique_service,
)
from tests.support.testbed import TestServer

NEVER_HEALTHY = registry_image("never-healthy")
SLOW_START = registry_image("slow-start")
# The image tag each demo role deploys at first (Pulumi.local.yaml).
VERSIONS = {"web": "v1", "backend": "v2", "api": "v3"}


def up_under_load(demo: DemoStack, role: str, events: Events | None = None) -> tuple[auto.UpResult, LoadReport]:
    """`pulumi up` with load on the role's host from before it starts until 100 responses after it ends."""
    with demo.load(role) as load:
        load.wait_for_requests(100)
        result = demo.up(events)
        load.wait_for_requests(load.report.total + 100)
    return result, load.report


def swaps(events: Events) -> dict[str, list[str]]:
    """The swap and migration commands the update changed, by role-resource name."""
    return {name: ops for name, ops in events.changed().items() if name.endswith(("-swap", "-migrate"))}


# A new version re-runs the swap in place: no delete of the old command waits at the end of `pulumi up`.
UPDATED = ["update"]


def test_an_image_change_of_one_role_updates_only_its_swap_and_drops_no_request(demo: DemoStack) -> None:
    demo.roles["web"]["image"] = registry_image("v2")
    events = Events()

    result, report = up_under_load(demo, "web", events)

    assert result.summary.result == "succeeded"
    assert report.failures == [] and report.version_sequence() == ["v1", "v2"], report.summary()
    assert swaps(events) == {f"{demo.service}-web-swap": UPDATED}
    # The swap stopped v1 (in the background, once v2 served) and kept it for rollback.
    assert container_states(demo.service, "web") == {
        container_name(demo.service, "web", "v1"): "exited",
        container_name(demo.service, "web", "v2"): "running",
    }
    assert demo.audit()[-1].split()[1:4] == ["web", pinned_version("v2"), "deploy"]
    print(f"image change of web: {report.summary()}")


def test_renaming_the_service_of_a_deployed_stack_is_refused_before_anything_of_the_new_name_runs(
    demo: DemoStack,
) -> None:
    """The new name would start on an empty database beside the old service (its data stays under its own name)."""
    renamed = unique_service("renamed")
    demo.config["quayside:service"] = renamed

    message, report = demo.failed_up_under_load("web")
    demo.config["quayside:service"] = demo.service  # as the message says; the fixture's destroy needs it too

    assert f"this stack runs service '{demo.service}' on " in message
    assert f"Set service: {demo.service} back" in message
    assert report.failures == [] and report.version_sequence() == ["v1"], report.summary()
    assert service_containers(renamed) == []
    assert demo.up().summary.result == "succeeded", "the old name deploys again"
    print(f"a refused rename under load: {report.summary()}")


def test_a_preview_of_an_image_change_names_exactly_the_role_that_changes(demo: DemoStack) -> None:
    demo.roles["api"]["image"] = registry_image("v1")
    events = Events()

    preview = demo.preview(events)

    assert swaps(events) == {f"{demo.service}-api-swap": UPDATED}
    assert preview.change_summary.get(auto.OpType.UPDATE) == 1, preview.change_summary
    assert demo.get("api") == (200, "v3"), "a preview changed the server"


def test_a_failed_health_check_fails_up_clearly_and_the_old_version_keeps_serving(
    demo: DemoStack, server_hostname: str
) -> None:
    deployed = demo.snapshot()
    serving = demo.stack().outputs()["roles"].value["web"]
    demo.roles["web"]["image"] = NEVER_HEALTHY
    demo.roles["web"]["deploy_timeout"] = "5s"

    message, report = demo.failed_up_under_load("web")

    assert f"swap failed: role web on {server_hostname}:" in message
    assert "Traceback" not in message and "KeyboardInterrupt" not in message, message
    assert demo.stack().outputs()["roles"].value["web"] == serving, "the outputs name what serves"
    assert "(health path /up)" in message
    assert f"last log lines of {container_name(demo.service, 'web', 'never-healthy')}:" in message
    assert "app never-healthy: listening on :80 (healthy: no" in message
    assert report.failures == [] and set(report.versions()) == {"v1"}, report.summary()
    assert container_states(demo.service, "web") == {container_name(demo.service, "web", "v1"): "running"}

    demo.config = deployed
    assert changes(demo.preview().change_summary) == set(), "restoring the config must be a no-op"

    demo.roles["web"]["image"] = registry_image("v3")
    assert demo.up().summary.result == "succeeded"
    assert demo.get("web") == (200, "v3")


# A `pulumi` ahead of the real one on PATH: before `pulumi up` starts, it asks the role's host which version answers
# and notes it; then it is the real CLI.
PULUMI_WATCHING_UP = """#!{python}
import http.client, os, sys
if sys.argv[1:2] == ["up"]:
    connection = http.client.HTTPConnection("127.0.0.1", {port}, timeout=10)
    connection.request("GET", "/", headers={{"Host": {host!r}}})
    with open({notes!r}, "a") as notes:
        notes.write(connection.getresponse().read().decode().split()[0] + "\\n")
os.execv({cli!r}, [{cli!r}, *sys.argv[1:]])
"""


def pulumi_watching_up(directory: Path, demo: DemoStack, role: str, notes: Path) -> Path:
    """A directory holding PULUMI_WATCHING_UP as `pulumi`, noting into `notes` what `role` answers."""
    directory.mkdir()
    shim = directory / "pulumi"
    shim.write_text(PULUMI_WATCHING_UP.format(python=sys.executable, port=PROXY_PORT, host=demo.host(role),
                                              notes=str(notes), cli=str(pulumi_cli())))  # fmt: skip
    shim.chmod(0o755)
    return directory


def test_a_rollback_under_load_serves_the_previous_version_before_pulumi_up_and_state_agrees(
    demo: DemoStack, tmp_path: Path
) -> None:
    demo.roles["web"]["image"] = registry_image("v2")
    demo.up()
    rolled_back_config = demo.snapshot()
    rolled_back_config["quayside:roles"]["web"]["image"] = registry_image("v1")
    answered_at_up = tmp_path / "answered-at-up"
    watching = pulumi_watching_up(tmp_path / "bin", demo, "web", answered_at_up)

    with demo.load("web") as load:
        load.wait_for_requests(100)
        started = time.monotonic()
        rolled = demo.rollback("web", path_first=watching)
        took = time.monotonic() - started
        load.wait_for_requests(load.report.total + 100)

    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    assert f"rollback: web from {pinned_version('v2')} to {pinned_version('v1')}" in rolled.stdout
    assert f"rollback: web serves {pinned_version('v1')}" in rolled.stdout, rolled.stdout + rolled.stderr
    assert answered_at_up.read_text() == "v1\n", "v1 must answer before the pulumi up that records it starts"
    assert f"swap: web already live at {pinned_version('v1')}" in rolled.stdout, "pulumi up found v1 live, left it"
    assert load.report.failures == [] and load.report.version_sequence() == ["v2", "v1"], load.report.summary()
    assert [line.split()[1:4] for line in demo.audit()][-2:] == [
        ["web", pinned_version("v2"), "deploy"],
        ["web", pinned_version("v1"), "rollback"],
    ]
    print(f"rollback of web: {took:.1f} s; {load.report.summary()}")

    newer = demo.snapshot()
    demo.config = rolled_back_config
    assert changes(demo.preview().change_summary) == set(), "state must say v1 after the rollback"
    demo.config = newer
    events = Events()
    assert demo.up(events).summary.result == "succeeded"
    assert swaps(events) == {f"{demo.service}-web-swap": UPDATED}
    assert demo.get("web") == (200, "v2")


def test_a_rollback_to_a_version_never_deployed_names_the_ones_that_were(demo: DemoStack) -> None:
    demo.roles["web"]["image"] = registry_image("v2")
    demo.up()

    rolled = demo.rollback("web", "v7")

    assert rolled.returncode == 1
    assert rolled.stderr.strip() == f"rollback: web was never deployed at v7; earlier versions: {pinned_version('v1')}"
    assert demo.get("web") == (200, "v2")


def test_a_rollback_while_another_pulumi_up_updates_the_stack_is_refused_before_switching(demo: DemoStack) -> None:
    demo.roles["web"]["image"] = registry_image("v2")
    demo.up()
    demo.roles["web"]["image"] = SLOW_START  # 5 s before it answers: the other update is still running
    locks = Path(demo.project.env()["PULUMI_BACKEND_URL"].removeprefix("file://")) / ".pulumi" / "locks"
    other = threading.Thread(target=demo.up)
    other.start()
    try:
        wait_for("the other pulumi up holding the stack's lock", lambda: any(locks.rglob("*.json")), seconds=60)
        rolled = demo.rollback("web")
    finally:
        other.join(timeout=300)

    assert rolled.returncode == 1, rolled.stdout + rolled.stderr
    assert rolled.stderr.startswith(f"rollback: stack {STACK} is being updated now (pulumi update by "), rolled.stderr
    assert "nothing was switched; roll back once that update has ended" in rolled.stderr
    assert [line for line in demo.audit() if line.split()[3] == "rollback"] == []
    assert demo.get("web")[1].split()[0] == "slow-start", "the other update went through"


def migrations(demo: DemoStack) -> list[str]:
    return [" ".join(line.split()[1:5]) for line in demo.audit() if line.split()[3] == "migrate"]


def test_a_migration_runs_once_per_version_before_its_swap_and_not_for_other_changes(demo: DemoStack) -> None:
    events_of_first = [" ".join(line.split()[1:4]) for line in demo.audit() if line.split()[1] == "backend"]
    assert events_of_first[:2] == [f"backend {pinned_version('v2')} migrate", f"backend {pinned_version('v2')} deploy"]

    demo.roles["backend"]["env"]["clear"]["FEATURE"] = "on"
    demo.roles["backend"]["drain_timeout"] = "10s"
    events = Events()
    demo.up(events)

    assert swaps(events) == {f"{demo.service}-backend-swap": ["update"], f"{demo.service}-backend-migrate": ["update"]}
    assert migrations(demo) == [f"backend {pinned_version('v2')} migrate ok"]

    demo.roles["backend"]["image"] = registry_image("v3")
    demo.up()
    assert migrations(demo) == [f"backend {pinned_version(v)} migrate ok" for v in ("v2", "v3")]
    assert demo.get("backend") == (200, "v3")


def test_the_roles_changed_by_one_up_swap_at_the_same_time(demo: DemoStack) -> None:
    # Each new version listens only 4 s after it starts: swaps one after another would begin each proxy deploy
    # after the one before had switched.
    demo.roles["api"].pop("depends_on")
    new_versions = {"web": "v2", "backend": "v3", "api": "v1"}
    for role, tag in new_versions.items():
        demo.roles[role]["image"] = registry_image(tag)
        demo.roles[role].setdefault("env", {}).setdefault("clear", {})["START_DELAY"] = "4"
    since = datetime.now(UTC)

    demo.up()

    deploys = proxy_deploys(demo.service, since)
    assert sorted(deploys) == sorted(new_versions)
    assert max(d.began for d in deploys.values()) < min(d.switched for d in deploys.values()), deploys
    assert {role: demo.get(role) for role in new_versions} == {role: (200, tag) for role, tag in new_versions.items()}


def test_a_slow_migration_of_one_role_does_not_delay_another_roles_swap(demo: DemoStack) -> None:
    demo.roles["backend"]["image"] = registry_image("v3")
    demo.roles["backend"]["migrate"] = ["sleep", "6"]
    demo.roles["web"]["image"] = registry_image("v2")
    since = datetime.now(UTC)

    demo.up()

    deploys = proxy_deploys(demo.service, since)
    # web switched while backend's migration still ran: backend's proxy deploy began only after it.
    assert deploys["web"].switched < deploys["backend"].began, deploys
    assert migrations(demo)[-1] == f"backend {pinned_version('v3')} migrate ok"
    assert (demo.get("web"), demo.get("backend")) == ((200, "v2"), (200, "v3"))


def test_a_failing_migration_stops_its_role_and_the_old_version_keeps_serving(demo: DemoStack) -> None:
    demo.roles["backend"]["image"] = registry_image("v3")
    demo.roles["backend"]["migrate"] = ["sh", "-c", "echo 'relation users already exists' >&2; exit 3"]

    message, report = demo.failed_up_under_load("backend")

    assert "relation users already exists" in message
    assert "migrate failed: role backend" in message and "exited with 3" in message
    assert report.failures == [] and set(report.versions()) == {"v2"}, report.summary()
    assert container_states(demo.service, "backend") == {container_name(demo.service, "backend", "v2"): "running"}


def test_a_secret_change_alone_boots_a_fresh_container_and_the_secret_never_leaks(demo: DemoStack) -> None:
    old_token, new_token = "tok-old-6f1d2a9e7c", "tok-new-b83e04d51a"
    demo.roles["web"]["env"] = {"secret": ["API_TOKEN"]}
    demo.secrets["API_TOKEN"] = old_token
    demo.up()
    before = service_containers(demo.service, "--filter", "label=quayside.role=web", "--filter", "status=running")

    demo.secrets["API_TOKEN"] = new_token
    output: list[str] = []
    preview = demo.stack().preview(color="never", diff=True)
    with demo.load("web") as load, ProcessWatch() as processes:
        load.wait_for_requests(100)
        demo.stack().up(color="never", diff=True, on_output=output.append)
        load.wait_for_requests(load.report.total + 100)

    after = service_containers(demo.service, "--filter", "label=quayside.role=web", "--filter", "status=running")
    assert load.report.failures == [] and set(load.report.versions()) == {"v1"}, load.report.summary()
    assert after != before, "a changed secret must boot a fresh container"
    env = subprocess.run(["docker", "exec", after[0], "env"], capture_output=True, text=True, check=True).stdout
    assert f"API_TOKEN={new_token}" in env.splitlines()
    for token in (old_token, new_token):
        assert demo.project.backend.files_containing(token) == []
        assert token not in preview.stdout and token not in "\n".join(output)
        assert [line for line in processes.seen if token in line] == []


def test_removing_a_role_removes_its_route_and_containers_and_nothing_else(demo: DemoStack) -> None:
    del demo.roles["api"]

    with demo.load("web") as load:
        load.wait_for_requests(100)
        demo.up()
        load.wait_for_requests(load.report.total + 100)

    assert f"{demo.service}-api" not in proxy_routes()
    assert container_states(demo.service, "api") == {}
    assert demo.get("api")[0] == 404
    assert load.report.failures == [] and set(load.report.versions()) == {"v1"}, load.report.summary()
    assert demo.get("backend") == (200, "v2")


def test_a_forced_replace_of_a_swap_boots_its_role_afresh_and_leaves_it_serving(demo: DemoStack) -> None:
    """`pulumi up --replace` of a role's swap: the role is retired, then booted again (a short outage the user asked
    for), and never left removed while the stack says it is deployed."""
    swap = f"{demo.service}-web-swap"
    resources = (demo.stack().export_stack().deployment or {})["resources"]
    urn = next(resource["urn"] for resource in resources if resource["urn"].endswith(f"::{swap}"))
    events = Events()

    demo.stack().up(color="never", replace=[urn], on_event=events.record)
    demo.settle()

    assert events.changed()[swap] == ["delete-replaced", "replace", "create-replacement"], events.changed()
    assert demo.get("web") == (200, "v1")
    assert list(container_states(demo.service, "web").values()) == ["running"]
    assert demo.get("backend") == (200, "v2")


def sshd_sessions() -> list[int]:
    """PIDs of the test server's per-connection sshd processes (the listener is left alone)."""
    listing = subprocess.run(["pgrep", "-f", "sshd: root@notty"], capture_output=True, text=True, check=False)
    return [int(pid) for pid in listing.stdout.split()]


def test_an_ssh_connection_cut_mid_swap_drops_no_request_and_the_next_up_converges(demo: DemoStack) -> None:
    demo.roles["web"]["image"] = SLOW_START  # 5 s before it answers: the cut lands inside the swap
    cut: list[int] = []

    def cut_connections() -> None:
        deadline = time.monotonic() + 60
        while not cut and time.monotonic() < deadline:
            # Running, the new container waits out its start delay: the swap polls its health over SSH.
            booted = service_containers(
                demo.service, "--filter", f"name={demo.service}_web_slow-start", "--filter", "status=running"
            )
            if booted:
                cut.extend(sshd_sessions())
                for pid in cut:
                    os.kill(pid, 9)
            time.sleep(0.1)

    with demo.load("web") as load:
        load.wait_for_requests(100)
        cutter = threading.Thread(target=cut_connections, daemon=True)
        cutter.start()
        with pytest.raises(auto.errors.CommandError):
            demo.up()
        cutter.join(timeout=60)
        serving_after_cut = demo.get("web")
        converged = demo.up()
        load.wait_for_requests(load.report.total + 100)

    assert cut, "no SSH session was cut"
    print(f"after the cut: {serving_after_cut}; {load.report.summary()}")
    assert load.report.failures == [], load.report.summary()
    assert converged.summary.result == "succeeded"
    assert demo.get("web") == (200, "slow-start")
    assert changes(demo.preview().change_summary) == set()


def test_an_accessory_config_change_by_up_keeps_its_data_and_destroy_keeps_the_data_dir(
    tmp_path: Path, test_server: TestServer
) -> None:
    demo = DemoStack.create(tmp_path, test_server, unique_service("e2e-pg"))
    demo.config["quayside:accessories"] = {"postgres": {"image": registry_postgres(), "version": "15"}}
    demo.roles["backend"]["env"]["secret"] = ["DATABASE_URL"]
    demo.secrets["postgres_password"] = "pg-pass-2e9c51"
    data_dir = demo.service_dir / "postgres" / "data"
    try:
        demo.up()
        sql(demo, "CREATE TABLE notes (body text); INSERT INTO notes VALUES ('written before the change')")

        demo.config["quayside:accessories"]["postgres"]["settings"] = {"max_connections": 50}
        events = Events()
        demo.up(events)

        assert events.changed().get(f"{demo.service}-postgres-container") == ["update"], events.changed()
        assert sql(demo, "SHOW max_connections") == "50"
        assert sql(demo, "SELECT body FROM notes") == "written before the change"
        assert demo.get("backend") == (200, "v2")
    finally:
        demo.destroy()
    try:
        assert service_containers(demo.service) == []
        assert (data_dir / "PG_VERSION").is_file(), "destroy must keep the accessory's data unless told"
    finally:
        subprocess.run(["rm", "-rf", str(demo.service_dir)], check=False)


def started_at(service: str) -> dict[str, str]:
    """When each of the service's role containers and the proxy last started, by name."""
    roles = service_containers(service, "--filter", "label=quayside.role", "--filter", "status=running")
    template = "{{.Name}} {{.State.Running}} {{.State.StartedAt}}"
    inspect = ["docker", "inspect", "--format", template, *roles, "quayside-proxy"]
    states = subprocess.run(inspect, capture_output=True, text=True, check=True).stdout
    lines = (line.split() for line in states.splitlines())
    return {name.lstrip("/"): at for name, running, at in lines if running == "true"}


def test_three_restarts_of_dockerd_in_a_row_under_load_fail_no_request(demo: DemoStack) -> None:
    """An unattended upgrade of docker.io restarts dockerd. With quayside's daemon.json (live-restore) every container
    lives through it, and kamal-proxy reaches each role at the address its container was given on the service's
    fixed network, never through Docker's DNS, which does not answer while dockerd restarts. Three restarts in a row
    under load: not one request fails, and no container starts again."""
    assert live_restore_enabled(), "the engine runs without live-restore: host.sh writes it to daemon.json and reloads"
    every_container = {"quayside-proxy", *(container_name(demo.service, role, v) for role, v in VERSIONS.items())}
    before = started_at(demo.service)
    assert every_container <= set(before), before
    with demo.load("web") as load:
        load.wait_for_requests(300)
        restarts = restarts_under(load, times=3, responses_between=300)
    report = load.report

    print(f"{restarts} under load: {report.summary()[:160]}")
    assert report.failures == [], report.summary()
    assert started_at(demo.service) == before, "a container started again: the engine did not keep it"
    assert demo.get("web") == (200, "v1") and demo.get("api") == (200, "v3")
