"""Hostile input (issue 23): a config that would leak a secret, put an option where docker or ssh reads a positional
argument, or be accepted and then fail late or do harm, is refused before anything is touched, in one line naming
the key and saying what to change. docs/hardening.md shows each case here with its exact line."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any, Final, NamedTuple

import pytest

from components import config, image_build
from components.config import examples
from tests.unit.test_config import SECRETS, Mutation, set_in, several

ROOT: Final = Path(__file__).resolve().parents[2]
HARDENING_DOC: Final = ROOT / "docs" / "hardening.md"
AGENT: Final = ROOT / "components" / "scripts" / "backup-agent.sh"
PRIVATE_KEY_BLOCK: Final = "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nlFgEaxNh\n-----END PGP PRIVATE KEY BLOCK-----\n"
PROMPT_OR_STDIN = '(it prompts; or printf %s "$VALUE" | pulumi config set --secret {0})'


class Case(NamedTuple):
    item: str  # the part of issue 23: A secrets, B options, C late failures, E names, F images
    given: str  # the input, as docs/hardening.md shows it
    mutation: Mutation
    said: str  # the whole line quayside says


def renamed_role(old: str, new: str) -> Mutation:
    def mutate(stack: dict[str, Any]) -> None:
        stack["roles"][new] = stack["roles"].pop(old)

    return mutate


def env(role: str, **keys: Any) -> Mutation:
    return set_in(f"roles.{role}.env", keys)


CASES: Final = [
    Case("A", "roles.web.env.secret: [ssh_private_key]", env("web", secret=["ssh_private_key"]),
         "roles.web.env.secret: ssh_private_key is quayside's own secret (the servers' SSH key), not the app's: give "
         "the app a secret of its own"),
    Case("A", "roles.web.env.secret: [registry_password]", env("web", secret=["registry_password"]),
         "roles.web.env.secret: registry_password is quayside's own secret (the registry's password), not the app's: "
         "give the app a secret of its own"),
    Case("A", "roles.web.env.secret: [backup_passphrase]", env("web", secret=["backup_passphrase"]),
         "roles.web.env.secret: backup_passphrase is quayside's own secret (the backups' passphrase), not the app's: "
         "give the app a secret of its own"),
    Case("A", "roles.web.env.secret: [s3_secret_access_key]", env("web", secret=["s3_secret_access_key"]),
         "roles.web.env.secret: s3_secret_access_key is quayside's own secret (the backups' S3 key), not the app's: "
         "give the app a secret of its own"),
    Case("A", "roles.web.env.secret: [betterstack_token]", env("web", secret=["betterstack_token"]),
         "roles.web.env.secret: betterstack_token is quayside's own secret (Better Stack's token), not the app's: "
         "give the app a secret of its own"),
    Case("A", "roles.web.env.clear: {REDIS_URL: 'redis://:hunter2@cache:6379'}",
         env("web", clear={"REDIS_URL": "redis://:hunter2@cache:6379"}),
         "roles.web.env.clear: REDIS_URL holds a password in a URL (user:password@): list REDIS_URL in env.secret "
         "instead, and set it with pulumi config set --secret REDIS_URL " + PROMPT_OR_STDIN.format("REDIS_URL")),
    Case("A", "roles.web.env.clear: {DATABASE_URL: 'postgres://acme@db/acme'} (with accessories.postgres)",
         env("web", clear={"DATABASE_URL": "postgres://acme@db/acme"}),
         "roles.web.env.clear: DATABASE_URL is set by quayside from accessories.postgres: remove it from env.clear "
         "(list it in env.secret to get it)"),
    Case("A", "accessories.backup.public_key: the private key's block (-----BEGIN PGP PRIVATE KEY BLOCK-----...)",
         set_in("accessories.backup.public_key", PRIVATE_KEY_BLOCK),
         "accessories.backup.public_key: this is a private key, which must never be in the stack: give its public "
         "half (gpg --armor --export KEY)"),
    Case("B", "roles.web.image: '--privileged:1'", set_in("roles.web.image", "--privileged:1"),
         "roles.web.image: '--privileged:1' is not an image reference like registry/repo:tag or repo@sha256:<64 hex>"),
    Case("B", "roles.web.image: '-H.evil:1/web:1'", set_in("roles.web.image", "-H.evil:1/web:1"),
         "roles.web.image: '-H.evil:1/web:1' is not an image reference like registry/repo:tag or repo@sha256:<64 hex>"),
    Case("B", "registry.server: '--config=/tmp'", set_in("registry.server", "--config=/tmp"),
         "registry.server: must be a registry host like ghcr.io or registry.acme.com:5000 (got '--config=/tmp')"),
    Case("B", "proxy.image: '--entrypoint=sh'", set_in("proxy.image", "--entrypoint=sh"),
         "proxy.image: '--entrypoint=sh' is not an image name like registry.acme.com/kamal-proxy (its tag goes in "
         "version)"),
    Case("B", "proxy.image: 'basecamp/kamal-proxy:latest'", set_in("proxy.image", "basecamp/kamal-proxy:latest"),
         "proxy.image: 'basecamp/kamal-proxy:latest' has a tag: give the image's name here and the tag as version"),
    Case("B", "server.host: '-oProxyCommand=sh'", set_in("server.host", "-oProxyCommand=sh"),
         "server.host: must be a lowercase hostname like deploy.acme.com, or an IP address like 203.0.113.7 (got "
         "'-oProxyCommand=sh')"),
    Case("B", "accessories.postgres.image: '-v:16'", set_in("accessories.postgres.image", "-v:16"),
         "accessories.postgres.image: '-v:16' is not an image reference like registry/repo:tag or repo@sha256:<64 "
         "hex>"),
    Case("C", "accessories.backup.schedule: '0 3 30 2 *'", set_in("accessories.backup.schedule", "0 3 30 2 *"),
         "accessories.backup.schedule: '0 3 30 2 *' never fires: no day 30 in February; choose days every month has "
         "(1-28), or other months"),
    Case("C", "accessories.backup.schedule: '0 3 31 4,6,9,11 *'",
         set_in("accessories.backup.schedule", "0 3 31 4,6,9,11 *"),
         "accessories.backup.schedule: '0 3 31 4,6,9,11 *' never fires: no day 31 in April, June, September, "
         "November; choose days every month has (1-28), or other months"),
    Case("C", "accessories.backup.schedule: '0 3 * * 5-1'", set_in("accessories.backup.schedule", "0 3 * * 5-1"),
         "accessories.backup.schedule: '0 3 * * 5-1': the day of week range 5-1 runs backwards: write 1-5"),
    Case("C", "accessories.backup.keep_days: 7 with accessories.backup.s3.write_only: true",
         lambda stack: [set_in("accessories.backup.keep_days", 7)(stack),
                        set_in("accessories.backup.s3.write_only", True)(stack)],
         "accessories.backup: keep_days: with s3.write_only quayside deletes no backup (the key cannot): expire them "
         "with the bucket's lifecycle rule and remove keep_days"),
    Case("C", "roles.web.deploy_timeout: 2000m", set_in("roles.web.deploy_timeout", "2000m"),
         "roles.web.deploy_timeout: 2000m is longer than 60m, the most a deploy step waits: shorten it"),
    Case("C", "roles.web.drain_timeout: 999999999s", set_in("roles.web.drain_timeout", "999999999s"),
         "roles.web.drain_timeout: 999999999s is longer than 60m, the most a deploy step waits: shorten it"),
    Case("C", "roles.web.memory: 1k", set_in("roles.web.memory", "1k"),
         "roles.web.memory: 1k is less than 6m, the least memory limit Docker takes: give 6m or more"),
    Case("C", "accessories.postgres.memory: 4096g", set_in("accessories.postgres.memory", "4096g"),
         "accessories.postgres.memory: 4096g is more than 1024g (1 TiB), more than a server has: give less"),
    Case("C", "proxy.bind: localhost", set_in("proxy.bind", "localhost"),
         "proxy.bind: must be an IPv4 address like 0.0.0.0 or 127.0.0.1 (got 'localhost')"),
    Case("C", "proxy.bind: 300.1.1.1", set_in("proxy.bind", "300.1.1.1"),
         "proxy.bind: '300.1.1.1' is not an IPv4 address like 0.0.0.0 or 127.0.0.1"),
    Case("C", "proxy.http_port: 22 (the server's SSH port)", set_in("proxy.http_port", 22),
         "proxy.http_port: 22 is the server's SSH port: give the proxy another port"),
    Case("C", "proxy.https_port: 15432 with accessories.postgres.publish.port: 15432",
         lambda stack: [set_in("proxy.https_port", 15432)(stack),
                        set_in("accessories.postgres.publish", {"port": 15432})(stack)],
         "proxy.https_port: 15432 is accessories.postgres.publish.port on the server: give the proxy another port"),
    Case("C", "accessories.postgres.publish.port: 2222 on a server whose SSH port is 2222",
         lambda stack: [set_in("server.port", 2222)(stack),
                        set_in("accessories.postgres.publish", {"port": 2222})(stack)],
         "accessories.postgres.publish.port: 2222 is the server's SSH port: choose another port"),
    Case("C", "proxy.http_port: 22 on Hetzner server app-1 (sshd on 22)",
         several(set_in("proxy", {"http_port": 22}), set_in("accessories.postgres.server", "db"),
                 servers={name: {"provider": "hetzner", "ssh_public_key": "ssh-ed25519 AAAA deploy@acme"}
                          for name in ("app-1", "db")}),
         "proxy.http_port: 22 is server app-1's SSH port: give the proxy another port"),
    Case("C", "roles.backend.image.dockerfile: ../../etc/Dockerfile",
         set_in("roles.backend.image.dockerfile", "../../etc/Dockerfile"),
         "roles.backend.image.dockerfile: ../../etc/Dockerfile is outside the context: give a path inside it, "
         "relative to it (docker/Dockerfile)"),
    Case("C", "roles.backend.image.dockerfile: /etc/passwd", set_in("roles.backend.image.dockerfile", "/etc/passwd"),
         "roles.backend.image.dockerfile: /etc/passwd is outside the context: give a path inside it, relative to it "
         "(docker/Dockerfile)"),
    Case("C", "roles.web.volumes: ['./data:/data']", set_in("roles.web.volumes", ["./data:/data"]),
         "roles.web.volumes.0: must be name:/path or /host/dir:/path, optionally :ro (data:/var/lib/app): a Docker "
         "volume's name (letters, digits, _ . -; two or more) or an absolute host path (got './data:/data')"),
    Case("C", "roles.web.volumes: ['srv/data:/data']", set_in("roles.web.volumes", ["srv/data:/data"]),
         "roles.web.volumes.0: must be name:/path or /host/dir:/path, optionally :ro (data:/var/lib/app): a Docker "
         "volume's name (letters, digits, _ . -; two or more) or an absolute host path (got 'srv/data:/data')"),
    Case("C", "accessories.postgres.image: 'postgres:latest'", set_in("accessories.postgres.image", "postgres:latest"),
         "accessories.postgres.image: 'postgres:latest' names no version: pin one, its major version at least "
         "(postgres:16)"),
    Case("C", "accessories.postgres.image: postgres", set_in("accessories.postgres.image", "postgres"),
         "accessories.postgres.image: 'postgres' has no tag or digest: pin one (repo:1.4 or repo@sha256:...)"),
    Case("C", "accessories.vector.image: 'timberio/vector:nightly-debian'",
         set_in("accessories.vector.image", "timberio/vector:nightly-debian"),
         "accessories.vector.image: 'timberio/vector:nightly-debian' names no version: pin one, its major version at "
         "least (timberio/vector:16)"),
    Case("C", "accessories.postgres.version: latest", set_in("accessories.postgres.version", "latest"),
         "accessories.postgres.version: latest names no version: give Postgres's major version at least (16)"),
    Case("E", "roles: {host: ...}", renamed_role("web", "host"),
         "roles.host: quayside names its own parts on the server 'host' and 'accessory-...': name the role otherwise "
         "(web, worker, ...)"),
    Case("E", "roles: {accessory-postgres: ...}", renamed_role("web", "accessory-postgres"),
         "roles.accessory-postgres: quayside names its own parts on the server 'host' and 'accessory-...': name the "
         "role otherwise (web, worker, ...)"),
    Case("F", "proxy.digest: sha256:abc", set_in("proxy.digest", "sha256:abc"),
         "proxy.digest: must be an image digest: sha256: and 64 lowercase hex digits, as docker images --digests "
         "shows it (got 'sha256:abc')"),
]  # fmt: skip


def refusal(mutation: Mutation) -> str:
    stack = examples.saas()
    mutation(stack)
    with pytest.raises(config.ConfigError) as raised:
        config.parse(stack, secrets_set=SECRETS | {"REDIS_URL"})
    return str(raised.value)


@pytest.mark.parametrize("case", CASES, ids=[case.given for case in CASES])
def test_a_hostile_config_is_refused_in_one_line_naming_the_key(case: Case) -> None:
    assert refusal(case.mutation) == f"quayside config: {case.said}"


@pytest.mark.parametrize(
    "mutation",
    [
        set_in("accessories.postgres.image", "postgres:16"),
        set_in("accessories.postgres.image", "registry.acme.com:5000/postgres:16.6-bookworm"),
        set_in("accessories.postgres.image", "postgres@sha256:" + "0" * 64),
        set_in("accessories.vector.image", "timberio/vector:0.46.1-debian"),
        set_in("accessories.backup.schedule", "0 3 29 2 *"),  # every fourth year
        set_in("accessories.backup.schedule", "0 3 31 * 1"),  # on the 31st or on Mondays
        set_in("roles.web.env", {"clear": {"REDIS_URL": "redis://cache:6379", "SENTRY_DSN": "https://k@sentry.io/1"}}),
        set_in("roles.web.env", {"secret": ["postgres_password"]}),
        set_in("roles.web.volumes", ["uploads:/app/uploads", "/srv/acme:/app/config:ro"]),
        set_in("roles.web.memory", "6m"),
        set_in("roles.web.deploy_timeout", "60m"),
        set_in("proxy.bind", "127.0.0.1"),
        set_in("roles.web.image", "127.0.0.1:5000/acme/web__x:v7"),
        set_in("server.host", "2001:db8::7"),
    ],
)
def test_what_comes_close_is_accepted(mutation: Mutation) -> None:
    stack = examples.saas()
    mutation(stack)
    config.parse(stack, secrets_set=SECRETS | {"postgres_password"})


def pulumi_values(stack: dict[str, Any]) -> dict[str, str]:
    """The stack's keys as Pulumi hands them to the program (objects as JSON), with its secrets."""
    values = {f"quayside:{key}": value if isinstance(value, str) else json.dumps(value) for key, value in stack.items()}
    return values | {f"quayside:{name}": "hunter2" for name in SECRETS}


