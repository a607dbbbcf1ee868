"""A Hetzner server's safety options under Pulumi mocks: the primary IPv4 and the data volume, the warning about
user data and SSH keys the running server ignores, and the config mistakes that stop a preview first."""

from __future__ import annotations

import copy
import json
import shlex
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any, Final

import pulumi
import pytest
from pulumi_command import remote as command_remote

from components import config, remote, server, stack
from components.config import examples
from components.load_balancer import HetznerLoadBalancer
from tests.support.commands import is_secret
from tests.support.mocks import EngineLog, echoed

HOST_KEY: Final = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHq9u5mVwK0p2Zr7xqQb3cJYtLk8dWn1sFv6gHe4aRz0"
# The key the server made itself when the first connection asked (host-key.sh).
SERVED_HOST_KEY: Final = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ7SbN0QxV8Xh3mGtWfXy2pQe5Lr1Kc4dZa9uVb6Ho2s"
HOST_PRIVATE_KEY: Final = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"
)
DEPLOY_KEY: Final = "-----BEGIN OPENSSH PRIVATE KEY-----\ndeploy\n-----END OPENSSH PRIVATE KEY-----\n"
PRIMARY_ADDRESS: Final = "203.0.113.50"
SERVER_ADDRESS: Final = "198.51.100.4"
SERVER_ID: Final = "4711"
DEVICE: Final = "/dev/disk/by-id/scsi-0HC_Volume_815"
SSH_PUBLIC_KEY: Final = "ssh-ed25519 AAAA deploy"


# How a secret value travels from the engine (pulumi.runtime.rpc's signature of one).
SECRET_SIG_KEY: Final = "4dabf18193072939515e22adb298388d"
SECRET_SIG: Final = "1b47061264138c4ac30d75fd1eb44270"


class Mocks(pulumi.runtime.Mocks):
    """Echoes inputs, answers as Hetzner and the host-key command would; `made_with` plays the digests the
    server was made with (None: the ones of this run, as on a first deploy)."""

    def __init__(self, made_with: list[str] | None = None) -> None:
        self.made_with = made_with

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        outputs = dict(args.inputs) | echoed(args)
        if args.typ == "hcloud:index/server:Server":
            return SERVER_ID, {**outputs, "ipv4Address": SERVER_ADDRESS}
        if args.typ == "hcloud:index/primaryIp:PrimaryIp":
            return "606", {**outputs, "ipAddress": PRIMARY_ADDRESS}
        if args.typ == "hcloud:index/volume:Volume":
            return "815", {**outputs, "linuxDevice": DEVICE}
        if args.typ == "command:local:Command" and "ssh-keygen" in args.inputs.get("create", ""):
            # Secret, as the engine makes it (additional_secret_outputs): it holds the private half.
            outputs["stdout"] = {SECRET_SIG_KEY: SECRET_SIG, "value": f"{HOST_PRIVATE_KEY}{HOST_KEY} quayside-host\n"}
        if args.name.endswith("-host-key-rotation"):
            outputs["stdout"] = f"{SERVED_HOST_KEY}\n"
        if args.name.endswith("-made-with") and self.made_with is not None:
            outputs["triggers"] = self.made_with
        # Numeric ids, as Hetzner's: firewall and server ids are passed on as integers.
        return str(zlib.crc32(args.name.encode())), outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None


@pytest.fixture
def pulumi_mocks() -> Mocks:
    return Mocks()


def stack_config(**hetzner: Any) -> config.StackConfig:
    return config.parse(
        {
            "service": "acme",
            "server": {"provider": "hetzner", "ssh_public_key": SSH_PUBLIC_KEY, **hetzner},
            "roles": {"web": {"image": "ghcr.io/acme/web:1.0", "hosts": ["acme.com"], "health": {"path": "/up"}}},
            "accessories": {"postgres": {}},
        },
        secrets_set={"ssh_private_key", "postgres_password"},
    )


def secret(name: str) -> pulumi.Output[str]:
    return pulumi.Output.secret(DEPLOY_KEY if name == "ssh_private_key" else f"{name}-value")


