"""`quayside maintenance on|off [ROLE] [--message TEXT]`: kamal-proxy stops a role's route (503 with the message)
or resumes it; every proxied role when no role is named. The containers keep running. A role on several servers
changes on all of them at once, each line of the outcome after its server's name."""

from __future__ import annotations

import argparse
import sys
from typing import Final

from components import defaults, steps
from quayside_cli import progress
from quayside_cli.commands.common import Answer, Verbs, add, capture_each, connect_each, open_stack, prefixed
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
    roles = roles_of(stack, args.role)
    servers = list(dict.fromkeys(server for role in roles for server in stack.role_servers(role)))
    failed = 0
    with connect_each(stack, servers) as connections:
        for role in roles:
            argv = maintenance_args(args.action, stack.service, role, args.message)
            command = script(stack.service, steps.MAINTENANCE.name, argv, timeout_seconds=TIMEOUT_SECONDS)
            on = {name: connections[name] for name in stack.role_servers(role)}
            with progress.step(f"maintenance {args.action} for {role}"):
                answers = capture_each(on, command, timeout=TIMEOUT_SECONDS + 30)
            for name, answer in answers.items():
                failed += not tell(stack, name, answer)
    return 1 if failed else 0


def tell(stack: Stack, server: str, answer: Answer) -> bool:
    """What maintenance.sh said on a server (after the server's name in a stack of several); whether it succeeded."""
    if isinstance(answer, QuaysideError):
        print(f"quayside: {answer}", file=sys.stderr)
        return False
    where = f"{server}: " if stack.several_servers else ""
    if answer.returncode != 0:
        print(f"quayside: stack {stack.name}: {where}{answer.stderr.strip()}", file=sys.stderr)
        return False
    said = answer.stdout.strip().removeprefix("maintenance: ")
    print("\n".join(prefixed(server, said)) if stack.several_servers else said)
    return True


def register(verbs: Verbs) -> None:
    sub = add(verbs, "maintenance", run, "answer 503 with a message instead of a role (on), or serve it again (off)")
    sub.add_argument("action", choices=["on", "off"], help="on: kamal-proxy stops the route; off: it resumes it")
    sub.add_argument("role", metavar="ROLE", nargs="?", help="one role (default: every role behind the proxy)")
    sub.add_argument("--message", metavar="TEXT", help="what the 503 page says while on")
