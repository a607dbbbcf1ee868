"""The server a service runs on. Every later step reaches it through the one `connection` it exposes."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import pulumi
import pulumi_hcloud as hcloud
from pulumi_command import local, remote

from components import config

# cloud-init on a new Hetzner server: Docker from Debian. DockerHost waits for cloud-init to finish, then
# host.sh writes the daemon's config (one place for it) and restarts the still empty engine.
CLOUD_INIT: Final = """#cloud-config
package_update: true
packages: [docker.io]
"""
PUBLIC_PORTS: Final = ("22", "80", "443")


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


# The host key types the Go SSH client of pulumi-command asks for, most preferred first: a server that has
# several presents the first of these it has, so that is the key to pin.
GO_SSH_HOST_KEY_PREFERENCE: Final = (
    "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-ed25519",
)  # fmt: skip


def keyscan_command(server: config.ExistingServer) -> str:
    return shlex.join(["ssh-keyscan", "-T", "10", "-p", str(server.port), server.host])


def negotiated_key(keyscan_output: str) -> str | None:
    """`<type> <base64>` of the key a deploy will be shown, out of what ssh-keyscan printed, or None."""
    keys = [config.public_key(line) for line in keyscan_output.splitlines() if line and not line.startswith("#")]
    for kind in GO_SSH_HOST_KEY_PREFERENCE:
        for key in keys:
            if key.split()[0] == kind:
                return key
    return None


class ExistingServer(pulumi.ComponentResource):
    """Any SSH host we are given (Docker is installed later, by DockerHost, when it is missing). Connections
    verify its host key: the one the stack gives, or the one it presented at the first deploy, kept in state."""

    connection: remote.ConnectionArgs
    host: pulumi.Output[str]
    host_key: pulumi.Output[str]
    keyscan: local.Command | None = None

    def __init__(self, name: str, args: ExistingServerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("quayside:index:ExistingServer", name, None, opts)
        server = args.server
        self.host = pulumi.Output.from_input(server.host)
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
        key = negotiated_key(stdout)
        if key is None:
            raise config.ConfigError(
                f"quayside config: server.trust_first_use: {server.host}:{server.port} showed ssh-keyscan no host key"
                " it knows: give server.host_key"
            )
        return key

    return key_or_error


@dataclass
class HetznerServerArgs:
    service: str
    server: config.HetznerServer
    private_key: pulumi.Input[str]


class HetznerServer(pulumi.ComponentResource):
    """A Hetzner Cloud server with our SSH key, a firewall open on 22/80/443, and Docker from cloud-init."""

    connection: remote.ConnectionArgs
    host: pulumi.Output[str]
    machine: hcloud.Server
    firewall: hcloud.Firewall

    def __init__(self, name: str, args: HetznerServerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("quayside:index:HetznerServer", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        key = hcloud.SshKey(f"{name}-key", public_key=args.server.ssh_public_key, opts=child)
        self.firewall = hcloud.Firewall(
            f"{name}-firewall",
            rules=[
                hcloud.FirewallRuleArgs(direction="in", protocol="tcp", port=port, source_ips=["0.0.0.0/0", "::/0"])
                for port in PUBLIC_PORTS
            ],
            opts=child,
        )
        self.machine = hcloud.Server(
            f"{name}-server",
            name=f"{args.service}-1",
            server_type=args.server.type,
            location=args.server.location,
            image=args.server.image,
            ssh_keys=[key.id],
            firewall_ids=[self.firewall.id.apply(int)],
            user_data=CLOUD_INIT,
            delete_protection=args.server.delete_protection,
            rebuild_protection=args.server.delete_protection,
            labels={"quayside-service": args.service},
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["user_data"]),
        )
        self.host = self.machine.ipv4_address
        self.connection = connection(self.host, 22, "root", args.private_key)
        self.register_outputs({"host": self.host})