def hetzner(settings: config.StackConfig) -> tuple[stack.Deployment, server.HetznerServer]:
    deployment = stack.deploy(settings, secret)
    assert isinstance(deployment.server, server.HetznerServer)
    return deployment, deployment.server


# --- the primary IPv4 ------------------------------------------------------------------------------------------


@pulumi.runtime.test
def test_a_primary_ipv4_outlives_the_server_and_is_the_address_deploys_and_outputs_use() -> pulumi.Output[None]:
    deployment, made = hetzner(stack_config(location="fsn1", primary_ipv4=True))
    assert made.primary_ip is not None
    outputs = deployment.outputs()

    def check(values: list[Any]) -> None:
        auto_delete, assignee, kind, location, protected, nets, host, output, ssh = values
        assert auto_delete is False, "Hetzner would delete the address with the server"
        assert (assignee, kind, location, protected) == ("server", "ipv4", "fsn1", True)
        assert [(net["ipv4"], net["ipv4_enabled"]) for net in nets] == [(606, True)]
        assert host == output == ssh["host"] == PRIMARY_ADDRESS

    ip = made.primary_ip
    return pulumi.Output.all(
        ip.auto_delete, ip.assignee_type, ip.type, ip.location, ip.delete_protection, made.machine.public_nets,
        made.connection.host, outputs["server_host"], outputs["ssh"],
    ).apply(check)  # fmt: skip


@pulumi.runtime.test
def test_with_a_primary_ipv4_every_step_connects_naming_the_server_so_a_new_server_gets_every_step_again() -> (
    pulumi.Output[None]
):
    _, made = hetzner(stack_config(primary_ipv4=True))
    key = made.connection.private_key
    assert isinstance(key, pulumi.Output)

    def check(values: list[Any]) -> None:
        text, key_is_secret = values
        # ssh reads the PEM block; what follows it only tells one server from the next in Pulumi's diff.
        assert text == f"{DEPLOY_KEY}# quayside server {SERVER_ID}\n"
        assert key_is_secret

    return pulumi.Output.all(key, is_secret(key)).apply(check)


@pulumi.runtime.test
def test_without_a_primary_ipv4_the_server_has_hetzners_address_and_the_key_as_given() -> pulumi.Output[None]:
    _, made = hetzner(stack_config())
    assert made.primary_ip is None and made.volume is None and made.ready == []

    def check(values: list[Any]) -> None:
        host, key, nets = values
        assert (host, key, nets) == (SERVER_ADDRESS, DEPLOY_KEY, None)

    return pulumi.Output.all(made.host, made.connection.private_key, made.machine.public_nets).apply(check)


@pulumi.runtime.test
def test_the_host_key_output_is_plain_so_the_quayside_command_reads_it_and_the_private_half_stays_secret() -> (
    pulumi.Output[None]
):
    deployment, made = hetzner(stack_config())
    ssh = deployment.outputs()["ssh"]

    def check(values: list[Any]) -> None:
        key, key_is_secret, user_data_is_secret = values
        assert key == SERVED_HOST_KEY and not key_is_secret
        assert user_data_is_secret

    return pulumi.Output.all(ssh["host_key"], is_secret(ssh["host_key"]), is_secret(made.machine.user_data)).apply(
        check
    )


@pulumi.runtime.test
def test_the_first_connection_verifies_the_user_data_key_and_every_later_one_the_key_the_server_made() -> pulumi.Output[
    None
]:
    _, made = hetzner(stack_config(volume={"size_gb": 50}))
    rotation = made.host_key_rotation

    def check(values: list[Any]) -> None:
        first, create, stdin, triggers, later, bootstrap, mounted = values
        assert (first["user"], first["host_key"]) == ("root", HOST_KEY)
        assert shlex.split(create)[-2:] == ["--was", HOST_KEY] and "bash -s --" in create
        assert stdin == (remote.SCRIPTS_DIR / "host-key.sh").read_text()
        assert triggers == [SERVER_ID]
        assert later == bootstrap == mounted["host_key"] == SERVED_HOST_KEY

    [mount] = made.ready
    assert isinstance(mount, command_remote.Command)
    return pulumi.Output.all(
        rotation.connection, rotation.create, rotation.stdin, rotation.triggers, made.connection.host_key,
        made.bootstrap_connection.host_key, mount.connection,
    ).apply(check)  # fmt: skip


