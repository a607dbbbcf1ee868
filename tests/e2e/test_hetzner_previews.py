"""`pulumi preview` of a Hetzner stack with its safety options, through the real engine, the real hcloud and command
providers and quayside's own program, with a placeholder token: Hetzner's API is never reached (a preview of new
resources and a diff against state need no call), so what is proven here stops at the provider's edge.

- Pulumi.prod.yaml (three roles, Postgres, backups, Vector) on a new Hetzner server with a primary IPv4 and a data
  volume: the plan a user would see before a first deploy, and scripts/plan's words for it.
- A Hetzner server already in state (imported, as after an `up`), made with other user data and another SSH key
  than the program now makes: the preview keeps the server, warns what it ignores and how to apply it, and
  scripts/plan shows the warning as its first line.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import uuid
from pathlib import Path
from typing import Any, Final

import pytest
import yaml
from pulumi import automation as auto

from components import server
from tests.support.pulumi_engine import PULUMI_HOME, ROOT, QuaysideProject, pulumi_cli, secret
from tests.support.stacks import Events, made_up_digest, pin_unreachable_images, stack_config, unique_service

HCLOUD_TOKEN: Final = "0" * 64  # as long as a real token; no call is made with it
PLACEHOLDER: Final = "placeholder-never-used-5d2a"
SSH_PUBLIC_KEY: Final = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHNhZmV0eS10ZXN0cy1vbmx5LXBsYWNlaG9sZGVy safety@tests"
OLD_SSH_PUBLIC_KEY: Final = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG9sZC1rZXktb2YtdGhlLXNlcnZlci1wbGFjZWhvbGRlcg old@tests"
)
# How the engine marks a secret in a deployment it imports (the value is encrypted on import).
SECRET_SIGNATURE: Final = {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270"}
HOST_PRIVATE_KEY: Final = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\nc2FmZXR5LXRlc3RzLW5vdC1hLXJlYWwta2V5\n-----END OPENSSH PRIVATE KEY-----\n"
)
HOST_KEY: Final = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGhvc3Qta2V5LW9mLXRoZS1zZXJ2ZXItcGxhY2Vob2xkZXI quayside-host"
SERVER_ADDRESS: Final = "203.0.113.9"
PLAN: Final = ROOT / "scripts" / "plan"


def prod_on_hetzner() -> dict[str, Any]:
    """Pulumi.prod.yaml with its server made at Hetzner, with a primary IPv4 and a volume for the data."""
    values: dict[str, Any] = yaml.safe_load((ROOT / "Pulumi.prod.yaml").read_text())["config"]
    values["quayside:server"] = {
        "provider": "hetzner", "type": "cx32", "location": "fsn1", "ssh_public_key": SSH_PUBLIC_KEY,
        "ssh_from": ["203.0.113.0/24"], "primary_ipv4": True, "volume": {"size_gb": 40},
    }  # fmt: skip
    return values


def configured(project: QuaysideProject, name: str, values: dict[str, Any]) -> auto.Stack:
    """The stack with every secret it needs set to a placeholder, and the placeholder Hetzner token."""
    pin_unreachable_images(values)
    stack = project.stack(name, values)
    for key in stack_config(values).secret_names():
        stack.set_config(f"quayside:{key}", secret(PLACEHOLDER))
    stack.set_config("hcloud:token", secret(HCLOUD_TOKEN))
    return stack


def plan(project: QuaysideProject, name: str) -> subprocess.CompletedProcess[str]:
    """scripts/plan of the stack, as a user runs it (their backend and passphrase in env)."""
    env = {**os.environ, **project.env(), "PULUMI_HOME": str(PULUMI_HOME)}
    env["PATH"] = f"{pulumi_cli().parent}{os.pathsep}{env.get('PATH', '')}"
    done = subprocess.run(
        [str(PLAN), "-s", name, "--cwd", str(project.work_dir)],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert PLACEHOLDER not in done.stdout + done.stderr and HCLOUD_TOKEN not in done.stdout + done.stderr
    print(f"scripts/plan -s {name} ->", done.returncode, done.stdout, done.stderr, sep="\n")
    return done


def test_prod_on_hetzner_with_a_primary_ipv4_and_a_volume_previews_every_part_protected(tmp_path: Path) -> None:
    project = QuaysideProject.create(tmp_path)
    stack = configured(project, "prod", prod_on_hetzner())
    events = Events()

    result = stack.preview(color="never", diff=True, on_event=events.record)
    print(result.stdout)

    assert set(result.change_summary) == {auto.OpType.CREATE}, result.change_summary
    created = {name for name, ops in events.ops.items() if ops == ["create"]}
    assert {"acme-server-ipv4", "acme-server-server", "acme-server-volume", "acme-server-volume-mount",
            "acme-server-made-with", "acme-postgres-container", "acme-web-swap"} <= created  # fmt: skip
    primary_ip = result.stdout.split("hcloud:index/primaryIp:PrimaryIp: (create)")[1].split("+ hcloud:")[0]
    assert "autoDelete      : false" in primary_ip and "deleteProtection: true" in primary_ip, primary_ip
    volume = result.stdout.split("hcloud:index/volume:Volume: (create)")[1].split("+ command:")[0]
    assert "deleteProtection: true" in volume and 'format          : "ext4"' in volume, volume
    assert "size            : 40" in volume, volume
    assert PLACEHOLDER not in result.stdout and HCLOUD_TOKEN not in result.stdout

    said = plan(project, "prod")
    assert said.returncode == 0, said.stdout + said.stderr
    assert said.stdout.splitlines()[0] == (
        "server: a new Hetzner server (cx32 in fsn1), with a primary IPv4 of its own and a 40 GB volume for its data"
    )


def test_the_shipped_multi_server_stack_previews_three_servers_on_one_private_network(tmp_path: Path) -> None:
    """Pulumi.multi.yaml: app-1, app-2 and db at Hetzner, one network and subnet, each server attached at its
    address; a rollout for each role over its servers; Postgres on db."""
    project = QuaysideProject.create(tmp_path)
    values: dict[str, Any] = yaml.safe_load((ROOT / "Pulumi.multi.yaml").read_text())["config"]
    stack = configured(project, "multi", values)
    events = Events()

    result = stack.preview(color="never", diff=True, on_event=events.record)
    print(result.stdout)

    assert set(result.change_summary) == {auto.OpType.CREATE}, result.change_summary
    created = {name for name, ops in events.ops.items() if ops == ["create"]}
    servers = ("app-1", "app-2", "db")
    assert {"acme-network-net", "acme-network-subnet"} <= created, created
    assert {f"acme-server-{name}-network" for name in servers} <= created, created
    assert {f"acme-server-{name}-server" for name in servers} <= created, created
    assert {"acme-web-rollout", "acme-web-on-app-1", "acme-web-on-app-2", "acme-api-on-app-2"} <= created, created
    assert "acme-api-on-app-1" not in created and "acme-web-on-db" not in created
    assert {f"acme-proxy-{name}" for name in ("app-1", "app-2")} <= created and "acme-proxy-db" not in created
    attachments = result.stdout.split("hcloud:index/serverNetwork:ServerNetwork: (create)")[1:]
    assert sorted(part.split('ip       : "')[1].split('"')[0] for part in attachments) == [
        "10.0.1.10", "10.0.1.11", "10.0.1.12",
    ], attachments  # fmt: skip
    assert PLACEHOLDER not in result.stdout and HCLOUD_TOKEN not in result.stdout


def test_the_multi_server_stack_behind_a_hetzner_load_balancer_previews_it_with_targets_service_and_certificate(
    tmp_path: Path,
) -> None:
    """Pulumi.multi.yaml with `load_balancer: {provider: hetzner}` (api on both app servers, as a Hetzner Load
    Balancer sends every hostname to every target): the balancer on the network, a private target per app server,
    one HTTPS service health-checked through the first proxied role, a managed certificate for every hostname."""
    project = QuaysideProject.create(tmp_path)
    values: dict[str, Any] = yaml.safe_load((ROOT / "Pulumi.multi.yaml").read_text())["config"]
    values["quayside:load_balancer"] = {"provider": "hetzner"}
    values["quayside:roles"]["api"]["servers"] = ["app-1", "app-2"]
    stack = configured(project, "multi", values)
    events = Events()

    result = stack.preview(color="never", diff=True, on_event=events.record)
    print(result.stdout)

    created = {name for name, ops in events.ops.items() if ops == ["create"]}
    assert {"acme-balancer-lb", "acme-balancer-network", "acme-balancer-service", "acme-balancer-certificate",
            "acme-balancer-target-app-1", "acme-balancer-target-app-2"} <= created, created  # fmt: skip
    assert "acme-balancer-target-db" not in created, "db runs no proxied role"
    service = result.stdout.split("hcloud:index/loadBalancerService:LoadBalancerService: (create)")[1].split("+ ")[0]
    said = {key: value for key, value in re.findall(r'(\w+)\s*: ("[^"]*"|\d+|true)', service)}
    assert (said["protocol"], said["listenPort"], said["destinationPort"]) == ('"https"', "443", "80"), service
    # The first proxied role by name checks the targets: api, on its path, with its hostname.
    assert (said["domain"], said["path"], said["redirectHttp"]) == ('"api.acme.com"', '"/health"', "true"), service
    certificate = result.stdout.split("hcloud:index/managedCertificate:ManagedCertificate: (create)")[1]
    assert all(f'"{host}"' in certificate for host in ("acme.com", "app.acme.com", "api.acme.com")), certificate
    targets = result.stdout.split("hcloud:index/loadBalancerTarget:LoadBalancerTarget: (create)")[1:]
    assert len(targets) == 2 and all("usePrivateIp  : true" in target for target in targets), targets
    assert PLACEHOLDER not in result.stdout and HCLOUD_TOKEN not in result.stdout


def made_server_state(base: auto.Deployment, name: str, service: str, user_data: str) -> auto.Deployment:
    """The stack's state as after an `up` that made the Hetzner server only: its key, firewall, host key pair and
    machine, and the digests of the user data and SSH key it was made with (`user_data`, OLD_SSH_PUBLIC_KEY)."""
    prefix = f"urn:pulumi:{name}::quayside::"
    stack_urn = f"{prefix}pulumi:pulumi:Stack::quayside-{name}"
    hcloud_urn, hcloud_id = f"{prefix}pulumi:providers:hcloud::default_1_39_1", str(uuid.uuid4())
    command_urn, command_id = f"{prefix}pulumi:providers:command::default_1_2_1", str(uuid.uuid4())
    component = f"{prefix}quayside:index:HetznerServer::{service}-server"

    def hidden(value: Any) -> dict[str, Any]:
        return {**SECRET_SIGNATURE, "plaintext": json.dumps(value)}

    token = hidden(HCLOUD_TOKEN)
    rules = [{"direction": "in", "protocol": "tcp", "port": port, "sourceIps": ["0.0.0.0/0", "::/0"],
              "destinationIps": [], "description": ""} for port in ("22", "80", "443")]  # fmt: skip
    rules.append({"direction": "in", "protocol": "icmp", "sourceIps": ["0.0.0.0/0", "::/0"], "destinationIps": [],
                  "description": ""})  # fmt: skip
    machine = {"name": f"{service}-1", "serverType": "cx22", "location": "nbg1", "image": "debian-12",
               "sshKeys": ["101"], "firewallIds": [202], "userData": hidden(user_data), "deleteProtection": True,
               "rebuildProtection": True, "labels": {"quayside-service": service}}  # fmt: skip
    made = {"id": "303", "ipv4Address": SERVER_ADDRESS, "ipv6Address": "2001:db8::9", "status": "running",
            "datacenter": "nbg1-dc3", "backups": False, "keepDisk": False, "primaryDiskSize": 40,
            "shutdownBeforeDeletion": False, "allowDeprecatedImages": False,
            "ignoreRemoteFirewallIds": False}  # fmt: skip
    digests = hidden([server.fingerprint(user_data), server.fingerprint(OLD_SSH_PUBLIC_KEY)])
    keygen = {"create": server.HOST_KEYGEN, "logging": "none"}

    def child(kind: str, res: str, id_: str, inputs: dict[str, Any], outputs: dict[str, Any]) -> dict[str, Any]:
        provider = f"{hcloud_urn}::{hcloud_id}" if kind.startswith("hcloud") else f"{command_urn}::{command_id}"
        return {"urn": f"{prefix}quayside:index:HetznerServer${kind}::{res}", "custom": True, "id": id_,
                "type": kind, "parent": component, "provider": provider, "inputs": inputs,
                "outputs": {**inputs, **outputs, **({"id": id_} if kind.startswith("hcloud") else {})}}  # fmt: skip

    resources = [
        {"urn": stack_urn, "custom": False, "type": "pulumi:pulumi:Stack", "outputs": {"server_host": SERVER_ADDRESS}},
        {"urn": hcloud_urn, "custom": True, "id": hcloud_id, "type": "pulumi:providers:hcloud",
         "inputs": {"token": token, "version": "1.39.1"}, "outputs": {"token": token, "version": "1.39.1"}},
        {"urn": command_urn, "custom": True, "id": command_id, "type": "pulumi:providers:command",
         "inputs": {"version": "1.2.1"}, "outputs": {"version": "1.2.1"}},
        {"urn": component, "custom": False, "type": "quayside:index:HetznerServer", "parent": stack_urn},
        child("hcloud:index/sshKey:SshKey", f"{service}-server-key", "101",
              {"name": f"{service}-server-key", "publicKey": OLD_SSH_PUBLIC_KEY, "labels": {}}, {"fingerprint": "0f"}),
        child("hcloud:index/firewall:Firewall", f"{service}-server-firewall", "202",
              {"name": f"{service}-server-firewall", "rules": rules, "labels": {}}, {"applyTos": []}),
        child("command:local:Command", f"{service}-server-host-key", "host-key", keygen,
              {"stdout": hidden(f"{HOST_PRIVATE_KEY}{HOST_KEY}\n"), "stderr": ""}),
        child("hcloud:index/server:Server", f"{service}-server-server", "303", machine, made),
        child("command:local:Command", f"{service}-server-made-with", "made-with",
              {"triggers": digests}, {"stdout": "", "stderr": ""}),
    ]  # fmt: skip
    return auto.Deployment(version=base.version, deployment={**(base.deployment or {}), "resources": resources})


def test_a_server_made_with_other_user_data_and_key_is_kept_and_the_preview_warns_what_it_ignores(
    tmp_path: Path,
) -> None:
    service = unique_service("safety")
    project = QuaysideProject.create(tmp_path)
    values = {
        "quayside:service": service,
        "quayside:server": {"provider": "hetzner", "type": "cx22", "location": "nbg1",
                            "ssh_public_key": SSH_PUBLIC_KEY},
        "quayside:roles": {"web": {"image": "ghcr.io/acme/web:1.0", "hosts": [f"{service}.example.com"],
                                   "health": {"path": "/up"}}},
    }  # fmt: skip
    stack = configured(project, "made", values)
    stack.import_stack(made_server_state(stack.export_stack(), "made", service, "#cloud-config\nolder: true\n"))
    try:
        events = Events()
        warnings: list[str] = []

        def record(event: auto.EngineEvent) -> None:
            events.record(event)
            if event.diagnostic_event is not None and event.diagnostic_event.severity == "warning":
                warnings.append(event.diagnostic_event.message)

        result = stack.preview(color="never", diff=True, on_event=record)
        print(result.stdout, *warnings, sep="\n")

        assert events.ops.get(f"{service}-server-server") == ["same"], events.ops
        assert events.ops.get(f"{service}-server-made-with") == ["same"], events.ops
        [warning] = warnings
        assert warning.startswith("quayside: server: user data and SSH key changed since the server was made: ignored")
        assert "pulumi up --replace 'urn:pulumi:made::quayside::quayside:index:HetznerServer$" in warning
        assert HOST_PRIVATE_KEY.splitlines()[1] not in result.stdout

        said = plan(project, "made")
        assert said.returncode == 0, said.stdout + said.stderr
        first = said.stdout.splitlines()[0]
        assert first.startswith("WARNING: server: user data and SSH key changed since the server was made"), first
        assert "Root keeps the key the server was made with" in first
    finally:
        # Forgets the state only: a destroy would ask Hetzner to delete a server that never existed.
        stack.workspace.remove_stack("made", force=True)


def made_stack(project: QuaysideProject, name: str, service: str, **server_options: Any) -> auto.Stack:
    """A stack whose server was made (in state) with the user data and SSH key the program makes now, its config
    the same server with `server_options` added."""
    user_data = server.cloud_init(*server.split_key_pair(f"{HOST_PRIVATE_KEY}{HOST_KEY}\n"))
    values = {
        "quayside:service": service,
        "quayside:server": {"provider": "hetzner", "type": "cx22", "location": "nbg1",
                            "ssh_public_key": OLD_SSH_PUBLIC_KEY, **server_options},
        "quayside:roles": {"web": {"image": "ghcr.io/acme/web:1.0", "hosts": [f"{service}.example.com"],
                                   "health": {"path": "/up"}}},
    }  # fmt: skip
    stack = configured(project, name, values)
    stack.import_stack(made_server_state(stack.export_stack(), name, service, user_data))
    return stack


def test_a_primary_ipv4_and_a_volume_added_to_a_made_server_keep_it_and_warn_that_its_address_changes(
    tmp_path: Path,
) -> None:
    service = unique_service("safety")
    project = QuaysideProject.create(tmp_path)
    stack = made_stack(project, "grown", service, primary_ipv4=True, volume={"size_gb": 20})
    try:
        events = Events()
        result = stack.preview(color="never", diff=True, on_event=events.record)
        print(result.stdout)

        ops = {name.removeprefix(f"{service}-server-"): op for name, op in events.ops.items()}
        assert ops["server"] == ["update"], "the hcloud provider assigns the primary IP in place"
        assert ops["ipv4"] == ops["volume"] == ops["volume-mount"] == ["create"]
        assert ops["made-with"] == ["same"]

        said = plan(project, "grown")
        assert said.returncode == 0, said.stdout + said.stderr
        assert said.stdout.splitlines()[:2] == [
            "WARNING: server: gets a primary IPv4 of its own: its address changes, point DNS at the new one; "
            "Hetzner assigns a primary IP only to a server that is off",
            "server: a new 20 GB volume, mounted where the service keeps its data (the mount refuses when files are "
            "there already)",
        ]
    finally:
        stack.workspace.remove_stack("grown", force=True)


def test_a_server_with_a_primary_ipv4_moved_elsewhere_is_deleted_first_and_keeps_the_address(tmp_path: Path) -> None:
    service = unique_service("safety")
    project = QuaysideProject.create(tmp_path)
    stack = made_stack(project, "moved", service, primary_ipv4=True, location="fsn1")
    try:
        events = Events()
        result = stack.preview(color="never", diff=True, on_event=events.record)
        print(result.stdout)

        assert events.ops[f"{service}-server-server"] == ["delete-replaced", "replace", "create-replacement"]
        # The record of what the server was made with goes with it (replace_with), so it records the new one's.
        assert "replace" in events.ops[f"{service}-server-made-with"]

        said = plan(project, "moved")
        assert said.returncode == 0, said.stdout + said.stderr
        assert said.stdout.splitlines()[0] == (
            "WARNING: server: REPLACED (location nbg1 → fsn1): the old server is deleted first, with everything on "
            "it, accessory data included; the new server keeps the primary IPv4; Hetzner refuses while "
            "delete_protection is on: turn it off first if you mean it"
        )
    finally:
        stack.workspace.remove_stack("moved", force=True)


@pytest.mark.parametrize(
    ("name", "first"),
    [("staging", "server: a new Hetzner server (cx22 in nbg1)"),
     ("prod", "server: an existing server, 203.0.113.7, reached over SSH")],
)  # fmt: skip
def test_scripts_plan_tells_a_shipped_stack_files_first_deploy_in_words(tmp_path: Path, name: str, first: str) -> None:
    project = QuaysideProject.create(tmp_path)
    values: dict[str, Any] = yaml.safe_load((ROOT / f"Pulumi.{name}.yaml").read_text())["config"]
    configured(project, name, values)

    said = plan(project, name)

    assert said.returncode == 0, said.stdout + said.stderr
    lines = said.stdout.splitlines()
    assert lines[0] == first
    assert [line for line in lines if line.startswith("WARNING:")] == []
    backend = f"2026.11.1@{made_up_digest('ghcr.io/acme/backend:2026.11.1')[:12]}"
    said_of_backend = (
        f"backend: new role at {backend}: runs its migration, then boots and takes traffic after its health check"
    )
    assert said_of_backend in lines
