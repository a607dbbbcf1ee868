"""quayside's side of the comparison: `pulumi up` of quayside's own program, through the Python language host and
the project's .venv (QuaysideProject, as the e2e tests run it), of a stack of its own service `bq-<hex>` on the
loopback server. The stack file is the local stack's, less the migration and the role ordering (Kamal has
neither), with the health settings Kamal gets. Each command is the CLI a user types, timed as a whole:

    pulumi up --yes --skip-preview --stack e2e          (a deploy; quayside rollback runs the same)
    quayside -s e2e rollback ROLE VERSION               (a rollback, as tests/e2e/test_deploys.py runs it)
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Final

import yaml

from bench.common import (
    HEALTH_INTERVAL_SECONDS,
    HEALTH_PATH,
    HEALTH_TIMEOUT_SECONDS,
    ROLES,
    ROOT,
    BenchError,
    Outcome,
    push_to_registry,
    registry_ref,
    run_logged,
)
from tests.support import images
from tests.support.pulumi_engine import PULUMI_HOME, QuaysideProject, program_runtime, pulumi_cli
from tests.support.stacks import PROXY, PROXY_PORT, STACK, DemoStack, unique_service
from tests.support.testbed import TestServer

# The deploy a user types, without the preview (quayside rollback's `pulumi up` skips it too).
UP: Final = ("pulumi", "up", "--yes", "--skip-preview", "--stack", STACK, "--color", "never")
# Pulumi's own share of every `pulumi up`: a Python program that declares nothing, run by the same CLI, language
# host and virtualenv, on a backend like the stack's. What a quayside no-op takes above it is quayside's part.
EMPTY_PROGRAM: Final = "import pulumi  # noqa: F401  (declares nothing)\n"
EMPTY_STACK: Final = "empty"
# swap.sh's line, as the CLI shows the remote command's output: "... swap: web v2: switched 648 ms after start".
SWITCHED: Final = re.compile(r"swap: (?P<role>[a-z0-9-]+) \S+: switched (?P<ms>\d+) ms after start")


def cli_env(project: QuaysideProject) -> dict[str, str]:
    """The environment a user's `pulumi` runs in for the project: its backend and passphrase, the Pulumi CLI the
    set-up built first on PATH, its plugins."""
    env = {**os.environ, **project.env(), "PULUMI_HOME": str(PULUMI_HOME)}
    env["PATH"] = f"{pulumi_cli().parent}{os.pathsep}{env['PATH']}"
    return env


def push_images() -> None:
    """The Python app that ignores SIGTERM into the loopback registry."""
    push_to_registry(images.PYAPP_TAGS)


class Quayside:
    name = "quayside"
    label = "quayside"
    proxy_port = PROXY_PORT
    proxy_container = PROXY

    def __init__(self, server: TestServer) -> None:
        self._server = server
        self._stack: DemoStack | None = None
        self._scratch: Path | None = None
        self._commands = 0

    @property
    def stack(self) -> DemoStack:
        if self._stack is None:
            raise BenchError("quayside: no stack; start() first")
        return self._stack

    def host(self, role: str) -> str:
        return self.stack.host(role)

    def start(self) -> None:
        self._scratch = Path(tempfile.mkdtemp(prefix="quayside-bench-"))
        stack = DemoStack.create(self._scratch, self._server, unique_service("bq"))
        if sorted(stack.roles) != sorted(ROLES):
            raise BenchError(f"Pulumi.local.yaml's roles are {sorted(stack.roles)}, the bench deploys {ROLES}")
        health = {
            "path": HEALTH_PATH,
            "interval": f"{HEALTH_INTERVAL_SECONDS}s",
            "timeout": f"{HEALTH_TIMEOUT_SECONDS}s",
        }
        for settings in stack.roles.values():
            settings.pop("migrate", None)
            settings.pop("depends_on", None)
            settings["health"] = dict(health)
        self._stack = stack

    def _env(self) -> dict[str, str]:
        return cli_env(self.stack.project)

    def _run(self, what: str, argv: list[str]) -> tuple[float, str]:
        self._commands += 1
        log = f"quayside-{self.stack.service}-{self._commands:02d}-{what}"
        return run_logged(argv, log, cwd=self.stack.project.work_dir, env=self._env(), timeout=600)

    def deploy(self, versions: Mapping[str, str]) -> Outcome:
        for role, version in versions.items():
            self.stack.roles[role]["image"] = registry_ref(version)
        self.stack.stack()  # writes Pulumi.e2e.yaml (and creates the stack the first time); not timed
        took, output = self._run("up", [*UP])
        return Outcome(took, switch_times(output))

    def empty_program(self) -> Outcome:
        """`pulumi up` of a program that declares nothing (its project made and first deployed untimed)."""
        if self._scratch is None:
            raise BenchError("quayside: no scratch directory; start() first")
        work_dir = self._scratch / "empty-program"
        argv = ["pulumi", "up", "--yes", "--skip-preview", "--stack", EMPTY_STACK, "--color", "never"]
        if not work_dir.exists():
            work_dir.mkdir()
            project = {"name": "empty-program", "runtime": program_runtime()}
            (work_dir / "Pulumi.yaml").write_text(yaml.safe_dump(project))
            (work_dir / "__main__.py").write_text(EMPTY_PROGRAM)
            run_logged(["pulumi", "stack", "init", EMPTY_STACK], "quayside-empty-init", cwd=work_dir, env=self._env())
            run_logged(argv, "quayside-empty-first", cwd=work_dir, env=self._env())
        self._commands += 1
        took, _ = run_logged(argv, f"quayside-empty-{self._commands:02d}-up", cwd=work_dir, env=self._env())
        return Outcome(took, {})

    def preview(self) -> float:
        """Seconds of `pulumi preview`: what `pulumi up` without --skip-preview runs first."""
        self.stack.stack()
        took, _ = self._run("preview", ["pulumi", "preview", "--stack", STACK, "--color", "never"])
        return took

    def rollback(self, role: str, version: str) -> Outcome:
        quayside = str(ROOT / ".venv" / "bin" / "quayside")
        took, output = self._run("rollback", [quayside, "-s", STACK, "rollback", role, version])
        if f"rollback: {role} now {version}" not in output:
            raise BenchError(f"quayside: quayside rollback did not say {role} is now {version}:\n{output[-2000:]}")
        return Outcome(took, switch_times(output))

    def settle(self) -> None:
        self.stack.settle()

    def stop(self) -> None:
        if self._stack is None:
            return
        try:
            self._stack.destroy()
        finally:
            shutil.rmtree(self._stack.service_dir, ignore_errors=True)  # the audit log destroy keeps
            if self._scratch is not None:
                shutil.rmtree(self._scratch, ignore_errors=True)
            self._stack = None


def switch_times(output: str) -> dict[str, int]:
    """Role → ms from swap.sh's start to kamal-proxy serving the new version (the CLI repeats lines: first wins)."""
    found: dict[str, int] = {}
    for match in SWITCHED.finditer(output):
        found.setdefault(match["role"], int(match["ms"]))
    return found
