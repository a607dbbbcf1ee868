"""quayside_cli/plan.py, the words of `quayside plan`, fed the JSON of real previews of quayside's program.

The fixtures in tests/unit/fixtures/plan/ are `pulumi preview --json --diff` output of quayside's own program
(service `plx-explore` on the loopback server, and a Hetzner stack with an imported server state, as in
tests/e2e/test_plan.py), with only the `stackTrace` and `sourcePosition` entries taken out. The stacks' secret
values were `pw-SECRET-abc123` and `other-SECRET-pw`: the preview shows them as [secret], and so must never the
plan. tests/e2e/test_plan.py runs the same words through the real engine.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Final

import pytest

ROOT: Final = Path(__file__).resolve().parents[2]
# The words alone, reading a preview's JSON from a file or stdin.
PLAN: Final = (sys.executable, "-m", "quayside_cli.plan")
FIXTURES: Final = Path(__file__).parent / "fixtures" / "plan"
SECRET_VALUES: Final = ("pw-SECRET-abc123", "other-SECRET-pw")
KEEPS_V2: Final = "a fresh container of v2 boots beside the live one and switches after its health check"
RECONNECTS: Final = (
    "the server connection changed: its step runs again through it (a no-op on the same server, a boot on another)"
)


def plan(fixture: str | None = None, *, preview: dict[str, Any] | None = None) -> subprocess.CompletedProcess[str]:
    """The plan of a fixture file, or of a preview given on stdin."""
    args = [*PLAN, *([str(FIXTURES / f"{fixture}.json")] if fixture else [])]
    stdin = json.dumps(preview) if preview is not None else None
    return subprocess.run(args, input=stdin, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)


def lines(fixture: str) -> list[str]:
    done = plan(fixture)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.splitlines()


def test_an_unchanged_stack_is_one_line_saying_nothing_changes() -> None:
    assert lines("nothing-changes") == ["nothing changes: all 13 resources stay as they are"]


def test_a_new_stack_names_every_part_it_makes_in_deploy_order() -> None:
    assert lines("new-stack") == [
        "server: an existing server, 127.0.0.1, reached over SSH",
        "host: prepared: scripts shipped, Docker checked, the service network made",
        "proxy: kamal-proxy v0.9.2 routes the service (booted unless it already runs)",
        "postgres: new accessory: boots quayside-test/postgres:15, its data in "
        "/var/lib/quayside/plx-explore/postgres/data",
        "backend: new role at v2: boots and takes traffic after its health check",
        "web: new role at v1: boots and takes traffic after its health check",
    ]


def test_a_bootstrapped_server_says_what_root_does_first_and_for_which_deploy_user() -> None:
    # The local stack with `server.user: deploy` and `server.bootstrap: {}`.
    assert lines("bootstrapped-new-stack")[:3] == [
        "server: an existing server, 127.0.0.1, reached over SSH",
        "bootstrap: as root, what is missing: swap file, Docker, unattended upgrades, deploy user deploy, "
        "password SSH off",
        "host: prepared: scripts shipped, Docker checked, the service network made",
    ]


def test_a_new_image_is_a_new_version_beside_the_old_one_kept_for_rollback() -> None:
    assert lines("new-image") == [
        "web: new version v3 (was v1): boots beside v1, switches after its health check, keeps v1 for rollback"
    ]


def test_an_env_change_names_the_variable_and_not_its_value() -> None:
    assert lines("env-changed") == [f"backend: env changed (NODE_ENV): {KEEPS_V2}"]


def test_a_postgres_setting_restarts_it_with_its_data_kept() -> None:
    assert lines("postgres-settings-changed") == [
        "postgres: settings changed (max_connections): restarted with its data kept"
    ]


def test_a_changed_secret_is_named_where_it_goes() -> None:
    assert lines("secret-changed") == [
        "postgres: secrets changed: restarted with its data kept",
        f"backend: secret env changed: {KEEPS_V2}",
    ]


def test_a_removed_role_loses_its_route_and_containers() -> None:
    assert lines("role-removed") == ["web: removed: its route and containers go"]


def test_setting_delete_data_is_said_but_loses_nothing_yet() -> None:
    assert lines("postgres-delete-data-set") == ["postgres: delete_data on: removing it later deletes its data"]


def test_removing_postgres_with_delete_data_is_a_warning_on_the_first_line() -> None:
    assert lines("postgres-removed-with-its-data") == [
        "WARNING: postgres: removed WITH ITS DATA (delete_data: true): /var/lib/quayside/plx-explore/postgres/data "
        "is deleted for good",
        f"backend: secret env changed: {KEEPS_V2}",
    ]


def test_an_existing_server_moved_to_another_address_is_a_warning() -> None:
    assert lines("existing-server-moved") == [
        "WARNING: server: moves to 127.0.0.2 (was 127.0.0.1): everything is deployed there afresh, accessories "
        "start empty; the old server keeps its containers and data",
        *(f"{part}: {RECONNECTS}" for part in ("host", "proxy", "postgres", "web", "backend")),
    ]


def test_a_hetzner_server_in_another_location_is_a_replacement_warning() -> None:
    assert lines("hetzner-location-changed")[0] == (
        "WARNING: server: REPLACED (location nbg1 → fsn1): a new server is made and the old one is deleted with "
        "everything on it, accessory data included; Hetzner refuses while delete_protection is on: turn it off "
        "first if you mean it"
    )


def test_a_hetzner_server_of_another_type_is_resized_without_a_warning() -> None:
    said = lines("hetzner-type-changed")
    assert said[0] == "server: type cx22 → cx32: Hetzner resizes it in place (it is off meanwhile)"
    assert [line for line in said if line.startswith("WARNING:")] == []


def test_a_failed_preview_prints_its_errors_and_exits_1() -> None:
    done = plan("config-mistake")

    assert done.returncode == 1
    assert done.stdout.splitlines() == [
        "the preview failed:",
        "error: quayside config: roles.backend.health.path: must be a path starting with / (/up) (got 'up')",
        "error: an unhandled error occurred: program exited with non-zero exit code: 1",
    ]


def test_no_preview_at_all_exits_1_and_says_so() -> None:
    done = subprocess.run(PLAN, input="", cwd=ROOT, capture_output=True, text=True, check=False)

    assert done.returncode == 1
    assert "pulumi preview printed nothing" in done.stdout


@pytest.mark.parametrize("fixture", sorted(path.stem for path in FIXTURES.glob("*.json")))
def test_the_previews_mark_secrets_and_no_plan_shows_a_secret(fixture: str) -> None:
    text = (FIXTURES / f"{fixture}.json").read_text()
    assert "[secret]" in text
    assert not [value for value in SECRET_VALUES if value in text]
    said = plan(fixture).stdout
    assert "[secret]" not in said
    assert "pw-" not in said


def test_a_deleted_volume_is_a_warning_whatever_made_it() -> None:
    # quayside makes no volume resource today; a preview step of one, as Pulumi writes it, must still warn.
    urn = "urn:pulumi:prod::quayside::docker:index/volume:Volume::acme-uploads"
    preview = {"steps": [{"op": "delete", "urn": urn, "oldState": {"urn": urn, "type": "docker:index/volume:Volume"}}]}

    done = plan(preview=preview)

    assert done.stdout.splitlines()[0] == "WARNING: volume acme-uploads: deleted: the data on it goes"
