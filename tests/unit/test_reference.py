"""The configuration reference: generated from the models, complete, and the same as docs/configuration.md."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any, Final

import pytest

from components import config
from components.config import examples, reference

ROOT: Final = Path(__file__).resolve().parents[2]
DOC: Final = ROOT / "docs" / "configuration.md"
ACCESSORY_SECRETS: Final = {
    "postgres_password",
    "backup_passphrase",
    "s3_access_key_id",
    "s3_secret_access_key",
    "betterstack_token",
}


def test_docs_configuration_md_is_what_the_generator_produces() -> None:
    assert DOC.is_file(), f"{DOC.relative_to(ROOT)} is missing: run scripts/config-reference --write"
    assert DOC.read_text() == reference.render(), (
        f"{DOC.relative_to(ROOT)} is not what components/config/reference.py produces: "
        "run scripts/config-reference --write"
    )


def test_every_field_of_every_model_has_a_description() -> None:
    missing = reference.missing_descriptions()
    assert not missing, "fields without Field(description=...) in components/config/:\n  " + "\n  ".join(missing)


def test_every_key_has_an_example() -> None:
    missing = reference.missing_examples()
    assert not missing, "keys no stack in examples.reference() sets:\n  " + "\n  ".join(missing)


@pytest.mark.parametrize("index", range(len(examples.reference())))
def test_the_examples_are_valid_stacks(index: int) -> None:
    example = examples.reference()[index]
    secrets = {
        "ssh_private_key", "registry_password", "DATABASE_URL", "STAGING_CERTIFICATE_PEM", "STAGING_KEY_PEM",
        *ACCESSORY_SECRETS,
    }  # fmt: skip
    needed = config.parse(example, secrets_set=secrets)
    assert needed.service


def test_every_key_of_every_model_is_in_the_reference_with_its_default() -> None:
    text = reference.render()
    for entry in reference.entries(config.StackConfig):
        assert f"`{entry.dotted}`" in text
    assert "#### `roles.<name>.health.path`" not in text  # roles has no variants: entries are level 3
    health_path = text.split("### `roles.<name>.health.path`")[1].split("###")[0]
    assert "- Default: `/up`" in health_path
    assert "- Type: text: a path starting with / (/up)" in health_path


def test_the_server_section_has_one_subsection_per_provider() -> None:
    text = reference.render(sections=["server"])
    assert text.startswith("## server\n")
    assert "### server with `provider: existing`" in text
    assert "### server with `provider: hetzner`" in text
    hetzner = text.split("### server with `provider: hetzner`")[1]
    assert "#### `server.ssh_public_key`" in hetzner and "#### `server.host`" not in hetzner


def test_a_key_inside_an_optional_key_is_required_only_with_it() -> None:
    registry = reference.render(sections=["registry"]).split("### `registry.server`")[1]
    assert "- Default: required when `registry` is given" in registry


def test_every_pattern_is_described_in_words() -> None:
    unexplained = [entry.dotted for entry in reference.entries(config.StackConfig) if "matching" in entry.type]
    assert not unexplained, "patterns without words in components/config/types.py PATTERN_HELP: " + ", ".join(
        unexplained
    )


def test_types_are_described_in_words() -> None:
    described = {entry.dotted: entry.type for entry in reference.entries(config.StackConfig)}
    assert described["roles.<name>.port"] == "integer from 1 to 65535"
    assert described["roles.<name>.cpus"] == "number, more than 0, at most 256; optional"
    assert described["roles.<name>.proxy"] == "`true` or `false`"
    assert described["roles"].startswith("map (at least 1 entry); keys: lowercase letters")
    assert described["server"].startswith("object; its `provider` (`existing` or `hetzner`)")


def test_an_unknown_section_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match="no section 'nope': sections are service, server"):
        reference.render(sections=["nope"])


def probe(**changes: Any) -> set[str]:
    stack = {**examples.smallest(), **changes}
    everything = {"ssh_private_key", "registry_password", "API_TOKEN", "DATABASE_URL", *ACCESSORY_SECRETS}
    return config.parse(stack, secrets_set=everything).secret_names()


def test_the_documented_secret_keys_are_the_ones_the_config_asks_for() -> None:
    documented = {secret.key: secret.needed for secret in reference.SECRET_KEYS}
    always = probe()
    assert always == {"ssh_private_key"}
    key_file = {"provider": "existing", "host": "203.0.113.7", "private_key_file": "~/.ssh/id", "trust_first_use": True}
    assert probe(server=key_file) == set()
    assert "server.private_key_file" in documented["ssh_private_key"]

    with_login = probe(registry={"server": "ghcr.io", "username": "acme"})
    assert with_login - always == {"registry_password"}
    assert "registry.username" in documented["registry_password"]

    role = {"image": "ghcr.io/acme/web:1.0", "health": {"path": "/up"}, "env": {"secret": ["API_TOKEN"]}}
    assert probe(roles={"web": role}) - always == {"API_TOKEN"}
    assert "roles.<name>.env.secret" in documented["<NAME>"]

    postgres = probe(accessories={"postgres": {}}, roles={"web": {**role, "env": {"secret": ["DATABASE_URL"]}}})
    assert postgres - always == {"postgres_password"}, "the Postgres accessory provides DATABASE_URL"
    assert "accessories.postgres" in documented["postgres_password"]
    backup = {"s3": {"bucket": "acme-backups"}}
    assert probe(accessories={"postgres": {}, "backup": backup}) - always == {
        "postgres_password",
        "backup_passphrase",
        "s3_access_key_id",
        "s3_secret_access_key",
    }
    assert probe(accessories={"vector": {}}) - always == {"betterstack_token"}
    assert set(documented) == {"ssh_private_key", "registry_password", "<NAME>", *ACCESSORY_SECRETS}


def test_the_command_prints_one_section() -> None:
    script = ROOT / "scripts" / "config_reference.py"
    result = subprocess.run([sys.executable, str(script), "proxy"], capture_output=True, text=True, check=True)
    assert result.stdout == reference.render(sections=["proxy"])
    assert result.stdout.startswith("## proxy\n")
