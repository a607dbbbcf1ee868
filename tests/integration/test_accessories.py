"""The accessories over real SSH against the real Docker engine: Postgres keeps its data through every change,
is reachable only on the service network, and its backups round-trip through S3 (moto on loopback) encrypted."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from components.accessories import backup, defaults, vector
from components.config import Backup, Postgres, Vector, examples
from tests.integration.accessory_fixtures import (
    PASSPHRASE,
    PASSWORD,
    ROOT,
    S3_KEY_ID,
    S3_SECRET,
    AccessoryService,
    S3Store,
    build_backup_image,
    new_accessory_service,
    running_s3_store,
    running_write_only_bucket,
)
from tests.support import images
from tests.support.docker import docker, free_loopback_port, unique_name
from tests.support.openpgp import KeyPair, dump_of, key_pair, public_key_that_cannot_encrypt
from tests.support.stacks import registry_pinned
from tests.support.testbed import TestServer, registry_address

ROWS = [(1, "alpha"), (2, "beta"), (3, "gamma")]


@pytest.fixture(scope="session")
def s3_store() -> Iterator[S3Store]:
    with running_s3_store() as store:
        yield store


@pytest.fixture(scope="session")
def backup_image(test_server: TestServer) -> str:
    return build_backup_image(test_server)


@pytest.fixture
def accessory_service(test_server: TestServer, daemon_json_left_as_found: None) -> Iterator[AccessoryService]:
    service = new_accessory_service(test_server)
    try:
        yield service
    finally:
        service.remove_everything()


def write_rows(service: AccessoryService) -> None:
    service.sql("CREATE TABLE notes (id int PRIMARY KEY, body text NOT NULL)")
    values = ", ".join(f"({key}, '{body}')" for key, body in ROWS)
    service.sql(f"INSERT INTO notes VALUES {values}")


def read_rows(service: AccessoryService) -> list[tuple[int, str]]:
    lines = service.sql("SELECT id, body FROM notes ORDER BY id").splitlines()
    return [(int(key), body) for key, body in (line.split("|") for line in lines)]


def container_id(service: AccessoryService, accessory: str) -> str:
    return service.inspect(accessory, "{{.Id}}")


def wait_healthy(service: AccessoryService, why: str) -> None:
    deadline = time.monotonic() + 60
    while service.inspect("postgres", "{{.State.Health.Status}}") != "healthy":
        assert time.monotonic() < deadline, f"{why} within 60 s"
        time.sleep(1)


def refused(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=3):
            return False
    except OSError:
        return True


def pg_isready_from(network: str, host: str) -> subprocess.CompletedProcess[str]:
    """pg_isready in a throwaway container on `network`: does a client there reach host:5432?"""
    argv = ["docker", "run", "--rm", "--network", network, "--entrypoint", "pg_isready", images.POSTGRES,
            "-h", host, "-p", "5432", "-t", "3"]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


# --- Postgres -------------------------------------------------------------------------------------------------


def test_postgres_boots_healthy_with_rotated_logs_and_its_data_on_the_host(accessory_service: AccessoryService) -> None:
    service = accessory_service
    output = service.start_postgres(service.postgres_config())

    assert f"accessory: {service.container('postgres')} booted ({images.POSTGRES})" in output
    assert service.inspect("postgres", "{{.State.Health.Status}}") == "healthy"
    assert service.inspect("postgres", "{{.HostConfig.RestartPolicy.Name}}") == "unless-stopped"
    assert service.inspect("postgres", "{{json .HostConfig.LogConfig.Config}}") == '{"max-file":"3","max-size":"10m"}'
    assert service.inspect("postgres", "{{range .Mounts}}{{.Source}}:{{.Destination}} {{end}}").split() == [
        f"{service.remote_path('postgres', 'data')}:{defaults.POSTGRES_DATA}"
    ]
    assert service.remote("test", "-s", service.remote_path("postgres", "data", "PG_VERSION")).returncode == 0


def test_the_password_reaches_postgres_only_through_a_0600_env_file(accessory_service: AccessoryService) -> None:
    service = accessory_service
    done = service.boot_postgres(service.postgres_config())
    assert done.returncode == 0, done.stderr

    env_file = service.remote_path("env", "accessory-postgres.env")
    assert service.remote("stat", "-c", "%a", env_file).stdout.strip() == "600"
    assert PASSWORD not in done.stdout + done.stderr
    assert PASSWORD not in service.inspect("postgres", "{{json .Args}} {{json .Config.Cmd}} {{json .Config.Labels}}")
    # The password works over TCP (scram), as the roles will use it.
    check = docker(
        "exec", "-e", f"PGPASSWORD={PASSWORD}", service.container("postgres"), "psql", "-h", "127.0.0.1", "-X",
        "-tA", "-U", service.name.replace("-", "_"), "-c", "SELECT 1",
    )  # fmt: skip
    assert check == "1"


def test_the_database_is_reachable_on_the_service_network_only(accessory_service: AccessoryService) -> None:
    service = accessory_service
    service.start_postgres(service.postgres_config())
    address = service.inspect("postgres", f'{{{{(index .NetworkSettings.Networks "{service.name}").IPAddress}}}}')

    assert service.inspect("postgres", "{{json .HostConfig.PortBindings}}") in ("{}", "null")
    assert docker("port", service.container("postgres")) == ""
    assert refused("127.0.0.1", defaults.POSTGRES_PORT)
    outside = pg_isready_from("bridge", address)
    assert outside.returncode != 0, outside.stdout
    inside = pg_isready_from(service.name, service.container("postgres"))
    assert inside.returncode == 0, inside.stdout + inside.stderr
    assert "accepting connections" in inside.stdout


def test_a_published_database_listens_on_loopback_only(accessory_service: AccessoryService) -> None:
    service = accessory_service
    port = free_loopback_port()
    service.start_postgres(service.postgres_config(publish={"port": port}))

    assert docker("port", service.container("postgres")) == f"5432/tcp -> 127.0.0.1:{port}"
    assert not refused("127.0.0.1", port)


def test_rows_survive_a_config_change_a_restart_and_a_remove_and_boot(accessory_service: AccessoryService) -> None:
    service = accessory_service
    config = service.postgres_config()
    service.start_postgres(config)
    write_rows(service)
    first = container_id(service, "postgres")

    unchanged = service.start_postgres(config)
    assert "is up to date" in unchanged
    assert container_id(service, "postgres") == first

    changed = service.postgres_config(settings={"max_connections": 50}, env={"TZ": "UTC"})
    output = service.start_postgres(changed)
    assert "rebooted" in output
    assert container_id(service, "postgres") != first
    assert service.sql("SHOW max_connections") == "50"
    assert read_rows(service) == ROWS

    docker("restart", service.container("postgres"))
    wait_healthy(service, "not healthy again after docker restart")
    assert read_rows(service) == ROWS

    removed = service.remove(service.postgres_spec(changed))
    assert removed.returncode == 0, removed.stderr
    assert f"kept its data in {service.remote_path('postgres')}" in removed.stdout
    assert docker("ps", "--all", "--quiet", "--filter", f"name=^{service.container('postgres')}$") == ""
    assert service.remote("test", "-e", service.remote_path("env", "accessory-postgres.env")).returncode == 1

    service.start_postgres(changed)
    assert read_rows(service) == ROWS


def test_pinning_postgres_tag_to_the_content_it_runs_restarts_nothing(accessory_service: AccessoryService) -> None:
    """A Postgres booted before its image was pinned: the config hash names the image as the config words it, and
    the content is compared by image ID."""
    service = accessory_service
    service.start_postgres(service.postgres_config(image=f"{registry_address()}/{images.POSTGRES}"))
    first = container_id(service, "postgres")

    pinned = service.start_postgres(service.postgres_config(image=registry_pinned(images.POSTGRES)))

    assert "is up to date" in pinned
    assert container_id(service, "postgres") == first


def test_a_change_that_never_becomes_healthy_puts_the_old_container_back(accessory_service: AccessoryService) -> None:
    service = accessory_service
    service.start_postgres(service.postgres_config())
    write_rows(service)
    first = container_id(service, "postgres")

    failed = service.boot_postgres(service.postgres_config(settings={"shared_buffers": "not-a-size"}))

    assert failed.returncode == 1, failed.stdout
    first_line = failed.stderr.splitlines()[0]
    assert first_line.startswith(f"accessory failed: postgres of {service.name} on "), failed.stderr
    assert "shared_buffers" in failed.stderr  # the new container's own log says why
    assert "the previous container is running again" in failed.stderr
    assert container_id(service, "postgres") == first
    wait_healthy(service, "the previous container did not come back healthy")
    assert read_rows(service) == ROWS


def test_removing_with_delete_data_deletes_the_data_directory(accessory_service: AccessoryService) -> None:
    service = accessory_service
    config = service.postgres_config()
    service.start_postgres(config)

    removed = service.remove(service.postgres_spec(config), delete_data=True)

    assert removed.returncode == 0, removed.stderr
    assert service.remote("test", "-e", service.remote_path("postgres")).returncode == 1


def server_major(service: AccessoryService) -> str:
    return service.sql("SHOW server_version_num")[:2]


def kept_data_directories(service: AccessoryService) -> list[str]:
    listed = service.remote("sh", "-c", f"cd {service.remote_path('postgres')} && ls -d data-* 2>/dev/null || true")
    return listed.stdout.split()


def test_a_new_major_version_restores_the_rows_into_a_new_data_directory_and_keeps_the_old_one(
    accessory_service: AccessoryService,
) -> None:
    service = accessory_service
    service.start_postgres(service.postgres_config())
    write_rows(service)
    service.sql("CREATE ROLE reader LOGIN PASSWORD 'reader-pass'")
    assert server_major(service) == "15"

    output = service.start_postgres(service.postgres_config(image=images.POSTGRES_NEXT_MAJOR))

    assert "Postgres 15 to 17: a dump of the cluster is restored into a new data directory" in output
    assert server_major(service) == "17"
    assert read_rows(service) == ROWS
    assert service.sql("SELECT rolname FROM pg_roles WHERE rolname = 'reader'") == "reader"
    [kept] = kept_data_directories(service)
    assert kept.startswith("data-15-"), kept
    assert f"Postgres 15's data directory is kept in {service.remote_path('postgres', kept)}" in output
    assert service.remote("cat", service.remote_path("postgres", kept, "PG_VERSION")).stdout.strip() == "15"
    dump = service.remote("sh", "-c", f"stat -c '%a %n' {service.remote_path('postgres')}/dump-15-*.sql").stdout
    assert dump.startswith("600 "), dump
    assert "up to date" in service.start_postgres(service.postgres_config(image=images.POSTGRES_NEXT_MAJOR))


def test_a_major_upgrade_that_fails_puts_the_old_major_back_on_its_untouched_data(
    accessory_service: AccessoryService,
) -> None:
    service = accessory_service
    service.start_postgres(service.postgres_config())
    write_rows(service)
    first = container_id(service, "postgres")

    failed = service.boot_postgres(
        service.postgres_config(image=images.POSTGRES_NEXT_MAJOR, settings={"shared_buffers": "not-a-size"})
    )

    assert failed.returncode == 1, failed.stdout
    assert "Postgres 15's data directory is back in place" in failed.stderr, failed.stderr
    assert "the previous container is running again" in failed.stderr
    assert container_id(service, "postgres") == first
    wait_healthy(service, "Postgres 15 did not come back healthy")
    assert server_major(service) == "15"
    assert read_rows(service) == ROWS
    assert kept_data_directories(service) == []


def test_a_major_version_older_than_the_data_is_refused_before_anything_stops(
    accessory_service: AccessoryService,
) -> None:
    service = accessory_service
    service.start_postgres(service.postgres_config(image=images.POSTGRES_NEXT_MAJOR))
    first = container_id(service, "postgres")

    refused = service.boot_postgres(service.postgres_config())

    assert refused.returncode == 1
    assert f"holds Postgres 17's data and {images.POSTGRES} runs 15: a major version cannot go back" in refused.stderr
    assert container_id(service, "postgres") == first
    assert service.inspect("postgres", "{{.State.Running}}") == "true"


# --- backups ----------------------------------------------------------------------------------------------------


def database_with_rows(service: AccessoryService) -> Postgres:
    """Postgres published on loopback (the backup container runs on the host's network to reach moto), rows
    written."""
    pg = service.postgres_config(publish={"port": free_loopback_port()})
    service.start_postgres(pg)
    write_rows(service)
    return pg


def backing_up(
    service: AccessoryService, s3_store: S3Store, pg: Postgres, *, passphrase: str | None = PASSPHRASE, **fields: object
) -> Backup:
    """The backup container running its schedule, to a bucket of its own."""
    bucket = unique_name("qa-bucket")
    s3_store.create_bucket(bucket)
    config = service.backup_config(s3_store, bucket, **fields)
    booted = service.boot_backup(config, pg, passphrase=passphrase)
    assert booted.returncode == 0, booted.stdout + booted.stderr
    return config


@pytest.fixture
def with_backups(
    accessory_service: AccessoryService, s3_store: S3Store, backup_image: str
) -> tuple[AccessoryService, Backup, Postgres]:
    service = accessory_service
    pg = database_with_rows(service)
    config = backing_up(service, s3_store, pg)
    assert backup.spec(service.name, config, pg).image == backup_image
    return service, config, pg


def test_a_backup_restores_the_rows_after_the_table_is_dropped(
    with_backups: tuple[AccessoryService, Backup, Postgres],
) -> None:
    service, config, _pg = with_backups

    started = time.monotonic()
    made = service.backup_script("now")
    backup_seconds = time.monotonic() - started
    assert made.returncode == 0, made.stdout + made.stderr
    assert "encrypted, verified by reading it back" in made.stdout

    service.sql("DROP TABLE notes")
    started = time.monotonic()
    restored = service.backup_script("restore", "--backup", "latest")
    restore_seconds = time.monotonic() - started
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert read_rows(service) == ROWS

    listed = service.backup_script("list")
    assert listed.returncode == 0, listed.stderr
    names = listed.stdout.split()
    assert len(names) == 1 and names[0].startswith(f"{service.name.replace('-', '_')}-"), listed.stdout
    assert f"restored {service.name.replace('-', '_')} from s3://{config.s3.bucket}/" in restored.stdout
    print(f"\nbackup now {backup_seconds:.1f} s, restore latest {restore_seconds:.1f} s (over SSH, incl. docker exec)")


def test_a_major_upgrade_backs_up_to_s3_first_when_the_backup_accessory_runs(
    with_backups: tuple[AccessoryService, Backup, Postgres], s3_store: S3Store
) -> None:
    service, config, pg = with_backups

    upgraded = service.start_postgres(pg.model_copy(update={"image": images.POSTGRES_NEXT_MAJOR}))

    assert "backing up to S3 before the upgrade" in upgraded
    assert len(s3_store.keys(config.s3.bucket, config.s3.prefix_for(service.name))) == 1
    assert server_major(service) == "17"
    assert read_rows(service) == ROWS


def test_the_stored_backup_is_unreadable_without_the_passphrase(
    with_backups: tuple[AccessoryService, Backup, Postgres], s3_store: S3Store
) -> None:
    service, config, _pg = with_backups
    made = service.backup_script("now")
    assert made.returncode == 0, made.stdout + made.stderr
    prefix = config.s3.prefix_for(service.name)
    [key] = s3_store.keys(config.s3.bucket, prefix)
    stored = s3_store.get(config.s3.bucket, key)

    assert key.startswith(f"{prefix}/") and key.endswith(".dump.gpg")
    assert not stored.startswith(b"PGDMP") and not stored.startswith(b"\x1f\x8b")
    assert b"notes" not in stored and b"gamma" not in stored and b"CREATE TABLE" not in stored
    assert stored[0] & 0x80, "an OpenPGP packet"
    assert PASSWORD.encode() not in stored and PASSPHRASE.encode() not in stored

    service.sql("DROP TABLE notes")
    wrong = service.backup_script("restore", "--passphrase-stdin", stdin="not the passphrase\n")
    assert wrong.returncode != 0
    assert wrong.stderr.splitlines()[0].startswith("restore failed: cannot decrypt "), wrong.stderr
    assert "wrong passphrase" in wrong.stderr
    with pytest.raises(RuntimeError):
        read_rows(service)  # nothing was restored

    right = service.backup_script("restore", "--passphrase-stdin", stdin=f"{PASSPHRASE}\n")
    assert right.returncode == 0, right.stderr
    assert read_rows(service) == ROWS


def test_prune_deletes_backups_older_than_keep_days_and_keeps_the_newest(
    with_backups: tuple[AccessoryService, Backup, Postgres], s3_store: S3Store
) -> None:
    service, config, _pg = with_backups
    database = service.name.replace("-", "_")
    prefix = config.s3.prefix_for(service.name)
    now = datetime.now(UTC)

    def name(age: timedelta) -> str:
        return f"{database}-{(now - age):%Y%m%dT%H%M%SZ}.dump.gpg"

    old = [name(timedelta(days=40)), name(timedelta(days=config.keep_days, hours=1))]
    young = [name(timedelta(days=config.keep_days - 1)), name(timedelta(hours=2))]
    other = f"{prefix}/unrelated-file.txt"
    for key in [*old, *young]:
        s3_store.put(config.s3.bucket, f"{prefix}/{key}", b"stand-in")
    s3_store.put(config.s3.bucket, other, b"not a backup")

    pruned = service.backup_script("prune")

    assert pruned.returncode == 0, pruned.stderr
    assert f"pruned 2 backup(s) older than {config.keep_days} days; 2 kept" in pruned.stdout
    assert s3_store.keys(config.s3.bucket, prefix) == sorted([other, *(f"{prefix}/{key}" for key in young)])


def test_prune_never_deletes_the_only_backup_however_old(
    with_backups: tuple[AccessoryService, Backup, Postgres], s3_store: S3Store
) -> None:
    service, config, _pg = with_backups
    prefix = config.s3.prefix_for(service.name)
    ancient = f"{prefix}/{service.name.replace('-', '_')}-20200101T000000Z.dump.gpg"
    s3_store.put(config.s3.bucket, ancient, b"stand-in")

    pruned = service.backup_script("prune")

    assert pruned.returncode == 0, pruned.stderr
    assert s3_store.keys(config.s3.bucket, prefix) == [ancient]


def test_a_wrong_endpoint_fails_back_up_now_with_one_clear_line(
    with_backups: tuple[AccessoryService, Backup, Postgres],
) -> None:
    service, config, pg = with_backups
    closed = f"http://127.0.0.1:{free_loopback_port()}"
    wrong = config.model_copy(update={"s3": config.s3.model_copy(update={"endpoint": closed})})
    booted = service.boot_backup(wrong, pg)
    assert booted.returncode == 0, booted.stderr

    started = time.monotonic()
    failed = service.backup_script("now")

    assert failed.returncode != 0
    first_line = failed.stderr.splitlines()[0]
    assert first_line.startswith("backup failed: cannot upload "), failed.stderr
    assert closed in first_line and "connection refused" in first_line, first_line
    assert time.monotonic() - started < 60
    missing = service.backup_script("restore", "--backup", "latest")
    assert missing.returncode != 0
    assert missing.stderr.splitlines()[0].startswith("restore failed: cannot list s3://"), missing.stderr


def test_the_backup_container_backs_up_on_its_schedule(
    accessory_service: AccessoryService, s3_store: S3Store, backup_image: str
) -> None:
    service = accessory_service
    config = backing_up(service, s3_store, database_with_rows(service), schedule="* * * * *")
    bucket = config.s3.bucket

    deadline = time.monotonic() + 100
    while not s3_store.keys(bucket):
        assert time.monotonic() < deadline, docker("logs", service.container("backup"))
        time.sleep(2)
    logs = subprocess.run(["docker", "logs", service.container("backup")], capture_output=True, text=True).stdout
    assert "on '* * * * *' (UTC)" in logs
    assert PASSPHRASE not in logs and S3_SECRET not in logs and S3_KEY_ID not in logs


# --- backups to a public key, and with a write-only S3 key -----------------------------------------------------


@pytest.fixture(scope="module")
def backup_key(tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    return key_pair(tmp_path_factory.mktemp("gpg") / "home")


def test_backups_to_a_public_key_restore_only_with_its_private_key_which_leaves_nothing_behind(
    accessory_service: AccessoryService, s3_store: S3Store, backup_image: str, backup_key: KeyPair
) -> None:
    service = accessory_service
    config = backing_up(service, s3_store, database_with_rows(service), passphrase=None, public_key=backup_key.public)
    bucket = config.s3.bucket

    made = service.backup_script("now")

    assert made.returncode == 0, made.stdout + made.stderr
    assert f"encrypted to public key {backup_key.fingerprint}, read back unchanged" in made.stdout
    [key] = s3_store.keys(bucket, config.s3.prefix_for(service.name))
    stored = s3_store.get(bucket, key)
    assert b"gamma" not in stored and stored[0] & 0x80, "an OpenPGP packet"
    assert dump_of(stored, backup_key).startswith(b"PGDMP"), "the private key's holder reads the dump"

    service.sql("DROP TABLE notes")
    without = service.backup_script("restore")
    assert without.returncode != 0
    assert without.stderr.splitlines()[0] == (
        f"restore failed: cannot decrypt {key.rsplit('/', 1)[-1]}: it is encrypted to a public key: give its private "
        "key (quayside restore --private-key-file FILE)"
    ), without.stderr
    wrong = service.backup_script(
        "restore", "--private-key-stdin", "--passphrase-stdin", stdin=f"{backup_key.private}not the passphrase\n"
    )
    assert wrong.returncode != 0 and "with the private key given: a wrong passphrase for it" in wrong.stderr, (
        wrong.stderr
    )
    with pytest.raises(RuntimeError):
        read_rows(service)  # nothing was restored

    restored = service.backup_script(
        "restore", "--private-key-stdin", "--passphrase-stdin", stdin=f"{backup_key.private}{backup_key.passphrase}\n"
    )

    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert read_rows(service) == ROWS
    # The job's keyring went with its work directory; no keyring of the container's own was made.
    left = docker("exec", service.container("backup"), "find", "/tmp", "/root", "-name", "quayside-*", "-type", "d",
                  "-o", "-name", "private-keys-v1.d")  # fmt: skip
    assert left == "", left
    logs = subprocess.run(["docker", "logs", service.container("backup")], capture_output=True, text=True)
    assert "PRIVATE KEY" not in logs.stdout + logs.stderr


def test_a_public_key_that_cannot_encrypt_fails_the_backup_boot_naming_the_key(
    accessory_service: AccessoryService, s3_store: S3Store, backup_image: str
) -> None:
    service = accessory_service
    pg = service.postgres_config(publish={"port": free_loopback_port()})
    service.start_postgres(pg)
    config = service.backup_config(s3_store, unique_name("qa-bucket"), public_key=public_key_that_cannot_encrypt())

    booted = service.boot_backup(config, pg, passphrase=None)

    assert booted.returncode != 0
    assert "backup.public_key holds no OpenPGP key that can encrypt: give one with an encryption subkey" in (
        booted.stdout + booted.stderr
    )


def test_a_write_only_key_backs_up_without_reading_listing_or_deleting(
    accessory_service: AccessoryService, backup_image: str, backup_key: KeyPair
) -> None:
    service = accessory_service
    pg = database_with_rows(service)
    with running_write_only_bucket() as store:
        config = service.backup_config(
            S3Store(store.endpoint), store.bucket, public_key=backup_key.public,
            s3={"bucket": store.bucket, "endpoint": store.endpoint, "write_only": True},
        )  # fmt: skip
        booted = service.boot_backup(config, pg, passphrase=None, s3_key=store.writer)
        assert booted.returncode == 0, booted.stdout + booted.stderr
        listing = service.backup_script("list")
        assert listing.returncode != 0
        assert listing.stderr.startswith("backup failed: s3.write_only: the backup key only writes, and list reads"), (
            listing.stderr
        )

        made = service.backup_script("now")

        assert made.returncode == 0, made.stdout + made.stderr
        assert "write-only key: checked before the upload, kept by the bucket" in made.stdout
        [stored] = store.reader.list_objects_v2(Bucket=store.bucket)["Contents"]
        body = store.reader.get_object(Bucket=store.bucket, Key=stored["Key"])["Body"].read()
        assert dump_of(body, backup_key).startswith(b"PGDMP")

        # A restore brings a key that reads, for itself only.
        reading_key = "\n".join(store.reading_key) + "\n"
        listed = service.backup_script("list", "--s3-key-stdin", stdin=reading_key)
        service.sql("DROP TABLE notes")
        restored = service.backup_script(
            "restore", "--s3-key-stdin", "--private-key-stdin", "--passphrase-stdin",
            stdin=f"{reading_key}{backup_key.private}{backup_key.passphrase}\n",
        )  # fmt: skip
    assert listed.returncode == 0 and listed.stdout.split() == [stored["Key"].rsplit("/", 1)[-1]], listed.stderr
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert read_rows(service) == ROWS


@pytest.mark.parametrize(
    ("spec", "when", "due"),
    [
        ("@hourly", "00 13 05 06 2", True),
        ("@hourly", "01 13 05 06 2", False),
        ("@daily", "00 00 05 06 2", True),
        ("@daily", "00 03 05 06 2", False),
        ("*/15 * * * *", "45 07 01 01 0", True),
        ("*/15 * * * *", "44 07 01 01 0", False),
        ("0 3 * * 1-5", "00 03 09 11 1", True),
        ("0 3 * * 1-5", "00 03 08 11 6", False),
        ("30 2 1,15 * *", "30 02 15 03 4", True),
        ("0 0 1 * 0", "00 00 07 03 0", True),  # either day field matches when both are restricted
        ("0 0 1 * 7", "00 00 07 03 0", True),
        ("0 0 1 * 0", "00 00 08 03 1", False),
        ("5-10/5 * * * *", "10 00 01 01 1", True),
        ("5-10/5 * * * *", "07 00 01 01 1", False),
    ],
)
def test_the_schedule_matches_as_cron_does(spec: str, when: str, due: bool) -> None:
    agent = ROOT / "components" / "scripts" / "backup-agent.sh"
    done = subprocess.run(["bash", str(agent), "due", spec, when], capture_output=True, text=True, timeout=10)
    assert (done.returncode == 0) == due, done.stderr


# --- Vector ---------------------------------------------------------------------------------------------------


def test_vector_boots_with_its_config_and_the_docker_socket_read_only(accessory_service: AccessoryService) -> None:
    service = accessory_service
    token = "bs-token-" + unique_name("t")
    config = Vector(image=images.vector()[1])
    booted = service.boot_vector(config, token)
    assert booted.returncode == 0, booted.stdout + booted.stderr
    assert service.inspect("vector", "{{.State.Status}} {{.RestartCount}}") == "running 0"

    mounts = service.inspect("vector", "{{range .Mounts}}{{.Source}} {{.Destination}} {{.RW}}\n{{end}}")
    assert sorted(mounts.splitlines()) == sorted([
        f"{defaults.DOCKER_SOCKET} {defaults.DOCKER_SOCKET} false",
        f"{service.remote_path('vector', 'files', 'vector.yaml')} {defaults.VECTOR_CONFIG} false",
        f"{service.remote_path('vector', 'data')} {defaults.VECTOR_DATA} true",
    ])  # fmt: skip
    assert service.inspect("vector", "{{json .Config.Cmd}}") == '["--config","/etc/vector/vector.yaml"]'
    written = service.remote("cat", service.remote_path("vector", "files", "vector.yaml")).stdout
    assert yaml.safe_load(written) == vector.config(service.name, config)
    assert token not in written
    assert service.remote("stat", "-c", "%a", service.remote_path("env", "accessory-vector.env")).stdout == "600\n"
    assert token not in service.inspect("vector", "{{json .Args}} {{json .Config.Labels}}")
    assert token in service.inspect("vector", "{{json .Config.Env}}")  # Vector reads ${BETTERSTACK_TOKEN}


def test_vector_validates_the_config_quayside_generates(tmp_path: Path) -> None:
    binary, _ = images.vector()
    for index, example in enumerate(examples.reference()):
        settings = example.get("accessories", {}).get("vector")
        if settings is None:
            continue
        path = tmp_path / f"vector-{index}.yaml"
        path.write_text(vector.config_text(example["service"], Vector.model_validate(settings)))
        checked = subprocess.run([binary, "validate", "--no-environment", str(path)], capture_output=True, text=True,
                                 timeout=60, env={"BETTERSTACK_TOKEN": "t", "PATH": "/usr/bin:/bin"})  # fmt: skip
        assert checked.returncode == 0, checked.stdout + checked.stderr


def test_vector_validate_refuses_a_config_vector_cannot_run(tmp_path: Path) -> None:
    """The check above can fail: a sink compression Vector does not know."""
    binary, _ = images.vector()
    broken = vector.config("acme", Vector())
    broken["sinks"]["betterstack"]["compression"] = "gzipp"
    path = tmp_path / "vector.yaml"
    path.write_text(yaml.safe_dump(broken))
    checked = subprocess.run([binary, "validate", "--no-environment", str(path)], capture_output=True, text=True,
                             timeout=60, env={"BETTERSTACK_TOKEN": "t", "PATH": "/usr/bin:/bin"})  # fmt: skip
    assert checked.returncode == 78, checked.stdout + checked.stderr