def test_a_rotation_that_printed_no_key_pins_nothing_and_fails() -> None:
    with pytest.raises(ValueError, match=r"host-key\.sh printed no host key"):
        server.served_host_key("\n")
    assert server.served_host_key(f"{SERVED_HOST_KEY}\n") == SERVED_HOST_KEY


# --- the data volume -------------------------------------------------------------------------------------------


@pulumi.runtime.test
def test_a_volume_is_protected_formatted_once_by_hetzner_and_attached_to_the_server() -> pulumi.Output[None]:
    _, made = hetzner(stack_config(volume={"size_gb": 50}))
    volume = made.volume
    assert volume is not None

    def check(values: list[Any]) -> None:
        size, attached_to, file_system, automount, protected, name = values
        assert (size, attached_to, name) == (50, int(SERVER_ID), "acme-data")
        assert (file_system, automount) == ("ext4", False)
        assert protected is True

    return pulumi.Output.all(
        volume.size, volume.server_id, volume.format, volume.automount, volume.delete_protection, volume.name
    ).apply(check)


@pulumi.runtime.test
def test_a_volume_unprotected_on_request() -> pulumi.Output[None]:
    _, made = hetzner(stack_config(volume={"size_gb": 10, "delete_protection": False}))
    assert made.volume is not None
    return made.volume.delete_protection.apply(lambda protected: assert_equal(protected, False))


def assert_equal(got: object, want: object) -> None:
    assert got == want


@pulumi.runtime.test
def test_the_volume_is_mounted_where_the_service_keeps_its_data_before_the_scripts_are_shipped() -> pulumi.Output[None]:
    deployment, made = hetzner(stack_config(volume={"size_gb": 20}))
    [mount] = made.ready
    assert deployment.bootstrap is not None
    assert deployment.bootstrap._args.after == [mount], "the bootstrap ships scripts onto the volume: after the mount"
    assert deployment.host._args.after == [deployment.bootstrap.done], "DockerHost comes after the bootstrap"
    assert isinstance(mount, command_remote.Command)

    def check(values: list[Any]) -> None:
        create, stdin, triggers, connection = values
        assert connection["user"] == "root", "mount, fstab and systemd are root's, whoever deploys"
        argv = shlex.split(create)
        assert argv[:7] == ["timeout", "--kill-after=10s", "300s", "bash", "-s", "--", "--device"]
        assert argv[6:] == [
            "--device", DEVICE, "--mount-point", "/var/lib/quayside/acme", "--wait", "120", "--fstab", "/etc/fstab",
        ]  # fmt: skip
        assert stdin == (remote.SCRIPTS_DIR / "volume.sh").read_text()
        assert triggers == [SERVER_ID, 20], "mounted again on a new server, and grown after a resize"

    return pulumi.Output.all(mount.create, mount.stdin, mount.triggers, mount.connection).apply(check)


def test_the_mount_command_is_one_quoted_line() -> None:
    args = server.volume_mount_args("/dev/disk/by-id/scsi-0HC_Volume_1", "acme")
    assert remote.piped_script(args, timeout_seconds=300) == (
        "timeout --kill-after=10s 300s bash -s -- --device /dev/disk/by-id/scsi-0HC_Volume_1 "
        "--mount-point /var/lib/quayside/acme --wait 120 --fstab /etc/fstab"
    )


# --- what the running server ignores --------------------------------------------------------------------------


@pulumi.runtime.test
def test_a_first_deploy_records_digests_only_and_warns_of_nothing(engine_log: EngineLog) -> pulumi.Output[None]:
    _, made = hetzner(stack_config())

    def check(values: list[Any]) -> None:
        digests, digests_are_secret = values
        assert len(digests) == 2 and all(len(digest) == 64 for digest in digests)
        assert "PRIVATE KEY" not in "".join(digests)
        assert digests[1] == server.fingerprint(SSH_PUBLIC_KEY)
        assert digests_are_secret, "even the digests stay encrypted in state"
        assert engine_log.messages == []

    return pulumi.Output.all(made.made_with.triggers, is_secret(made.made_with.triggers)).apply(check)


