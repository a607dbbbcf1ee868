"""`quayside rollback ROLE [VERSION]`: quayside_cli/rollback.py for the stack: the retained container of the earlier
version back in service first, then a `pulumi up` of the stack file with the role's earlier image, so Pulumi's
state and the server agree afterwards."""

from __future__ import annotations

import argparse

from quayside_cli.commands.common import Verbs, add
from quayside_cli.stack import Stack


def run(args: argparse.Namespace) -> int:
    # Imported here: the other verbs start without the registry client a rollback needs.
    from quayside_cli.rollback import roll_back

    return roll_back(Stack.open(args.stack, args.cwd), args.role, args.version)


def register(verbs: Verbs) -> None:
    sub = add(verbs, "rollback", run, "roll a role back: the earlier version serves, then pulumi up (state agrees)")
    sub.add_argument("role", metavar="ROLE", help="a role of the stack")
    sub.add_argument("version", metavar="VERSION", nargs="?", help="the version (default: the one before the live one)")
