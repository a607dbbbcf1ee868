"""scripts/plan through the real engine: quayside's program is deployed onto the loopback server, its config is
changed, and `scripts/plan` (`quayside plan`: pulumi preview --json --diff, told) says in plain words what `up`
would do: a new image, a changed env, a changed Postgres setting, a removed role, an accessory removed with its
data, a changed secret (named, never shown), nothing at all. A Hetzner server's state is imported (no Hetzner API
is reached: the hcloud provider diffs locally) to show a replacement warned about and a resize that is not.

The service has a name of its own, so the `demo` service on the same server is never touched, and the shared
kamal-proxy is asked for with the local stack's options, so it is not rebooted. Fails (never skips) without the
CLI, the plugins or the test server: scripts/setup installs and starts them.
"""

from __future__ import annotations

import copy
import os
import secrets
import subprocess
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

import pytest
import yaml
from pulumi import automation as auto

from tests.support.pulumi_engine import PULUMI_HOME, ROOT, QuaysideProject, pulumi_cli, secret
from tests.support.stacks import pin_unreachable_images, pinned_version, registry_postgres
from tests.support.testbed import TestServer

SERVICE: Final = f"plan-{secrets.token_hex(4)}"
STACK: Final = "plan"
HETZNER_STACK: Final = "plan-hetzner"
PASSWORD: Final = f"pw-{secrets.token_hex(12)}"  # postgres_password: no plan may show it
PLAN: Final = ROOT / "scripts" / "plan"
# How the engine marks a secret in a deployment it imports (the value is encrypted on import).
SECRET_SIGNATURE: Final = {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270"}
HCLOUD_TOKEN: Final = "0" * 64  # the provider wants 64 characters; no call reaches Hetzner
SSH_PUBLIC_KEY: Final = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHBsYW4tdGVzdHMtb25seS1wbGFjZWhvbGRlcg plan@tests"
SERVER_ADDRESS: Final = "203.0.113.7"


def fresh(tag: str) -> str:
    """What the plan says of a role whose options changed but not its version (the demo app's `tag`)."""
    return f"a fresh container of {pinned_version(tag)} boots beside the live one and switches after its health check"


def base_config(test_server: TestServer, registry: str) -> dict[str, Any]:
    """Two proxied roles (backend reads DATABASE_URL) and Postgres, whose data goes with it (delete_data)."""
    local = yaml.safe_load((ROOT / "Pulumi.local.yaml").read_text())["config"]
    return {
        "quayside:service": SERVICE,
        "quayside:server": {**local["quayside:server"], "private_key_file": str(test_server.private_key)},
        "quayside:proxy": local["quayside:proxy"],
        "quayside:roles": {
            "web": {
                "image": f"{registry}/quayside-test/app:v1",
                "hosts": [f"web.{SERVICE}.localhost"],
                "health": {"path": "/up"},
            },
            "backend": {
                "image": f"{registry}/quayside-test/app:v2",
                "port": 3001,
                "env": {"clear": {"PORT": "3001", "NODE_ENV": "production"}, "secret": ["DATABASE_URL"]},
                "hosts": [f"backend.{SERVICE}.localhost"],
                "health": {"path": "/up"},
            },
        },
        "quayside:accessories": {
            "postgres": {
                "image": registry_postgres(),
                "settings": {"max_connections": 50},
                "delete_data": True,
            },
        },
    }


def hetzner_config(registry: str, **server: str) -> dict[str, Any]:
    values = {
        "quayside:service": SERVICE,
        "quayside:server": {"provider": "hetzner", "type": "cx22", "location": "nbg1",
                            "ssh_public_key": SSH_PUBLIC_KEY, **server},
        "quayside:roles": {"web": {"image": f"{registry}/quayside-test/app:v1", "health": {"path": "/up"}}},
    }  # fmt: skip
    pin_unreachable_images(values)  # kamal-proxy's, from Docker Hub
    return values


def changed(config: Mapping[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of config with the key at `a.b.c` set to value (or removed when value is None)."""
    result = copy.deepcopy(dict(config))
    *parents, last = path.split(".")
    node = result
    for key in parents:
        node = node[key]
    if value is None:
        del node[last]
    else:
        node[last] = value
    return result


@dataclass(frozen=True)
class Plan:
    returncode: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        return self.stdout.splitlines()

    def shows(self, *values: str) -> int:
        """How many of `values` appear in the output (stdout or stderr)."""
        return sum(value in self.stdout + self.stderr for value in values)

    @property
    def warnings(self) -> list[str]:
        return [line for line in self.lines if line.startswith("WARNING:")]


@dataclass
class Bench:
    project: QuaysideProject
    private_key: str

    def configure(self, stack: str, config: Mapping[str, Any], stack_secrets: Mapping[str, str]) -> auto.Stack:
        """Writes the stack file with `config`, and sets `stack_secrets` (keys without a namespace are quayside's)."""
        handle = self.project.stack(stack, config)
        for key, value in stack_secrets.items():
            handle.set_config(key if ":" in key else f"quayside:{key}", secret(value))
        return handle

    def plan(self, config: Mapping[str, Any], stack_secrets: Mapping[str, str], stack: str = STACK) -> Plan:
        """scripts/plan of `stack` with `config`, run as a user runs it (their backend and passphrase in env)."""
        self.configure(stack, config, stack_secrets)
        env = {**os.environ, **self.project.env(), "PULUMI_HOME": str(PULUMI_HOME)}
        env["PATH"] = f"{pulumi_cli().parent}{os.pathsep}{env.get('PATH', '')}"
        done = subprocess.run(
            [str(PLAN), "-s", stack, "--cwd", str(self.project.work_dir)],
            capture_output=True, text=True, env=env, timeout=300, check=False,
        )  # fmt: skip
        plan = Plan(done.returncode, done.stdout, done.stderr)
        # Counted, not compared, and printed only when clean: a failure must not show the secret either.
        leaked = plan.shows(*stack_secrets.values(), self.private_key)
        assert leaked == 0, "a secret is in scripts/plan's output"
        print(f"scripts/plan -s {stack} ->", done.returncode, done.stdout, done.stderr, sep="\n")
        return plan


@dataclass
class Deployed:
    bench: Bench
    config: dict[str, Any]
    resources: int


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory, test_server: TestServer, registry: str) -> Iterator[Deployed]:
    project = QuaysideProject.create(tmp_path_factory.mktemp("plan"))
    bench = Bench(project, test_server.private_key_text.strip().splitlines()[1])
    config = base_config(test_server, registry)
    stack = bench.configure(STACK, config, {"postgres_password": PASSWORD})
    try:
        result = stack.up(on_output=print, color="never")
        yield Deployed(bench, config, sum((result.summary.resource_changes or {}).values()))
    finally:
        stack = bench.configure(STACK, config, {"postgres_password": PASSWORD})
        stack.destroy(on_output=print, color="never")


def test_without_a_change_the_plan_is_one_line_saying_nothing_changes(deployed: Deployed) -> None:
    plan = deployed.bench.plan(deployed.config, {"postgres_password": PASSWORD})

    assert plan.returncode == 0, plan.stderr
    assert plan.lines == [f"nothing changes: all {deployed.resources} resources stay as they are"]


def test_a_new_image_boots_beside_the_live_version_and_keeps_it_for_rollback(deployed: Deployed, registry: str) -> None:
    config = changed(deployed.config, "quayside:roles.web.image", f"{registry}/quayside-test/app:v3")

    plan = deployed.bench.plan(config, {"postgres_password": PASSWORD})

    assert plan.returncode == 0, plan.stderr
    v1, v3 = pinned_version("v1"), pinned_version("v3")
    assert plan.lines == [
        f"web: new version {v3} (was {v1}): boots beside {v1}, switches after its health check, keeps {v1} for rollback"
    ]


def test_an_env_change_boots_a_fresh_container_of_the_same_version_and_names_the_variable_only(
    deployed: Deployed,
) -> None:
    config = changed(deployed.config, "quayside:roles.backend.env.clear.NODE_ENV", "staging")

    plan = deployed.bench.plan(config, {"postgres_password": PASSWORD})

    assert plan.lines == [f"backend: env changed (NODE_ENV): {fresh('v2')}"]
    assert "staging" not in plan.stdout


def test_a_postgres_settings_change_restarts_it_with_its_data_kept(deployed: Deployed) -> None:
    config = changed(deployed.config, "quayside:accessories.postgres.settings.max_connections", 60)

    plan = deployed.bench.plan(config, {"postgres_password": PASSWORD})

    assert plan.lines == ["postgres: settings changed (max_connections): restarted with its data kept"]


def test_a_changed_secret_is_named_where_it_is_used_and_its_value_never_shown(deployed: Deployed) -> None:
    new_password = f"pw-{secrets.token_hex(12)}"

    plan = deployed.bench.plan(deployed.config, {"postgres_password": new_password})

    assert plan.lines == [
        "postgres: secrets changed: restarted with its data kept",
        f"backend: secret env changed: {fresh('v2')}",
    ]
    assert plan.shows(new_password, PASSWORD) == 0


def test_a_removed_role_loses_its_route_and_containers(deployed: Deployed) -> None:
    config = changed(deployed.config, "quayside:roles.web", None)

    plan = deployed.bench.plan(config, {"postgres_password": PASSWORD})

    assert plan.lines == ["web: removed: its route and containers go"]
    assert plan.warnings == []


def test_removing_postgres_with_delete_data_is_a_loud_warning_first(deployed: Deployed) -> None:
    config = changed(deployed.config, "quayside:accessories", None)
    config = changed(config, "quayside:roles.backend.env.secret", [])

    plan = deployed.bench.plan(config, {})

    assert plan.returncode == 0, plan.stderr
    assert plan.lines[0] == (
        f"WARNING: postgres: removed WITH ITS DATA (delete_data: true): /var/lib/quayside/{SERVICE}/postgres/data "
        "is deleted for good"
    )
    assert plan.warnings == plan.lines[:1]
    assert f"backend: secret env changed: {fresh('v2')}" in plan.lines


def test_a_config_mistake_fails_the_plan_with_the_one_line_error(deployed: Deployed) -> None:
    config = changed(deployed.config, "quayside:roles.web.health.path", "up")

    plan = deployed.bench.plan(config, {"postgres_password": PASSWORD})

    assert plan.returncode == 1
    assert plan.lines[0] == "the preview failed:"
    assert "quayside config: roles.web.health.path: must be a path starting with /" in plan.stdout


def hetzner_deployment(base: auto.Deployment, stack: str) -> auto.Deployment:
    """The stack's state as after an `up` that made the Hetzner server only (its SSH key, firewall and machine,
    with plausible IDs and addresses); the rest of the service is still to be deployed."""
    prefix = f"urn:pulumi:{stack}::quayside::"
    stack_urn = f"{prefix}pulumi:pulumi:Stack::quayside-{stack}"
    provider_urn, provider_id = f"{prefix}pulumi:providers:hcloud::default_1_39_1", str(uuid.uuid4())
    component = f"{prefix}quayside:index:HetznerServer::{SERVICE}-server"
    token = {**SECRET_SIGNATURE, "plaintext": f'"{HCLOUD_TOKEN}"'}
    anywhere = ["0.0.0.0/0", "::/0"]
    rules = [{"direction": "in", "protocol": "tcp", "port": port, "sourceIps": anywhere,
              "destinationIps": [], "description": ""} for port in ("22", "80", "443")]  # fmt: skip
    rules.append(
        {"direction": "in", "protocol": "icmp", "sourceIps": anywhere, "destinationIps": [], "description": ""}
    )
    key = {"name": f"{SERVICE}-server-key", "publicKey": SSH_PUBLIC_KEY, "labels": {}}
    firewall = {"name": f"{SERVICE}-server-firewall", "rules": rules, "labels": {}}
    server = {"name": f"{SERVICE}-1", "serverType": "cx22", "location": "nbg1", "image": "debian-12",
              "sshKeys": ["101"], "firewallIds": [202], "userData": "#cloud-config", "deleteProtection": True,
              "rebuildProtection": True, "labels": {"quayside-service": SERVICE}}  # fmt: skip
    made = {"id": "303", "ipv4Address": SERVER_ADDRESS, "ipv6Address": "2001:db8::1", "ipv6Network": "2001:db8::/64",
            "status": "running", "datacenter": "nbg1-dc3", "backups": False, "keepDisk": False,
            "primaryDiskSize": 40, "shutdownBeforeDeletion": False, "allowDeprecatedImages": False,
            "ignoreRemoteFirewallIds": False}  # fmt: skip

    def child(kind: str, name: str, id_: str, inputs: dict[str, Any], outputs: dict[str, Any]) -> dict[str, Any]:
        return {"urn": f"{prefix}quayside:index:HetznerServer${kind}::{name}", "custom": True, "id": id_,
                "type": kind, "parent": component, "provider": f"{provider_urn}::{provider_id}",
                "inputs": inputs, "outputs": {**inputs, **outputs, "id": id_}}  # fmt: skip

    resources = [
        {"urn": stack_urn, "custom": False, "type": "pulumi:pulumi:Stack", "outputs": {"server_host": SERVER_ADDRESS}},
        {"urn": provider_urn, "custom": True, "id": provider_id, "type": "pulumi:providers:hcloud",
         "inputs": {"token": token, "version": "1.39.1"}, "outputs": {"token": token, "version": "1.39.1"}},
        {"urn": component, "custom": False, "type": "quayside:index:HetznerServer", "parent": stack_urn},
        child("hcloud:index/sshKey:SshKey", f"{SERVICE}-server-key", "101", key, {"fingerprint": "0f:ee"}),
        child("hcloud:index/firewall:Firewall", f"{SERVICE}-server-firewall", "202", firewall, {"applyTos": []}),
        child("hcloud:index/server:Server", f"{SERVICE}-server-server", "303", server, made),
    ]  # fmt: skip
    return auto.Deployment(version=base.version, deployment={**(base.deployment or {}), "resources": resources})


@pytest.fixture(scope="module")
def hetzner(deployed: Deployed, registry: str) -> Iterator[Bench]:
    """A Hetzner stack of the same service whose server exists (in state): nothing in it is ever deployed."""
    bench = deployed.bench
    stack_secrets = {"ssh_private_key": "not-a-key", "hcloud:token": HCLOUD_TOKEN}
    stack = bench.configure(HETZNER_STACK, hetzner_config(registry), stack_secrets)
    stack.import_stack(hetzner_deployment(stack.export_stack(), HETZNER_STACK))
    try:
        yield bench
    finally:
        # Forgets the state only: a destroy would ask Hetzner to delete a server that never existed.
        stack.workspace.remove_stack(HETZNER_STACK, force=True)


def test_a_hetzner_server_in_another_location_is_a_replacement_warned_about_first(
    hetzner: Bench, registry: str
) -> None:
    stack_secrets = {"ssh_private_key": "not-a-key", "hcloud:token": HCLOUD_TOKEN}

    plan = hetzner.plan(hetzner_config(registry, location="fsn1"), stack_secrets, stack=HETZNER_STACK)

    assert plan.returncode == 0, plan.stderr
    assert plan.warnings == [
        "WARNING: server: REPLACED (location nbg1 → fsn1): a new server is made and the old one is deleted with "
        "everything on it, accessory data included; Hetzner refuses while delete_protection is on: turn it off "
        "first if you mean it"
    ]
    assert plan.lines[0] == plan.warnings[0]
    assert plan.shows(HCLOUD_TOKEN) == 0


def test_a_bigger_hetzner_server_type_is_a_resize_in_place_and_no_warning(hetzner: Bench, registry: str) -> None:
    stack_secrets = {"ssh_private_key": "not-a-key", "hcloud:token": HCLOUD_TOKEN}

    plan = hetzner.plan(hetzner_config(registry, type="cx32"), stack_secrets, stack=HETZNER_STACK)

    assert plan.returncode == 0, plan.stderr
    assert plan.warnings == []
    assert plan.lines[0] == "server: type cx22 → cx32: Hetzner resizes it in place (it is off meanwhile)"
    # The rest of the service is not deployed yet in this state: the plan says what comes new.
    assert f"web: new role at {pinned_version('v1')}: boots and takes traffic after its health check" in plan.lines


def test_an_unchanged_hetzner_server_is_not_mentioned(hetzner: Bench, registry: str) -> None:
    stack_secrets = {"ssh_private_key": "not-a-key", "hcloud:token": HCLOUD_TOKEN}

    plan = hetzner.plan(hetzner_config(registry), stack_secrets, stack=HETZNER_STACK)

    assert plan.returncode == 0, plan.stderr
    assert [line for line in plan.lines if line.startswith("server:")] == []