def test_a_secret_set_without_secret_is_refused_saying_how_to_set_it() -> None:
    values = pulumi_values(examples.saas())
    stored_as_secrets = {f"quayside:{name}" for name in SECRETS - {"postgres_password"}}

    with pytest.raises(config.ConfigError) as raised:
        config.load(values, secret_keys=stored_as_secrets)

    assert str(raised.value) == (
        "quayside config: postgres_password is in plain text in the stack file: set it again as a secret (which "
        "replaces it): pulumi config set --secret postgres_password " + PROMPT_OR_STDIN.format("postgres_password")
    )
    assert config.load(values, secret_keys=stored_as_secrets | {"quayside:postgres_password"}).accessories


def test_a_secret_no_key_names_any_more_is_refused_saying_how_to_remove_it() -> None:
    values = pulumi_values(examples.saas()) | {"quayside:WEB_PEM": "-----BEGIN CERTIFICATE-----"}
    stored_as_secrets = {f"quayside:{name}" for name in SECRETS} | {"quayside:WEB_PEM"}

    with pytest.raises(config.ConfigError) as raised:
        config.load(values, secret_keys=stored_as_secrets)

    assert str(raised.value) == (
        "quayside config: WEB_PEM is a secret no key of the stack names: remove it (pulumi config rm WEB_PEM), or "
        "name it where it is meant to be read"
    )


