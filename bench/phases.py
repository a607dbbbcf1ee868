"""Where one plain `pulumi up` of quayside's program spends its time, phase by phase, and how it grows with the
number of roles. The app is quayside-test/pyapp, a Python web app that ignores SIGTERM (as one run without an init
does); the command is the one a user types, `pulumi up --yes --skip-preview`, in the stack's project directory,
on the loopback server. Two stacks side by side: 3 roles and 10 roles.

    bench/run --phases [--runs N]        (medians of N runs, default 5; load off, then on; nothing asserted)

Each run, on each stack, load off and then on (two keep-alive workers on each of web, backend and api, the roles
both stacks have, so the load is the same): an image change of web alone, of every role, and a no-op. The stack
settles after each (the old containers, which ignore SIGTERM, stop 10 s later in the background), untimed.

The phases come from the engine's own log (`--logtostderr -v=7`, each line's time to the nanosecond) and from
bench/trace/sitecustomize.py on the program's PYTHONPATH (when Python started, each registry request):

    CLI start, About              the `pulumi` process to the language host's About answered
    GetRequiredPackages           the language host lists the program's packages (pip list), for plugins
    Python starts                 the engine asks the host to run the program, to the program's first line
    program to its first resource quayside's imports, the config, the registry look-ups, the first registration
    resources registered          first registration to last
    steps, program ends           the engine's steps (the swaps among them) until the program has ended
    state written, CLI exits      the snapshot saved and the process gone

Each run also times Docker's part alone, load off: the app's container started and switched to by a kamal-proxy
(`kamal-proxy deploy`, which waits for its health check), one and then ten at once, with no quayside and no Pulumi.
What ten take beyond one, every 10-role change takes beyond a 1-role change on this machine, whatever quayside does.

The total is the wall time of the whole command as the bench timed it. The engine's log costs some of it: see
docs/benchmarks.md for the same commands untraced in bench/run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import Any, Final

from bench.common import ROOT, BenchError, machine_lock, push_to_registry, registry_ref, run_logged
from bench.quayside import cli_env
from tests.support import images
from tests.support.docker import docker, unique_name
from tests.support.load import Load
from tests.support.stacks import PROXY_PORT, STACK, DemoStack, unique_service
from tests.support.testbed import TestServer

RUNS: Final = 5
CORES: Final = os.cpu_count() or 1
TRACE_DIR: Final = ROOT / "bench" / "trace"
# The roles of the 10-role stack; the 3-role stack has the first three, and the load runs on those.
ROLE_NAMES: Final = ("web", "backend", "api", "jobs", "admin", "search", "mail", "media", "billing", "reports")
LOADED_ROLES: Final = ROLE_NAMES[:3]
WORKERS_PER_ROLE: Final = 2
MARGIN_REQUESTS: Final = 100
UP: Final = ("pulumi", "up", "--yes", "--skip-preview", "--stack", STACK, "--color", "never")
ENGINE_LOG: Final = ("--logtostderr", "-v=7")

ABOUT: Final = re.compile(r"langhost\[python\]\.About\(\) (executing|success)")
PACKAGES: Final = re.compile(r"langhost\[python\]\.GetRequiredPackages\(.*\) (executing|success)")
RUN: Final = re.compile(r"langhost\[python\]\.Run\(.*\) (executing|success)")
REGISTERED: Final = re.compile(r"^ResourceMonitor\.RegisterResource received: ")
STEP: Final = re.compile(r"StepExecutor worker\(\d+\): (?:applying step (\S+) on (\S+) \(|step (\S+) on (\S+) retired)")

PHASES: Final = (
    "CLI start, About",
    "GetRequiredPackages",
    "Python starts",
    "program to its first resource",
    "resources registered",
    "steps, program ends",
    "state written, CLI exits",
)


@dataclass
class Step:
    op: str
    resource: str  # type::name
    seconds: float


@dataclass
class Up:
    """One `pulumi up`: its wall time, its phases (they add up to it), the registry requests, the steps."""

    seconds: float
    phases: dict[str, float]
    lookups: list[float] = field(default_factory=list)  # seconds of each HTTP request the program made
    lookups_span: float = 0.0  # first request's start to last one's end
    steps: list[Step] = field(default_factory=list)  # the steps that changed something
    busy: float = 0.0  # the share of the machine's CPU time in use while it ran (every process, the load's too)


def cpu_times() -> tuple[int, int]:
    """(busy, all) clock ticks of every core since boot, from /proc/stat (idle and iowait are not busy)."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def engine_lines(log: str) -> Iterator[tuple[float, str]]:
    """(epoch seconds, message) of each JSON line of the engine's log; other lines are skipped. The CLI's own output
    shares the pipe: a line may begin with its progress dots."""
    for line in log.splitlines():
        start = line.find('{"time":')
        if start < 0:
            continue
        entry = json.loads(line[start:])
        yield datetime.fromisoformat(entry["time"]).timestamp(), str(entry.get("msg", ""))


