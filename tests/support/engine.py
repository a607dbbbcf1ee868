"""This machine's Docker engine as an unattended upgrade of docker.io treats it: stopped and started again."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from tests.support.load import Load
from tests.support.polling import wait_for
from tests.support.pulumi_engine import ROOT


def live_restore_enabled() -> bool:
    done = subprocess.run(["docker", "info", "--format", "{{.LiveRestoreEnabled}}"], capture_output=True, text=True)
    return done.stdout.strip() == "true"


def restart_dockerd() -> float:
    """Stops the engine as an upgrade of docker.io does (SIGTERM) and starts it as set-up does; seconds taken."""
    started = time.monotonic()
    # This machine's engine only: the multi-host test bed's hosts run engines of their own.
    pid = int(Path("/var/run/docker.pid").read_text())
    os.kill(pid, signal.SIGTERM)
    wait_for("this machine's dockerd stopped", lambda: not Path(f"/proc/{pid}").exists(), seconds=60)
    engine = subprocess.run(["bash", str(ROOT / "scripts/setup.d/docker-engine.sh")], capture_output=True, text=True)
    assert engine.returncode == 0, engine.stderr
    return time.monotonic() - started


def restarts_under(load: Load, times: int, responses_between: int) -> str:
    """Restarts the engine `times` in a row under `load`, `responses_between` responses after each; says how long
    each restart took."""
    took = []
    for _ in range(times):
        took.append(restart_dockerd())
        load.wait_for_requests(load.report.total + responses_between)
    return f"{times} dockerd restarts ({', '.join(f'{seconds:.1f} s' for seconds in took)})"
