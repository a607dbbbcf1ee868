"""The server a service runs on. Every later step reaches it through the one `connection` it exposes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import pulumi
import pulumi_hcloud as hcloud
from pulumi_command import remote

from components import config

# cloud-init on a new Hetzner server: Docker from Debian. DockerHost waits for cloud-init to finish, then
# host.sh writes the daemon's config (one place for it) and restarts the still empty engine.
CLOUD_INIT: Final = """#cloud-config
package_update: true
packages: [docker.io]
"""
PUBLIC_PORTS: Final = ("22", "80", "443")


def connection(host: pulumi.Input[str], port: int, user: str, private_key: pulumi.Input[str]) -> remote.ConnectionArgs:
    return remote.ConnectionArgs(
        host=host,
        port=port,
        user=user,
        private_key=pulumi.Output.secret(private_key),
        # A fresh server (or sshd restarting under a Docker install) may refuse the first connections.
        dial_error_limit=30,
    )


@dataclass
class ExistingServerArgs:
    server: config.ExistingServer
    private_key: pulumi.Input[str]  # a config secret; it stays one in state


class ExistingServer(pulumi.ComponentResource):
    """Any SSH host we are given (Docker is installed later, by DockerHost, when it is missing)."""

    connection: remote.ConnectionArgs
    host: pulumi.Output[str]

    def __init__(self, name: str, args: ExistingServerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("quayside:index:ExistingServer", name, None, opts)
        self.host = pulumi.Output.from_input(args.server.host)
        self.connection = connection(args.server.host, args.server.port, args.server.user, args.private_key)
        self.register_outputs({"host": self.host})


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
