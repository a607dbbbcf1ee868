"""quayside's outputs are a contract other stacks read (docs/outputs.md): through the real engine, quayside's own
program is deployed onto the loopback server (a proxied role and Postgres), and a second stack on the same
backend reads `server_host`, `proxy_version`, `roles.<name>.urls/version/image` and `database_url` with a
`pulumi.StackReference`, as the docs show. `database_url` arrives secret, stays secret in the reading stack, and
its password is in no file of the backend in plain text. The URL reaches Postgres from the service's network.

The service has a name of its own, so the `demo` service on the same server is never touched. Fails (never
skips) without the CLI, the plugins or the test server: scripts/setup installs and starts them.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote, unquote, urlsplit

import pulumi
import pytest
import yaml
from pulumi import automation as auto

from tests.support import images
from tests.support.pulumi_engine import PULUMI_HOME, ROOT, LocalBackend, QuaysideProject, pulumi_cli, secret
from tests.support.stacks import pinned_version, registry_digest, registry_postgres
from tests.support.testbed import TestServer

SERVICE: Final = f"ref-{secrets.token_hex(4)}"
STACK: Final = "outputs"
READER: Final = "reader"
# Characters a URL must escape: the URL holds it quoted, and neither form may be stored in plain text.
PASSWORD: Final = f"pw/{secrets.token_hex(10)}@{secrets.token_hex(4)}"
DATABASE: Final = SERVICE.replace("-", "_")  # user and database default to the service name, - as _


def quayside_config(test_server: TestServer, registry: str) -> dict[str, Any]:
    local = yaml.safe_load((ROOT / "Pulumi.local.yaml").read_text())["config"]
    return {
        "quayside:service": SERVICE,
        "quayside:server": {**local["quayside:server"], "private_key_file": str(test_server.private_key)},
        "quayside:proxy": local["quayside:proxy"],  # the shared kamal-proxy's own options: it is not rebooted
        "quayside:roles": {
            "web": {
                "image": f"{registry}/quayside-test/app:v1",
                "hosts": [f"web.{SERVICE}.localhost"],
                "health": {"path": "/up"},
                "env": {"secret": ["DATABASE_URL"]},
            },
        },
        "quayside:accessories": {"postgres": {"image": registry_postgres(), "delete_data": True}},
    }


async def reader() -> None:
    """Another project's program, written as docs/outputs.md shows it."""
    quayside = pulumi.StackReference(LocalBackend.reference_name("quayside", STACK))
    roles = quayside.require_output("roles")
    database_url = quayside.get_output("database_url")
    pulumi.export("server_host", quayside.require_output("server_host"))
    pulumi.export("proxy_version", quayside.get_output("proxy_version"))
    pulumi.export("web_urls", roles.apply(lambda roles: roles["web"]["urls"]))
    pulumi.export("web_version", roles.apply(lambda roles: roles["web"]["version"]))
    pulumi.export("web_image", roles.apply(lambda roles: roles["web"]["image"]))
    pulumi.export("database_url", database_url)
    pulumi.export("database_host", database_url.apply(lambda url: urlsplit(url).hostname))
    pulumi.export("missing_is_none", quayside.get_output("no_such_output").apply(lambda value: value is None))
    plain, hidden = await quayside.get_output_details("server_host"), await quayside.get_output_details("database_url")
    pulumi.export("details_plain_in_value", plain.value is not None and plain.secret_value is None)
    pulumi.export("details_secret_in_secret_value", hidden.value is None and hidden.secret_value is not None)


def requires_a_missing_output() -> None:
    quayside = pulumi.StackReference(LocalBackend.reference_name("quayside", STACK))
    pulumi.export("nothing", quayside.require_output("no_such_output"))


@dataclass
class Stacks:
    project: QuaysideProject
    quayside: auto.Stack
    reader: auto.Stack
    read: MutableMapping[str, auto.OutputValue]


@pytest.fixture(scope="module")
def stacks(tmp_path_factory: pytest.TempPathFactory, test_server: TestServer, registry: str) -> Iterator[Stacks]:
    project = QuaysideProject.create(tmp_path_factory.mktemp("outputs"))
    quayside = project.stack(STACK, quayside_config(test_server, registry))
    quayside.set_config("quayside:postgres_password", secret(PASSWORD))
    reading = project.backend.stack("consumer", READER, reader)
    try:
        quayside.up(on_output=print, color="never")
        read = reading.up(on_output=print, color="never").outputs
        yield Stacks(project, quayside, reading, read)
    finally:
        reading.destroy(on_output=print, color="never")
        quayside.destroy(on_output=print, color="never")