@pulumi.runtime.test
def deploy_hetzner() -> pulumi.Output[str]:
    """The program once, as a preview runs it; its warnings are logged once its resources are registered."""
    return hetzner(stack_config())[1].machine.urn


def test_changed_user_data_is_ignored_with_a_warning_saying_how_to_apply_it(
    pulumi_mocks: Mocks, engine_log: EngineLog
) -> None:
    pulumi_mocks.made_with = [server.fingerprint("#cloud-config\nolder: true\n"), server.fingerprint(SSH_PUBLIC_KEY)]

    deploy_hetzner()

    # The URN's stack and project are the mocks'.
    server_urn = (
        "urn:pulumi:stack::project::quayside:index:HetznerServer$hcloud:index/server:Server::acme-server-server"
    )
    [message] = engine_log.messages or ["(none)"]
    assert message == (
        "quayside: server: user data changed since the server was made: ignored, the running server is kept "
        "(cloud-init ran once). To apply it, replace the server on purpose (everything on it is deployed "
        "afresh; accessory data is lost unless it is on server.volume): set server.delete_protection: false, "
        f"pulumi up, then pulumi up --replace '{server_urn}'"
    ), message


def test_a_changed_ssh_key_is_ignored_with_a_warning_that_root_keeps_the_old_one(
    pulumi_mocks: Mocks, engine_log: EngineLog
) -> None:
    # The user data as this run makes it (from the mocked host key pair): only the key differs.
    user_data = server.cloud_init(*server.split_key_pair(f"{HOST_PRIVATE_KEY}{HOST_KEY} quayside-host\n"))
    pulumi_mocks.made_with = [server.fingerprint(user_data), server.fingerprint("ssh-ed25519 BBBB old")]

    deploy_hetzner()

    [message] = engine_log.messages or ["(none)"]
    assert message.startswith("quayside: server: SSH key changed since the server was made: ignored"), message
    assert "Root keeps the key the server was made with: ssh_private_key must stay its pair until then" in message
    assert HOST_PRIVATE_KEY.splitlines()[1] not in message and "AAAA" not in message


def test_an_unchanged_server_gets_no_warning(pulumi_mocks: Mocks, engine_log: EngineLog) -> None:
    user_data = server.cloud_init(*server.split_key_pair(f"{HOST_PRIVATE_KEY}{HOST_KEY} quayside-host\n"))
    pulumi_mocks.made_with = [server.fingerprint(user_data), server.fingerprint(SSH_PUBLIC_KEY)]

    deploy_hetzner()

    assert engine_log.messages == []


def test_what_is_ignored_is_named_in_the_order_of_the_digests() -> None:
    assert server.ignored_changes(["a", "b"], ["a", "b"]) == []
    assert server.ignored_changes(["a", "b"], ["x", "b"]) == ["user data"]
    assert server.ignored_changes(["a", "b"], ["x", "y"]) == ["user data", "SSH key"]


# --- config mistakes: one line naming the key, before anything runs ----------------------------------------------

HETZNER: Final = {"provider": "hetzner", "ssh_public_key": SSH_PUBLIC_KEY}

