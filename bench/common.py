"""What both tools of the comparison share: the app's roles, the deploy tool interface, the machine lock, where
the bench writes, and how it runs a command with its output kept in a log file."""

from __future__ import annotations

import fcntl
import os
import re
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Protocol

from tests.support import images
from tests.support.docker import docker
from tests.support.testbed import registry_address

ROOT: Final = Path(__file__).resolve().parents[1]
OUT: Final = ROOT / "bench" / "out"
LOGS: Final = OUT / "logs"
ROLES: Final = ("web", "backend", "api")
# The app both tools deploy: three roles of the test image, each behind its proxy on a host of its own.
ROLE_PORTS: Final = {"web": 80, "backend": 3001, "api": 3002}
HEALTH_PATH: Final = "/up"
HEALTH_INTERVAL_SECONDS: Final = 1
HEALTH_TIMEOUT_SECONDS: Final = 5
# The lock the project's test runs take on this machine, so the bench and the tests never load it at once.
DEFAULT_MACHINE_LOCK: Final = "/tmp/quayside-machine.lock"


# Seconds each chunk waited for the machine lock (test runs hold it), so the bench can say what it took itself.
LOCK_WAITS: list[float] = []


def local_image(tag: str) -> str:
    """The image scripts/setup built for a tag the bench deploys: the Python app's, else the busybox test app's."""
    return images.pyapp(tag) if tag in images.PYAPP_TAGS else images.app(tag)


def registry_ref(tag: str) -> str:
    """That image in the loopback registry, where deploys pull it from."""
    return f"{registry_address()}/{local_image(tag)}"


def push_to_registry(tags: Sequence[str]) -> None:
    """Those tags' images into the loopback registry (scripts/setup.d/registry-images.sh pushes the test app's)."""
    for tag in tags:
        docker("tag", local_image(tag), registry_ref(tag))
        docker("push", "--quiet", registry_ref(tag), timeout=300)


class BenchError(RuntimeError):
    """A step of the bench failed; the message names it and quotes the tool's last lines."""


@dataclass
class Outcome:
    """What one timed command did: its wall time and, where the tool prints it, each role's switch time."""

    seconds: float
    switch_ms: dict[str, int] = field(default_factory=dict)


class Tool(Protocol):
    """One deploy tool driving the 3-role app on the loopback server."""

    name: str
    label: str
    proxy_port: int
    proxy_container: str

    def host(self, role: str) -> str: ...

    def start(self) -> None:
        """A fresh app: nothing of it deployed (the tool's proxy may run)."""

    def deploy(self, versions: Mapping[str, str]) -> Outcome:
        """Deploys role → version (the roles named only) and returns the timed deploy command."""

    def rollback(self, role: str, version: str) -> Outcome:
        """Rolls one role back to an earlier version with the tool's own rollback command."""

    def settle(self) -> None:
        """Waits for anything the last command left running in the background on the server."""

    def stop(self) -> None:
        """Removes the app."""


def machine_lock_path() -> str:
    """QUAYSIDE_MACHINE_LOCK, or the machine's shared lock; empty means no lock."""
    return os.environ.get("QUAYSIDE_MACHINE_LOCK", DEFAULT_MACHINE_LOCK)


@contextmanager
def machine_lock(what: str) -> Iterator[None]:
    """Holds the machine lock for one chunk of the bench; says so when it has to wait for it."""
    path = machine_lock_path()
    if not path:
        yield
        return
    # Python opens files non-inheritable: no process the bench starts keeps the lock after it ends.
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"  ({what}: waiting for {path}, held by a test run)", flush=True)
            waiting = time.monotonic()
            fcntl.flock(handle, fcntl.LOCK_EX)
            LOCK_WAITS.append(time.monotonic() - waiting)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def log_path(name: str) -> Path:
    LOGS.mkdir(parents=True, exist_ok=True)
    return LOGS / f"{name}.log"


def run_logged(
    argv: Sequence[str],
    log_name: str,
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 600,
) -> tuple[float, str]:
    """Runs argv with its output (stdout and stderr, interleaved) in bench/out/logs/<log_name>.log; returns
    (seconds it took, output). Raises BenchError with the last lines when it fails."""
    log = log_path(log_name)
    started = time.monotonic()
    done = subprocess.run(
        list(argv), cwd=cwd, env=dict(env) if env is not None else None, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    took = time.monotonic() - started
    log.write_text(f"$ {' '.join(argv)}\n{done.stdout}\n(exit {done.returncode} after {took:.2f} s)\n")
    if done.returncode != 0:
        tail = "\n".join(done.stdout.splitlines()[-15:])
        raise BenchError(f"{' '.join(argv[:3])} ... failed (exit {done.returncode}; full log {log}):\n{tail}")
    return took, done.stdout


def dockerd_started() -> str:
    """When the server's dockerd started (this machine's), to notice a restart during a round."""
    done = subprocess.run(["ps", "-o", "lstart=", "-C", "dockerd"], capture_output=True, text=True, check=False)
    return done.stdout.strip()


def proxy_errors(container: str, since: float) -> list[tuple[int, str]]:
    """The proxy's error messages since the epoch time `since`, most frequent first, container IDs and ports
    blanked so alike errors count together."""
    done = subprocess.run(
        ["docker", "logs", "--since", f"{since:.0f}", container], capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    counts: dict[str, int] = {}
    for line in (done.stdout + done.stderr).splitlines():
        if '"level":"ERROR"' not in line or '"error":"' not in line:
            continue
        message = line.split('"error":"', 1)[1].split('"', 1)[0]
        message = re.sub(r"\b[0-9a-f]{12}\b", "<id>", message)
        message = re.sub(r"127\.0\.0\.1:\d+->", "127.0.0.1:<port>->", message)
        counts[message] = counts.get(message, 0) + 1
    return sorted(((count, message) for message, count in counts.items()), reverse=True)
