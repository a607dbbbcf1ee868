"""Benchmark: the deploy steps of a 3-role service on the loopback test server, timed, under HTTP load.

Runs the same remote scripts `pulumi up` runs (swap.sh over SSH, shipped and quoted as the components do),
with the role defaults of components/defaults.py (1 s health interval), REPEATS times each, and prints the
median wall time of each scenario, the failed requests of all its runs, and the server-side swap time
(swap.sh start → proxy switched) beside the image's own time to healthy.

    .venv/bin/python -m bench.swaps     (after scripts/setup; prints a table; nothing is asserted)

bench/run compares whole deploys with Kamal's instead (bench/compare.py); this is the server side alone.
"""

from __future__ import annotations

import re
import statistics
import subprocess
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Final

from components import defaults, steps
from tests.integration.conftest import Service, new_service, prepare
from tests.support import images
from tests.support.docker import docker
from tests.support.testbed import TestServer

REPEATS: Final = 5
ROLES: Final = ("web", "backend", "api")
SWITCHED: Final = re.compile(r": switched (\d+) ms after start")
# The role defaults a stack gets when it sets nothing (health every 1 s, 30 s to become healthy).
SWAP_OPTIONS: Final = (
    "--health-interval", defaults.HEALTH_INTERVAL, "--health-timeout", defaults.HEALTH_TIMEOUT,
    "--deploy-timeout", defaults.DEPLOY_TIMEOUT, "--drain-timeout", "5s",
)  # fmt: skip


@dataclass
class Scenario:
    name: str
    seconds: list[float] = field(default_factory=list)
    switch_ms: list[int] = field(default_factory=list)
    requests: int = 0
    failed: int = 0

    def row(self) -> str:
        switch = f"{statistics.median(self.switch_ms):6.0f}" if self.switch_ms else "     -"
        return (
            f"{self.name:<24} {statistics.median(self.seconds):8.2f} {min(self.seconds):7.2f} "
            f"{max(self.seconds):7.2f} {switch} {self.failed:>4} of {self.requests}"
        )


def swap(service: Service, role: str, tag: str) -> list[int]:
    """One swap.sh run that must succeed; the server-side switch times it printed."""
    args = service.swap_args(role, images.app(tag), tag, *SWAP_OPTIONS)  # instead of the tests' fast timings
    done = service.run(steps.SWAP.name, *args)
    if done.returncode != 0:
        raise RuntimeError(f"swap of {role} to {tag} failed:\n{done.stdout}{done.stderr}")
    return [int(ms) for ms in SWITCHED.findall(done.stdout + done.stderr)]


def measure(scenario: Scenario, service: Service, loaded: tuple[str, ...], swaps: list[tuple[str, str]]) -> None:
    """Runs the (role, tag) swaps in order with constant load on each role in `loaded`, counting every response."""
    with ExitStack() as stack:
        loads = [stack.enter_context(service.load(role)) for role in loaded]
        for load in loads:
            load.wait_for_requests(50)
        started = time.monotonic()
        for role, tag in swaps:
            scenario.switch_ms += swap(service, role, tag)
        scenario.seconds.append(time.monotonic() - started)
        for load in loads:
            load.wait_for_requests(load.report.total + 50)
    for load in loads:
        scenario.requests += load.report.total
        scenario.failed += len(load.report.failures)


def time_to_healthy(tag: str) -> float:
    """Seconds from `docker run` until the image answers /up inside its container (polled every 50 ms)."""
    started = time.monotonic()
    container = docker("run", "--detach", "--rm", images.app(tag)).strip()
    try:
        while time.monotonic() - started < 30:
            probe = subprocess.run(
                ["docker", "exec", container, "wget", "-q", "-O", "/dev/null", "http://127.0.0.1/up"],
                capture_output=True,
            )
            if probe.returncode == 0:
                return time.monotonic() - started
            time.sleep(0.05)
        raise RuntimeError(f"{images.app(tag)} was not healthy within 30 s")
    finally:
        docker("rm", "--force", container, check=False)


def main() -> None:
    server = TestServer.from_testbed()
    # (scenario, roles under load, swaps in order); each run starts from a fresh service.
    plan: list[tuple[str, tuple[str, ...], list[tuple[str, str]]]] = [
        ("first deploy, 3 roles", (), [(role, "v1") for role in ROLES]),
        ("image change, 1 role", ("web",), [("web", "v2")]),
        ("image change, 3 roles", ROLES, [(role, "v3") for role in ROLES]),
        ("no-op", ROLES, [(role, "v3") for role in ROLES]),
        ("rollback, 1 role", ("web",), [("web", "v2")]),
    ]
    scenarios = {name: Scenario(name) for name, _, _ in plan}
    for repeat in range(REPEATS):
        service = new_service(server, prefix="bench")
        try:
            prepare(service)
            for name, loaded, swaps in plan:
                measure(scenarios[name], service, loaded, swaps)
        finally:
            service.remove_everything()
        print(f"run {repeat + 1} of {REPEATS} done", flush=True)

    healthy = [time_to_healthy("v1") for _ in range(REPEATS)]
    interval = defaults.HEALTH_INTERVAL
    print(f"\nmedian of {REPEATS}: swap.sh over SSH to the loopback test server, health interval {interval}")
    print(f"{'scenario':<24} {'median s':>8} {'min s':>7} {'max s':>7} {'switch':>6} failed requests")
    for scenario in scenarios.values():
        print(scenario.row())
    print("switch: median ms from swap.sh start to the proxy serving the new version, per role swap")
    print(f"the image's own time to healthy (docker run -> /up answers): median {statistics.median(healthy):.2f} s")


if __name__ == "__main__":
    main()
