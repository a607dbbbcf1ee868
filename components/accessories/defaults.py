"""Every default of the accessories, named once (beside components/defaults.py, which the roles use)."""

from __future__ import annotations

from typing import Final

# Postgres: the official image's contract (POSTGRES_USER/PASSWORD/DB, PGDATA, pg_isready).
POSTGRES_IMAGE: Final = "postgres"
POSTGRES_VERSION: Final = "16"
# The oldest major version the Postgres project still supports (each gets five years).
POSTGRES_OLDEST_MAJOR: Final = 14
POSTGRES_PORT: Final = 5432
POSTGRES_DATA: Final = "/var/lib/postgresql/data"
POSTGRES_READY_SECONDS: Final = 120
# Postgres shuts down cleanly on SIGINT (the image's STOPSIGNAL); give it time to checkpoint.
POSTGRES_STOP_SECONDS: Final = 60
POSTGRES_HEALTH_CMD: Final = 'pg_isready -U "$POSTGRES_USER" -d "$POSTGRES_DB"'
POSTGRES_HEALTH_INTERVAL: Final = "2s"
POSTGRES_PASSWORD_SECRET: Final = "postgres_password"
# A major upgrade's dump and restore, beyond its two extra boots and stops: the database's size decides.
POSTGRES_DUMP_RESTORE_SECONDS: Final = 900

# Backups: pg_dump | gpg | rclone in <service>-backup, which also runs the schedule.
BACKUP_SCHEDULE: Final = "@daily"
BACKUP_KEEP_DAYS: Final = 14
BACKUP_IMAGE_REPO: Final = "quayside/backup"
BACKUP_AGENT: Final = "/quayside/bin/backup-agent.sh"
BACKUP_SCRIPTS_MOUNT: Final = "/quayside/bin"
BACKUP_READINESS_SECONDS: Final = 3
BACKUP_IMAGE_BUILD_SECONDS: Final = 900
S3_REGION: Final = "us-east-1"
BACKUP_PASSPHRASE_SECRET: Final = "backup_passphrase"
S3_ACCESS_KEY_SECRET: Final = "s3_access_key_id"
S3_SECRET_KEY_SECRET: Final = "s3_secret_access_key"
S3_SECRETS: Final = (S3_ACCESS_KEY_SECRET, S3_SECRET_KEY_SECRET)
# Where the backup container reads backup.public_key (mounted read-only).
BACKUP_PUBLIC_KEY_FILE: Final = "/quayside/backup-public-key.asc"

# Vector: Docker logs of the service's containers to Better Stack over HTTP.
VECTOR_IMAGE: Final = "timberio/vector:0.57.0-debian"
VECTOR_CONFIG: Final = "/etc/vector/vector.yaml"
VECTOR_DATA: Final = "/var/lib/vector"
DOCKER_SOCKET: Final = "/var/run/docker.sock"
VECTOR_READINESS_SECONDS: Final = 5
BETTERSTACK_INGEST_URL: Final = "https://in.logs.betterstack.com"
BETTERSTACK_TOKEN_ENV: Final = "BETTERSTACK_TOKEN"
# Vector 0.57 reads `${VAR}` in its config only with this set (it was on by default before, and older images ignore
# the variable). The config is quayside's own, and the token is the one variable it names.
VECTOR_INTERPOLATION_ENV: Final = {"VECTOR_DANGEROUSLY_ALLOW_ENV_VAR_INTERPOLATION": "true"}
BETTERSTACK_TOKEN_SECRET: Final = "betterstack_token"

# Seconds a boot may spend pulling its image.
PULL_SECONDS: Final = 300
