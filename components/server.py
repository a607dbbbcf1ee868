"""The server a service runs on. Every later step reaches it through the one `connection` it exposes."""

from __future__ import annotations

import hashlib
import ipaddress
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import pulumi
import yaml
from pulumi_command import local, remote

from components import config, defaults, steps
from components import remote as commands
from components.lazy import lazy_module
from components.network import Attachment

if TYPE_CHECKING:
    import pulumi_hcloud as hcloud
else:
    hcloud = lazy_module("pulumi_hcloud")  # only a Hetzner server needs it

# A host key pair made on the deploying machine for a new server: its private half reaches the server only in
# cloud-init's user data, so even the first connection verifies whom it talks to. That connection has the server
# replace it (host-key.sh): Hetzner keeps the user data.
HOST_KEYGEN: Final = shlex.join([
    "sh", "-c",
    'd=$(mktemp -d) && trap \'rm -rf "$d"\' EXIT && ssh-keygen -q -t ed25519 -N "" -C quayside-host -f "$d/key"'
    ' && cat "$d/key" "$d/key.pub"',
])  # fmt: skip
PRIVATE_KEY_END: Final = "-----END OPENSSH PRIVATE KEY-----"


def cloud_init(host_private_key: str, host_public_key: str) -> str:
    """cloud-init for a new Hetzner server: only what must be in place before the first SSH connection, the host
    key quayside made, as the server's only one (Hetzner installs root's key). Everything else is bootstrap.sh's,
    over SSH, which waits for cloud-init first: the same steps serve existing servers."""
    document = {
        "ssh_deletekeys": True,
        # Only ed25519, whose key ssh_keys has already written, so none is generated. Not []: that generates none
        # as well, but cloud-init's schema requires at least one type (`cloud-init schema` checks this document).
        "ssh_genkeytypes": ["ed25519"],
        "ssh_keys": {"ed25519_private": host_private_key, "ed25519_public": host_public_key},
    }
    return "#cloud-config\n" + yaml.safe_dump(document, sort_keys=False)


def host_key_args(user_data_key: str) -> list[str]:
    return steps.HOST_KEY.argv(was=user_data_key)


def served_host_key(rotation_stdout: str | None) -> str:
    """The host key host-key.sh says the server serves (its last line): an empty answer pins nothing, and
    pulumi-command would then accept any host key, so it fails the run instead."""
    lines = (rotation_stdout or "").strip().splitlines()
    if not lines:
        raise ValueError("host-key.sh printed no host key: the server's host key is unknown, so nothing connects")
    return config.public_key(lines[-1])


def split_key_pair(keygen_output: str) -> tuple[str, str]:
    """(private key, public key line) out of HOST_KEYGEN's output."""
    private, _, public = keygen_output.partition(PRIVATE_KEY_END)
    return private + PRIVATE_KEY_END + "\n", public.strip()


def web_ports(proxy: config.Proxy, *, with_proxy: bool) -> tuple[int, ...]:
    """The ports a server's firewall opens to the web: those its kamal-proxy publishes, unless it publishes them on
    loopback or a private address only (behind a load balancer) or the server runs none (a database server)."""
    bind = ipaddress.ip_address(proxy.bind)
    if not with_proxy or (not bind.is_unspecified and not bind.is_global):
        return ()
    return (proxy.http_port, proxy.https_port)


def firewall_rules(server: config.HetznerServer, web: tuple[int, ...]) -> list[hcloud.FirewallRuleArgs]:
    """SSH from `ssh_from`; the `web` ports and ping from anywhere; nothing else in."""
    anywhere = list(defaults.ANYWHERE)
    return [
        hcloud.FirewallRuleArgs(direction="in", protocol="tcp", port="22", source_ips=server.ssh_from),
        *(hcloud.FirewallRuleArgs(direction="in", protocol="tcp", port=str(port), source_ips=anywhere) for port in web),
        hcloud.FirewallRuleArgs(direction="in", protocol="icmp", source_ips=anywhere),
    ]


def connection(
    host: pulumi.Input[str],
    port: int,
    user: str,
    private_key: pulumi.Input[str],
    host_key: pulumi.Input[str] | None = None,
) -> remote.ConnectionArgs:
    return remote.ConnectionArgs(
        host=host,
        port=port,
        user=user,
        private_key=pulumi.Output.secret(private_key),
        # pulumi-command accepts any host key when given none: every quayside connection names one.
        host_key=host_key,
        # A fresh server (or sshd restarting under a Docker install) may refuse the first connections.
        dial_error_limit=30,
    )


@dataclass
class ExistingServerArgs:
    server: config.ExistingServer
    private_key: pulumi.Input[str]  # a config secret; it stays one in state
    host_key: str | None  # `<type> <base64>`; None: pin the key the server presents first


