"""`quayside audit [--lines N]`: the server's audit log of the service, newest first. On a stack of several servers,
every server's log merged by time (a line's first word, its UTC time), each line after its server's name."""

from __future__ import annotations

import argparse
import sys
from typing import Final

from components import steps
from quayside_cli.commands.common import Answer, Verbs, add, capture_each, connect, connect_each, open_stack, prefixed
from quayside_cli.errors import QuaysideError
from quayside_cli.ssh import script
from quayside_cli.stack import Stack

TIMEOUT_SECONDS: Final = 60


def audit_command(stack: Stack, lines: int) -> str:
    argv = steps.AUDIT.argv(service=stack.service, lines=lines)
    return script(stack.service, steps.AUDIT.name, argv, timeout_seconds=TIMEOUT_SECONDS)


def run(args: argparse.Namespace) -> int:
    stack = open_stack(args)
    command = audit_command(stack, args.lines)
    if stack.several_servers:
        with connect_each(stack, list(stack.servers)) as connections:
            answers = capture_each(connections, command, timeout=TIMEOUT_SECONDS + 30)
        return tell_merged(stack, answers, args.lines)
    with connect(stack) as server:
        done = server.capture(command, timeout=TIMEOUT_SECONDS + 30)
    if done.returncode != 0:
        raise QuaysideError(f"stack {stack.name}: audit.sh failed on the server: {done.stderr.strip()}")
    print(done.stdout.rstrip() or f"no audit log for {stack.service} yet")
    return 0


def merged(logs: dict[str, str], lines: int) -> list[str]:
    """The newest `lines` lines of every server's log (each newest first), after their server's name; the same time
    keeps the servers' order."""
    entries = [(line.split(" ", 1)[0], server, line) for server, text in logs.items() for line in text.splitlines()]
    ordered = sorted(entries, key=lambda entry: entry[0], reverse=True)
    return [prefixed(server, line)[0] for _, server, line in ordered[:lines]]


def tell_merged(stack: Stack, answers: dict[str, Answer], lines: int) -> int:
    """The merged log; a server that did not answer (or whose audit.sh failed) is a line on stderr, and exit code 1."""
    logs: dict[str, str] = {}
    for name, answer in answers.items():
        if isinstance(answer, QuaysideError):
            print(f"quayside: {answer}", file=sys.stderr)
        elif answer.returncode != 0:
            print(f"quayside: stack {stack.name}: audit.sh failed on {name}: {answer.stderr.strip()}", file=sys.stderr)
        else:
            logs[name] = answer.stdout
    print("\n".join(merged(logs, lines)) or f"no audit log for {stack.service} yet")
    return 0 if len(logs) == len(answers) else 1


def register(verbs: Verbs) -> None:
    sub = add(verbs, "audit", run, "the service's audit log on the server, newest first: time, role, version, event")
    sub.add_argument("-n", "--lines", type=int, default=50, help="how many lines (default: 50)")
