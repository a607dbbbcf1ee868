"""What the verbs share: opening the stack, connecting to its servers, running a step on several at once, laying out
a table."""

from __future__ import annotations

import argparse
import contextlib
import subprocess
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, Protocol

from quayside_cli import progress
from quayside_cli.errors import QuaysideError
from quayside_cli.ssh import Connection
from quayside_cli.stack import Stack

# Between a server's name and a line of its output, where a verb shows several servers' lines together.
PREFIX: Final = " | "

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
def connect(stack: Stack, server: str | None = None) -> Iterator[Connection]:
    """A connection to one server (default: the first)."""
    name = server or next(iter(stack.servers))
    with connect_each(stack, [name]) as connections:
        yield connections[name]


@contextlib.contextmanager
def connect_each(stack: Stack, servers: Sequence[str]) -> Iterator[dict[str, Connection]]:
    """A connection to each of these servers (their keys read first, each once); the others are left alone. In a
    stack of several servers, each connection's errors name its server."""
    with progress.step(f"reading the SSH key of stack {stack.name}"):
        keys = {name: stack.private_key(name) for name in servers}
    endpoints = stack.servers
    with contextlib.ExitStack() as opened:
        yield {
            name: opened.enter_context(
                Connection(endpoints[name], keys[name], stack.name, name if stack.several_servers else None)
            )
            for name in servers
        }


Answer = subprocess.CompletedProcess[str] | QuaysideError


def capture_each(
    connections: Mapping[str, Connection], command: str | Callable[[str], str], *, timeout: float
) -> dict[str, Answer]:
    """The command (or the command for each server's name) on every server at once, a thread each: each server's
    result, or the error of one that did not answer (ssh gives up after its ConnectTimeout)."""

    def ask(name: str) -> Answer:
        try:
            return connections[name].capture(command(name) if callable(command) else command, timeout=timeout)
        except QuaysideError as error:
            return error
        except subprocess.TimeoutExpired:
            return QuaysideError(f"stack {connections[name].stack}: {name} took longer than {timeout:.0f}s to answer")

    with ThreadPoolExecutor(max_workers=max(1, len(connections))) as pool:
        return dict(zip(connections, pool.map(ask, connections), strict=True))


def prefixed(server: str, text: str) -> list[str]:
    """Each line of `text` after the server's name."""
    return [f"{server}{PREFIX}{line}" for line in text.splitlines()]


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Columns padded to their widest cell, two spaces apart; the last column is not padded."""
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = [str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)]
        lines.append("  ".join(cells).rstrip())
    return lines
