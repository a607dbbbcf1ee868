"""`quayside audit [--lines N]`: the server's audit log of the service, newest first."""

from __future__ import annotations

import argparse
from typing import Final

from components import steps
from quayside_cli.commands.common import Verbs, add, connect, open_stack
from quayside_cli.errors import QuaysideError
from quayside_cli.ssh import script

TIMEOUT_SECONDS: Final = 60


def run(args: argparse.Namespace) -> int:
    stack = open_stack(args)
    argv = steps.AUDIT.argv(service=stack.service, lines=args.lines)
    command = script(stack.service, steps.AUDIT.name, argv, timeout_seconds=TIMEOUT_SECONDS)
    with connect(stack) as server:
        done = server.capture(command, timeout=TIMEOUT_SECONDS + 30)
    if done.returncode != 0:
        raise QuaysideError(f"stack {stack.name}: audit.sh failed on the server: {done.stderr.strip()}")
    print(done.stdout.rstrip() or f"no audit log for {stack.service} yet")
    return 0


def register(verbs: Verbs) -> None:
    sub = add(verbs, "audit", run, "the service's audit log on the server, newest first: time, role, version, event")
    sub.add_argument("-n", "--lines", type=int, default=50, help="how many lines (default: 50)")
