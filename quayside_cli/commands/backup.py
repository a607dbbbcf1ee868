"""`quayside backup now|list` and `quayside restore latest|NAME`: backup.sh on the server, which has the backup
container dump, encrypt and upload (or download, decrypt and restore). The S3 keys and the passphrase stay on the
server; what a restore brings (`--private-key-file`, the private key of backup.public_key, which never stays on the
server; `--passphrase-file`, that key's passphrase, or the passphrase of a backup made before the passphrase
changed) goes on the SSH session's stdin, never on a command line. On a stack of several servers it runs on the
backup accessory's server."""

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
    s3_key = s3_key_lines(args.s3_key_file)
    return backup_script(args, [args.action, *steps.BACKUP.words({"s3_key_stdin": s3_key is not None})], s3_key)


def s3_key_lines(path: Path | None) -> str | None:
    """--s3-key-file's two lines, the key's id then its secret: a key that reads, for a write-only one's bucket."""
    text = _read(path, "--s3-key-file")
    if text is None:
        return None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) != 2:
        raise QuaysideError(f"--s3-key-file {path}: give the key's id on the first line and its secret on the second")
    return "\n".join(lines) + "\n"


def restore_request(
    backup: str, passphrase_file: Path | None, private_key_file: Path | None = None, s3_key_file: Path | None = None
) -> tuple[list[str], str | None]:
    """backup.sh's request for restoring `backup`, and its stdin, never an argument: the lines of --s3-key-file,
    the text of --private-key-file, then that of --passphrase-file (the backup container reads the S3 key's two
    lines, the private key's armored block, then the passphrase from the first line after it)."""
    s3_key = s3_key_lines(s3_key_file)
    key = _read(private_key_file, "--private-key-file")
    passphrase = _read(passphrase_file, "--passphrase-file")
    if key is not None and "-----BEGIN PGP PRIVATE KEY BLOCK-----" not in key:
        raise QuaysideError(
            f"--private-key-file {private_key_file}: no ASCII-armored private key in it "
            "(write one with gpg --armor --export-secret-keys KEY)"
        )
    parts = [text.rstrip("\n") for text in (s3_key, key, passphrase) if text is not None]
    request = steps.BACKUP.words({
        "backup": backup, "private_key_stdin": key is not None, "passphrase_stdin": passphrase is not None,
        "s3_key_stdin": s3_key is not None,
    })  # fmt: skip
    return ["restore", *request], "\n".join(parts) + "\n" if parts else None


def _read(path: Path | None, option: str) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text()
    except OSError as error:
        raise QuaysideError(f"{option} {path}: cannot read it ({error.strerror})") from None


def run_restore(args: argparse.Namespace) -> int:
    request, stdin = restore_request(args.backup, args.passphrase_file, args.private_key_file, args.s3_key_file)
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
    add_s3_key_file(sub)
    sub = add(verbs, "restore", run_restore, "replace the Postgres database's contents with a backup")
    sub.add_argument("backup", metavar="latest|NAME", help="latest, or a name `quayside backup list` prints")
    sub.add_argument("-y", "--yes", action="store_true", help="do not ask first (needed without a terminal)")
    sub.add_argument(
        "--passphrase-file", type=Path, metavar="FILE",
        help="with --private-key-file, that key's passphrase; else the passphrase the backup was made with, when it "
        "is not the configured one (sent on stdin)",
    )  # fmt: skip
    sub.add_argument(
        "--private-key-file", type=Path, metavar="FILE",
        help="the private key of backup.public_key, ASCII-armored (sent on stdin, kept on the server only while "
        "the restore runs)",
    )  # fmt: skip
    add_s3_key_file(sub)


def add_s3_key_file(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--s3-key-file", type=Path, metavar="FILE",
        help="an S3 key that reads, its id's line then its secret's, for a bucket whose configured key only writes "
        "(s3.write_only; sent on stdin, used for this command only)",
    )  # fmt: skip
