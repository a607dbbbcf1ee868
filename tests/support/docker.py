"""Thin helpers over the docker CLI for tests: argv lists, no shell."""

from __future__ import annotations

import socket
import subprocess
import uuid


def docker(*args: str, check: bool = True, timeout: float = 120) -> str:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout.strip()


def unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def listens(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts connections on `host`:`port` (a connection only: no request is sent)."""
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError:
        return False
    return True


def remove_containers(*names: str) -> None:
    if names:
        docker("rm", "-f", *names, check=False)
