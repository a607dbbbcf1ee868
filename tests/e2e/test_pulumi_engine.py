"""The pinned Pulumi CLI runs quayside's kind of program for real: components, secrets, stack references.

No mocks: inline Automation API programs go through the real engine, a local file backend and the passphrase
secrets provider. Fails (never skips) when the CLI is missing; scripts/setup.d/pulumi.sh installs it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi.dynamic
import pytest
from pulumi import automation as auto

from tests.support.pulumi_engine import LocalBackend, secret

PROJECT = "engine-check"
TOKEN = "tok-5e3c7a1b9f0d-never-in-plaintext"
GREETING = "hello from quayside"
# How Pulumi's state marks a secret value (sdk/go/common/resource/sig): {KEY: SIGNATURE, "ciphertext": ...}.
SECRET_SIGNATURE_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIGNATURE = "1b47061264138c4ac30d75fd1eb44270"


class MarkerProvider(pulumi.dynamic.ResourceProvider):
    """Run by the engine in a provider plugin (pulumi-resource-pulumi-python): a file that create writes and
    delete removes, so a test sees that the engine really called the provider."""

    def create(self, props: dict[str, Any]) -> pulumi.dynamic.CreateResult:
        Path(props["path"]).write_text(props["label"])
        return pulumi.dynamic.CreateResult(id_=props["path"], outs=dict(props))

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        Path(_id).unlink()


class Marker(pulumi.dynamic.Resource):
    label: pulumi.Output[str]

    def __init__(self, name: str, label: str, path: str, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(MarkerProvider(), name, {"label": label, "path": path}, opts)


class Site(pulumi.ComponentResource):
    """A component like quayside's roles: a child resource, and outputs built from plain and secret inputs."""

    def __init__(self, name: str, greeting: str, token: pulumi.Output[str], marker_dir: str) -> None:
        super().__init__("quayside:test:Site", name)
        marker_path = str(Path(marker_dir) / f"{name}.marker")
        marker = Marker(f"{name}-marker", label=greeting, path=marker_path, opts=pulumi.ResourceOptions(parent=self))
        self.url = pulumi.Output.concat("https://", name, ".example.test")
        self.label = marker.label
        self.token = token
        self.register_outputs({"url": self.url, "label": self.label})


def producer() -> None:
    config = pulumi.Config()
    site = Site(
        "web",
        greeting=config.require("greeting"),
        token=config.require_secret("token"),
        marker_dir=config.require("marker_dir"),
    )
    pulumi.export("url", site.url)
    pulumi.export("label", site.label)
    pulumi.export("token", site.token)


def consumer() -> None:
    upstream = pulumi.StackReference(LocalBackend.reference_name(PROJECT, "producer"))
    pulumi.export("upstream_url", upstream.get_output("url"))
    pulumi.export("upstream_token", upstream.get_output("token"))


def producer_config(marker_dir: Path) -> dict[str, str | auto.ConfigValue]:
    marker_dir.mkdir(parents=True, exist_ok=True)
    return {"greeting": GREETING, "token": secret(TOKEN), "marker_dir": str(marker_dir)}


def resource_types(backend: LocalBackend, stack: str) -> list[str]:
    resources = backend.state(PROJECT, stack)["checkpoint"].get("latest", {}).get("resources") or []
    return [resource["type"] for resource in resources]


@dataclass(frozen=True)
class Deployed:
    backend: LocalBackend
    marker_dir: Path
    producer: auto.Stack
    consumer: auto.Stack
    produced: auto.UpResult
    consumed: auto.UpResult


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    backend = LocalBackend.create(tmp_path_factory.mktemp("pulumi-backend"))
    marker_dir = tmp_path_factory.mktemp("markers")
    first = backend.stack(PROJECT, "producer", producer, config=producer_config(marker_dir))
    produced = first.up()
    second = backend.stack(PROJECT, "consumer", consumer)
    consumed = second.up()
    yield Deployed(backend, marker_dir, first, second, produced, consumed)
    second.destroy()
    first.destroy()


def test_up_creates_the_component_with_its_child_and_exports_its_outputs(deployed: Deployed) -> None:
    outputs = deployed.produced.outputs
    assert deployed.produced.summary.result == "succeeded"
    assert outputs["url"].value == "https://web.example.test"
    assert not outputs["url"].secret
    assert outputs["label"].value == GREETING
    assert outputs["token"].value == TOKEN
    assert outputs["token"].secret
    assert resource_types(deployed.backend, "producer") == [
        "pulumi:pulumi:Stack",
        "quayside:test:Site",
        "pulumi:providers:pulumi-python",
        "pulumi-python:dynamic:Resource",
    ]
    assert (deployed.marker_dir / "web.marker").read_text() == GREETING


def test_a_secret_config_value_and_output_are_never_written_in_plaintext(deployed: Deployed) -> None:
    backend = deployed.backend
    state = backend.state(PROJECT, "producer")["checkpoint"]["latest"]
    assert state["secrets_providers"]["type"] == "passphrase"
    stack_resource = next(r for r in state["resources"] if r["type"] == "pulumi:pulumi:Stack")
    token_in_state = stack_resource["outputs"]["token"]
    assert set(token_in_state) == {SECRET_SIGNATURE_KEY, "ciphertext"}
    assert token_in_state[SECRET_SIGNATURE_KEY] == SECRET_SIGNATURE
    # Nowhere: not in the state, its backups and history, nor the stack's config file.
    assert backend.files_containing(TOKEN) == []


def test_a_stack_reference_reads_the_other_stacks_outputs_and_keeps_secrets_secret(deployed: Deployed) -> None:
    outputs = deployed.consumed.outputs
    assert outputs["upstream_url"].value == "https://web.example.test"
    assert not outputs["upstream_url"].secret
    assert outputs["upstream_token"].value == TOKEN
    assert outputs["upstream_token"].secret
    assert "pulumi:pulumi:StackReference" in resource_types(deployed.backend, "consumer")
    assert deployed.backend.files_containing(TOKEN) == []


def test_a_preview_after_up_shows_no_changes(deployed: Deployed) -> None:
    for stack in (deployed.producer, deployed.consumer):
        changes = stack.preview().change_summary
        assert set(changes) == {"same"}, f"{stack.name}: {changes}"


def test_destroy_removes_every_resource_and_output(tmp_path: Path) -> None:
    backend = LocalBackend.create(tmp_path / "backend")
    marker = tmp_path / "markers" / "web.marker"
    stack = backend.stack(PROJECT, "producer", producer, config=producer_config(marker.parent))
    assert stack.up().summary.result == "succeeded"
    assert marker.is_file()

    result = stack.destroy()

    assert result.summary.result == "succeeded"
    # The stack, the component and its child; the provider resource is not counted.
    assert result.summary.resource_changes == {"delete": 3}
    assert resource_types(backend, "producer") == []
    assert stack.outputs() == {}
    assert not marker.exists(), "destroy did not reach the provider's delete"
