"""Pulumi mocks for unit tests: fresh ones for each test, and mocks that echo each resource's inputs as its
outputs, for tests that need nothing more."""

from __future__ import annotations

import contextlib
import logging
import shlex
from collections.abc import Iterator
from typing import Any

import pulumi
from pulumi.runtime.mocks import MockMonitor


def echoed(args: pulumi.runtime.MockResourceArgs) -> dict[str, Any]:
    """A local `echo WORD` command's stdout, as it would run (the stack's identity is one); host-key.sh's, as on a
    server whose host key was replaced already (the key it was given)."""
    create = str(args.inputs.get("create", ""))
    if args.typ == "command:local:Command" and create.startswith("echo "):
        return {"stdout": create.removeprefix("echo ") + "\n"}
    if args.typ == "command:remote:Command" and args.name.endswith("-host-key-rotation"):
        words = shlex.split(create)
        return {"stdout": words[words.index("--was") + 1] + "\n"}
    return {}


class EchoMocks(pulumi.runtime.Mocks):
    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        return f"{args.name}-id", dict(args.inputs) | echoed(args)

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None


class EngineLog(logging.Handler):
    """The warnings and errors a program logs through the engine (pulumi.log), as their messages."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []
        # Outside logging's registry: a logger of its own for each test, dropped with it.
        self.logger = logging.Logger(f"quayside-tests-engine-{id(self)}")
        self.logger.addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


class RecordingMonitor(MockMonitor):
    """The mock monitor, also keeping the resource options that never reach Mocks.new_resource."""

    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
        # Each registered resource's type and `additional_secret_outputs`, by its name.
        self.types: dict[str, str] = {}
        self.secret_outputs: dict[str, list[str]] = {}

    def RegisterResource(self, request: Any) -> Any:  # the gRPC method, by its name
        self.types[request.name] = request.type
        self.secret_outputs[request.name] = list(request.additionalSecretOutputs)
        return super().RegisterResource(request)  # type: ignore[no-untyped-call]  # pulumi.runtime.mocks is untyped


@contextlib.contextmanager
def fresh_mocks(mocks: pulumi.runtime.Mocks, log: EngineLog, monitor: RecordingMonitor) -> Iterator[None]:
    """Only these mocks while inside: a new monitor and root stack, nothing registered yet, and no mocks after.
    Mocks are process-wide, so whatever ran before (another module's mocks, an inline program) is dropped."""
    pulumi.runtime.reset_options()
    pulumi.runtime.set_mocks(mocks, preview=False, logger=log.logger, monitor=monitor)
    try:
        yield
    finally:
        pulumi.runtime.reset_options()
