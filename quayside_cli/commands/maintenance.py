"""`quayside maintenance on|off [ROLE] [--message TEXT]`: kamal-proxy stops a role's route (503 with the message)
or resumes it; every proxied role when no role is named. The containers keep running."""

from __future__ import annotations

import argparse
import sys
from typing import Final

from components import defaults, steps
from quayside_cli import progress
from quayside_cli.commands.common import Verbs, add, connect, open_stack
from quayside_cli.errors import QuaysideError
from quayside_cli.ssh import script
from quayside_cli.stack import Stack

TIMEOUT_SECONDS: Final = 120


def roles_of(stack: Stack, role: str | None) -> list[str]:
    """The named role, or every role with a URL (those the proxy serves)."""
    if role is not None:
        if not stack.role(role).get("urls"):
            raise QuaysideError(
                f"stack {stack.name}: role {role} is not behind the proxy (proxy: false): no maintenance"
            )
        return [role]
    proxied = [name for name, output in stack.roles.items() if output.get("urls")]
    if not proxied:
        raise QuaysideError(f"stack {stack.name} has no role behind the proxy")
    return proxied


def maintenance_args(action: str, service: str, role: str, message: str | None) -> list[str]:
    return steps.MAINTENANCE.argv(
        action, service=service, role=role, message=message, drain_timeout=defaults.DRAIN_TIMEOUT,
        proxy_name=defaults.PROXY_CONTAINER,
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    if args.action == "off" and args.message:
        raise QuaysideError("--message goes with `maintenance on`")
    stack = open_stack(args)
    failed = 0
    with connect(stack) as server:
        for role in roles_of(stack, args.role):
            argv = maintenance_args(args.action, stack.service, role, args.message)
            command = script(stack.service, steps.MAINTENANCE.name, argv, timeout_seconds=TIMEOUT_SECONDS)
            with progress.step(f"maintenance {args.action} for {role}"):
                done = server.capture(command, timeout=TIMEOUT_SECONDS + 30)
            if done.returncode == 0:
                print(done.stdout.strip().removeprefix("maintenance: "))
            else:
                print(f"quayside: stack {stack.name}: {done.stderr.strip()}", file=sys.stderr)
                failed += 1
    return 1 if failed else 0


def register(verbs: Verbs) -> None:
    sub = add(verbs, "maintenance", run, "answer 503 with a message instead of a role (on), or serve it again (off)")
    sub.add_argument("action", choices=["on", "off"], help="on: kamal-proxy stops the route; off: it resumes it")
    sub.add_argument("role", metavar="ROLE", nargs="?", help="one role (default: every role behind the proxy)")
    sub.add_argument("--message", metavar="TEXT", help="what the 503 page says while on")
