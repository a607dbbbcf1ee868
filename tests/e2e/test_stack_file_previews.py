"""`pulumi preview` of the stack files the project ships (Pulumi.staging.yaml: a Hetzner server; Pulumi.prod.yaml:
an existing one), as a user would run it before a first deploy: quayside's own program through the real engine,
the real hcloud and command providers, with placeholder secrets. Hetzner's API is never reached: a preview of
new resources needs no call, so what is proven here stops at the provider's edge."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import pytest
import yaml
from pulumi import automation as auto

from tests.support.pulumi_engine import ROOT, QuaysideProject, secret
from tests.support.stacks import Events, pin_unreachable_images, stack_config

HCLOUD_TOKEN: Final = "0" * 64  # as long as a real token; no call is made with it
PLACEHOLDER: Final = "placeholder-never-used-9c1e"


def stack_file_config(name: str) -> dict[str, Any]:
    config_values: dict[str, Any] = yaml.safe_load((ROOT / f"Pulumi.{name}.yaml").read_text())["config"]
    return config_values


def preview(tmp_path: Path, name: str) -> tuple[auto.PreviewResult, Events]:
    """Preview of the shipped stack file with every secret it needs set to a placeholder."""
    values = stack_file_config(name)
    pin_unreachable_images(values)
    needed = stack_config(values).secret_names()
    stack = QuaysideProject.create(tmp_path).stack(name, values)
    for key in needed:
        stack.set_config(f"quayside:{key}", secret(PLACEHOLDER))
    stack.set_config("hcloud:token", secret(HCLOUD_TOKEN))
    events = Events()
    return stack.preview(color="never", diff=True, on_event=events.record), events


def test_a_preview_of_staging_plans_a_protected_hetzner_server_and_every_role(tmp_path: Path) -> None:
    result, events = preview(tmp_path, "staging")

    created = {name for name, ops in events.ops.items() if ops == ["create"]}
    assert {"acme-server-server", "acme-server-firewall", "acme-server-key", "acme-server-host-key"} <= created
    assert {"acme-web-swap", "acme-backend-swap", "acme-backend-migrate", "acme-api-swap"} <= created
    assert "deleteProtection" in result.stdout and "true" in result.stdout
    assert PLACEHOLDER not in result.stdout and HCLOUD_TOKEN not in result.stdout


@pytest.mark.parametrize("name", ["prod", "staging"])
def test_a_preview_of_a_shipped_stack_file_succeeds_with_nothing_on_a_server(tmp_path: Path, name: str) -> None:
    result, events = preview(tmp_path, name)

    assert set(result.change_summary) == {auto.OpType.CREATE}, result.change_summary
    assert all(ops == ["create"] for ops in events.changed().values()), events.ops
