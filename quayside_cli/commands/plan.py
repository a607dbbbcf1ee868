"""`quayside plan [-- pulumi preview options]`: `pulumi preview --json --diff` of the stack in its project directory,
told in plain words per part (quayside_cli/plan.py). Nothing on a server is touched; lines starting with `WARNING:`
lose data, replace the server, or say what a server ignores. Exits non-zero when the preview fails, after its errors.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from typing import Final

from quayside_cli import local_stack, progress
from quayside_cli.commands.common import Verbs, add
from quayside_cli.plan import show
from quayside_cli.stack import Stack, pulumi_binary

TIMEOUT_SECONDS: Final = 900


def run(args: argparse.Namespace) -> int:
    stack = Stack.open(args.stack, args.cwd)
    argv = [str(pulumi_binary()), "preview", "--json", "--diff", "--stack", stack.name, *args.preview_options]
    # Captured, then told: the spinner and the plan's lines do not share the terminal.
    with progress.step(f"previewing stack {stack.name}"):
        if stack.name == local_stack.NAME:
            stack.pulumi("stack", "select", "--create")  # a fresh checkout's local stack: made, as scripts/up makes it
        done = subprocess.run(
            argv, cwd=stack.directory, env=stack.env, capture_output=True, text=True, timeout=TIMEOUT_SECONDS,
            check=False,
        )  # fmt: skip
    if done.returncode != 0:
        sys.stderr.write(done.stderr)  # first: the plan of a failed preview points up at these errors
        sys.stderr.flush()
    return 1 if show(done.stdout) != 0 else done.returncode


def register(verbs: Verbs) -> None:
    sub = add(verbs, "plan", run, "what `pulumi up` would do, in plain words per part; WARNING lines lose data")
    sub.add_argument("preview_options", metavar="OPTION", nargs="*", help="more `pulumi preview` options, after --")
    sub.set_defaults(trailing="preview_options")
