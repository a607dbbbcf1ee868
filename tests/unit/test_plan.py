"""quayside_cli/plan.py, the words of `quayside plan`, fed the JSON of real previews of quayside's program.

The fixtures in tests/unit/fixtures/plan/ are `pulumi preview --json --diff` output of quayside's own program
(service `plx-explore` on the loopback server, and a Hetzner stack with an imported server state, as in
tests/e2e/test_plan.py), with only the `stackTrace` and `sourcePosition` entries taken out. The stacks' secret
values were `pw-SECRET-abc123` and `other-SECRET-pw`: the preview shows them as [secret], and so must never the
plan. tests/e2e/test_plan.py runs the same words through the real engine.

The `servers-*.json` fixtures are written by hand in that format: a stack with `servers:` (service `acme` on the
multi-host test bed's addresses, and on Hetzner), its resources named as the lead's design names them (per server
`acme-server-S`, `acme-host-S`, `acme-proxy-S`; the network; per role its placements `acme-R-on-S` and its one
rollout `acme-R-rollout`, a local command running components/rollout.py).
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import pytest

from components import config
from components.proxy import boot_args as proxy_boot_args

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


# --- several servers ------------------------------------------------------------------------------------------


# What each new existing server, its host and its proxy say.
EXISTING: Final = "an existing server, {}, reached over SSH"
PREPARED: Final = "prepared: scripts shipped, Docker checked, the service network made"
ROUTES: Final = "kamal-proxy v0.9.2 routes the service (booted unless it already runs)"


def test_a_new_stack_on_several_servers_names_each_servers_parts_and_where_each_role_runs() -> None:
    addresses = {"app-1": "10.97.0.11", "app-2": "10.97.0.12", "db": "10.97.0.13"}

    assert lines("servers-new-stack") == [
        *(f"server {name}: {EXISTING.format(address)}" for name, address in addresses.items()),
        "network: the servers reach each other at their private_ip addresses",
        *(f"host {name}: {PREPARED}" for name in addresses),
        *(f"proxy {name}: {ROUTES}" for name in ("app-1", "app-2")),
        "postgres: new accessory on db: boots quayside-test/postgres:15, its data in "
        "/var/lib/quayside/acme/postgres/data",
        "web: new role at v1 on app-1, app-2, 1 at a time: boots and takes traffic after its health check",
        "api: new role at v1 on app-2: boots and takes traffic after its health check",
    ]


def test_a_new_version_on_several_servers_names_them_and_how_many_switch_at_once() -> None:
    assert lines("servers-new-version") == [
        "web: new version v2 (was v1) on app-1, app-2, 1 at a time: boots beside v1, switches after its health "
        "check, keeps v1 for rollback"
    ]


def test_a_server_added_to_a_role_boots_it_there_and_a_server_removed_loses_its_containers_and_route() -> None:
    assert lines("servers-host-added-and-removed") == [
        f"server app-3: {EXISTING.format('10.97.0.13')}",
        f"host app-3: {PREPARED}",
        f"proxy app-3: {ROUTES}",
        "web: placed on app-3: v2 boots there and takes traffic after its health check",
        "web: leaves app-2 (its containers and route there go)",
    ]


def test_hetzner_servers_get_a_private_network_and_each_joins_it_at_its_address() -> None:
    assert lines("servers-hetzner-network") == [
        "server app-1: a new Hetzner server (cx32 in nbg1)",
        "server app-2: a new Hetzner server (cx32 in fsn1)",
        "network: a new private network 10.0.0.0/16, subnet 10.0.1.0/24 in eu-central: the servers reach each other "
        "there",
        "network: app-1 joins it at 10.0.1.10",
        "network: app-2 joins it at 10.0.1.11",
        # The servers' addresses are not known yet, nor is the rollout's command line: the placements tell where.
        "web: new role at v1 on app-1, app-2: boots and takes traffic after its health check",
    ]


ROLE_URN: Final = "urn:pulumi:multi::quayside::quayside:index:AppRole::acme-web"
SWAP_ARGV: Final = (
    "--service acme --role web --image 10.97.0.1:5000/quayside-test/app:v2 --version v2 --config-hash 5c9eb1ce0c1a9262 "
    "--port 80 --proxy --host web.acme.test --health-path /up --health-interval 1s --health-timeout 5s "
    "--deploy-timeout 30s --drain-timeout 30s --readiness-delay 7 --retain 5 --stop-timeout 10 "
    "--proxy-name quayside-proxy"
)


def rollout(servers: str, limit: int = 1, swap: str = SWAP_ARGV) -> str:
    where = " ".join(f"--server {name}=root@10.97.0.1{name[-1]}:22" for name in servers.split())
    return f"python3 components/rollout.py --service acme --role web --limit {limit} --timeout 787 {where} -- {swap}"


def child(op: str, kind: str, name: str, before: dict[str, Any] | None, after: dict[str, Any] | None,
          changed: tuple[str, ...] = ()) -> dict[str, Any]:  # fmt: skip
    """A step of a resource of the role `web`, its inputs before and after."""
    urn = f"urn:pulumi:multi::quayside::quayside:index:AppRole$command:{kind}:Command::{name}"
    step: dict[str, Any] = {"op": op, "urn": urn, "diffReasons": list(changed)}
    for key, inputs in (("oldState", before), ("newState", after)):
        if inputs is not None:
            step[key] = {"urn": urn, "type": f"command:{kind}:Command", "parent": ROLE_URN, "inputs": inputs}
    return step


def retire(version: str) -> str:
    return (
        f"timeout 787s bash /var/lib/quayside/acme/bin/retire.sh --service acme --role web --version {version} --proxy"
    )


def placed(op: str, server: str, *, before: str | None = None) -> dict[str, Any]:
    said = shlex.join(["echo", f"web is placed on {server}"])
    old = {"create": before or said, "delete": retire("v2"), "connection": "[secret]"}
    new = {"create": said, "delete": retire("v2"), "connection": "[secret]"}
    return child(
        op, "remote", f"acme-web-on-{server}", None if op == "create" else old, None if op == "delete" else new
    )


def rolled(op: str, before: str | None, after: str | None, changed: tuple[str, ...] = ("create",)) -> dict[str, Any]:
    old, new = ({"create": command, "stdin": "[secret]"} if command else None for command in (before, after))
    return child(op, "local", "acme-web-rollout", old, new, changed)


def said(*steps: dict[str, Any]) -> list[str]:
    done = plan(preview={"config": {"quayside:service": "acme"}, "steps": list(steps)})
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.splitlines()


def test_a_role_removed_from_several_servers_names_them() -> None:
    role = {"op": "delete", "urn": ROLE_URN, "oldState": {"urn": ROLE_URN, "type": "quayside:index:AppRole"}}

    gone = [placed("delete", "app-1"), placed("delete", "app-2"), rolled("delete", rollout("app-1 app-2"), None)]

    assert said(role, *gone) == ["web: removed from app-1, app-2: its route and containers go"]


def test_a_changed_secret_of_a_rolled_out_role_boots_a_fresh_container_where_the_env_changed() -> None:
    assert said(rolled("update", rollout("app-1 app-2"), rollout("app-1 app-2"), changed=("stdin",))) == [
        "web: secret env or SSH keys changed: where the env changed, a fresh container of v2 boots beside the live "
        "one and switches after its health check"
    ]


def test_an_env_change_on_several_servers_says_where_and_how_many_at_once() -> None:
    swap = SWAP_ARGV.replace("--proxy-name", "--env NODE_ENV=production --proxy-name")

    assert said(rolled("update", rollout("app-1 app-2", 2), rollout("app-1 app-2", 2, swap))) == [
        "web: env changed (NODE_ENV) on app-1, app-2, all at once: a fresh container of v2 boots beside the live one "
        "and switches after its health check"
    ]


def test_a_changed_lock_wait_alone_restarts_nothing() -> None:
    longer = SWAP_ARGV + " --lock-wait 1200"

    assert said(
        rolled("update", rollout("app-1 app-2", 2, SWAP_ARGV + " --lock-wait 300"), rollout("app-1 app-2", 2, longer))
    ) == ["web: its rollout changed (create): nothing restarts"]


def test_a_changed_boot_limit_restarts_nothing() -> None:
    assert said(rolled("update", rollout("app-1 app-2", 2), rollout("app-1 app-2", 1))) == [
        "web: now 1 at a time (was all at once): nothing restarts"
    ]


def test_a_one_server_stack_moved_to_servers_keeps_its_live_version_under_a_rollout() -> None:
    # `server:` became `servers: {app-1: ...}`: today's swap is app-1's placement now (an alias), the rollout is new.
    swap = f"timeout 787s bash /var/lib/quayside/acme/bin/swap.sh {SWAP_ARGV}"

    assert said(placed("update", "app-1", before=swap), rolled("create", None, rollout("app-1"))) == [
        "web: its swap becomes a rollout on app-1, all or none: v2 stays live, nothing restarts"
    ]


def test_an_existing_server_of_several_moved_to_another_address_is_a_warning_naming_it() -> None:
    servers = {
        name: {"provider": "existing", "host": host}
        for name, host in (("app-1", "10.97.0.11"), ("app-2", "10.97.0.14"))
    }
    urn = "urn:pulumi:multi::quayside::pulumi:pulumi:Stack::quayside-multi"
    outputs = {
        "servers": {"app-1": {"host": "10.97.0.11"}, "app-2": {"host": "10.97.0.12"}},
        "server_host": "10.97.0.11",
    }
    stack = {"op": "same", "urn": urn, "oldState": {"urn": urn, "type": "pulumi:pulumi:Stack", "outputs": outputs}}
    config = {"quayside:service": "acme", "quayside:servers": json.dumps(servers)}

    done = plan(preview={"config": config, "steps": [stack]})

    assert done.stdout.splitlines() == [
        "WARNING: server app-2: moves to 10.97.0.14 (was 10.97.0.12): everything is deployed there afresh, "
        "accessories start empty; the old server keeps its containers and data"
    ]


def test_a_drift_healed_puts_the_recorded_version_back_live() -> None:
    healed = SWAP_ARGV + " --heal 1"

    assert said(rolled("update", rollout("app-1 app-2", 2), rollout("app-1 app-2", 2, healed))) == [
        "web: found not serving v2 on app-1, app-2, all at once (drift heal 1): v2 goes live again there, its kept "
        "container started or a fresh one booted, after its health check"
    ]


def test_a_drift_healed_on_one_server_says_the_version_goes_live_again() -> None:
    swap = f"timeout 787s bash /var/lib/quayside/acme/bin/swap.sh {SWAP_ARGV}"
    step = child("update", "remote", "acme-web-swap", {"create": swap}, {"create": swap + " --heal 3"}, ("create",))

    assert said(step) == [
        "web: found not serving v2 (drift heal 3): v2 goes live again there, its kept container started or a fresh "
        "one booted, after its health check"
    ]
    found = "web: the server serves v1, not v2 as the stack recorded: this update puts v2 back live (heal 3)"
    warned = {"severity": "warning", "message": f"warning: quayside: {found}\n"}
    done = plan(preview={"config": {"quayside:service": "acme"}, "steps": [step], "diagnostics": [warned]})
    assert done.stdout.splitlines()[0] == f"WARNING: {found}", "what drifted comes first"


def rerun_preview(
    fixture: str, container: str, create: Callable[[str], str], was: Callable[[str], str] = lambda before: before
) -> dict[str, Any]:
    """A fixture's preview in which the step `container` runs again, from `was` of its command to `create` of it."""
    preview: dict[str, Any] = json.loads((FIXTURES / f"{fixture}.json").read_text())
    for step in preview["steps"]:
        if step["urn"].endswith(f"::{container}"):
            before = step["oldState"]["inputs"]["create"]
            step["oldState"]["inputs"]["create"] = was(before)
            step["newState"]["inputs"]["create"] = create(before)
            step["op"], step["diffReasons"] = "update", ["create"]
    return preview


