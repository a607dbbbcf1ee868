"""`quayside plan [-- pulumi preview options]`: scripts/plan for the stack, the preview in plain words per part."""

from __future__ import annotations

import argparse
import subprocess
import sys
from typing import Final

from quayside_cli import progress
from quayside_cli.commands.common import Verbs, add
from quayside_cli.stack import ROOT, Stack

PLAN: Final = ROOT / "scripts" / "plan"
TIMEOUT_SECONDS: Final = 900


def run(args: argparse.Namespace) -> int:
    stack = Stack.open(args.stack, args.cwd)
    argv = [str(PLAN), "-s", stack.name, "--cwd", str(stack.directory), *args.preview_options]
    # Captured, then printed: the spinner and the plan's lines do not share the terminal.
    with progress.step(f"previewing stack {stack.name}"):
        done = subprocess.run(argv, env=stack.env, capture_output=True, text=True, timeout=TIMEOUT_SECONDS, check=False)
    sys.stdout.write(done.stdout)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
    return done.returncode


def register(verbs: Verbs) -> None:
    sub = add(verbs, "plan", run, "what `pulumi up` would do, in plain words per part; WARNING lines lose data")
    sub.add_argument("preview_options", metavar="OPTION", nargs="*", help="more `pulumi preview` options, after --")
    sub.set_defaults(trailing="preview_options")
