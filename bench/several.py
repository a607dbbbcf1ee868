"""Several servers against one, on the multi-host test bed: `pulumi up` of quayside's own program (the Automation
API, as the e2e tests run it) changing the image of three roles, once with every role on one host and once with
every role on three hosts, under HTTP load (two keep-alive workers on every host of every role), in the same run.
The bed's hosts share this machine's two cores, so three hosts boot three times the containers on the same CPUs: a
third scenario boots as many on one host (nine roles), which tells the bed's shared CPUs from quayside's own cost
of several servers. Prints the medians, their ratios, and every failed request. Nothing is asserted.

    .venv/bin/python -m bench.several [--runs N]        (bench/run --several passes its options here)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from tests.support.hosts import HostBed
from tests.support.several import SERVER_NAMES, SeveralStack
from tests.support.stacks import unique_service

ROLES: Final = ("web", "backend", "api")
TAGS: Final = ("v1", "v2")


@dataclass
class Scenario:
    name: str
    servers: list[str]
    roles: tuple[str, ...] = ROLES
    seconds: list[float] = field(default_factory=list)
    requests: int = 0
    failed: int = 0

    def row(self) -> str:
        median = statistics.median(self.seconds)
        return (
            f"{self.name:<34} {median:8.2f} {min(self.seconds):7.2f} {max(self.seconds):7.2f} "
            f"{self.failed:>4} of {self.requests}"
        )


def stack_for(directory: Path, bed: HostBed, scenario: Scenario) -> SeveralStack:
    """The scenario's roles of the demo app on its servers (all at once, no migration), nothing else."""
    stack = SeveralStack.create(directory, bed, unique_service("bs"))
    app = {"health": {"path": "/up", "interval": "1s"}, "drain_timeout": "5s"}
    stack.config["quayside:roles"] = {
        role: {**app, "image": stack.image("v1"), "servers": scenario.servers, "hosts": [stack.host_name(role)]}
        for role in scenario.roles
    }
    del stack.config["quayside:accessories"]
    return stack


def change(stack: SeveralStack, scenario: Scenario, tag: str) -> None:
    """One image change of the three roles under load on every (role, server); its time and failures recorded."""
    for role in scenario.roles:
        stack.roles[role]["image"] = stack.image(tag)
    with ExitStack() as running:
        loads = [running.enter_context(stack.load(r, s)) for r in scenario.roles for s in scenario.servers]
        for load in loads:
            load.wait_for_requests(50)
        started = time.monotonic()
        stack.up()
        scenario.seconds.append(time.monotonic() - started)
        for load in loads:
            load.wait_for_requests(load.report.total + 50)
    scenario.requests += sum(load.report.total for load in loads)
    scenario.failed += sum(len(load.report.failures) for load in loads)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench/run --several", description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="image changes per scenario (default 3)")
    args = parser.parse_args(argv)
    bed = HostBed.from_testbed()
    one = list(SERVER_NAMES[:1])
    nine = tuple(f"{role}-{n}" for role in ROLES for n in (1, 2, 3))
    scenarios = [
        Scenario("3 roles on 1 host", one),
        Scenario("3 roles on 3 hosts", list(SERVER_NAMES)),
        Scenario("9 roles on 1 host (as many boots)", one, nine),
    ]
    with tempfile.TemporaryDirectory() as directory:
        stacks = [stack_for(Path(directory) / str(i), bed, s) for i, s in enumerate(scenarios)]
        try:
            for stack in stacks:
                stack.up()
            # Alternating, so the scenarios meet the machine in the same state.
            for run in range(args.runs):
                for stack, scenario in zip(stacks, scenarios, strict=True):
                    change(stack, scenario, TAGS[(run + 1) % 2])
                    print(f"run {run + 1}: {scenario.name}: {scenario.seconds[-1]:.2f} s", flush=True)
        finally:
            for stack in stacks:
                stack.destroy()
    print(f"\n{'scenario':<34} {'median':>8} {'min':>7} {'max':>7} failed requests")
    for scenario in scenarios:
        print(scenario.row())
    alone, spread, crowded = (statistics.median(s.seconds) for s in scenarios)
    print(f"\n3 roles, 3 hosts / 1 host: {spread / alone:.2f} (goal <= 1.5), medians of {args.runs} image changes")
    print(f"3 roles on 3 hosts / 9 roles on 1 host (the same boots on the same cores): {spread / crowded:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
