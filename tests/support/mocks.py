"""Pulumi mocks that echo each resource's inputs as its outputs, for unit tests that need nothing more."""

from __future__ import annotations

from typing import Any

import pulumi


class EchoMocks(pulumi.runtime.Mocks):
    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None


def use_echo_mocks() -> None:
    """Mocks are process-wide: keep another module's (they echo inputs too, and may answer more types)."""
    if not isinstance(pulumi.runtime.settings.get_monitor(), pulumi.runtime.mocks.MockMonitor):
        pulumi.runtime.set_mocks(EchoMocks(), preview=False)
