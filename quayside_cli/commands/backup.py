"""`quayside backup now|list` and `quayside restore latest|NAME`: backup.sh on the server, which has the backup
container dump, encrypt and upload (or download, decrypt and restore). Keys and passphrase stay on the server; a
restore with another passphrase (`--passphrase-file`, a backup made before the passphrase changed) sends it on the
SSH session's stdin, never on a command line. On a stack of several servers it runs on the backup accessory's server."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Final

from components import steps
from quayside_cli import progress
from quayside_cli.commands.common import Verbs, add, connect, open_stack
from quayside_cli.errors import QuaysideError
from quayside_cli.ssh import script
from quayside_cli.stack import Stack

TIMEOUT_SECONDS: Final = 1800
# What the command says while backup.sh runs each action.
DOING: Final = {
    "now": "backing up {service}: dump, encrypt, upload, read back",
    "list": "listing the backups of {service}",
    "restore": "restoring {backup} into {service}",
}


def need_backups(stack: Stack) -> None:
    if "backup" not in stack.accessories:
        raise QuaysideError(
            f"stack {stack.name} has no accessories.backup: add it (docs/configuration.md), "
            f"then pulumi up -s {stack.name}"
        )


def backup_script(args: argparse.Namespace, request: list[str] | None = None, stdin: str | None = None) -> int:
    """backup.sh on the server: `request` is its command line but the service (default: the verb's action)."""
    stack = open_stack(args)
    need_backups(stack)
    values = steps.BACKUP.parse(request or [args.action])
    action = str(values.pop("action"))
    argv = steps.BACKUP.argv(action, **values, service=stack.service)
    command = script(stack.service, steps.BACKUP.name, argv, timeout_seconds=TIMEOUT_SECONDS)
    with (
        connect(stack, stack.accessory_server("backup")) as server,
        progress.step(DOING[action].format(service=stack.service, **values)),
    ):
        done = server.capture(command, stdin=stdin, timeout=TIMEOUT_SECONDS + 30)
    if done.stdout.strip():
        print(done.stdout.rstrip())
    if done.returncode != 0:
        print(done.stderr.rstrip(), file=sys.stderr)
        raise QuaysideError(f"stack {stack.name}: backup.sh {action} failed on the server (see above)")
    return 0


def run_backup(args: argparse.Namespace) -> int:
    return backup_script(args)


def restore_request(backup: str, passphrase_file: Path | None) -> tuple[list[str], str | None]:
    """backup.sh's request for restoring `backup`, and its stdin: the text of --passphrase-file, when given (the
    backup container reads the passphrase from its first line), never an argument."""
    passphrase = None
    if passphrase_file is not None:
        try:
            passphrase = passphrase_file.read_text()
        except OSError as error:
            raise QuaysideError(f"--passphrase-file {passphrase_file}: cannot read it ({error.strerror})") from None
    return ["restore", *steps.BACKUP.words({"backup": backup, "passphrase_stdin": passphrase is not None})], passphrase


def run_restore(args: argparse.Namespace) -> int:
    request, stdin = restore_request(args.backup, args.passphrase_file)
    if not args.yes:
        if not sys.stdin.isatty():
            raise QuaysideError("restore replaces the database's contents: add --yes to do it without asking")
        answer = input(f"restore {args.backup} over the database's current contents? [y/N] ")
        if answer.strip().lower() not in {"y", "yes"}:
            print("restore: nothing done")
            return 1
    return backup_script(args, request, stdin)


def register(verbs: Verbs) -> None:
    sub = add(verbs, "backup", run_backup, "back up the Postgres accessory now, or list the backups in S3")
    sub.add_argument(
        "action", choices=["now", "list"], help="now: dump, encrypt, upload, verify, prune; list: oldest first"
    )
    sub = add(verbs, "restore", run_restore, "replace the Postgres database's contents with a backup")
    sub.add_argument("backup", metavar="latest|NAME", help="latest, or a name `quayside backup list` prints")
    sub.add_argument("-y", "--yes", action="store_true", help="do not ask first (needed without a terminal)")
    sub.add_argument(
        "--passphrase-file", type=Path, metavar="FILE",
        help="the passphrase the backup was made with, when it is not the configured one (sent on stdin)",
    )  # fmt: skip
