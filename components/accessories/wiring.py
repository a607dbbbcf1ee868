"""Wires the accessories for stack.py: Postgres after the host, the backup after Postgres, Vector after the host.
Roles that use the database depend on `DeployedAccessories.ready` (Postgres answering pg_isready)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi_command import remote

from components import config, drift
from components.accessories import defaults
from components.accessories.backup import Backup, BackupArgs
from components.accessories.postgres import Postgres, PostgresArgs
from components.accessories.vector import Vector, VectorArgs

# Reads one config secret by name; the result stays secret.
SecretReader = Callable[[str], pulumi.Output[str]]


@dataclass(frozen=True)
class Site:
    """Where an accessory runs: its server's connection, the step that made the server ready, and (with several
    servers) its private address."""

    connection: remote.ConnectionArgs
    host_ready: pulumi.Resource
    private_ip: str | None


@dataclass
class DeployedAccessories:
    postgres: Postgres | None = None
    backup: Backup | None = None
    vectors: dict[str, Vector] = field(default_factory=dict)  # server → the Vector shipping its logs
    servers: dict[str, str] = field(default_factory=dict)  # accessory → the name of its (first) server

    @property
    def vector(self) -> Vector | None:
        return next(iter(self.vectors.values()), None)

    @property
    def ready(self) -> list[remote.Command]:
        """What roles wait for before they boot: the database answering."""
        return [self.postgres.ready] if self.postgres else []

    @property
    def database_url(self) -> pulumi.Output[str] | None:
        """postgres://user:pass@<service>-postgres:5432/db, a secret; None without Postgres."""
        return self.postgres.database_url if self.postgres else None

    def outputs(self) -> dict[str, Any]:
        """Stack outputs (a contract): `database_url` (secret) when there is a Postgres."""
        return {"database_url": self.postgres.database_url} if self.postgres else {}

    def heals(self) -> dict[str, dict[str, pulumi.Output[int]]]:
        """Server → accessory → its count of heals (drift.PARTS_OUTPUT, with the proxies')."""
        found: dict[str, dict[str, pulumi.Output[int]]] = {}
        if self.postgres is not None:
            found.setdefault(self.servers["postgres"], {})["postgres"] = self.postgres.heal
        if self.backup is not None:
            found.setdefault(self.servers["backup"], {})["backup"] = self.backup.heal
        for server, vector in self.vectors.items():
            found.setdefault(server, {})["vector"] = vector.heal
        return found


def deploy_accessories(
    stack: config.StackConfig,
    sites: dict[str, Site],
    secret: SecretReader,
    drift_check: drift.DriftCheck | None = None,
) -> DeployedAccessories:
    """Each accessory on its server (`sites` by server name). With several servers Postgres listens on its
    server's private address too, for the roles on the others, and its URL names that address. `drift_check`
    says how many times each was found not running as recorded."""
    service, accessories = stack.service, stack.accessories
    deployed = DeployedAccessories()
    if accessories is None:
        return deployed
    for name in config.ACCESSORIES:
        if getattr(accessories, name) is not None:
            deployed.servers[name] = stack.accessory_server(name)

    def site(name: str) -> Site:
        return sites[deployed.servers[name]]

    if accessories.postgres is not None:
        deployed.postgres = Postgres(
            f"{service}-postgres",
            PostgresArgs(
                service=service,
                postgres=accessories.postgres,
                connection=site("postgres").connection,
                password=secret(defaults.POSTGRES_PASSWORD_SECRET),
                host_ready=site("postgres").host_ready,
                private_ip=site("postgres").private_ip,
                held_roles=sorted(name for name, role in stack.roles.items() if role.proxy),
                heal=drift.heal_of(drift_check, deployed.servers["postgres"], "postgres"),
                data_major=drift.data_major_of(drift_check, deployed.servers["postgres"], "postgres"),
                backed_up=accessories.backup is not None,
                where=drift.named(deployed.servers["postgres"]),
            ),
        )
    if accessories.backup is not None:
        assert accessories.postgres is not None and deployed.postgres is not None  # the config requires it
        deployed.backup = Backup(
            f"{service}-backup",
            BackupArgs(
                service=service,
                backup=accessories.backup,
                postgres=accessories.postgres,
                connection=site("backup").connection,
                access_key_id=secret(defaults.S3_ACCESS_KEY_SECRET),
                secret_access_key=secret(defaults.S3_SECRET_KEY_SECRET),
                database_password=secret(defaults.POSTGRES_PASSWORD_SECRET),
                passphrase=(
                    secret(defaults.BACKUP_PASSPHRASE_SECRET)
                    if defaults.BACKUP_PASSPHRASE_SECRET in stack.secret_names()
                    else None
                ),
                depends_on=[deployed.postgres.ready],
                heal=drift.heal_of(drift_check, deployed.servers["backup"], "backup"),
            ),
        )
    if accessories.vector is not None:
        for index, server in enumerate(stack.vector_servers()):
            # The first keeps the one-server stack's name.
            deployed.vectors[server] = Vector(
                f"{service}-vector" if index == 0 else f"{service}-vector-{server}",
                VectorArgs(
                    service=service,
                    vector=accessories.vector,
                    connection=sites[server].connection,
                    token=secret(defaults.BETTERSTACK_TOKEN_SECRET),
                    host_ready=sites[server].host_ready,
                    heal=drift.heal_of(drift_check, server, "vector"),
                ),
            )
    return deployed
