"""Postgres: `<service>-postgres` on the service network, health-checked with pg_isready, its data in
/var/lib/quayside/<service>/postgres/data. A config change reboots it on the same data; `ready` is the step
roles wait for; `database_url` (secret) is how roles and other stacks reach it."""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, field

import pulumi
from pulumi_command import remote

from components import config
from components.accessories import container, defaults

NAME = "postgres"


@dataclass
class PostgresArgs:
    service: str
    postgres: config.Postgres
    connection: remote.ConnectionArgs
    password: pulumi.Input[str]  # the postgres_password config secret
    host_ready: pulumi.Resource
    # With several servers: its server's private address, where it listens for the roles on the other servers.
    private_ip: str | None = None
    held_roles: list[str] = field(default_factory=list)  # with hold_requests: the proxied roles on its server
    heal: pulumi.Input[int] = 0  # the drifts healed (components/drift.py)


def host_name(service: str) -> str:
    """The container's name, which is its DNS name on the service network."""
    return f"{service}-{NAME}"


def spec(
    service: str, postgres: config.Postgres, private_ip: str | None = None, held_roles: list[str] | None = None
) -> container.ContainerSpec:
    settings = [part for key, value in sorted(postgres.settings.items()) for part in ("-c", f"{key}={value}")]
    published = [f"127.0.0.1:{postgres.publish.port}:{defaults.POSTGRES_PORT}"] if postgres.publish else []
    if private_ip is not None:
        published.append(f"{private_ip}:{defaults.POSTGRES_PORT}:{defaults.POSTGRES_PORT}")
    return container.ContainerSpec(
        name=NAME,
        image=postgres.image_ref(),
        env={"POSTGRES_USER": postgres.user_for(service), "POSTGRES_DB": postgres.database_for(service),
             **postgres.env},
        data=defaults.POSTGRES_DATA,
        publish=published,
        health_cmd=defaults.POSTGRES_HEALTH_CMD,
        health_interval=defaults.POSTGRES_HEALTH_INTERVAL,
        ready_timeout=postgres.ready_timeout,
        stop_timeout=defaults.POSTGRES_STOP_SECONDS,
        memory=postgres.memory,
        cmd=["postgres", *settings] if settings else [],
        hold=container.Hold(held_roles or [], postgres.hold_requests) if postgres.hold_requests else None,
    )  # fmt: skip


def database_url(service: str, postgres: config.Postgres, password: str, private_ip: str | None = None) -> str:
    """By the container's name on the service network; with several servers, at its server's private address."""
    user = postgres.user_for(service)
    secret = urllib.parse.quote(password, safe="")
    host = private_ip or host_name(service)
    return f"postgres://{user}:{secret}@{host}:{defaults.POSTGRES_PORT}/{postgres.database_for(service)}"


class Postgres(pulumi.ComponentResource):
    """`ready` answers pg_isready once created or updated: roles that use the database depend on it."""

    ready: remote.Command
    host: str
    database_url: pulumi.Output[str]
    heal: pulumi.Output[int]  # once `ready` has run

    def __init__(self, name: str, args: PostgresArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("quayside:accessories:Postgres", name, None, opts)
        self.host = args.private_ip or host_name(args.service)
        self.ready = container.container_command(
            f"{name}-container",
            service=args.service,
            spec=spec(args.service, args.postgres, args.private_ip, args.held_roles),
            connection=args.connection,
            stdin=container.secret_env({"POSTGRES_PASSWORD": args.password}),
            delete_data=args.postgres.delete_data,
            parent=self,
            depends_on=[args.host_ready],
            heal=args.heal,
        )
        self.heal = container.once_ready(self.ready, args.heal)
        self.database_url = pulumi.Output.secret(
            pulumi.Output.from_input(args.password).apply(
                lambda p: database_url(args.service, args.postgres, p, args.private_ip)
            )
        )
        self.register_outputs({
            "image": args.postgres.image_ref(), "host": self.host, "database_url": self.database_url,
        })  # fmt: skip
