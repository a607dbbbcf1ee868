"""`quayside logs ROLE|ACCESSORY [-f] [--since 10m] [--lines N] [--grep TEXT]`: the Docker logs of a role's live
container or an accessory's, through logs.sh on the server."""

from __future__ import annotations

import argparse
import sys
from typing import Final

from components import defaults, steps
from quayside_cli.commands.common import Verbs, add, connect, open_stack
from quayside_cli.errors import QuaysideError
from quayside_cli.ssh import script
from quayside_cli.stack import Stack

TIMEOUT_SECONDS: Final = 300
FOLLOW_TIMEOUT_SECONDS: Final = 7 * 24 * 3600  # a follow ends with Ctrl-C, not with a timeout


def target(stack: Stack, name: str) -> dict[str, str]:
    """`--role NAME` or `--accessory NAME`, whichever the stack has."""
    if name in stack.roles:
        return {"role": name}
    if name in stack.accessories:
        return {"accessory": name}
    raise QuaysideError(
        f"stack {stack.name} has no role or accessory {name}; roles: {', '.join(stack.roles) or 'none'}; "
        f"accessories: {', '.join(stack.accessories) or 'none'}"
    )


def logs_args(stack: Stack, args: argparse.Namespace) -> list[str]:
    return steps.LOGS.argv(
        service=stack.service, **target(stack, args.name), follow=args.follow, since=args.since, lines=args.lines,
        grep=args.grep, proxy_name=defaults.PROXY_CONTAINER,
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    stack = open_stack(args)
    # A follow on a terminal gets one on the server too, so Ctrl-C ends `docker logs` there as well.
    tty = args.follow and sys.stdin.isatty() and sys.stdout.isatty()
    seconds = FOLLOW_TIMEOUT_SECONDS if args.follow else TIMEOUT_SECONDS
    command = script(stack.service, steps.LOGS.name, logs_args(stack, args), timeout_seconds=seconds, tty=tty)
    with connect(stack) as server:
        return server.attach(command, tty=tty)


def register(verbs: Verbs) -> None:
    sub = add(verbs, "logs", run, "the logs of a role's live container, or of an accessory")
    sub.add_argument(
        "name", metavar="ROLE|ACCESSORY", help="a role of the stack, or an accessory (postgres, backup...)"
    )
    sub.add_argument("-f", "--follow", action="store_true", help="keep printing new lines until Ctrl-C")
    sub.add_argument("--since", help="only lines since then: a duration like 10m, 2h, or a time like 2026-11-25T10:00Z")
    sub.add_argument("-n", "--lines", type=int, help="only the last N lines")
    sub.add_argument("--grep", metavar="TEXT", help="only lines holding TEXT (a fixed string)")