def program_trace(lines: Iterable[str]) -> list[dict[str, Any]]:
    """The trace's events of the program's own process (the one that made the HTTP requests, else the last
    Python started: the language host starts pip's processes before it)."""
    events = [json.loads(line) for line in lines if line.strip()]
    starts = [e for e in events if e["event"] == "start"]
    with_requests = {e["pid"] for e in events if e["event"] == "http"}
    pid = next((e["pid"] for e in starts if e["pid"] in with_requests), starts[-1]["pid"] if starts else None)
    return [e for e in events if e["pid"] == pid]


def phases_of(launched: float, ended: float, engine_log: str, trace: list[dict[str, Any]]) -> Up:
    """Splits one command's wall time (epoch seconds `launched` to `ended`) at the engine's and the trace's marks."""
    marks: dict[str, float] = {}
    registered: list[float] = []
    applying: dict[tuple[str, str], float] = {}
    steps: list[Step] = []
    for at, message in engine_lines(engine_log):
        for key, pattern in (("about", ABOUT), ("packages", PACKAGES), ("run", RUN)):
            if found := pattern.search(message):
                marks.setdefault(f"{key} {found[1]}", at)
        if REGISTERED.search(message):
            registered.append(at)
        if found := STEP.search(message):
            if found[1]:
                applying[(found[1], found[2])] = at
            elif (found[3], found[4]) in applying and found[3] not in ("same", "read"):
                *_, kind, name = found[4].split("::")
                resource = f"{kind.rsplit(':', 1)[-1]}::{name}"
                steps.append(Step(found[3], resource, at - applying[found[3], found[4]]))
    missing = [m for m in ("about success", "packages success", "run executing", "run success") if m not in marks]
    if missing or not registered:
        raise BenchError(f"the engine's log lacks {', '.join(missing) or 'registrations'}: did Pulumi's log change?")
    python_start = next((e["at"] for e in trace if e["event"] == "start"), marks["run executing"])
    bounds = [
        launched, marks["about success"], marks["packages success"], python_start, registered[0], registered[-1],
        marks["run success"], ended,
    ]  # fmt: skip
    requests = [e for e in trace if e["event"] == "http"]
    return Up(
        seconds=ended - launched,
        phases={name: end - start for name, (start, end) in zip(PHASES, pairwise(bounds), strict=True)},
        lookups=[e["end"] - e["start"] for e in requests],
        lookups_span=(max(e["end"] for e in requests) - min(e["start"] for e in requests)) if requests else 0.0,
        steps=steps,
    )


class PhasedStack:
    """A quayside stack of `roles` Python-app roles on the loopback server, run by the plain CLI with its phases."""

    def __init__(self, directory: Path, server: TestServer, roles: int) -> None:
        self.label = f"{roles} roles"
        self.demo = DemoStack.create(directory, server, unique_service(f"bp{roles}"))
        self.demo.config.pop("quayside:accessories", None)
        self.demo.config["quayside:roles"] = {
            role: {
                "image": registry_ref(images.PYAPP_TAGS[0]),
                "hosts": [self.demo.host(role)],
                "health": {"path": "/up", "interval": "1s", "timeout": "5s"},
            }
            for role in ROLE_NAMES[:roles]
        }
        self.trace = directory / f"trace-{roles}.jsonl"
        self._commands = 0

    def _env(self) -> dict[str, str]:
        env = cli_env(self.demo.project)
        env["PYTHONPATH"] = str(TRACE_DIR)
        env["QUAYSIDE_BENCH_TRACE"] = str(self.trace)
        return env

    def up(self, what: str, tags: dict[str, str]) -> Up:
        """Sets each named role's tag, then one traced `pulumi up`; waits for the server to settle, untimed."""
        for role, tag in tags.items():
            self.demo.roles[role]["image"] = registry_ref(tag)
        self.demo.stack()  # writes the stack file; not timed
        self.trace.unlink(missing_ok=True)
        self._commands += 1
        log = f"phases-{self.demo.service}-{self._commands:02d}-{what.replace(' ', '-')}"
        launched, cpu_before = time.time(), cpu_times()
        _, output = run_logged([*UP, *ENGINE_LOG], log, cwd=self.demo.project.work_dir, env=self._env())
        ended, cpu_after = time.time(), cpu_times()
        up = phases_of(launched, ended, output, program_trace(self.trace.read_text().splitlines()))
        up.busy = (cpu_after[0] - cpu_before[0]) / max(1, cpu_after[1] - cpu_before[1])
        self.demo.settle()
        return up

    def first_up(self) -> None:
        self.demo.stack()
        env = self._env()
        del env["QUAYSIDE_BENCH_TRACE"]
        run_logged(list(UP), f"phases-{self.demo.service}-first", cwd=self.demo.project.work_dir, env=env)
        self.demo.settle()

    @contextmanager
    def load(self, on: bool, scenario: Scenario) -> Iterator[None]:
        """Load on web, backend and api from MARGIN_REQUESTS answers before to as many after (when on); the
        scenario counts its requests."""
        with ExitStack() as running:
            loads = []
            if on:
                for role in LOADED_ROLES:
                    load = Load(PROXY_PORT, self.demo.host(role), workers=WORKERS_PER_ROLE)
                    loads.append(running.enter_context(load))
                for load in loads:
                    load.wait_for_requests(MARGIN_REQUESTS)
            yield
            for load in loads:
                load.wait_for_requests(load.report.total + MARGIN_REQUESTS)
        failed = sum(len(load.report.failures) for load in loads)
        scenario.requests += sum(load.report.total for load in loads)
        if failed:
            raise BenchError(f"{self.label}: {failed} requests failed: {loads[0].report.summary()}")

    def destroy(self) -> None:
        self.demo.destroy()


