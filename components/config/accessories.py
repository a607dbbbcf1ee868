"""The `accessories` section of the stack config: Postgres, its encrypted S3 backups, and Vector.

    quayside:accessories:
      postgres: {version: 16, database: acme}
      backup:   {schedule: "@hourly", keep_days: 14, s3: {bucket: acme-backups, endpoint: https://...}}
      vector:   {sink: betterstack}

With `servers:` (several servers), each is placed on one of them by name (`postgres: {server: db}`): Postgres on
the server it names (required with two or more), its backups beside it, Vector on every server (each ships its
own server's logs).

Secrets (set with `pulumi config set --secret`), one per accessory need: `postgres_password`;
`backup_passphrase` (not with backup.public_key), `s3_access_key_id`, `s3_secret_access_key`; `betterstack_token`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Final, Literal, Self

from pydantic import BeforeValidator, Field, ValidationInfo, field_validator, model_validator

from components.accessories import defaults
from components.config.types import (
    Bucket,
    Duration,
    EnvName,
    HttpsUrl,
    Identifier,
    KeyPrefix,
    Memory,
    Model,
    Name,
    OpenPgpPublicKey,
    Port,
    Region,
    SettingName,
    Url,
    Version,
    VersionedImage,
)
from components.image_ref import Reference

CRON_FIELD: Final = r"(\*|[0-9]{1,2}(-[0-9]{1,2})?)(/[0-9]{1,2})?(,(\*|[0-9]{1,2}(-[0-9]{1,2})?)(/[0-9]{1,2})?)*"
CRON_PATTERN: Final = rf"^{CRON_FIELD}( {CRON_FIELD}){{4}}$"
CRON_NAMES: Final = ("@hourly", "@daily", "@weekly")


def one_server(value: Any) -> Any:
    """An accessory's `server` names one server: a list of them is refused in words."""
    if isinstance(value, list):
        raise ValueError(f"an accessory runs on one server: name one of {', '.join(map(str, value))}")
    return value


ServerName = Annotated[Name, BeforeValidator(one_server)]
PLACED: Final = "the server it runs on, by its name in `servers` (only with `servers`)"


class Publish(Model):
    """Opt-in: the port on the server's loopback only, for an SSH tunnel (`ssh -L 5432:127.0.0.1:PORT`)."""

    port: Port = Field(description="host port, bound to 127.0.0.1 (never a public interface)")


