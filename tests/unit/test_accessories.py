# mypy: disable-error-code="untyped-decorator"
# ruff: noqa: E501 (the table of config errors reads best one case per line)
"""The accessories under Pulumi mocks: which remote commands they create, with which argv and stdin, what stays
secret, the generated Vector config, and the one-line errors of a malformed `accessories` section."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml
from pulumi_command import remote

from components import config
from components.accessories import backup, container, defaults, postgres, vector, wiring
from components.config import examples
from tests.support.commands import is_secret, option, script_argv

PASSWORD = "p@ss/word:with%odd&chars"
PASSPHRASE = "correct horse battery staple"
TOKEN = "bs-source-token-123"
SECRETS = {
    "postgres_password": PASSWORD,
    "backup_passphrase": PASSPHRASE,
    "s3_access_key_id": "AKIAEXAMPLE",
    "s3_secret_access_key": "s3-secret-key",
    "betterstack_token": TOKEN,
}
ROOT = Path(__file__).resolve().parents[2]
CONNECTION = remote.ConnectionArgs(host="203.0.113.7", user="root", private_key="key")


def secret(name: str) -> pulumi.Output[str]:
    return pulumi.Output.secret(SECRETS[name])


def parsed(section: dict[str, Any]) -> config.Accessories:
    """An `accessories` section as the stack config parses it, in the smallest stack."""
    stack = {**examples.smallest(), "accessories": section}
    accessories = config.parse(stack, secrets_set={"ssh_private_key", *SECRETS}).accessories
    assert accessories is not None
    return accessories


def accessories(**overrides: Any) -> config.Accessories:
    raw: dict[str, Any] = {
        "postgres": {"version": 16, "database": "acme"},
        "backup": {"schedule": "@hourly", "keep_days": 14, "s3": {"bucket": "acme-backups",
                                                                  "endpoint": "https://fsn1.example.com"}},
        "vector": {"sink": "betterstack"},
    }  # fmt: skip
    raw.update(overrides)
    return parsed({key: value for key, value in raw.items() if value is not None})


def one_server_stack(settings: config.Accessories | None) -> config.StackConfig:
    return config.StackConfig.model_validate({
        "service": "acme", "server": {"provider": "existing", "host": "203.0.113.7", "trust_first_use": True},
        "roles": {"worker": {"image": "ghcr.io/acme/worker:1.0", "proxy": False}},
        **({"accessories": settings.model_dump(exclude_none=True)} if settings is not None else {}),
    })  # fmt: skip


def deploy(settings: config.Accessories | None = None) -> wiring.DeployedAccessories:
    host_ready = remote.Command("acme-host-docker", connection=CONNECTION, create="true")
    sites = {config.ONE_SERVER: wiring.Site(CONNECTION, host_ready, None)}
    return wiring.deploy_accessories(
        one_server_stack(settings or accessories()), sites, secret
    )  # --- Postgres -------------------------------------------------------------------------------------------------


@pulumi.runtime.test
def test_postgres_boots_through_accessory_sh_with_its_data_dir_and_health_check() -> pulumi.Output[None]:
    deployed = deploy()
    assert deployed.postgres is not None and deployed.ready == [deployed.postgres.ready]

    def check(values: list[Any]) -> None:
        create, delete = values
        argv = script_argv(create, "accessory.sh")
        assert argv[:7] == ["boot", "--service", "acme", "--name", "postgres", "--image", "postgres:16"]
        assert option(argv, "--env") == ["POSTGRES_DB=acme", "POSTGRES_USER=acme"]
        assert option(argv, "--data") == ["/var/lib/postgresql/data"]
        assert option(argv, "--health-cmd") == ['pg_isready -U "$POSTGRES_USER" -d "$POSTGRES_DB"']
        assert option(argv, "--stop-timeout") == ["60"]
        assert option(argv, "--network") == ["acme"]  # the service's own network
        assert "--publish" not in argv and "--cmd" not in argv
        assert script_argv(delete, "accessory.sh") == [
            "remove", "--service", "acme", "--name", "postgres", "--stop-timeout", "60",
        ]  # fmt: skip

    return pulumi.Output.all(deployed.postgres.ready.create, deployed.postgres.ready.delete).apply(check)


@pulumi.runtime.test
def test_the_postgres_password_travels_as_a_secret_on_stdin_only() -> pulumi.Output[None]:
    deployed = deploy()
    assert deployed.postgres is not None
    command = deployed.postgres.ready

    def check(values: list[Any]) -> None:
        create, delete, stdin, stdin_secret = values
        assert stdin == f"POSTGRES_PASSWORD={PASSWORD}\n"
        assert PASSWORD not in create and PASSWORD not in delete
        assert stdin_secret, "the env file on stdin must stay a secret in state"

    return pulumi.Output.all(command.create, command.delete, command.stdin, is_secret(command.stdin)).apply(check)


@pulumi.runtime.test
def test_the_database_url_is_a_secret_naming_the_container_on_the_service_network() -> pulumi.Output[None]:
    deployed = deploy()
    url = deployed.database_url
    assert url is not None and deployed.outputs() == {"database_url": url}

    def check(values: list[Any]) -> None:
        value, secret_flag = values
        assert value == "postgres://acme:p%40ss%2Fword%3Awith%25odd%26chars@acme-postgres:5432/acme"
        assert secret_flag, "database_url must be a secret output"

    return pulumi.Output.all(url, is_secret(url)).apply(check)


def test_postgres_publishes_on_loopback_only_and_only_when_asked() -> None:
    published = config.Postgres.model_validate({"publish": {"port": 15432}})
    argv = container.boot_args("acme", postgres.spec("acme", published))
    assert option(argv, "--publish") == ["127.0.0.1:15432:5432"]
    assert "--publish" not in container.boot_args("acme", postgres.spec("acme", config.Postgres()))


def test_a_postgres_config_change_changes_the_config_hash_and_the_server_command() -> None:
    before = container.boot_args("acme", postgres.spec("acme", config.Postgres()))
    tuned = config.Postgres.model_validate({"settings": {"max_connections": 200, "shared_buffers": "256MB"}})
    after = container.boot_args("acme", postgres.spec("acme", tuned))
    upgraded = container.boot_args("acme", postgres.spec("acme", config.Postgres(version="17")))

    assert option(after, "--cmd") == ["postgres", "-c", "max_connections=200", "-c", "shared_buffers=256MB"]
    hashes = {option(argv, "--config-hash")[0] for argv in (before, after, upgraded)}
    assert len(hashes) == 3
    assert option(upgraded, "--image") == ["postgres:17"]


def test_an_image_pinned_to_a_digest_boots_by_digest_under_the_config_hash_of_its_tag() -> None:
    """accessory.sh compares the content by image ID: pinning the tag that runs, or pushing it again, is no new
    config."""
    digest = "sha256:" + "5e" * 32
    tag = container.boot_args("acme", postgres.spec("acme", config.Postgres()))
    pinned = container.boot_args("acme", postgres.spec("acme", config.Postgres(image=f"postgres:16@{digest}")))

    assert option(pinned, "--image") == [f"postgres:16@{digest}"]
    assert option(pinned, "--config-hash") == option(tag, "--config-hash")


def test_the_major_version_asked_for_is_the_versions_or_the_image_tags_leading_number() -> None:
    assert config.Postgres().major() == defaults.POSTGRES_VERSION
    assert config.Postgres(version="17.2").major() == "17"
    assert config.Postgres(image="registry.acme.com/postgres:16.4-bookworm").major() == "16"
    assert config.Postgres(image=f"postgres@sha256:{'a' * 64}").major() is None


def test_the_plan_says_a_major_upgrade_in_words_and_nothing_when_the_major_stays() -> None:
    held = config.Postgres(version="17", hold_requests="30s")

    words = postgres.major_upgrade("acme", held, "15", backed_up=True, where="db")

    assert words == (
        "acme-postgres: Postgres 15 to 17: a backup to S3 first, then the cluster dumped by 15 and restored into a new "
        "data directory by 17, the roles' requests held meanwhile, each up to 30s; Postgres 15's data directory and "
        "the dump stay beside it; a failed step puts 15 back on its own data"
    )
    unheld = postgres.major_upgrade("acme", config.Postgres(version="17"), "16", backed_up=False, where="db")
    assert unheld is not None and "fail meanwhile (hold_requests holds them)" in unheld and "S3" not in unheld
    assert postgres.major_upgrade("acme", config.Postgres(version="17.1"), "17", backed_up=False, where="db") is None
    assert postgres.major_upgrade("acme", held, None, backed_up=False, where="db") is None, "no data yet"


def test_an_older_major_than_the_data_holds_is_refused_before_the_plan_naming_the_version_to_set() -> None:
    with pytest.raises(pulumi.RunError) as refused:
        postgres.major_upgrade("acme", config.Postgres(version="15"), "17", backed_up=False, where="db")

    assert str(refused.value) == (
        "quayside: accessories.postgres: the data directory on db holds Postgres 17's cluster, and postgres:15 runs "
        "15: a major version cannot go back; set version (or the image's tag) to 17 or later"
    )


def test_a_major_upgrade_has_the_time_of_a_dump_and_restore_and_two_more_boots() -> None:
    pg = config.Postgres(ready_timeout=60)
    plain = container.ContainerSpec(name="postgres", image="postgres:16", ready_timeout=60, stop_timeout=60)

    upgrade = container.boot_timeout(postgres.spec("acme", pg)) - container.boot_timeout(plain)

    assert upgrade == 2 * (60 + defaults.POSTGRES_STOP_SECONDS) + defaults.POSTGRES_DUMP_RESTORE_SECONDS


@pulumi.runtime.test
def test_delete_data_is_the_only_way_a_removal_deletes_the_data() -> pulumi.Output[None]:
    deployed = deploy(accessories(postgres={"delete_data": True}, backup=None, vector=None))
    assert deployed.postgres is not None and deployed.backup is None and deployed.vector is None

    def check(delete: str | None) -> None:
        assert delete is not None
        assert script_argv(delete, "accessory.sh")[-1] == "--delete-data"

    return deployed.postgres.ready.delete.apply(check)


# --- backups ----------------------------------------------------------------------------------------------------


@pulumi.runtime.test
def test_the_backup_image_is_built_on_the_server_from_the_postgres_image() -> pulumi.Output[None]:
    deployed = deploy()
    assert deployed.backup is not None and deployed.backup.image is not None

    def check(create: str | None) -> None:
        assert create is not None
        argv = script_argv(create, "backup.sh")
        assert argv == ["image", "--from", "postgres:16", "--tag", backup.image_tag("postgres:16")]

    return deployed.backup.image.create.apply(check)


@pulumi.runtime.test
def test_the_backup_container_runs_the_schedule_with_settings_in_argv_and_keys_on_stdin() -> pulumi.Output[None]:
    deployed = deploy()
    assert deployed.backup is not None
    command = deployed.backup.ready

    def check(values: list[Any]) -> None:
        create, stdin, stdin_secret = values
        argv = script_argv(create, "accessory.sh")
        assert option(argv, "--name") == ["backup"] and option(argv, "--image") == [backup.image_tag("postgres:16")]
        assert option(argv, "--env") == [
            "BACKUP_KEEP_DAYS=14", "BACKUP_S3_BUCKET=acme-backups", "BACKUP_S3_ENDPOINT=https://fsn1.example.com",
            "BACKUP_S3_PREFIX=acme/postgres", "BACKUP_S3_REGION=us-east-1", "BACKUP_SCHEDULE=@hourly",
            "PGDATABASE=acme", "PGHOST=acme-postgres", "PGPORT=5432", "PGUSER=acme",
        ]  # fmt: skip
        assert option(argv, "--volume") == ["/var/lib/quayside/acme/bin:/quayside/bin:ro"]
        assert option(argv, "--cmd") == ["bash", "/quayside/bin/backup-agent.sh", "schedule"]
        assert option(argv, "--network") == ["acme"] and "--data" not in argv
        assert stdin == (
            f"AWS_ACCESS_KEY_ID=AKIAEXAMPLE\nAWS_SECRET_ACCESS_KEY=s3-secret-key\nBACKUP_PASSPHRASE={PASSPHRASE}\n"
            f"PGPASSWORD={PASSWORD}\n"
        )
        assert all(value not in create for value in SECRETS.values())
        assert stdin_secret

    return pulumi.Output.all(command.create, command.stdin, is_secret(command.stdin)).apply(check)


def test_a_host_network_backup_reaches_postgres_on_its_loopback_port() -> None:
    settings = accessories(
        postgres={"publish": {"port": 15432}},
        backup={"s3": {"bucket": "acme-backups"}, "host_network": True, "image": "ghcr.io/acme/backup:1"},
    )
    assert settings.backup is not None and settings.postgres is not None
    argv = container.boot_args("acme", backup.spec("acme", settings.backup, settings.postgres))
    assert option(argv, "--network") == ["host"]
    assert "PGHOST=127.0.0.1" in option(argv, "--env") and "PGPORT=15432" in option(argv, "--env")
    assert option(argv, "--image") == ["ghcr.io/acme/backup:1"]
    assert not any(env.startswith("BACKUP_S3_ENDPOINT=") for env in option(argv, "--env"))


# --- Backups to a public key, with a write-only S3 key --------------------------------------------------------

PRIVATE_KEY_BLOCK = (
    "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nlFgEaxNhcBYJKwYBBAHaRw8BAQdA\n-----END PGP PRIVATE KEY BLOCK-----\n"
)


def to_public_key(**s3: Any) -> config.Accessories:
    return accessories(backup={
        "public_key": examples.BACKUP_PUBLIC_KEY, "s3": {"bucket": "acme-backups", **s3},
    })  # fmt: skip


@pulumi.runtime.test
def test_backups_to_a_public_key_mount_it_read_only_and_send_no_passphrase() -> pulumi.Output[None]:
    deployed = deploy(to_public_key())
    assert deployed.backup is not None
    command = deployed.backup.ready

    def check(values: list[Any]) -> None:
        create, stdin = values
        argv = script_argv(create, "accessory.sh")
        [mounted] = option(argv, "--file")
        path, _, content = mounted.partition("=")
        assert path == "/quayside/backup-public-key.asc"
        assert base64.b64decode(content).decode() == examples.BACKUP_PUBLIC_KEY
        assert "BACKUP_PUBLIC_KEY_FILE=/quayside/backup-public-key.asc" in option(argv, "--env")
        assert "BACKUP_PASSPHRASE" not in stdin and "BACKUP_S3_WRITE_ONLY=true" not in option(argv, "--env")

    return pulumi.Output.all(command.create, command.stdin).apply(check)


def test_a_write_only_key_is_said_to_the_backup_container() -> None:
    settings = to_public_key(write_only=True)
    assert settings.backup is not None and settings.postgres is not None
    argv = container.boot_args("acme", backup.spec("acme", settings.backup, settings.postgres))
    assert "BACKUP_S3_WRITE_ONLY=true" in option(argv, "--env")


def test_with_a_public_key_the_passphrase_is_not_needed() -> None:
    stack = {**examples.smallest(), "accessories": to_public_key().model_dump(exclude_none=True)}
    without = config.parse(stack, secrets_set={"ssh_private_key", *SECRETS} - {"backup_passphrase"})
    assert "backup_passphrase" not in without.secret_names()


@pulumi.runtime.test
def test_with_a_public_key_a_passphrase_still_set_is_sent_for_the_backups_made_before() -> pulumi.Output[None]:
    stack = {**examples.smallest(), "accessories": to_public_key().model_dump(exclude_none=True)}
    with_it = config.parse(stack, secrets_set={"ssh_private_key", *SECRETS})
    assert "backup_passphrase" in with_it.secret_names()
    host_ready = remote.Command("acme-host-docker", connection=CONNECTION, create="true")
    deployed = wiring.deploy_accessories(
        with_it, {config.ONE_SERVER: wiring.Site(CONNECTION, host_ready, None)}, secret
    )
    assert deployed.backup is not None

    def check(stdin: str | None) -> None:
        assert f"BACKUP_PASSPHRASE={PASSPHRASE}\n" in (stdin or "")

    return deployed.backup.ready.stdin.apply(check)


@pytest.mark.parametrize(
    ("public_key", "message"),
    [
        (
            PRIVATE_KEY_BLOCK,
            "this is a private key, which must never be in the stack: give its public half (gpg --armor --export KEY)",
        ),
        ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHq9", "this is not an ASCII-armored OpenPGP public key"),
        (
            "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nbm90IGEga2V5\n-----END PGP PUBLIC KEY BLOCK-----",
            "this is not an ASCII-armored OpenPGP public key",
        ),
    ],
)
def test_a_backup_public_key_that_is_none_is_refused_naming_the_key(public_key: str, message: str) -> None:
    with pytest.raises(config.ConfigError) as raised:
        parsed({"postgres": {}, "backup": {"public_key": public_key, "s3": {"bucket": "acme-backups"}}})
    assert str(raised.value).startswith(f"quayside config: accessories.backup.public_key: {message}"), raised.value
    assert "PRIVATE KEY BLOCK-----\nlFg" not in str(raised.value)


def test_keep_days_with_a_write_only_key_is_refused_the_bucket_keeps_the_backups() -> None:
    with pytest.raises(config.ConfigError, match=r"keep_days: with s3\.write_only quayside deletes no backup"):
        parsed({"postgres": {}, "backup": {"keep_days": 7, "s3": {"bucket": "acme-backups", "write_only": True}}})


def test_a_named_backup_image_is_not_built() -> None:
    deployed = deploy(accessories(backup={"s3": {"bucket": "acme-backups"}, "image": "ghcr.io/acme/backup:1"}))
    assert deployed.backup is not None and deployed.backup.image is None


def test_the_backup_image_tag_names_its_base_as_the_config_words_it_and_the_recipe() -> None:
    recipe = hashlib.sha256((ROOT / "components" / "scripts" / "backup.sh").read_bytes()).hexdigest()[:8]
    assert backup.image_tag("postgres:16") == f"quayside/backup:postgres-16-{recipe}"
    assert backup.image_tag("quayside-test/postgres:15") == f"quayside/backup:quayside-test-postgres-15-{recipe}"
    # The digest a tag is pinned to is no part of it: new content is built again under the same tag.
    assert backup.image_tag("postgres:16@sha256:" + "a" * 64) == f"quayside/backup:postgres-16-{recipe}"
    assert backup.image_tag("127.0.0.1:5000/pg@sha256:" + "a" * 64) == f"quayside/backup:127.0.0.1-5000-pg-{recipe}"


# --- Vector -----------------------------------------------------------------------------------------------------


def test_the_vector_config_collects_the_services_containers_and_ships_them_with_a_bearer_token() -> None:
    generated = vector.config("acme", config.Vector())
    source = generated["sources"]["containers"]
    sink = generated["sinks"]["betterstack"]

    assert source == {
        "type": "docker_logs",
        "docker_host": "unix:///var/run/docker.sock",
        "include_labels": ["quayside.service=acme"],
        "exclude_containers": ["acme-vector"],
    }
    assert sink["type"] == "http" and sink["inputs"] == ["containers"]
    assert sink["uri"] == "https://in.logs.betterstack.com" and sink["encoding"] == {"codec": "json"}
    assert sink["auth"] == {"strategy": "bearer", "token": "${BETTERSTACK_TOKEN}"}
    assert generated["data_dir"] == "/var/lib/vector"
    text = vector.config_text("acme", config.Vector(ingest_url="https://s1234.eu-nbg-2.betterstackdata.com"))
    assert yaml.safe_load(text)["sinks"]["betterstack"]["uri"] == "https://s1234.eu-nbg-2.betterstackdata.com"


@pulumi.runtime.test
def test_vector_runs_with_its_config_and_the_docker_socket_read_only_and_the_token_on_stdin() -> pulumi.Output[None]:
    deployed = deploy()
    assert deployed.vector is not None
    command = deployed.vector.ready

    def check(values: list[Any]) -> None:
        create, stdin, stdin_secret = values
        argv = script_argv(create, "accessory.sh")
        encoded = base64.b64encode(vector.config_text("acme", config.Vector()).encode()).decode()
        options = [
            "--network", "acme",
            # Vector 0.57 reads ${BETTERSTACK_TOKEN} in its config only when told to.
            "--env", "VECTOR_DANGEROUSLY_ALLOW_ENV_VAR_INTERPOLATION=true",
            "--data", "/var/lib/vector",
            "--volume", "/var/run/docker.sock:/var/run/docker.sock:ro",
            "--file", f"/etc/vector/vector.yaml={encoded}",
            "--ready-timeout", "120", "--readiness-delay", "5", "--stop-timeout", "30",
            "--cmd", "--config", "--cmd", "/etc/vector/vector.yaml",
        ]  # fmt: skip
        assert argv == [
            "boot", "--service", "acme", "--name", "vector", "--image", defaults.VECTOR_IMAGE,
            # The service's own network is no part of the hash: it names no choice of the config.
            "--config-hash", container.config_hash([defaults.VECTOR_IMAGE, *options[2:]]), *options,
        ]  # fmt: skip
        assert TOKEN not in create and stdin == f"BETTERSTACK_TOKEN={TOKEN}\n" and stdin_secret

    return pulumi.Output.all(command.create, command.stdin, is_secret(command.stdin)).apply(check)


# --- the wiring and the config ----------------------------------------------------------------------------------


@pulumi.runtime.test
def test_each_accessory_is_a_component_whose_commands_are_its_children() -> pulumi.Output[None]:
    deployed = deploy()
    assert deployed.postgres and deployed.backup and deployed.backup.image and deployed.vector
    commands = [deployed.postgres.ready, deployed.backup.image, deployed.backup.ready, deployed.vector.ready]

    def check(urns: list[str]) -> None:
        assert [urn.split("::")[-2:] for urn in urns] == [
            ["quayside:accessories:Postgres$command:remote:Command", "acme-postgres-container"],
            ["quayside:accessories:Backup$command:remote:Command", "acme-backup-image"],
            ["quayside:accessories:Backup$command:remote:Command", "acme-backup-container"],
            ["quayside:accessories:Vector$command:remote:Command", "acme-vector-container"],
        ]

    return pulumi.Output.all(*(command.urn for command in commands)).apply(check)


def test_no_accessories_create_nothing() -> None:
    host_ready = remote.Command("acme-host-docker", connection=CONNECTION, create="true")
    sites = {config.ONE_SERVER: wiring.Site(CONNECTION, host_ready, None)}
    deployed = wiring.deploy_accessories(one_server_stack(None), sites, secret)
    assert deployed.ready == [] and deployed.database_url is None and deployed.outputs() == {}


def test_each_accessory_names_the_secrets_it_needs() -> None:
    assert accessories().secret_names() == set(SECRETS)
    assert parsed({"vector": {}}).secret_names() == {"betterstack_token"}


def test_the_design_example_parses_with_defaults() -> None:
    parsed = accessories()
    assert parsed.postgres is not None and parsed.backup is not None and parsed.vector is not None
    assert parsed.postgres.image_ref() == "postgres:16" and parsed.postgres.user_for("acme") == "acme"
    assert parsed.backup.s3.prefix_for("acme") == "acme/postgres" and parsed.backup.s3.region == "us-east-1"
    assert parsed.vector.image == defaults.VECTOR_IMAGE


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"postgress": {}}, "accessories.postgress: unknown key; allowed: postgres, backup, vector"),
        (
            {"postgres": {"passwd": "x"}},
            "accessories.postgres.passwd: unknown key; allowed: version, image, user, database, settings, env, publish, memory, ready_timeout, hold_requests, delete_data, server",
        ),
        (
            {"postgres": {"version": "16 beta"}},
            "accessories.postgres.version: must be letters, digits, dot, dash and underscore, up to 64 (v1.4.2) (got '16 beta')",
        ),
        (
            {"postgres": {"version": 9}},
            "accessories.postgres.version: Postgres 9 is not supported: use 14 or newer (default 16)",
        ),
        (
            {"postgres": {"image": "postgres"}},
            "accessories.postgres.image: 'postgres' has no tag or digest: pin one (repo:1.4 or repo@sha256:...)",
        ),
        (
            {"postgres": {"user": "Acme"}},
            "accessories.postgres.user: must be a lowercase Postgres name: letters, digits and underscores, up to 63 (acme_app) (got 'Acme')",
        ),
        (
            {"postgres": {"publish": {"port": 70000}}},
            "accessories.postgres.publish.port: Input should be less than or equal to 65535 (got 70000)",
        ),
        (
            {"postgres": {"publish": {"port": 5432, "bind": "0.0.0.0"}}},
            "accessories.postgres.publish.bind: unknown key; allowed: port",
        ),
        (
            {"postgres": {"env": {"POSTGRES_PASSWORD": "x"}}},
            "accessories.postgres.env: POSTGRES_PASSWORD is set by quayside (use user, database, and the postgres_password secret)",
        ),
        (
            {"postgres": {"settings": {"Max Conn": 1}}},
            "accessories.postgres.settings.Max Conn (name 'Max Conn'): must be a Postgres setting name (max_connections, shared_buffers) (got 'Max Conn')",
        ),
        (
            {"backup": {"s3": {"bucket": "b-1"}}},
            "accessories.backup: needs accessories.postgres: it backs up that database",
        ),
        ({"postgres": {}, "backup": {}}, "accessories.backup.s3: required"),
        (
            {"postgres": {}, "backup": {"s3": {"bucket": "Acme_Backups"}}},
            "accessories.backup.s3.bucket: must be an S3 bucket name: lowercase letters, digits, dots and dashes (acme-backups) (got 'Acme_Backups')",
        ),
        (
            {"postgres": {}, "backup": {"s3": {"bucket": "ab1", "endpoint": "fsn1.example.com"}}},
            "accessories.backup.s3.endpoint: must be an http(s) URL like https://fsn1.your-objectstorage.com (got 'fsn1.example.com')",
        ),
        (
            {"postgres": {}, "backup": {"s3": {"bucket": "ab1", "key": "x"}}},
            "accessories.backup.s3.key: unknown key; allowed: bucket, endpoint, region, prefix, write_only",
        ),
        (
            {"postgres": {}, "backup": {"schedule": "hourly", "s3": {"bucket": "ab1"}}},
            "accessories.backup.schedule: 'hourly' is not @hourly, @daily, @weekly or five cron fields like '0 3 * * *'",
        ),
        (
            {"postgres": {}, "backup": {"schedule": "0 25 * * *", "s3": {"bucket": "ab1"}}},
            "accessories.backup.schedule: '0 25 * * *': hour 25 is outside 0-23",
        ),
        (
            {"postgres": {}, "backup": {"schedule": "*/0 * * * *", "s3": {"bucket": "ab1"}}},
            "accessories.backup.schedule: '*/0 * * * *': a step of 0 in the minute",
        ),
        (
            {"postgres": {}, "backup": {"keep_days": 0, "s3": {"bucket": "ab1"}}},
            "accessories.backup.keep_days: Input should be greater than or equal to 1 (got 0)",
        ),
        (
            {"postgres": {}, "backup": {"host_network": True, "s3": {"bucket": "ab1"}}},
            "accessories.backup: host_network needs accessories.postgres.publish: {port: N} to reach the database",
        ),
        ({"vector": {"sink": "datadog"}}, "accessories.vector.sink: Input should be 'betterstack' (got 'datadog')"),
        (
            {"vector": {"ingest_url": "http://in.logs.betterstack.com"}},
            "accessories.vector.ingest_url: must be an https URL like https://in.logs.betterstack.com (got 'http://in.logs.betterstack.com')",
        ),
        (
            {"vector": {"image": "timberio/vector:latest extra"}},
            "accessories.vector.image: 'timberio/vector:latest extra' is not an image reference like registry/repo:tag or repo@sha256:<64 hex>",
        ),
    ],
)
def test_a_malformed_accessories_section_fails_with_one_line_naming_the_key(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(config.ConfigError) as raised:
        parsed(raw)
    assert str(raised.value) == f"quayside config: {message}"
    assert "\n" not in str(raised.value)


def test_schedules_as_cron_takes_them() -> None:
    for schedule in ("@hourly", "@daily", "@weekly", "0 3 * * *", "*/15 * * * 1-5", "30 2 1,15 * 0", "0 0 * * 7"):
        backup_section = {"schedule": schedule, "s3": {"bucket": "ab1"}}
        assert parsed({"postgres": {}, "backup": backup_section}).backup is not None
