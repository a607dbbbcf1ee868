"""Every stack file in the repository is valid config, read as Pulumi reads it (project config merged in)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Final

import pytest
import yaml

from components import config

ROOT: Final = Path(__file__).resolve().parents[2]
STACK_FILES: Final = sorted(path.name for path in ROOT.glob("Pulumi.*.yaml"))


def project_config() -> dict[str, Any]:
    """Pulumi.yaml's `config:` declarations, by full key (a key without a namespace is the project's)."""
    declared = yaml.safe_load((ROOT / "Pulumi.yaml").read_text()).get("config") or {}
    return {key if ":" in key else f"{config.NAMESPACE}:{key}": value for key, value in declared.items()}


def merged_config(stack_file: str) -> dict[str, Any]:
    """The stack's config as the program receives it: a project `value`/`default` applies to every stack
    that does not set the key; a stack's value replaces it whole (no merge inside objects)."""
    stack = yaml.safe_load((ROOT / stack_file).read_text()).get("config") or {}
    merged = dict(stack)
    for key, declaration in project_config().items():
        shared = declaration.get("value", declaration.get("default")) if isinstance(declaration, dict) else declaration
        if key not in merged and shared is not None:
            merged[key] = shared
    return merged


def test_the_stack_files_include_staging() -> None:
    assert {"Pulumi.prod.yaml", "Pulumi.staging.yaml", "Pulumi.local.yaml", "Pulumi.multi.yaml"} <= set(STACK_FILES)


@pytest.mark.parametrize("stack_file", STACK_FILES)
def test_each_stack_file_is_valid_config(stack_file: str) -> None:
    loaded = load(as_pulumi_passes_it(merged_config(stack_file)))

    assert loaded.roles


@pytest.mark.parametrize("stack_file", STACK_FILES)
def test_each_stack_file_sets_every_key_pulumi_yaml_requires(stack_file: str) -> None:
    stack = yaml.safe_load((ROOT / stack_file).read_text()).get("config") or {}
    required = [
        key
        for key, declaration in project_config().items()
        if isinstance(declaration, dict) and "value" not in declaration and "default" not in declaration
    ]
    assert [key for key in required if key not in stack] == [], f"{stack_file} lacks keys Pulumi.yaml requires"


def test_staging_has_prods_roles_on_hostnames_of_its_own_and_a_smaller_server() -> None:
    prod, staging = (load(as_pulumi_passes_it(merged_config(f"Pulumi.{name}.yaml"))) for name in ("prod", "staging"))
    assert list(staging.roles) == list(prod.roles)
    prod_hosts = {host for role in prod.roles.values() for host in role.hosts}
    staging_hosts = {host for role in staging.roles.values() for host in role.hosts}
    assert staging_hosts and not prod_hosts & staging_hosts, "staging must not claim prod's hostnames"
    assert isinstance(staging.server, config.HetznerServer) and staging.server.type == "cx22"


def test_multi_spreads_prods_roles_over_three_hetzner_servers_on_one_private_network() -> None:
    prod, multi = (load(as_pulumi_passes_it(merged_config(f"Pulumi.{name}.yaml"))) for name in ("prod", "multi"))
    servers = multi.servers_by_name()

    assert list(multi.roles) == list(prod.roles)
    assert {
        name: (server.type, server.location) for name, server in servers.items() if server.provider == "hetzner"
    } == {
        "app-1": ("cx32", "nbg1"),
        "app-2": ("cx32", "fsn1"),
        "db": ("cx22", "nbg1"),
    }
    assert multi.network == config.Network(ip_range="10.0.0.0/16", subnet="10.0.1.0/24", zone="eu-central")
    assert {role: multi.role_servers(role) for role in multi.roles} == {
        "web": ["app-1", "app-2"],
        "backend": ["app-1", "app-2"],
        "api": ["app-2"],
    }
    assert multi.roles["web"].boot == config.Boot(limit=1) and multi.roles["backend"].migrate
    assert (multi.accessory_server("postgres"), multi.accessory_server("backup")) == ("db", "db")
    assert multi.private_address("db") == "10.0.1.12"


def as_pulumi_passes_it(values: dict[str, Any]) -> dict[str, str]:
    """Our namespace's keys as the program reads them (objects as JSON), with each secret the stack needs set."""
    prefix = f"{config.NAMESPACE}:"
    ours = {key: value for key, value in values.items() if key.startswith(prefix)}
    top_level = {key.removeprefix(prefix): value for key, value in ours.items()}
    top_level = {key: value for key, value in top_level.items() if key in config.TOP_LEVEL_KEYS}
    needed = config.StackConfig.model_validate(top_level)
    raw = {key: value if isinstance(value, str) else json.dumps(value) for key, value in ours.items()}
    return raw | {f"{prefix}{name}": "set by pulumi config set --secret" for name in needed.secret_names()}


def load(values: dict[str, str]) -> config.StackConfig:
    """config.load() of `values`, every key beside the top-level ones stored as a secret (as the README sets them)."""
    prefix = f"{config.NAMESPACE}:"
    return config.load(
        values, secret_keys={key for key in values if key.removeprefix(prefix) not in config.TOP_LEVEL_KEYS}
    )


def readme_prod_secrets() -> list[str]:
    """The secret keys the README's prod steps set, in order (`pulumi config set --secret KEY`)."""
    readme = (ROOT / "README.md").read_text()
    steps = readme.split("## Using it on your servers", 1)[1].split("\n## ", 1)[0]
    # A command of the code block, its value from a prompt or piped in (printf %s "$X" | pulumi config set ...).
    return re.findall(r"^ {4}.*?pulumi config set --secret (\S+)", steps, flags=re.MULTILINE)


def test_the_readmes_prod_steps_set_exactly_the_secrets_pulumi_prod_yaml_needs() -> None:
    listed = readme_prod_secrets()
    prefix = f"{config.NAMESPACE}:"
    stack = {key: value for key, value in merged_config("Pulumi.prod.yaml").items() if key.startswith(prefix)}
    raw = {key: value if isinstance(value, str) else json.dumps(value) for key, value in stack.items()}
    secrets = {f"{prefix}{name}": "set as the README says" for name in listed}

    loaded = load(raw | secrets)  # an unknown or missing key raises ConfigError naming it

    assert sorted(listed) == sorted(loaded.secret_names())
    assert len(listed) == len(set(listed)), "the README sets a secret twice"
