"""The server a service runs on. Every later step reaches it through the one `connection` it exposes."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_command import remote

from components import config


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
        self.connection = remote.ConnectionArgs(
            host=args.server.host,
            port=args.server.port,
            user=args.server.user,
            private_key=pulumi.Output.secret(args.private_key),
            # A fresh server (or sshd restarting under a Docker install) may refuse a first connection.
            dial_error_limit=20,
        )
        self.register_outputs({"host": self.host})