def keyscan_command(server: config.ExistingServer) -> str:
    return shlex.join(["ssh-keyscan", "-T", "10", "-p", str(server.port), "-t", "ed25519", server.host])


def scanned_key(keyscan_output: str) -> str | None:
    """`<type> <base64>` of the first key ssh-keyscan printed, or None."""
    for line in keyscan_output.splitlines():
        if line and not line.startswith("#"):
            return config.public_key(line)
    return None


class ExistingServer(pulumi.ComponentResource):
    """Any SSH host we are given (Docker is installed later, by DockerHost, when it is missing). Connections
    verify its host key: the one the stack gives, or the one it presented at the first deploy, kept in state.
    With `bootstrap`, `bootstrap_connection` reaches it as root with the same key."""

    connection: remote.ConnectionArgs
    bootstrap_connection: remote.ConnectionArgs | None = None
    host: pulumi.Output[str]
    port: int
    user: str
    host_key: pulumi.Output[str]
    keyscan: local.Command | None = None
    ready: list[pulumi.Resource]  # none: nothing precedes DockerHost on an existing server

    def __init__(self, name: str, args: ExistingServerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("quayside:index:ExistingServer", name, None, opts)
        server = args.server
        self.host = pulumi.Output.from_input(server.host)
        self.port, self.user = server.port, server.user
        self.ready = []
        if args.host_key is not None:
            self.host_key = pulumi.Output.from_input(args.host_key)
        else:
            # Runs on the deploying machine once (and again only for another host or port): trust on first use.
            self.keyscan = local.Command(
                f"{name}-host-key",
                create=keyscan_command(server),
                triggers=[server.host, server.port],
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.host_key = self.keyscan.stdout.apply(_scanned_key(server))
        self.connection = connection(server.host, server.port, server.user, args.private_key, self.host_key)
        if server.bootstrap is not None:
            self.bootstrap_connection = connection(
                server.host, server.port, defaults.BOOTSTRAP_USER, args.private_key, self.host_key
            )
        self.register_outputs({"host": self.host, "host_key": self.host_key})


def _scanned_key(server: config.ExistingServer) -> Callable[[str], str]:
    def key_or_error(stdout: str) -> str:
        key = scanned_key(stdout)
        if key is None:
            raise config.ConfigError(
                f"quayside config: server.trust_first_use: {server.host}:{server.port} showed ssh-keyscan no ed25519"
                " host key: give server.host_key"
            )
        return key

    return key_or_error


@dataclass
class HetznerServerArgs:
    service: str
    server: config.HetznerServer
    private_key: pulumi.Input[str]
    # With several servers: the server's name, in its Hetzner names (<service>-<label>); one server is <service>-1.
    label: str | None = None
    network: Attachment | None = None  # the service's private network, with several servers
    web_ports: tuple[int, ...] = (defaults.HTTP_PORT, defaults.HTTPS_PORT)  # what its firewall opens to the web


# The volume's mount step: up to 120 s for the device to appear once Hetzner attaches it, then the mount itself.
VOLUME_SECONDS: Final = 300
HOST_KEY_SECONDS: Final = 60
# How long volume.sh waits for the attached volume's device to appear.
VOLUME_DEVICE_WAIT_SECONDS: Final = 120
# Where a mounted volume is remembered across reboots (tests name a file of their own).
FSTAB: Final = "/etc/fstab"
WARNING_PREFIX: Final = "quayside: "  # `quayside plan` shows warnings that start so as WARNING lines


def host_key_rotation_name(server_resource: str) -> str:
    """The step that has a Hetzner server make its own host key, pinned by every later connection."""
    return f"{server_resource}-host-key-rotation"


def fingerprint(text: str) -> str:
    """A one-way digest of what the server was made with: state keeps this, never the text (it holds a key)."""
    return hashlib.sha256(text.encode()).hexdigest()


def ignored_changes(made_with: Sequence[str], now: Sequence[str]) -> list[str]:
    """Which of the inputs the server ignores after creation differ from what it was made with."""
    names = ("user data", "SSH key")
    return [name for name, was, is_ in zip(names, made_with, now, strict=False) if was != is_]


def ignored_changes_warning(changed: list[str], urn: str) -> str:
    what = " and ".join(changed)
    keep = (
        " Root keeps the key the server was made with: ssh_private_key must stay its pair until then."
        if "SSH key" in changed
        else ""
    )
    return (
        f"{WARNING_PREFIX}server: {what} changed since the server was made: ignored, the running server is kept "
        f"(cloud-init ran once).{keep} To apply it, replace the server on purpose (everything on it is deployed "
        f"afresh; accessory data is lost unless it is on server.volume): set server.delete_protection: false, "
        f"pulumi up, then pulumi up --replace '{urn}'"
    )


def volume_mount_args(device: str, service: str, *, fstab: str = FSTAB) -> list[str]:
    return steps.VOLUME.argv(
        device=device, mount_point=commands.service_dir(service), wait=VOLUME_DEVICE_WAIT_SECONDS, fstab=fstab
    )


def private_key_naming(private_key: str, server_id: str) -> str:
    """The SSH key with the server's ID after it (ssh reads the key's PEM block and ignores what follows)."""
    return f"{private_key.rstrip()}\n# quayside server {server_id}\n"


class HetznerServer(pulumi.ComponentResource):
    """A Hetzner Cloud server with our SSH key for root, a host key of ours replaced by one of its own at the first
    connection, a firewall open on 22 and its proxy's. The bootstrap (as root, `bootstrap_connection`) makes it
    ready; deploys connect as `user`. User data and SSH keys are ignored after creation: changing them never
    replaces it, and the preview warns that they were ignored. Optionally a primary IPv4 and a data volume that
    outlive the server."""

    connection: remote.ConnectionArgs
    bootstrap_connection: remote.ConnectionArgs
    host: pulumi.Output[str]
    port: int = 22
    user: str
    machine: hcloud.Server
    firewall: hcloud.Firewall
    host_key: pulumi.Output[str]
    host_key_rotation: remote.Command
    primary_ip: hcloud.PrimaryIp | None = None
    volume: hcloud.Volume | None = None
    # The steps that must run before anything else of the service reaches the server (the volume's mount).
    ready: list[pulumi.Resource]
    made_with: local.Command

    def __init__(self, name: str, args: HetznerServerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("quayside:index:HetznerServer", name, None, opts)
        server = args.server
        child = pulumi.ResourceOptions(parent=self)
        key = hcloud.SshKey(f"{name}-key", public_key=server.ssh_public_key, opts=child)
        self.firewall = hcloud.Firewall(f"{name}-firewall", rules=firewall_rules(server, args.web_ports), opts=child)
        key_pair = local.Command(
            f"{name}-host-key",
            create=HOST_KEYGEN,
            logging=local.Logging.NONE,  # the private key must not reach the update's log
            opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["stdout"]),
        )
        halves: pulumi.Output[tuple[str, str]] = key_pair.stdout.apply(split_key_pair)
        user_data_key = pulumi.Output.unsecret(halves.apply(lambda pair: config.public_key(pair[1])))
        user_data: pulumi.Output[str] = halves.apply(lambda pair: cloud_init(*pair))
        secret_user_data: pulumi.Output[str] = pulumi.Output.secret(user_data)
        labels = {"quayside-service": args.service}
        # One server's Hetzner names are <service>-1, <service>-ipv4, <service>-data; several servers' carry their name.
        hetzner_name = f"{args.service}-{args.label or '1'}"
        own = f"{args.service}-{args.label}" if args.label else args.service
        public_nets = None
        if server.primary_ipv4:
            self.primary_ip = hcloud.PrimaryIp(
                f"{name}-ipv4",
                name=f"{own}-ipv4",
                type="ipv4",
                location=server.location,
                assignee_type="server",
                auto_delete=False,  # Hetzner would delete it with the server: the address must outlive it
                delete_protection=server.delete_protection,
                labels=labels,
                opts=child,
            )
            public_nets = [
                hcloud.ServerPublicNetArgs(ipv4_enabled=True, ipv4=self.primary_ip.id.apply(int), ipv6_enabled=True)
            ]
        self.machine = hcloud.Server(
            f"{name}-server",
            name=hetzner_name,
            server_type=server.type,
            location=server.location,
            image=server.image,
            ssh_keys=[key.id],
            firewall_ids=[self.firewall.id.apply(int)],
            user_data=secret_user_data,
            public_nets=public_nets,
            delete_protection=server.delete_protection,
            rebuild_protection=server.delete_protection,
            labels=labels,
            opts=pulumi.ResourceOptions(
                parent=self,
                # Set once: a change of either would replace the running server (and lose what is on it).
                ignore_changes=["user_data", "ssh_keys"],
                # A primary IP is assigned to one server at a time, and a volume must not leave a running
                # server: a replacement deletes the old server first (and Hetzner refuses while it is protected).
                delete_before_replace=server.primary_ipv4 or server.volume is not None,
            ),
        )
        self.made_with = self._record_made_with(name, user_data, server.ssh_public_key)
        self.host = self.primary_ip.ip_address if self.primary_ip is not None else self.machine.ipv4_address
        self.user = server.user
        private_key: pulumi.Input[str] = args.private_key
        if self.primary_ip is not None:
            # The address outlives the server, so it no longer tells one server from the next: the server's ID,
            # riding along in the (secret) key, changes every step's connection on a new server, and each step
            # runs again there.
            private_key = pulumi.Output.all(args.private_key, self.machine.id).apply(
                lambda values: private_key_naming(values[0], values[1])
            )
        self.host_key_rotation = self._rotate_host_key(name, private_key, user_data_key)
        # Plain, as the public key it is, so the quayside command can pin it.
        self.host_key = pulumi.Output.unsecret(self.host_key_rotation.stdout.apply(served_host_key))
        self.connection = connection(self.host, self.port, self.user, private_key, self.host_key)
        self.bootstrap_connection = connection(
            self.host, self.port, defaults.BOOTSTRAP_USER, private_key, self.host_key
        )
        self.ready = []
        if args.network is not None:
            self.ready.append(self._join_network(name, args.network))
        if server.volume is not None:
            self.volume = self._add_volume(name, args.service, own, server.volume)
            self.ready.append(self._mount_volume(name, args.service, self.volume, self.bootstrap_connection))
        self.register_outputs({"host": self.host, "host_key": self.host_key})

    def _rotate_host_key(
        self, name: str, private_key: pulumi.Input[str], user_data_key: pulumi.Output[str]
    ) -> remote.Command:
        """The step whose stdout is the host key every later connection pins: one the server made itself, over the
        first connection, which verifies the key from the user data (Hetzner keeps user data, and serves it to the
        server's processes)."""
        return remote.Command(
            host_key_rotation_name(name),
            connection=connection(self.host, self.port, defaults.BOOTSTRAP_USER, private_key, user_data_key),
            create=user_data_key.apply(
                lambda key: commands.piped_script(host_key_args(key), timeout_seconds=HOST_KEY_SECONDS)
            ),
            stdin=commands.script_text(steps.HOST_KEY.name),
            triggers=[self.machine.id],  # once per server: a new one comes with a new key in its user data
            add_previous_output_in_env=False,
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _record_made_with(self, name: str, user_data: pulumi.Output[str], ssh_public_key: str) -> local.Command:
        """Digests of the user data and SSH key the server was made with, kept in state beside it (ignored
        afterwards, as on the server, and made again with it): the preview compares them with today's and
        warns about what the server ignores."""
        now: pulumi.Output[list[str]] = pulumi.Output.secret(
            pulumi.Output.all(user_data, ssh_public_key).apply(lambda texts: [fingerprint(text) for text in texts])
        )
        made_with = local.Command(
            f"{name}-made-with",
            triggers=now,
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["triggers"], replace_with=[self.machine]),
        )

        def warn(values: list[Any]) -> None:
            was, is_, urn = values
            changed = ignored_changes(list(was or []), list(is_ or []))
            if was and changed:
                # Logged at once (the message names the server): a log tied to a resource waits for its URN in a
                # task of its own, which a short program may end before.
                pulumi.log.warn(ignored_changes_warning(changed, urn))

        pulumi.Output.all(made_with.triggers, now, self.machine.urn).apply(warn)
        return made_with

    def _join_network(self, name: str, network: Attachment) -> hcloud.ServerNetwork:
        return hcloud.ServerNetwork(
            f"{name}-network",
            server_id=self.machine.id.apply(int),
            network_id=network.network_id,
            ip=network.ip,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[network.subnet]),
        )

    def _add_volume(self, name: str, service: str, own: str, volume: config.HetznerVolume) -> hcloud.Volume:
        return hcloud.Volume(
            f"{name}-volume",
            name=f"{own}-data",
            size=volume.size_gb,
            server_id=self.machine.id.apply(int),
            # Hetzner formats it once, when it is made; volume.sh never formats (a format is no input to change).
            format="ext4",
            automount=False,  # volume.sh mounts it where the service keeps its data, not under /mnt
            delete_protection=volume.delete_protection,
            labels={"quayside-service": service},
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _mount_volume(
        self, name: str, service: str, volume: hcloud.Volume, as_root: remote.ConnectionArgs
    ) -> remote.Command:
        return remote.Command(
            f"{name}-volume-mount",
            connection=as_root,
            create=volume.linux_device.apply(
                lambda device: commands.piped_script(volume_mount_args(device, service), timeout_seconds=VOLUME_SECONDS)
            ),
            stdin=commands.script_text(steps.VOLUME.name),
            # Again on a new server (the volume follows it) and after a resize (the file system grows).
            triggers=[self.machine.id, volume.size],
            add_previous_output_in_env=False,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[volume]),
        )
