"""`quayside logs ROLE|ACCESSORY [-f] [--since 10m] [--lines N] [--grep TEXT] [--host NAME]`: the Docker logs of a
role's live container or an accessory's, through logs.sh on the server.

A role on several servers gives the lines of each, every line after its server's name (`app-1 | ...`). With -f they
are interleaved as they come; without, each server's lines come as one block, in the role's server order: docker
prints no time on a line unless asked, and a line's own time (if the app writes one) comes from a clock that need
not agree with another host's, so a merge by time would order them by guesses; a block keeps each host's own order.
`--host NAME` shows one server's lines, exactly as on a one-server stack."""

from __future__ import annotations

import argparse
import sys
import threading
from typing import Final

from components import defaults, steps
from quayside_cli.commands.common import (
    PREFIX,
    Answer,
    Verbs,
    add,
    capture_each,
    connect,
    connect_each,
    open_stack,
    prefixed,
)
from quayside_cli.errors import QuaysideError
from quayside_cli.ssh import Connection, script
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


def servers_of(stack: Stack, name: str, wanted: str | None) -> list[str]:
    """The servers whose logs are shown: `--host`'s one, else every server the role (or the accessory) runs on."""
    among = stack.role_servers(name) if "role" in target(stack, name) else [stack.accessory_server(name)]
    return [stack.chosen_server(name, among, wanted)] if wanted is not None else among


def logs_args(stack: Stack, args: argparse.Namespace) -> list[str]:
    return steps.LOGS.argv(
        service=stack.service, **target(stack, args.name), follow=args.follow, since=args.since, lines=args.lines,
        grep=args.grep, proxy_name=defaults.PROXY_CONTAINER,
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    stack = open_stack(args)
    servers = servers_of(stack, args.name, args.host)
    # A follow on a terminal gets one on the server too, so Ctrl-C ends `docker logs` there as well. A follow of
    # several servers always does: their lines come through pipes, and only a terminal on the server takes
    # `docker logs` down with its ssh.
    tty = args.follow and ((sys.stdin.isatty() and sys.stdout.isatty()) or len(servers) > 1)
    seconds = FOLLOW_TIMEOUT_SECONDS if args.follow else TIMEOUT_SECONDS
    command = script(stack.service, steps.LOGS.name, logs_args(stack, args), timeout_seconds=seconds, tty=tty)
    if len(servers) == 1:
        with connect(stack, servers[0]) as server:
            return server.attach(command, tty=tty)
    with connect_each(stack, servers) as connections:
        if args.follow:
            answers = follow_each(connections, command)
        else:
            answers = capture_each(connections, command, timeout=TIMEOUT_SECONDS + 30)
        return tell(answers, blocks=not args.follow)


class Printer:
    """Lines of several servers' threads, each whole and after its server's name."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def line(self, server: str, text: str) -> None:
        with self._lock:
            print(f"{server}{PREFIX}{text}", flush=True)


def follow_each(connections: dict[str, Connection], command: str) -> dict[str, Answer]:
    """The command on every server at once, each line printed as it comes, each with a terminal on its server (so
    `docker logs` there ends with its ssh). On Ctrl-C the connections close, which ends each ssh still following;
    the threads are daemons, so none holds the command up."""
    printer = Printer()
    answers: dict[str, Answer] = {}

    def follow(name: str) -> None:
        try:
            answers[name] = connections[name].stream(command, lambda text: printer.line(name, text), force_tty=True)
        except QuaysideError as error:
            answers[name] = error

    threads = [threading.Thread(target=follow, args=(name,), daemon=True) for name in connections]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {name: answers[name] for name in connections}


def tell(answers: dict[str, Answer], *, blocks: bool) -> int:
    """Each server's block of lines (when not printed as they came), and on stderr what failed where; 1 when any
    server failed."""
    failed = False
    for name, answer in answers.items():
        if isinstance(answer, QuaysideError):
            print(f"quayside: {answer}", file=sys.stderr, flush=True)
            failed = True
            continue
        if blocks and answer.stdout:
            print("\n".join(prefixed(name, answer.stdout)), flush=True)
        if answer.stderr.strip():
            print("\n".join(prefixed(name, answer.stderr.rstrip())), file=sys.stderr, flush=True)
        failed = failed or answer.returncode != 0
    return 1 if failed else 0


def register(verbs: Verbs) -> None:
    sub = add(verbs, "logs", run, "the logs of a role's live container, or of an accessory", __doc__)
    sub.add_argument(
        "name", metavar="ROLE|ACCESSORY", help="a role of the stack, or an accessory (postgres, backup...)"
    )
    sub.add_argument("-f", "--follow", action="store_true", help="keep printing new lines until Ctrl-C")
    sub.add_argument("--since", help="only lines since then: a duration like 10m, 2h, or a time like 2026-11-25T10:00Z")
    sub.add_argument("-n", "--lines", type=int, help="only the last N lines")
    sub.add_argument("--grep", metavar="TEXT", help="only lines holding TEXT (a fixed string)")
    sub.add_argument("--host", metavar="NAME", help="only this server's lines (default: every server the role runs on)")