def healed_preview(fixture: str, container: str) -> dict[str, Any]:
    """A fixture's preview in which the step `container` runs again only with a count of heals."""
    return rerun_preview(fixture, container, lambda before: f"{before} --heal 5")


def proxy_step(before: str, after: str) -> dict[str, Any]:
    """The proxy's boot step, run again with `after` instead of `before` as its image."""
    boot = "timeout --kill-after=10s 600s bash /var/lib/quayside/acme/bin/proxy.sh " + shlex.join(
        proxy_boot_args("acme", config.Proxy())
    )
    urn = "urn:pulumi:dev::quayside::quayside:index:Proxy$command:remote:Command::acme-proxy-container"
    parent = "urn:pulumi:dev::quayside::quayside:index:Proxy::acme-proxy"
    state = {"urn": urn, "type": "command:remote:Command", "parent": parent}
    return {"op": "update", "urn": urn, "diffReasons": ["create"],
            "oldState": {**state, "inputs": {"create": boot.replace(PROXY_IMAGE, before)}},
            "newState": {**state, "inputs": {"create": boot.replace(PROXY_IMAGE, after)}}}  # fmt: skip


PROXY_IMAGE: Final = "basecamp/kamal-proxy:v0.9.2"
OLD: Final = "sha256:" + "0a1b2c3d4e5f" * 5 + "0a1b"
NEW: Final = "sha256:" + "9f8e7d6c5b4a" * 5 + "9f8e"


