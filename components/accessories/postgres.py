"""Postgres: `<service>-postgres` on the service network, health-checked with pg_isready, its data in
/var/lib/quayside/<service>/postgres/data. A config change reboots it on the same data, a newer major version moves
the data by a dump and restore (accessory.sh); `ready` is the step roles wait for; `database_url` (secret) is how
roles and other stacks reach it."""

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
    # The major version of the cluster its data directory holds now, as the drift check read it (None: none, unread).
    data_major: pulumi.Input[str | None] = None
    backed_up: bool = False  # the backup accessory runs beside it
    where: str = "the server"  # how the plan names its server


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
        upgrade_seconds=2 * (postgres.ready_timeout + defaults.POSTGRES_STOP_SECONDS)
        + defaults.POSTGRES_DUMP_RESTORE_SECONDS,
    )  # fmt: skip


def major_upgrade(
    service: str, postgres: config.Postgres, found: str | None, *, backed_up: bool, where: str
) -> str | None:
    """What `up` does when the data directory holds an older major's cluster than the config asks for, in the plan's
    words (None: no major changes). A newer one than asked for is refused here, before the plan."""
    wanted = postgres.major()
    if found is None or wanted is None or int(wanted) == int(found):
        return None
    if int(wanted) < int(found):
        raise pulumi.RunError(
            f"quayside: accessories.postgres: the data directory on {where} holds Postgres {found}'s cluster, and "
            f"{postgres.image_ref()} runs {wanted}: a major version cannot go back; set version (or the image's tag) "
            f"to {found} or later"
        )
    held = (
        f"the roles' requests held meanwhile, each up to {postgres.hold_requests}"
        if postgres.hold_requests
        else "the roles' requests that need the database fail meanwhile (hold_requests holds them)"
    )
    return (
        f"{host_name(service)}: Postgres {found} to {wanted}: "
        + ("a backup to S3 first, then " if backed_up else "")
        + f"the cluster dumped by {found} and restored into a new data directory by {wanted}, {held}; Postgres "
        f"{found}'s data directory and the dump stay beside it; a failed step puts {found} back on its own data"
    )


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
    major_upgrade: pulumi.Output[str | None]  # what `up` does to move its data to a newer major, in words

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
        self.major_upgrade = pulumi.Output.from_input(args.data_major).apply(
            lambda found: self._said(
                major_upgrade(args.service, args.postgres, found, backed_up=args.backed_up, where=args.where)
            )
        )
        self.database_url = pulumi.Output.secret(
            pulumi.Output.from_input(args.password).apply(
                lambda p: database_url(args.service, args.postgres, p, args.private_ip)
            )
        )
        self.register_outputs({
            "image": args.postgres.image_ref(), "host": self.host, "database_url": self.database_url,
            "major_upgrade": self.major_upgrade,
        })  # fmt: skip

    def _said(self, words: str | None) -> str | None:
        """The plan shows a major upgrade as the accessory's step changed; this says what the step will do."""
        if words is not None:
            pulumi.log.info(words, resource=self)
        return words