@dataclass
class Scenario:
    stack: str
    change: str
    loaded: bool
    ups: list[Up] = field(default_factory=list)
    requests: int = 0  # answered under load, all 200 (a failed one ends the bench)

    @property
    def name(self) -> str:
        return f"{self.stack}, {self.change}, load {'on' if self.loaded else 'off'}"

    def median(self) -> float:
        return statistics.median(up.seconds for up in self.ups)


def run_scenarios(stack: PhasedStack, run: int, loaded: bool, scenarios: dict[str, Scenario]) -> None:
    """web to the next tag, every role to the tag after, and the same again: each change a real one, as the
    previous round left every role on the tag after its own."""
    round_index = 2 * run + int(loaded)
    tag = images.PYAPP_TAGS[(2 * round_index + 1) % 3], images.PYAPP_TAGS[(2 * round_index + 2) % 3]
    every = {role: tag[1] for role in stack.demo.roles}
    for change, tags in (("1 role changed", {"web": tag[0]}), ("every role changed", every), ("no-op", every)):
        scenario = scenarios.setdefault(f"{stack.label} {change} {loaded}", Scenario(stack.label, change, loaded))
        with stack.load(loaded, scenario):
            up = stack.up(f"{change} load {'on' if loaded else 'off'}", tags)
        scenario.ups.append(up)
        print(f"  {scenario.name}: {up.seconds:.2f} s", flush=True)


@contextmanager
def bare_proxy() -> Iterator[tuple[str, str]]:
    """(network, proxy): a network of its own with a kamal-proxy on it, removed afterwards."""
    network = unique_name("qs-floor")
    proxy = f"{network}-proxy"
    docker("network", "create", network)
    try:
        docker("run", "--detach", "--name", proxy, "--network", network, "--", images.KAMAL_PROXY)
        yield network, proxy
    finally:
        docker("rm", "--force", proxy, check=False)
        docker("network", "rm", network, check=False)


def boots_and_switches(network: str, proxy: str, count: int) -> float:
    """Seconds for COUNT containers of the app, started at once, each to boot and be made its route's target by the
    proxy (its health check passed): the work each swap must do, by Docker and kamal-proxy alone. The proxy checks
    every 50 ms, so no swap waits for a check the way one whose first check came too early would."""
    names = [f"{network}-{index}" for index in range(count)]

    def boot_and_switch(name: str) -> None:
        container = docker("run", "--detach", "--name", name, "--network", network, "--", images.pyapp("py-v1"))
        docker("exec", proxy, "kamal-proxy", "deploy", name, "--host", f"{name}.localhost",
               "--target", f"{container[:12]}:80",
               "--health-check-path", "/up", "--health-check-interval", "50ms", "--deploy-timeout", "30s")  # fmt: skip

    began = time.monotonic()
    try:
        with ThreadPoolExecutor(count) as pool:
            list(pool.map(boot_and_switch, names))
        return time.monotonic() - began
    finally:
        docker("rm", "--force", *names, check=False)