def test_an_image_pinned_to_the_digest_of_its_tag_restarts_only_what_runs_other_content() -> None:
    postgres = plan(preview=rerun_preview("postgres-settings-changed", "plx-explore-postgres-container",
                                          lambda before: before.replace(":15 ", f":15@{NEW} ")))  # fmt: skip

    assert (
        "postgres: image quayside-test/postgres:15 pinned to the digest 9f8e7d6c5b4a its tag names: restarted "
        "with its data kept only if it runs other content" in postgres.stdout.splitlines()
    ), postgres.stdout
    assert said(proxy_step(PROXY_IMAGE, f"{PROXY_IMAGE}@{NEW}")) == [
        "proxy: image basecamp/kamal-proxy:v0.9.2 pinned to the digest 9f8e7d6c5b4a its tag names: kamal-proxy "
        "reboots only if it runs other content"
    ]


def test_a_tag_pushed_again_restarts_what_runs_it_and_names_both_digests() -> None:
    postgres = plan(preview=rerun_preview("postgres-settings-changed", "plx-explore-postgres-container",
                                          lambda before: before.replace(":15 ", f":15@{NEW} "),
                                          was=lambda before: before.replace(":15 ", f":15@{OLD} ")))  # fmt: skip

    assert (
        "postgres: image quayside-test/postgres:15 pushed again: 0a1b2c3d4e5f → 9f8e7d6c5b4a: restarted with its "
        "data kept" in postgres.stdout.splitlines()
    ), postgres.stdout
    assert said(proxy_step(f"{PROXY_IMAGE}@{OLD}", f"{PROXY_IMAGE}@{NEW}")) == [
        "proxy: image basecamp/kamal-proxy:v0.9.2 pushed again: 0a1b2c3d4e5f → 9f8e7d6c5b4a: kamal-proxy reboots, a "
        "brief pause for every service on the server; routes are kept"
    ]
    assert said(proxy_step(PROXY_IMAGE, f"basecamp/kamal-proxy:v0.9.3@{NEW}")) == [
        "proxy: image basecamp/kamal-proxy:v0.9.2 → basecamp/kamal-proxy:v0.9.3@9f8e7d6c5b4a: kamal-proxy reboots, a "
        "brief pause for every service on the server; routes are kept"
    ]


def test_an_accessory_or_proxy_found_not_running_is_started_again_not_restarted() -> None:
    postgres = plan(preview=healed_preview("postgres-settings-changed", "plx-explore-postgres-container"))
    boot = "timeout --kill-after=10s 600s bash /var/lib/quayside/acme/bin/proxy.sh " + shlex.join(
        proxy_boot_args("acme", config.Proxy())
    )
    urn = "urn:pulumi:dev::quayside::quayside:index:Proxy$command:remote:Command::acme-proxy-container"
    parent = "urn:pulumi:dev::quayside::quayside:index:Proxy::acme-proxy"
    state = {"urn": urn, "type": "command:remote:Command", "parent": parent}
    step = {"op": "update", "urn": urn, "diffReasons": ["create"], "oldState": {**state, "inputs": {"create": boot}},
            "newState": {**state, "inputs": {"create": f"{boot} --heal 5"}}}  # fmt: skip

    assert (
        "postgres: found not running (drift heal 5): started again with its data kept" in postgres.stdout.splitlines()
    )
    assert said(step) == [
        "proxy: kamal-proxy found not running on the service's network (drift heal 5): started again and joined to "
        "it, routes kept"
    ]
