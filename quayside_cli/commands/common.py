"""What the verbs share: opening the stack, connecting to its server, laying out a table."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from quayside_cli import progress
from quayside_cli.ssh import Connection
from quayside_cli.stack import Stack

Verbs = Any  # argparse's _SubParsersAction, which typeshed keeps private


class Runner(Protocol):
    def __call__(self, args: argparse.Namespace) -> int: ...


def add(verbs: Verbs, name: str, run: Runner, help: str, description: str | None = None) -> argparse.ArgumentParser:
    sub: argparse.ArgumentParser = verbs.add_parser(
        name, help=help, description=description or help, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub.set_defaults(run=run)
    return sub


def open_stack(args: argparse.Namespace) -> Stack:
    """The stack with its outputs read (fails now, naming the stack, when it was never deployed)."""
    stack = Stack.open(args.stack, args.cwd)
    with progress.step(f"reading stack {stack.name}"):
        _ = stack.outputs
    return stack


@contextlib.contextmanager
def connect(stack: Stack) -> Iterator[Connection]:
    with progress.step(f"reading the SSH key of stack {stack.name}"):
        key = stack.private_key()
    with Connection(stack.ssh, key, stack.name) as server:
        yield server


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Columns padded to their widest cell, two spaces apart; the last column is not padded."""
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = [str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)]
        lines.append("  ".join(cells).rstrip())
    return lines
