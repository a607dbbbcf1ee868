"""`quayside rollback ROLE [VERSION]`: scripts/rollback.py for the stack: the retained container of the earlier
version back in service first, then a `pulumi up` of the stack file with the role's earlier image, so Pulumi's
state and the server agree afterwards."""

from __future__ import annotations

import argparse
import subprocess
import sys
from typing import Final

from quayside_cli.commands.common import Verbs, add, open_stack
from quayside_cli.stack import ROOT

ROLLBACK: Final = ROOT / "scripts" / "rollback.py"


def run(args: argparse.Namespace) -> int:
    stack = open_stack(args)
    stack.role(args.role)
    argv = [sys.executable, str(ROLLBACK), "--stack", stack.name, args.role, *([args.version] if args.version else [])]
    return subprocess.run(argv, cwd=stack.directory, env=stack.env, check=False).returncode


def register(verbs: Verbs) -> None:
    sub = add(verbs, "rollback", run, "roll a role back: the earlier version serves, then pulumi up (state agrees)")
    sub.add_argument("role", metavar="ROLE", help="a role of the stack")
    sub.add_argument("version", metavar="VERSION", nargs="?", help="the version (default: the one before the live one)")