def breakdown(scenario: Scenario) -> list[str]:
    """The scenario's median per phase, its registry look-ups and its longest changing steps."""
    ups = scenario.ups
    busy = statistics.median(up.busy for up in ups)
    cpu = statistics.median(up.busy * up.seconds * CORES for up in ups)
    load = f", 0 failed of {scenario.requests:,} requests" if scenario.loaded else ""
    lines = [
        f"{scenario.name}: {scenario.median():.2f} s (median of {len(ups)}{load}); the machine's {CORES} cores "
        f"{100 * busy:.0f} % busy, {cpu:.1f} CPU-seconds"
    ]
    for phase in PHASES:
        lines.append(f"    {phase:<32} {statistics.median(up.phases[phase] for up in ups):6.2f} s")
    counts = [len(up.lookups) for up in ups]
    if any(counts):
        each = [seconds for up in ups for seconds in up.lookups]
        span = statistics.median(up.lookups_span for up in ups)
        lines.append(
            f"    registry requests: {statistics.median(counts):.0f} per up, {1000 * statistics.median(each):.0f} ms "
            f"each (median), {1000 * span:.0f} ms from the first to the last"
        )
    per_step: dict[str, list[float]] = {}
    for up in ups:
        for step in up.steps:
            per_step.setdefault(f"{step.op} {step.resource}", []).append(step.seconds)
    longest = sorted(per_step.items(), key=lambda item: -statistics.median(item[1]))[:4]
    for name, seconds in longest:
        lines.append(f"    step {name:<50} {statistics.median(seconds):6.2f} s")
    if not per_step:
        lines.append("    no step changed anything")
    return lines


def report(scenarios: dict[str, Scenario], floors: dict[int, list[float]]) -> None:
    print()
    for scenario in scenarios.values():
        print("\n".join(breakdown(scenario)))

    def median_of(stack: str, change: str, loaded: bool) -> float:
        return next(s for s in scenarios.values() if (s.stack, s.change, s.loaded) == (stack, change, loaded)).median()

    print("\ngoals (medians, same run, same load):")
    for loaded in (False, True):
        load = f"load {'on' if loaded else 'off'}"
        one_of_three = median_of("3 roles", "1 role changed", loaded)
        one_of_ten = median_of("10 roles", "1 role changed", loaded)
        every_of_ten = median_of("10 roles", "every role changed", loaded)
        print(f"  {load}: 1 role of 10 / 1 role of 3 = {one_of_ten:.2f} / {one_of_three:.2f} s = "
              f"{one_of_ten / one_of_three:.2f} (goal <= 1.3)")  # fmt: skip
        print(f"  {load}: 10 roles changed / 1 role changed, 10-role stack = {every_of_ten:.2f} / {one_of_ten:.2f} s "
              f"= {every_of_ten / one_of_ten:.2f} (goal <= 1.5)")  # fmt: skip
    one, ten = (statistics.median(floors[count]) for count in (1, 10))
    one_of_ten = median_of("10 roles", "1 role changed", False)
    print(f"  Docker's part alone, load off: one container booted and switched to {one:.2f} s, ten at once {ten:.2f} s "
          f"(medians of {len(floors[1])}); so 10 roles changed take at least {one_of_ten:.2f} + {ten - one:.2f} s, "
          f"{(one_of_ten + ten - one) / one_of_ten:.2f} of 1 role changed, whatever quayside does")  # fmt: skip


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench/run --phases", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--runs", type=int, default=RUNS, help=f"ups per scenario (default {RUNS})")
    args = parser.parse_args(argv)
    began = time.monotonic()
    server = TestServer.from_testbed()
    scenarios: dict[str, Scenario] = {}
    floors: dict[int, list[float]] = {1: [], 10: []}
    with tempfile.TemporaryDirectory(prefix="quayside-phases-") as directory:
        stacks = [PhasedStack(Path(directory) / str(n), server, n) for n in (3, 10)]
        with machine_lock("preparing the phases' stacks"):
            push_to_registry(images.PYAPP_TAGS)
            for stack in stacks:
                stack.first_up()
        try:
            for run in range(args.runs):
                for loaded in (False, True):
                    with machine_lock(f"phases run {run + 1}"):
                        print(f"[{time.monotonic() - began:5.0f} s] run {run + 1}, load {'on' if loaded else 'off'}:")
                        for stack in stacks:
                            run_scenarios(stack, run, loaded, scenarios)
                        if not loaded:
                            with bare_proxy() as (network, proxy):
                                for count, seconds in floors.items():
                                    seconds.append(boots_and_switches(network, proxy, count))
                                    print(f"  Docker's part alone, {count} at once: {seconds[-1]:.2f} s", flush=True)
        finally:
            with machine_lock("removing the phases' stacks"):
                for stack in stacks:
                    stack.destroy()
    report(scenarios, floors)
    print(f"\nbench/run --phases took {(time.monotonic() - began) / 60:.1f} minutes")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except BenchError as error:
        raise SystemExit(f"bench: {error}") from None