BAD_INPUT: Final = [
    ("server type unknown", {"type": "cx99"}, "server.type: Input should be 'cx22', 'cx32', "),
    ("location unknown", {"location": "fra1"}, "server.location: Input should be 'fsn1', 'nbg1', "),
    ("ssh_from with host bits", {"ssh_from": ["203.0.113.7/24"]},
     "server.ssh_from: '203.0.113.7/24' has host bits set: the network is 203.0.113.0/24"),
    ("ssh_from that is no network", {"ssh_from": ["10.0.0.300/8"]},
     "server.ssh_from: '10.0.0.300/8' is not a network like 203.0.113.0/24"),
    ("volume too small", {"volume": {"size_gb": 5}},
     "server.volume.size_gb: Input should be greater than or equal to 10 (got 5)"),
    ("volume too big", {"volume": {"size_gb": 20000}},
     "server.volume.size_gb: Input should be less than or equal to 10240 (got 20000)"),
    ("volume without a size", {"volume": {}}, "server.volume.size_gb: required"),
    ("volume key misspelt", {"volume": {"size_gb": 10, "protect": True}},
     "server.volume.protect: unknown key; allowed: size_gb, delete_protection"),
    ("primary_ipv4 not a boolean", {"primary_ipv4": "yes please"},
     "server.primary_ipv4: Input should be a valid boolean"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "given", "expected"), BAD_INPUT, ids=[case for case, _, _ in BAD_INPUT])
def test_a_hetzner_mistake_is_one_line_naming_the_key(case: str, given: dict[str, Any], expected: str) -> None:
    raw = {
        "service": "acme",
        "server": {**copy.deepcopy(HETZNER), **given},
        "roles": {"web": {"image": "a/b:1", "proxy": False}},
    }
    with pytest.raises(config.ConfigError) as raised:
        config.parse(raw, secrets_set={"ssh_private_key"})
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"quayside config: {expected}"), message


def test_every_hetzner_location_and_a_volume_at_hetzners_bounds_are_accepted() -> None:
    for location in ("fsn1", "nbg1", "hel1", "ash", "hil", "sin"):
        assert stack_config(location=location).server.location == location  # type: ignore[union-attr]
    for size in (10, 10240):
        volume = stack_config(volume={"size_gb": size}).server.volume  # type: ignore[union-attr]
        assert volume is not None and volume.size_gb == size and volume.delete_protection is True


# --- the plan's words ---------------------------------------------------------------------------------------------

ROOT: Final = Path(__file__).resolve().parents[2]
SERVER_URN: Final = (
    "urn:pulumi:s::quayside::quayside:index:HetznerServer$hcloud:index/server:Server::acme-server-server"
)
VOLUME_URN: Final = (
    "urn:pulumi:s::quayside::quayside:index:HetznerServer$hcloud:index/volume:Volume::acme-server-volume"
)
COMPONENT_URN: Final = "urn:pulumi:s::quayside::quayside:index:HetznerServer::acme-server"


def plan_of(preview: dict[str, Any]) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-m", "quayside_cli.plan"],
        input=json.dumps(preview),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.splitlines()


def test_plan_shows_quaysides_own_warnings_first_and_no_other_warning() -> None:
    ignored = "quayside: server: user data changed since the server was made: ignored, ..."
    preview = {
        "config": {"quayside:service": "acme"},
        "steps": [],
        "changeSummary": {"same": 9},
        "diagnostics": [
            {"message": "warning: provider: the attribute datacenter is deprecated\n", "severity": "warning"},
            {"message": f"warning: {ignored}\n", "severity": "warning"},
            {"message": "a message for the log\n", "severity": "info"},
        ],
    }

    assert plan_of(preview) == ["WARNING: server: user data changed since the server was made: ignored, ..."]


def test_plan_says_a_bigger_volume_grows_in_place() -> None:
    def volume(size: int) -> dict[str, Any]:
        return {"parent": COMPONENT_URN, "inputs": {"size": size, "name": "acme-data"}}

    step = {"op": "update", "urn": VOLUME_URN, "oldState": volume(20), "newState": volume(40),
            "detailedDiff": {"size": {"kind": "update"}}}  # fmt: skip
    preview = {"config": {"quayside:service": "acme"}, "steps": [step], "diagnostics": []}

    assert plan_of(preview) == ["server: the volume grows 20 → 40 GB (its file system grows with it)"]


def test_plan_warns_before_a_volume_goes() -> None:
    step = {"op": "delete", "urn": VOLUME_URN, "oldState": {"parent": COMPONENT_URN, "inputs": {"size": 20}}}
    preview = {"config": {"quayside:service": "acme"}, "steps": [step], "diagnostics": []}

    assert plan_of(preview)[0] == "WARNING: volume acme-server-volume: deleted: the data on it goes"