def test_the_passphrase_of_backups_made_before_a_public_key_may_stay_set() -> None:
    stack = examples.saas()
    stack["accessories"]["backup"]["public_key"] = examples.BACKUP_PUBLIC_KEY
    values = pulumi_values(stack)

    loaded = config.load(values, secret_keys={f"quayside:{name}" for name in SECRETS} | {"quayside:postgres_password"})

    assert "backup_passphrase" in loaded.secret_names()
    without = {key: value for key, value in values.items() if key != "quayside:backup_passphrase"}
    assert (
        "backup_passphrase"
        not in config.load(without, secret_keys={f"quayside:{name}" for name in SECRETS}).secret_names()
    )


def test_the_program_reads_which_keys_pulumi_stores_as_secrets() -> None:
    source = (ROOT / "__main__.py").read_text()
    assert "is_config_secret" in source and "secret_keys=secret_keys" in source


def test_no_hint_shows_a_secret_value_on_the_command_line() -> None:
    texts = [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *ROOT.glob("Pulumi.*.yaml"),
             *(ROOT / "components").rglob("*.py"), *(ROOT / "quayside_cli").rglob("*.py")]  # fmt: skip
    # `pulumi config set --secret KEY VALUE`: a word after the key that is neither an option, a redirection, a pipe,
    # a comment nor the end of a sentence or code span.
    on_the_line = re.compile(r"pulumi config set --secret [\w:]+( -s \S+)? (?![-<|#(`;])[^\s`)]")
    found = [f"{path.name}: {match[0]}" for path in texts for match in on_the_line.finditer(path.read_text())]
    assert found == []


