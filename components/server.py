"""The server a service runs on. Every later step reaches it through the one `connection` it exposes."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import pulumi
import yaml
from pulumi_command import local, remote

from components import config, defaults
from components.lazy import lazy_module

if TYPE_CHECKING:
    import pulumi_hcloud as hcloud
else:
    hcloud = lazy_module("pulumi_hcloud")  # only a Hetzner server needs it

# A host key pair made on the deploying machine for a new server: its private half reaches the server only in
# cloud-init's user data, so even the first connection verifies whom it talks to.
HOST_KEYGEN: Final = shlex.join([
    "sh", "-c",
    'd=$(mktemp -d) && trap \'rm -rf "$d"\' EXIT && ssh-keygen -q -t ed25519 -N "" -C quayside-host -f "$d/key"'
    ' && cat "$d/key" "$d/key.pub"',
])  # fmt: skip
PRIVATE_KEY_END: Final = "-----END OPENSSH PRIVATE KEY-----"


def cloud_init(host_private_key: str, host_public_key: str) -> str:
    """cloud-init for a new Hetzner server: Docker from Debian, and the host key quayside made as the server's
    only one. DockerHost waits for cloud-init, then host.sh writes the daemon's config (one place for it) and
    restarts the still empty engine."""
    document = {
        "package_update": True,
        "packages": ["docker.io"],
        "ssh_deletekeys": True,
        "ssh_genkeytypes": [],
        "ssh_keys": {"ed25519_private": host_private_key, "ed25519_public": host_public_key},
    }
    return "#cloud-config\n" + yaml.safe_dump(document, sort_keys=False)


def split_key_pair(keygen_output: str) -> tuple[str, str]:
    """(private key, public key line) out of HOST_KEYGEN's output."""
    private, _, public = keygen_output.partition(PRIVATE_KEY_END)
    return private + PRIVATE_KEY_END + "\n", public.strip()


WEB_PORTS: Final = ("80", "443")


def firewall_rules(server: config.HetznerServer) -> list[hcloud.FirewallRuleArgs]:
    """SSH from `ssh_from`; HTTP, HTTPS and ping from anywhere; nothing else in."""
    anywhere = list(defaults.ANYWHERE)
    return [
        hcloud.FirewallRuleArgs(direction="in", protocol="tcp", port="22", source_ips=server.ssh_from),
        *(
            hcloud.FirewallRuleArgs(direction="in", protocol="tcp", port=port, source_ips=anywhere)
            for port in WEB_PORTS
        ),
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
    verify its host key: the one the stack gives, or the one it presented at the first deploy, kept in state."""

    connection: remote.ConnectionArgs
    host: pulumi.Output[str]
    port: int
    user: str
    host_key: pulumi.Output[str]
    keyscan: local.Command | None = None

    def __init__(self, name: str, args: ExistingServerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("quayside:index:ExistingServer", name, None, opts)
        server = args.server
        self.host = pulumi.Output.from_input(server.host)
        self.port, self.user = server.port, server.user
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


class HetznerServer(pulumi.ComponentResource):
    """A Hetzner Cloud server with our SSH key, a host key of ours, a firewall open on 22/80/443, and Docker
    from cloud-init. User data (and so the host key) is ignored after creation: changing it never replaces it."""

    connection: remote.ConnectionArgs
    host: pulumi.Output[str]
    port: int = 22
    user: str = "root"
    machine: hcloud.Server
    firewall: hcloud.Firewall
    host_key: pulumi.Output[str]

    def __init__(self, name: str, args: HetznerServerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("quayside:index:HetznerServer", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        key = hcloud.SshKey(f"{name}-key", public_key=args.server.ssh_public_key, opts=child)
        self.firewall = hcloud.Firewall(f"{name}-firewall", rules=firewall_rules(args.server), opts=child)
        key_pair = local.Command(
            f"{name}-host-key",
            create=HOST_KEYGEN,
            logging=local.Logging.NONE,  # the private key must not reach the update's log
            opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["stdout"]),
        )
        halves: pulumi.Output[tuple[str, str]] = key_pair.stdout.apply(split_key_pair)
        self.host_key = halves.apply(lambda pair: config.public_key(pair[1]))
        user_data: pulumi.Output[str] = halves.apply(lambda pair: cloud_init(*pair))
        secret_user_data: pulumi.Output[str] = pulumi.Output.secret(user_data)
        self.machine = hcloud.Server(
            f"{name}-server",
            name=f"{args.service}-1",
            server_type=args.server.type,
            location=args.server.location,
            image=args.server.image,
            ssh_keys=[key.id],
            firewall_ids=[self.firewall.id.apply(int)],
            user_data=secret_user_data,
            delete_protection=args.server.delete_protection,
            rebuild_protection=args.server.delete_protection,
            labels={"quayside-service": args.service},
            # Set once: a change of either would replace the running server (and lose what is on it).
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["user_data", "ssh_keys"]),
        )
        self.host = self.machine.ipv4_address
        self.connection = connection(self.host, self.port, self.user, args.private_key, self.host_key)
        self.register_outputs({"host": self.host, "host_key": self.host_key})
