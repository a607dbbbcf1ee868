"""Reading the remote commands the components register, in unit tests under Pulumi mocks."""

from __future__ import annotations

import asyncio
import shlex
from typing import Any

import pulumi


def script_argv(command: str, script: str, service: str = "acme") -> list[str]:
    """The script's own arguments, after checking the command runs it under `timeout`."""
    argv = shlex.split(command)
    assert argv[:2] == ["timeout", "--kill-after=10s"], command
    assert argv[3:5] == ["bash", f"/var/lib/quayside/{service}/bin/{script}"], command
    return argv[5:]


def option(argv: list[str], name: str) -> list[str]:
    """Every value given to the option `name`, in order."""
    return [argv[i + 1] for i, part in enumerate(argv) if part == name]


def is_secret(output: pulumi.Output[Any]) -> pulumi.Output[bool]:
    return pulumi.Output.from_input(asyncio.ensure_future(output.is_secret()))
