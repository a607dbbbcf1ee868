"""`quayside backup now|list` and `quayside restore latest|NAME`: backup.sh on the server, which has the backup
container dump, encrypt and upload (or download, decrypt and restore). Keys and passphrase stay on the server."""

from __future__ import annotations

import argparse
import sys
from typing import Final

from components import steps
from quayside_cli import progress
from quayside_cli.commands.common import Verbs, add, connect, open_stack
from quayside_cli.errors import QuaysideError
from quayside_cli.ssh import script
from quayside_cli.stack import Stack

TIMEOUT_SECONDS: Final = 1800


def need_backups(stack: Stack) -> None:
    if "backup" not in stack.accessories:
        raise QuaysideError(
            f"stack {stack.name} has no accessories.backup: add it (docs/configuration.md), "
            f"then pulumi up -s {stack.name}"
        )


def backup_script(args: argparse.Namespace, action: str, doing: str, backup: str | None = None) -> int:
    stack = open_stack(args)
    need_backups(stack)
    argv = steps.BACKUP.argv(action, service=stack.service, backup=backup)
    command = script(stack.service, steps.BACKUP.name, argv, timeout_seconds=TIMEOUT_SECONDS)
    with connect(stack) as server, progress.step(doing.format(service=stack.service)):
        done = server.capture(command, timeout=TIMEOUT_SECONDS + 30)
    if done.stdout.strip():
        print(done.stdout.rstrip())
    if done.returncode != 0:
        print(done.stderr.rstrip(), file=sys.stderr)
        raise QuaysideError(f"stack {stack.name}: backup.sh {action} failed on the server (see above)")
    return 0


def run_backup(args: argparse.Namespace) -> int:
    if args.action == "now":
        return backup_script(args, "now", "backing up {service}: dump, encrypt, upload, read back")
    return backup_script(args, "list", "listing the backups of {service}")


def run_restore(args: argparse.Namespace) -> int:
    if not args.yes:
        if not sys.stdin.isatty():
            raise QuaysideError("restore replaces the database's contents: add --yes to do it without asking")
        answer = input(f"restore {args.backup} over the database's current contents? [y/N] ")
        if answer.strip().lower() not in {"y", "yes"}:
            print("restore: nothing done")
            return 1
    return backup_script(args, "restore", f"restoring {args.backup} into {{service}}", args.backup)


def register(verbs: Verbs) -> None:
    sub = add(verbs, "backup", run_backup, "back up the Postgres accessory now, or list the backups in S3")
    sub.add_argument(
        "action", choices=["now", "list"], help="now: dump, encrypt, upload, verify, prune; list: oldest first"
    )
    sub = add(verbs, "restore", run_restore, "replace the Postgres database's contents with a backup")
    sub.add_argument("backup", metavar="latest|NAME", help="latest, or a name `quayside backup list` prints")
    sub.add_argument("-y", "--yes", action="store_true", help="do not ask first (needed without a terminal)")
