"""Drift, through the real engine and quayside's own program on the loopback server: when what serves differs from
what the stack recorded, `pulumi preview` says so and shows the role's swap changed, `pulumi up` puts the recorded
version back (with load running, every failed request counted), and the run after it changes nothing.

Each test deploys the three demo roles of Pulumi.local.yaml (web v1, backend v2 with a migration, api v3) as a
service of its own (the last with Postgres), and destroys it at the end.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Final

from tests.support.docker import docker
from tests.support.pulumi_engine import pulumi_cli
from tests.support.remote import fixed_network
from tests.support.stacks import (
    PROXY,
    DemoStack,
    Events,
    container_name,
    pinned_version,
    registry_image,
    registry_postgres,
    sql,
    unique_service,
)
from tests.support.testbed import TestServer

# A `pulumi` ahead of the real one on PATH whose `up` fails: a rollback's fast switch happens, its record does not.
PULUMI_FAILING_UP: Final = """#!{python}
import os, sys
if sys.argv[1:2] == ["up"]:
    sys.exit("pulumi up: interrupted")
os.execv({cli!r}, [{cli!r}, *sys.argv[1:]])
"""


def pulumi_failing_up(directory: Path) -> Path:
    directory.mkdir()
    shim = directory / "pulumi"
    shim.write_text(PULUMI_FAILING_UP.format(python=sys.executable, cli=str(pulumi_cli())))
    shim.chmod(0o755)
    return directory


def heals(demo: DemoStack) -> dict[str, int]:
    return {name: role["heals"] for name, role in demo.stack().outputs()["roles"].value.items()}


def test_a_rollback_that_was_not_recorded_shows_in_the_preview_and_up_puts_the_recorded_version_back(
    demo: DemoStack, tmp_path: Path
) -> None:
    demo.roles["web"]["image"] = registry_image("v2")
    demo.up()
    recorded, rolled_back = pinned_version("v2"), pinned_version("v1")

    rolled = demo.rollback("web", path_first=pulumi_failing_up(tmp_path / "bin"))
    assert rolled.returncode != 0 and f"rollback: web serves {rolled_back}" in rolled.stdout, rolled.stdout
    assert demo.get("web") == (200, "v1")

    events = Events()
    preview = demo.preview(events)
    assert (
        f"web: the server serves {rolled_back}, not {recorded} as the stack recorded: this update puts {recorded} "
        "back live (heal 1)"
    ) in preview.stdout, preview.stdout
    assert events.changed() == {f"{demo.service}-web-swap": ["update"]}, "only web's swap, to put v2 back"

    events = Events()
    with demo.load("web") as load:
        load.wait_for_requests(100)
        demo.up(events)
        load.wait_for_requests(load.report.total + 100)

    assert events.changed() == {f"{demo.service}-web-swap": ["update"]}
    assert load.report.failures == [] and load.report.version_sequence() == ["v1", "v2"], load.report.summary()
    assert heals(demo) == {"web": 1, "backend": 0, "api": 0}
    print(f"drift healed under load: {load.report.summary()}")
    events = Events()
    demo.up(events)
    assert events.changed() == {}, "the run after a heal changes nothing"


def status_of(demo: DemoStack, role: str) -> int | None:
    """The role's answer through the proxy; None when none comes in time (its target's address has no container)."""
    try:
        return demo.get(role)[0]
    except TimeoutError:
        return None


def test_containers_stopped_or_removed_by_hand_show_in_the_preview_and_up_brings_them_back(demo: DemoStack) -> None:
    docker("stop", "--time", "1", container_name(demo.service, "web", "v1"))
    docker("rm", "--force", container_name(demo.service, "api", "v3"))
    assert status_of(demo, "web") != 200 and status_of(demo, "api") != 200

    preview = demo.preview()
    for role, version in (("web", "v1"), ("api", "v3")):
        said = f"{role}: the server serves nothing, not {pinned_version(version)} as the stack recorded"
        assert said in preview.stdout, preview.stdout
    assert "backend: the server serves" not in preview.stdout

    events = Events()
    demo.up(events)

    assert events.changed() == {f"{demo.service}-web-swap": ["update"], f"{demo.service}-api-swap": ["update"]}
    assert demo.get("web") == (200, "v1") and demo.get("api") == (200, "v3")
    assert heals(demo) == {"web": 1, "backend": 0, "api": 1}
    events = Events()
    demo.up(events)
    assert events.changed() == {}, "the run after a heal changes nothing"


def test_a_database_stopped_and_the_proxy_cut_off_by_hand_are_put_back_by_up_with_the_data_kept(
    tmp_path: Path, test_server: TestServer
) -> None:
    demo = DemoStack.create(tmp_path, test_server, unique_service("drift-pg"))
    demo.config["quayside:accessories"] = {"postgres": {"image": registry_postgres(), "version": "15"}}
    demo.secrets["postgres_password"] = "pg-pass-7c1d40"
    try:
        demo.up()
        sql(demo, "CREATE TABLE notes (body text); INSERT INTO notes VALUES ('written before the drift')")
        docker("stop", f"{demo.service}-postgres")
        docker("network", "disconnect", demo.service, PROXY)
        docker("network", "disconnect", fixed_network(demo.service), PROXY)
        assert status_of(demo, "web") != 200, "the proxy no longer reaches the service"

        preview = demo.preview()
        for said in (
            "postgres: not running on the server, as the stack recorded it: this update starts it again (heal 1)",
            "kamal-proxy: not running on the service's network on the server, as the stack recorded it: this update "
            "starts it again (heal 1)",
        ):
            assert said in preview.stdout, preview.stdout
        events = Events()
        demo.up(events)

        assert events.changed() == {
            f"{demo.service}-postgres-container": ["update"],
            f"{demo.service}-proxy-container": ["update"],
        }
        assert sql(demo, "SELECT body FROM notes") == "written before the drift"
        assert demo.get("web") == (200, "v1")
        assert demo.stack().outputs()["heals"].value == {"server": {"proxy": 1, "postgres": 1}}
        events = Events()
        demo.up(events)
        assert events.changed() == {}, "the run after a heal changes nothing"
    finally:
        demo.destroy()
        subprocess.run(["rm", "-rf", str(demo.service_dir)], check=False)
