"""The remote scripts as tests run them: shipped to the test server and run exactly as the components ship and run
them (components/remote.py), each command line built by its script's declaration (components/steps.py)."""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Sequence
from typing import Final

from components import defaults, remote
from tests.support.testbed import TestServer

REMOTE_ROOT: Final = defaults.REMOTE_ROOT


def container_name(service: str, role: str, version: str) -> str:
    """The container a role's version runs as, as lib.sh's container_name names it (tests/unit/test_names.py
    holds the two equal)."""
    return f"{service}_{role}_{version.replace('@', '_')}"


def fixed_network(service: str) -> str:
    """The network kamal-proxy reaches the service's proxied containers on, as lib.sh's fixed_network names it
    (tests/unit/test_names.py holds the two equal)."""
    return f"{service}.fixed"


def install_scripts(server: TestServer, service: str) -> None:
    server.run(remote.install_scripts(service), stdin=remote.scripts_archive(), timeout=60)


def run_script(
    server: TestServer,
    service: str,
    name: str,
    args: Sequence[str],
    *,
    stdin: str = "",
    timeout_seconds: int = 240,
) -> subprocess.CompletedProcess[str]:
    """Runs one installed script; never raises on its exit code (tests assert on it)."""
    command = remote.script(service, name, args, timeout_seconds=timeout_seconds)
    return server.run(command, stdin=stdin, check=False, timeout=timeout_seconds + 30)


# Waits until no step of the service holds a lock, as a next deploy would: a swap leaves its old container to
# stop in the background, holding the role's lock until it has.
SETTLE: Final = 'for lock in "$1"/locks/$2.lock; do [ -e "$lock" ] && flock -w 60 "$lock" true; done; true'


def settle(server: TestServer, service: str, part: str = "*") -> None:
    """Waits for the locks of one part of the service (a role), or of all its parts."""
    server.run(shlex.join(["sh", "-c", SETTLE, "settle", remote.service_dir(service), part]), timeout=90)