def test_the_reading_stack_gets_the_server_proxy_and_each_role_in_plain_text(stacks: Stacks, registry: str) -> None:
    read = stacks.read

    assert read["server_host"].value == "127.0.0.1"
    assert read["proxy_version"].value == "v0.9.2"
    assert read["web_urls"].value == [f"http://web.{SERVICE}.localhost/"]
    assert read["web_version"].value == pinned_version("v1")
    assert read["web_image"].value == f"{registry}/quayside-test/app:v1@{registry_digest('v1')}"
    plain = ("server_host", "proxy_version", "web_urls", "web_version", "web_image")
    assert [name for name in plain if read[name].secret] == []


def test_database_url_arrives_secret_with_the_documented_shape(stacks: Stacks) -> None:
    url = stacks.read["database_url"]

    expected = f"postgres://{DATABASE}:{quote(PASSWORD, safe='')}@{SERVICE}-postgres:5432/{DATABASE}"
    # Compared aside: a failing assertion must not print the password.
    as_documented = url.value == expected
    assert url.secret
    assert as_documented, f"database_url is not postgres://{DATABASE}:<password>@{SERVICE}-postgres:5432/{DATABASE}"
    assert stacks.quayside.outputs()["database_url"].secret


def test_a_value_computed_from_database_url_is_secret_too(stacks: Stacks) -> None:
    assert stacks.read["database_host"].secret
    assert stacks.read["database_host"].value == f"{SERVICE}-postgres"


def test_output_details_hold_plain_values_in_value_and_secrets_in_secret_value(stacks: Stacks) -> None:
    assert stacks.read["details_plain_in_value"].value is True
    assert stacks.read["details_secret_in_secret_value"].value is True


def test_get_output_of_a_missing_name_is_none(stacks: Stacks) -> None:
    assert stacks.read["missing_is_none"].value is True


# The SDK leaves two of its own coroutines unawaited when a program fails this way; that is not the test's subject.
@pytest.mark.filterwarnings("ignore:coroutine 'Output.*' was never awaited:RuntimeWarning")
def test_require_output_of_a_missing_name_fails_the_reading_stack(stacks: Stacks) -> None:
    strict = stacks.project.backend.stack("consumer", "strict", requires_a_missing_output)

    with pytest.raises(auto.errors.CommandError) as failed:
        strict.preview(color="never")

    assert "no_such_output" in str(failed.value)


def test_the_password_is_in_no_backend_file_in_plain_text(stacks: Stacks) -> None:
    backend = stacks.project.backend
    url = stacks.read["database_url"].value

    assert backend.files_containing(PASSWORD) == []
    assert backend.files_containing(quote(PASSWORD, safe="")) == []
    assert backend.files_containing(url) == []
    # Both stacks' checkpoints hold it, encrypted.
    for project, stack in (("quayside", STACK), ("consumer", READER)):
        outputs = backend.state(project, stack)["checkpoint"]["latest"]["resources"][0]["outputs"]
        assert set(outputs["database_url"]) == {"4dabf18193072939515e22adb298388d", "ciphertext"}, project


def test_pulumi_stack_output_prints_database_url_as_secret_beside_the_plain_outputs(stacks: Stacks) -> None:
    env = {**os.environ, **stacks.project.env(), "PULUMI_HOME": str(PULUMI_HOME)}
    command = [str(pulumi_cli()), "stack", "output", "--stack", STACK, "--cwd", str(stacks.project.work_dir)]

    one = subprocess.run([*command, "database_url"], capture_output=True, text=True, env=env, timeout=120, check=True)
    every = subprocess.run([*command, "--json"], capture_output=True, text=True, env=env, timeout=120, check=True)

    assert one.stdout.strip() == "[secret]"
    outputs = json.loads(every.stdout)
    # A contract: keys may be added, never taken away.
    assert {"server_host", "proxy_version", "roles", "database_url"} <= set(outputs)
    assert outputs["database_url"] == "[secret]"
    assert set(outputs["roles"]["web"]) == {"urls", "version", "image", "heals"}


def test_the_url_reaches_postgres_from_the_service_network(stacks: Stacks) -> None:
    parts = urlsplit(stacks.read["database_url"].value)
    # The connection's parts go to psql as environment variables: no secret on a command line.
    env = {
        **os.environ,
        "PGHOST": parts.hostname or "",
        "PGPORT": str(parts.port),
        "PGUSER": unquote(parts.username or ""),
        "PGPASSWORD": unquote(parts.password or ""),
        "PGDATABASE": parts.path.lstrip("/"),
    }
    names = ("PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE")
    psql = ["psql", "--no-psqlrc", "--tuples-only", "--no-align", "--command", "select current_user"]
    argv = ["docker", "run", "--rm", "--network", SERVICE, *(arg for name in names for arg in ("-e", name)),
            images.POSTGRES, *psql]  # fmt: skip

    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120, check=False)

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == DATABASE
