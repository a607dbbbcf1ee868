"""The remote scripts as tests run them: shipped to the test server as the components ship them (a tar on
stdin), then one script with its argv quoted by shlex.join, wrapped in `timeout` as the components wrap it."""

from __future__ import annotations

import io
import shlex
import subprocess
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from tests.support.testbed import TestServer

SCRIPTS: Final = Path(__file__).resolve().parents[2] / "components" / "scripts"
REMOTE_ROOT: Final = "/var/lib/quayside"
INSTALL: Final = 'mkdir -p "$1" && tar -xzf - -C "$1"'


def scripts_dir(service: str) -> str:
    return f"{REMOTE_ROOT}/{service}/bin"


def scripts_archive() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path in sorted(SCRIPTS.glob("*.sh")):
            info = tarfile.TarInfo(path.name)
            data = path.read_bytes()
            info.size, info.mode = len(data), 0o755
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def install_scripts(server: TestServer, service: str) -> None:
    command = shlex.join(["sh", "-c", INSTALL, "install", scripts_dir(service)])
    subprocess.run(server.ssh_argv(command), input=scripts_archive(), capture_output=True, check=True, timeout=60)


def script_command(service: str, name: str, args: Sequence[str], *, timeout_seconds: int) -> str:
    argv = ["timeout", "--kill-after=10s", f"{timeout_seconds}s", "bash", f"{scripts_dir(service)}/{name}", *args]
    return shlex.join(argv)


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
    command = script_command(service, name, args, timeout_seconds=timeout_seconds)
    return server.run(command, stdin=stdin, check=False, timeout=timeout_seconds + 30)


# Waits until no step of the service holds a lock, as a next deploy would: a swap leaves its old container to
# stop in the background, holding the role's lock until it has.
SETTLE: Final = 'for lock in "$1"/locks/$2.lock; do [ -e "$lock" ] && flock -w 60 "$lock" true; done; true'


def settle(server: TestServer, service: str, part: str = "*") -> None:
    """Waits for the locks of one part of the service (a role), or of all its parts."""
    server.run(shlex.join(["sh", "-c", SETTLE, "settle", f"{REMOTE_ROOT}/{service}", part]), timeout=90)