def replaced_server(*, location: str, public_nets: list[dict[str, Any]] | None) -> dict[str, Any]:
    def state(where: str) -> dict[str, Any]:
        inputs = {"location": where, "serverType": "cx22", "deleteProtection": True, "publicNets": public_nets}
        return {"parent": COMPONENT_URN, "inputs": inputs}

    urn = COMPONENT_URN.replace("::acme-server", "$hcloud:index/server:Server::acme-server-server")
    return {"op": "replace", "urn": urn, "oldState": state("nbg1"), "newState": state(location),
            "detailedDiff": {"location": {"kind": "update-replace"}}, "replaceReasons": ["location"]}  # fmt: skip


def attached_volume() -> dict[str, Any]:
    return {"op": "update", "urn": VOLUME_URN, "oldState": {"parent": COMPONENT_URN, "inputs": {"serverId": 303}},
            "newState": {"parent": COMPONENT_URN, "inputs": {"serverId": 0}},
            "detailedDiff": {"serverId": {"kind": "update"}}}  # fmt: skip


def test_plan_says_a_replaced_server_gives_its_volume_and_address_to_the_new_one() -> None:
    nets = [{"ipv4": 606, "ipv4Enabled": True, "ipv6Enabled": True}]
    server_step = replaced_server(location="nbg1", public_nets=nets)
    server_step.update(detailedDiff={"image": {"kind": "update-replace"}}, replaceReasons=["image"])
    preview = {"config": {"quayside:service": "acme"}, "steps": [server_step, attached_volume()], "diagnostics": []}

    assert plan_of(preview)[0] == (
        "WARNING: server: REPLACED (image changed): the old server is deleted first, with everything on it but its "
        "volume (the service's data), which the new server gets; the new server keeps the primary IPv4; Hetzner "
        "refuses while delete_protection is on: turn it off first if you mean it"
    )


def test_plan_says_a_volume_cannot_follow_a_server_to_another_location() -> None:
    steps = [replaced_server(location="fsn1", public_nets=None), attached_volume()]
    preview = {"config": {"quayside:service": "acme"}, "steps": steps, "diagnostics": []}

    assert plan_of(preview)[0] == (
        "WARNING: server: REPLACED (location nbg1 → fsn1): the old server is deleted first, with everything on it, "
        "accessory data included: its volume cannot follow it to another location; Hetzner refuses while "
        "delete_protection is on: turn it off first if you mean it"
    )


@pulumi.runtime.test
def test_a_hetzner_load_balancer_reaches_every_server_privately_ends_tls_with_a_managed_certificate() -> Any:
    raw = examples.behind_a_hetzner_load_balancer()
    deployment = stack.deploy(config.parse(raw, secrets_set={"ssh_private_key"}), secret)
    balancer = deployment.balancer
    assert isinstance(balancer, HetznerLoadBalancer) and balancer.certificate is not None
    assert balancer.targets == {"web": ["10.0.1.10:80", "10.0.1.11:80"], "api": ["10.0.1.10:80", "10.0.1.11:80"]}
    firewalls = [side.server.firewall.rules for side in deployment.servers.values()]  # type: ignore[union-attr]

    def check(values: list[Any]) -> None:
        protocol, listen, destination, health, http, domains, rules = values
        assert (protocol, listen, destination) == ("https", 443, 80)
        assert (health["http"]["domain"], health["http"]["path"], health["interval"]) == ("api.acme.com", "/up", 3)
        assert http["redirect_http"] is True
        assert domains == ["acme.com", "api.acme.com"]
        opened = {rule.get("port") for server_rules in rules for rule in server_rules}
        assert opened == {"22", None}, "the servers open SSH and ping only: the balancer reaches them privately"

    service = balancer.service
    return pulumi.Output.all(
        service.protocol, service.listen_port, service.destination_port, service.health_check, service.http,
        balancer.certificate.domain_names, pulumi.Output.all(*firewalls),
    ).apply(check)  # fmt: skip
