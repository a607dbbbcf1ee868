"""How a remote script runs: shipped to /var/lib/quayside/<service>/bin/, then one step's argv (built by its
declaration in components/steps.py), wrapped in `timeout` so a hung step ends, quoted once by shlex.join.
Secrets never pass through here: they go over stdin.
"""

from __future__ import annotations

import base64
import io
import shlex
import tarfile
from collections.abc import Iterable
from pathlib import Path
from typing import Final

from components import defaults

SCRIPTS_DIR: Final = Path(__file__).parent / "scripts"

# The outputs a step keeps secret in state when it gets an env file on stdin and may print what its containers print
# (a crashed app's log, a migration's output, an env value echoed by the app): its stdin, stdout and stderr.
SECRET_STREAMS: Final = ["stdin", "stdout", "stderr"]

# Extracts the shipped scripts: the archive arrives base64-encoded on stdin.
INSTALL_SCRIPT: Final = 'mkdir -p "$1" && base64 -d | tar -xzf - -C "$1"'


def service_dir(service: str) -> str:
    return f"{defaults.REMOTE_ROOT}/{service}"


def scripts_dir(service: str) -> str:
    return f"{service_dir(service)}/bin"


def script(service: str, name: str, args: Iterable[str], *, timeout_seconds: int) -> str:
    """`timeout ... bash <bin>/<name> <args>`, quoted for a remote shell."""
    argv = ["timeout", "--kill-after=10s", f"{timeout_seconds}s", "bash", f"{scripts_dir(service)}/{name}", *args]
    return shlex.join(argv)


def piped_script(args: Iterable[str], *, timeout_seconds: int) -> str:
    """`timeout ... bash -s -- <args>`: for a step that runs before the scripts are shipped (its text, from
    `script_text`, goes on stdin)."""
    argv = ["timeout", "--kill-after=10s", f"{timeout_seconds}s", "bash", "-s", "--", *args]
    return shlex.join(argv)


def script_text(name: str) -> str:
    return (SCRIPTS_DIR / name).read_text()


def install_scripts(service: str) -> str:
    return shlex.join(["sh", "-c", INSTALL_SCRIPT, "install-scripts", scripts_dir(service)])


def remove_scripts(service: str) -> str:
    return shlex.join(["rm", "-rf", "--", scripts_dir(service)])


def scripts_archive() -> str:
    """The scripts as a base64 tar.gz, byte-for-byte the same while they are unchanged (so no spurious diff)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=9, format=tarfile.USTAR_FORMAT) as archive:
        for path in sorted(SCRIPTS_DIR.glob("*.sh")):
            info = tarfile.TarInfo(path.name)
            data = path.read_bytes()
            info.size, info.mode, info.mtime = len(data), 0o755, 0
            archive.addfile(info, io.BytesIO(data))
    # gzip stamps the time too: zero it so the archive depends on content only.
    raw = bytearray(buffer.getvalue())
    raw[4:8] = b"\0\0\0\0"
    return base64.b64encode(bytes(raw)).decode()


def seconds(duration: str) -> int:
    """Whole seconds in a config duration, rounded up (500ms → 1, 30s → 30, 2m → 120)."""
    # Here, not at the top: the rollout (components/rollout.py) runs this module under a bare python3, without the
    # config models' pydantic.
    from components import config

    return -(-config.milliseconds(duration) // 1000)
