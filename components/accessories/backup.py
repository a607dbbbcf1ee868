"""Backup: `<service>-backup` runs backup-agent.sh's schedule: pg_dump of the Postgres database, encrypted with
gpg (to backup.public_key, else with the passphrase), uploaded to S3-compatible storage, read back, pruned after
keep_days (with a write-only key: checked before the upload, and kept by the bucket). Its image is built on the
server from the Postgres image (pg_dump then matches the server) unless the config names one. `quayside backup
now` and `quayside restore` run backup.sh over SSH."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

import pulumi
from pulumi_command import remote

from components import config, image_ref, steps
from components import remote as commands
from components.accessories import container, defaults, postgres

NAME = "backup"


@dataclass
class BackupArgs:
    service: str
    backup: config.Backup
    postgres: config.Postgres
    connection: remote.ConnectionArgs
    # The s3_access_key_id, s3_secret_access_key, postgres_password and backup_passphrase config secrets (None
    # without the passphrase: backups go to backup.public_key).
    access_key_id: pulumi.Input[str]
    secret_access_key: pulumi.Input[str]
    database_password: pulumi.Input[str]
    passphrase: pulumi.Input[str] | None
    depends_on: list[pulumi.Resource] = field(default_factory=list)  # Postgres's ready step
    heal: pulumi.Input[int] = 0  # the drifts healed (components/drift.py)


def image_tag(postgres_image: str) -> str:
    """The local tag of the image built from a Postgres image, e.g. quayside/backup:postgres-16-3f2a9c1d. The
    suffix hashes backup.sh (which holds the image's recipe): a new recipe is a new tag, so `up` builds it and
    reboots the backup container on it. The Postgres image is named as its config says, without the digest it is
    pinned to: new content under the same tag is built again under the same tag (backup.sh keeps the base's image
    ID in a label), and the backup container then reboots on it."""
    base = re.sub(r"[^A-Za-z0-9_.-]+", "-", image_ref.unpinned(postgres_image)).strip("-.")[:110]
    recipe = hashlib.sha256((commands.SCRIPTS_DIR / steps.BACKUP.name).read_bytes()).hexdigest()[:8]
    return f"{defaults.BACKUP_IMAGE_REPO}:{base}-{recipe}"


def image_args(postgres_image: str) -> list[str]:
    return steps.BACKUP.argv("image", from_=postgres_image, tag=image_tag(postgres_image))


def database_address(service: str, backup: config.Backup, pg: config.Postgres) -> tuple[str, int]:
    """On the service network, Postgres by name; on the host's network, its loopback port."""
    if backup.host_network:
        assert pg.publish is not None  # the config requires it
        return "127.0.0.1", pg.publish.port
    return postgres.host_name(service), defaults.POSTGRES_PORT


def spec(service: str, backup: config.Backup, pg: config.Postgres) -> container.ContainerSpec:
    host, port = database_address(service, backup, pg)
    env = {
        "PGHOST": host, "PGPORT": str(port), "PGUSER": pg.user_for(service), "PGDATABASE": pg.database_for(service),
        "BACKUP_S3_BUCKET": backup.s3.bucket, "BACKUP_S3_PREFIX": backup.s3.prefix_for(service),
        "BACKUP_S3_REGION": backup.s3.region, "BACKUP_SCHEDULE": backup.schedule,
        "BACKUP_KEEP_DAYS": str(backup.keep_days),
        **({"BACKUP_S3_ENDPOINT": backup.s3.endpoint} if backup.s3.endpoint else {}),
        **({"BACKUP_S3_WRITE_ONLY": "true"} if backup.s3.write_only else {}),
        **({"BACKUP_PUBLIC_KEY_FILE": defaults.BACKUP_PUBLIC_KEY_FILE} if backup.public_key else {}),
    }  # fmt: skip
    return container.ContainerSpec(
        name=NAME,
        image=backup.image or image_tag(pg.image_ref()),
        env=env,
        files={defaults.BACKUP_PUBLIC_KEY_FILE: backup.public_key} if backup.public_key else {},
        volumes=[f"{commands.scripts_dir(service)}:{defaults.BACKUP_SCRIPTS_MOUNT}:ro"],
        readiness_delay=defaults.BACKUP_READINESS_SECONDS,
        stop_timeout=10,
        network="host" if backup.host_network else None,
        cmd=["bash", defaults.BACKUP_AGENT, "schedule"],
    )


def secret_env(args: BackupArgs) -> pulumi.Output[str]:
    return container.secret_env({
        "PGPASSWORD": args.database_password,
        "AWS_ACCESS_KEY_ID": args.access_key_id,
        "AWS_SECRET_ACCESS_KEY": args.secret_access_key,
        **({"BACKUP_PASSPHRASE": args.passphrase} if args.passphrase is not None else {}),
    })  # fmt: skip


class Backup(pulumi.ComponentResource):
    """`image` builds the backup image on the server (None when the config names one); `ready` is the
    container running its schedule."""

    image: remote.Command | None
    ready: remote.Command
    heal: pulumi.Output[int]  # once `ready` has run

    def __init__(self, name: str, args: BackupArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("quayside:accessories:Backup", name, None, opts)
        self.image = None if args.backup.image else self._build_image(name, args)
        self.ready = container.container_command(
            f"{name}-container",
            service=args.service,
            spec=spec(args.service, args.backup, args.postgres),
            connection=args.connection,
            stdin=secret_env(args),
            delete_data=False,
            parent=self,
            depends_on=[*args.depends_on, *([self.image] if self.image else [])],
            heal=args.heal,
        )
        self.heal = container.once_ready(self.ready, args.heal)
        self.register_outputs({
            "image": args.backup.image or image_tag(args.postgres.image_ref()),
            "schedule": args.backup.schedule,
            "bucket": args.backup.s3.bucket,
            "prefix": args.backup.s3.prefix_for(args.service),
        })  # fmt: skip

    def _build_image(self, name: str, args: BackupArgs) -> remote.Command:
        create = commands.script(
            args.service, steps.BACKUP.name, image_args(args.postgres.image_ref()),
            timeout_seconds=defaults.BACKUP_IMAGE_BUILD_SECONDS,
        )  # fmt: skip
        return remote.Command(
            f"{name}-image",
            connection=args.connection,
            create=create,
            add_previous_output_in_env=False,
            opts=pulumi.ResourceOptions(parent=self, depends_on=args.depends_on),
        )