class Postgres(Model):
    """Postgres in `<service>-postgres`, reachable on the service network only; data kept across changes.

    The postgres_password secret sets the password when the data directory is first initialised (the official
    image's contract): to change it later, ALTER USER in the database first, then change the secret."""

    version: Version = Field(
        default=defaults.POSTGRES_VERSION,
        description="the image tag: postgres:<version>; a newer major version than the data's is moved to by a "
        "dump and restore in one `up` (the old data directory kept beside the new one)",
    )
    image: VersionedImage | None = Field(
        default=None, description="an image instead of postgres:<version>, with the official image's contract"
    )
    user: Identifier | None = Field(default=None, description="the database user (default: the service name, - as _)")
    database: Identifier | None = Field(default=None, description="the database (default: the service name, - as _)")
    settings: dict[SettingName, str | int] = Field(
        default_factory=dict, description="server settings, passed as `postgres -c name=value`"
    )
    env: dict[EnvName, str] = Field(
        default_factory=dict, description="more clear variables for the container (e.g. POSTGRES_INITDB_ARGS)"
    )
    publish: Publish | None = Field(default=None, description="publish the port on 127.0.0.1 (default: not at all)")
    memory: Memory | None = Field(default=None, description="memory limit, e.g. 1g")
    ready_timeout: int = Field(
        default=defaults.POSTGRES_READY_SECONDS, ge=10, le=3600,
        description="seconds it may take to answer pg_isready after a (re)boot",
    )  # fmt: skip
    hold_requests: Duration | None = Field(
        default=None,
        description="while a change restarts Postgres, kamal-proxy holds the roles' requests, each up to this long "
        "(30s), and lets them on once Postgres answers; without it, requests that need the database fail meanwhile",
    )
    delete_data: bool = Field(
        default=False,
        description="delete the data directory when the accessory is removed (set it, `up`, then remove the section)",
    )
    server: ServerName | None = Field(
        default=None, description=f"{PLACED}; required with two servers or more: the one its data lives on"
    )

    @field_validator("version", mode="before")
    @classmethod
    def _version_as_text(cls, value: Any) -> Any:
        # `version: 16` in YAML is a number.
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("version")
    @classmethod
    def _version_is_supported(cls, value: str) -> str:
        major = re.match(r"\d+", value)
        if major is None:
            raise ValueError(
                f"{value} names no version: give Postgres's major version at least ({defaults.POSTGRES_VERSION})"
            )
        if int(major[0]) < defaults.POSTGRES_OLDEST_MAJOR:
            raise ValueError(
                f"Postgres {value} is not supported: use {defaults.POSTGRES_OLDEST_MAJOR} or newer "
                f"(default {defaults.POSTGRES_VERSION})"
            )
        return value

    @field_validator("env")
    @classmethod
    def _env_leaves_credentials_alone(cls, value: dict[str, str]) -> dict[str, str]:
        taken = sorted(set(value) & {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB", "PGDATA"})
        if taken:
            raise ValueError(f"{taken[0]} is set by quayside (use user, database, and the postgres_password secret)")
        return value

    def image_ref(self) -> str:
        return self.image or f"{defaults.POSTGRES_IMAGE}:{self.version}"

    def major(self) -> str | None:
        """The major version asked for: the leading number of the version, or of the image's tag (None: an image
        pinned by digest alone)."""
        version = (Reference.parse(self.image).tag or "") if self.image else self.version
        found = re.match(r"\d+", version)
        return found[0] if found else None

    def user_for(self, service: str) -> str:
        return self.user or service.replace("-", "_")

    def database_for(self, service: str) -> str:
        return self.database or service.replace("-", "_")


class S3(Model):
    """S3-compatible storage: AWS, Hetzner Object Storage, Cloudflare R2, MinIO..."""

    bucket: Bucket = Field(description="the bucket; it must exist")
    endpoint: Url | None = Field(default=None, description="the S3 API endpoint URL (default: AWS S3 in region)")
    region: Region = Field(default=defaults.S3_REGION, description="the bucket's region")
    prefix: KeyPrefix | None = Field(
        default=None, description="key prefix for the backups (default: <service>/postgres)"
    )
    write_only: bool = Field(
        default=False,
        description="the key may only put objects: each dump is checked before it is encrypted and uploaded, never "
        "read back or pruned (the bucket's lifecycle rule and object lock keep and expire backups; a restore needs "
        "a key that reads)",
    )

    def prefix_for(self, service: str) -> str:
        return self.prefix or f"{service}/postgres"


class Backup(Model):
    """Scheduled pg_dump of the Postgres database, encrypted with gpg, uploaded to S3, pruned after keep_days."""

    schedule: str = Field(
        default=defaults.BACKUP_SCHEDULE, description="when, in UTC: @hourly, @daily, @weekly or 5 cron fields"
    )
    keep_days: int = Field(default=defaults.BACKUP_KEEP_DAYS, ge=1, le=3650, description="days a backup is kept")
    s3: S3 = Field(description="where the backups go (keys: the s3_access_key_id and s3_secret_access_key secrets)")
    image: VersionedImage | None = Field(
        default=None,
        description="an image with bash, pg_dump, gpg and rclone (default: built on the server from the Postgres "
        "image, adding Debian's rclone and gpg)",
    )
    host_network: bool = Field(
        default=False,
        description="run on the server's network (an S3 endpoint on its loopback); needs postgres.publish",
    )
    public_key: OpenPgpPublicKey | None = Field(
        default=None,
        description="an ASCII-armored OpenPGP public key: backups are encrypted to it, and only its private key, kept "
        "off the server, restores them (quayside restore --private-key-file); without it the backup_passphrase "
        "secret encrypts them",
    )
    server: ServerName | None = Field(default=None, description=f"{PLACED}; default: postgres's server")

    @model_validator(mode="after")
    def _kept_by_the_bucket(self) -> Self:
        if self.s3.write_only and "keep_days" in self.model_fields_set:
            raise ValueError(
                "keep_days: with s3.write_only quayside deletes no backup (the key cannot): expire them with the "
                "bucket's lifecycle rule and remove keep_days"
            )
        return self

    @field_validator("schedule")
    @classmethod
    def _schedule_is_cron(cls, value: str) -> str:
        if value not in CRON_NAMES and not re.fullmatch(CRON_PATTERN, value):
            raise ValueError(f"{value!r} is not @hourly, @daily, @weekly or five cron fields like '0 3 * * *'")
        if value not in CRON_NAMES:
            _check_cron_ranges(value)
            _check_cron_fires(value)
        return value


CRON_RANGES: Final = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12),
                      ("day of week", 0, 7))  # fmt: skip