def test_a_build_context_above_the_project_directory_is_refused(tmp_path: Path) -> None:
    project = tmp_path / "infra"
    (project / "web").mkdir(parents=True)
    stack = examples.saas()
    stack["roles"]["backend"]["image"] = {"context": ".."}

    with pytest.raises(config.ConfigError) as raised:
        image_build.check_build_inputs(config.parse(stack, secrets_set=SECRETS), project)

    assert str(raised.value) == (
        f"quayside config: roles.backend.image.context: .. is a directory above the project directory ({project}): "
        "give the app's own directory (., web, ../web)"
    )


@pytest.mark.parametrize(("when", "due"), [("00 03 05 01 5", True), ("00 03 07 01 0", True), ("00 03 04 01 4", False)])
def test_the_backup_agent_reads_a_weekday_range_to_7_as_ending_on_sunday(when: str, due: bool) -> None:
    done = subprocess.run(["bash", str(AGENT), "due", "0 3 * * 5-7", when], capture_output=True, text=True, timeout=10)
    assert (done.returncode == 0) == due, done.stderr


def test_docs_hardening_md_shows_each_case_with_its_line() -> None:
    doc = HARDENING_DOC.read_text()
    missing = [case.given for case in CASES if f"`quayside config: {case.said}`".replace("|", "\\|") not in doc]
    assert missing == [], "docs/hardening.md lacks these cases, or their lines differ"
