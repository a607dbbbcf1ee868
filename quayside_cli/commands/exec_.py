"""`quayside exec ROLE [--reuse] [-i] [-t] -- CMD...`: a command in a one-off container of the role's live version
(its image, env and volumes, on the service's network), or with --reuse inside the live container. Exits with the
command's exit code. The env, secrets included, goes from the live container to the one-off one through a 0600
file on the server (exec.sh): never a command line. On a role of several servers it runs on the first, or on the one
`--host NAME` picks."""

from __future__ import annotations

import argparse
import sys
from typing import Final

from components import defaults, steps
from quayside_cli.commands.common import Verbs, add, connect, open_stack
from quayside_cli.errors import QuaysideError
from quayside_cli.ssh import script

TIMEOUT_SECONDS: Final = 3600
INTERACTIVE_TIMEOUT_SECONDS: Final = 12 * 3600


def exec_args(service: str, role: str, command: list[str], *, reuse: bool, interactive: bool, tty: bool) -> list[str]:
    return steps.EXEC.argv(
        service=service,
        role=role,
        proxy_name=defaults.PROXY_CONTAINER,
        reuse=reuse,
        interactive=interactive,
        tty=tty,
        command=command,
    )


def run(args: argparse.Namespace) -> int:
    if not args.command:
        raise QuaysideError(f"give the command to run after --, e.g. quayside exec {args.role} -- sh -c 'env'")
    if args.tty and not sys.stdin.isatty():
        raise QuaysideError("-t needs a terminal on stdin: run it in one, or drop -t")
    stack = open_stack(args)
    server = stack.chosen_server(args.role, stack.role_servers(args.role), args.host)
    argv = exec_args(
        stack.service, args.role, args.command, reuse=args.reuse, interactive=args.interactive, tty=args.tty
    )
    seconds = INTERACTIVE_TIMEOUT_SECONDS if args.interactive else TIMEOUT_SECONDS
    command = script(stack.service, steps.EXEC.name, argv, timeout_seconds=seconds, tty=args.tty)
    with connect(stack, server) as connection:
        return connection.attach(command, tty=args.tty, stdin=args.interactive)


def register(verbs: Verbs) -> None:
    sub = add(verbs, "exec", run, "run a command in a one-off container of a role's live version (or inside it)",
              __doc__)  # fmt: skip
    sub.add_argument("role", metavar="ROLE", help="a role of the stack")
    sub.add_argument("command", metavar="CMD", nargs="*", help="the command and its arguments, after --")
    sub.set_defaults(trailing="command")
    sub.add_argument("--reuse", action="store_true", help="run inside the live container instead of a one-off one")
    sub.add_argument("-i", "--interactive", action="store_true", help="keep stdin open (as docker run -i)")
    sub.add_argument("-t", "--tty", action="store_true", help="allocate a terminal (as docker run -t); use with -i")
    sub.add_argument("--host", metavar="NAME", help="the server to run it on (default: the role's first)")