def _check_cron_ranges(schedule: str) -> None:
    for text, (what, low, high) in zip(schedule.split(), CRON_RANGES, strict=True):
        for number in re.findall(r"(?<![/0-9])[0-9]+", text):
            if not low <= int(number) <= high:
                raise ValueError(f"{schedule!r}: {what} {number} is outside {low}-{high}")
        for step in re.findall(r"/([0-9]+)", text):
            if int(step) == 0:
                raise ValueError(f"{schedule!r}: a step of 0 in the {what}")
        for first, last in re.findall(r"([0-9]+)-([0-9]+)", text):
            if int(first) > int(last):
                raise ValueError(f"{schedule!r}: the {what} range {first}-{last} runs backwards: write {last}-{first}")


# The most days each month has (February's 29th comes every fourth year).
MONTH_DAYS: Final = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
MONTH_NAMES: Final = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
                      "October", "November", "December")  # fmt: skip


def cron_values(field: str, low: int, high: int) -> set[int]:
    """The numbers one cron field names (*, N, A-B, each with an optional /S step, and lists of them), as
    backup-agent.sh's field_matches reads it: N/S runs from N to the field's end."""
    found: set[int] = set()
    for part in field.split(","):
        span, _, step = part.partition("/")
        if span == "*":
            first, last = low, high
        elif "-" in span:
            first, last = (int(number) for number in span.split("-"))
        else:
            first = int(span)
            last = high if step else first
        found.update(range(first, last + 1, int(step or 1)))
    return found


def _check_cron_fires(schedule: str) -> None:
    """A schedule whose days of the month exist in none of its months never fires (30 2: February 30th). When the day
    of the week is given too, either day field may match, as in cron, so that schedule fires on those weekdays."""
    _, _, day, month, weekday = schedule.split()
    if day == "*" or weekday != "*":
        return
    days, months = cron_values(day, 1, 31), cron_values(month, 1, 12)
    if not any(min(days) <= MONTH_DAYS[number - 1] for number in months):
        named = ", ".join(MONTH_NAMES[number - 1] for number in sorted(months))
        raise ValueError(
            f"{schedule!r} never fires: no day {day} in {named}; choose days every month has (1-28), or other months"
        )


class Vector(Model):
    """Vector ships the Docker logs of the service's containers to Better Stack (token: betterstack_token)."""

    sink: Literal["betterstack"] = Field(default="betterstack", description="where the logs go")
    ingest_url: HttpsUrl = Field(
        default=defaults.BETTERSTACK_INGEST_URL,
        description="the source's ingesting host, as Better Stack shows it",
    )
    image: VersionedImage = Field(default=defaults.VECTOR_IMAGE, description="the Vector image, its version pinned")
    memory: Memory | None = Field(default=None, description="memory limit, e.g. 256m")
    delete_data: bool = Field(default=False, description="delete Vector's data directory when it is removed")
    server: ServerName | None = Field(
        default=None,
        description=f"{PLACED}; default: every server (each Vector ships the logs of its own server's containers)",
    )


class Accessories(Model):
    """Long-lived containers beside the roles; `pulumi up` reconciles them and never deletes their data."""

    postgres: Postgres | None = Field(default=None, description="a Postgres database for the roles")
    backup: Backup | None = Field(default=None, description="encrypted Postgres backups to S3 (needs postgres)")
    vector: Vector | None = Field(default=None, description="log shipping to Better Stack")

    @field_validator("backup")
    @classmethod
    def _backup_has_a_database(cls, value: Backup | None, info: ValidationInfo) -> Backup | None:
        if value is None:
            return value
        postgres = info.data.get("postgres")
        if postgres is None:
            raise ValueError("needs accessories.postgres: it backs up that database")
        if value.host_network and postgres.publish is None:
            raise ValueError("host_network needs accessories.postgres.publish: {port: N} to reach the database")
        return value

    def secret_names(self) -> set[str]:
        """Config secrets these accessories need: they must be set before `up`."""
        needed: set[str] = set()
        if self.postgres is not None:
            needed.add(defaults.POSTGRES_PASSWORD_SECRET)
        if self.backup is not None:
            needed |= set(defaults.S3_SECRETS)
            if self.backup.public_key is None:
                needed.add(defaults.BACKUP_PASSPHRASE_SECRET)
        if self.vector is not None:
            needed.add(defaults.BETTERSTACK_TOKEN_SECRET)
        return needed

    def kept_secret_names(self) -> set[str]:
        """Config secrets these accessories read when set, not needed: the passphrase of the backups made before
        backup.public_key, which restores them as before."""
        backup = self.backup
        return {defaults.BACKUP_PASSPHRASE_SECRET} if backup is not None and backup.public_key is not None else set()


# The accessories by name, as `accessories` has them (and StackConfig.accessory_server() takes them).
ACCESSORIES: Final = tuple(Accessories.model_fields)
