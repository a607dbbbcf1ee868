"""`quayside [-s STACK] [--cwd DIR] VERB ...`: the verbs are the modules of quayside_cli.commands."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from components import ssh
from quayside_cli.commands import audit, backup, details, exec_, logs, maintenance, plan, rollback
from quayside_cli.errors import QuaysideError

VERBS = (details, logs, exec_, rollback, maintenance, backup, plan, audit)
DESCRIPTION = """\
Day-2 operations on a deployed quayside stack. The stack's outputs name the service and the server; the SSH key
is the one the stack deploys with (server.private_key_file, else the ssh_private_key secret). The `local` stack
(the default when no stack is selected) uses scripts/up's backend and passphrase; any other stack your own
(`pulumi login` or PULUMI_BACKEND_URL, PULUMI_CONFIG_PASSPHRASE)."""


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="quayside", description=DESCRIPTION)
    top.add_argument("-s", "--stack", help="the Pulumi stack (default: the selected one, else local)")
    top.add_argument(
        "--cwd", type=Path, help="the project's directory, where Pulumi.yaml is (default: found from here)"
    )
    verbs = top.add_subparsers(dest="verb", metavar="VERB", required=True)
    for verb in VERBS:
        verb.register(verbs)
    return top


def parse(argv: Sequence[str]) -> argparse.Namespace:
    """Everything after the first `--` is the trailing command of the verbs that take one (exec's CMD, plan's
    preview options): argparse alone would not take it after options that follow the positionals."""
    at = list(argv).index("--") if "--" in argv else len(argv)
    head, tail = list(argv[:at]), list(argv[at + 1 :])
    top = parser()
    args = top.parse_args(head)
    if tail:
        trailing = getattr(args, "trailing", None)
        if trailing is None:
            top.error(f"quayside {args.verb} takes nothing after --")
        setattr(args, trailing, [*getattr(args, trailing), *tail])
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    try:
        code: int = args.run(args)
    except QuaysideError as error:
        print(f"quayside: {error}", file=sys.stderr)
        return 1
    except subprocess.TimeoutExpired as error:
        print(f"quayside: {error.cmd[0]} took longer than {error.timeout:.0f}s and was stopped", file=sys.stderr)
        return 1
    except ssh.Terminated as terminated:
        return terminated.status
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
