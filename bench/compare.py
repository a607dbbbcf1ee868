"""quayside and Kamal side by side: the same 3-role app (web, backend, api, each behind its proxy with its own
host), the same prebuilt images from the loopback registry, the same health settings (path /up, every 1 s),
deployed to the same loopback server by each tool's own commands, with HTTP load on every role's host through
every deploy but the first. One table of medians; one PNG timeline per tool.

    bench/run                          (sets up the bench, then runs this: about 15 minutes, nothing asserted)
    python -m bench.compare --runs 1 --tools quayside --append    (one chunk; --report redraws from the results)

A run is one round per tool, tools in turn (the first alternates), each round on a fresh app:

    first deploy, 3 roles                   all roles v1, no load (nothing serves before)
    image change, 1 role                    web v1 -> v2
    image change, 3 roles                   all roles -> v3 (web from v2, backend and api from v1)
    same version again (no-op)              all roles v3 again
    rollback, 1 role                        web back to v2: quayside rollback / kamal rollback
    (untimed: all roles to py-v1, the Python app that ignores SIGTERM: quayside-test/pyapp)
    image change, 3 roles, TERM ignored     all roles py-v1 -> py-v2: every old container waits its 10 s
                                            stop grace before Docker kills it
    same version again, TERM ignored        all roles py-v2 again (the no-op of the issue's first report)

quayside's rounds also time, after the no-op, its `pulumi preview` and (under the same load) `pulumi up` of a
program that declares nothing: Pulumi's own share of every `pulumi up`, which no quayside change can go below.

Each round holds the machine lock (QUAYSIDE_MACHINE_LOCK, default /tmp/quayside-machine.lock) and releases it
after, so test runs taking the same lock can go in between, never during one. A round that dockerd restarted
under, or whose requests failed before any command had started, is left out of the figures and run again.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Final

from bench import kamal, quayside
from bench.common import (
    LOCK_WAITS,
    OUT,
    ROLES,
    BenchError,
    Outcome,
    Tool,
    dockerd_started,
    machine_lock,
    proxy_errors,
)
from bench.timeline import Timeline, render
from tests.support.load import Load
from tests.support.testbed import TestServer

RESULTS: Final = OUT / "results.json"
RUNS: Final = 3  # a run is about 5 minutes of this 2-core machine: both tools' rounds
# A round something outside the tools disturbed is run again, after a pause without the machine lock.
RETRIES: Final = 2
RETRY_AFTER: Final = 60
WORKERS_PER_ROLE: Final = 2
# Responses each role's load records before a deploy starts, and again after it ended and the server settled.
MARGIN_REQUESTS: Final = 200

FIRST: Final = "first deploy, 3 roles"
ONE_ROLE: Final = "image change, 1 role"
THREE_ROLES: Final = "image change, 3 roles"
NO_OP: Final = "same version again (no-op)"
ROLLBACK: Final = "rollback, 1 role"
TERM_IGNORED: Final = "image change, 3 roles, TERM ignored"
TERM_IGNORED_NO_OP: Final = "same version again, TERM ignored"
SCENARIOS: Final = (FIRST, ONE_ROLE, THREE_ROLES, NO_OP, ROLLBACK, TERM_IGNORED, TERM_IGNORED_NO_OP)
PREVIEW: Final = "preview of a no-op"  # quayside only: what `pulumi up` without --skip-preview adds
EMPTY_PROGRAM: Final = "empty program"  # quayside only: Pulumi's own share of a no-op, under the same load
PICTURED: Final = THREE_ROLES
TOOLS: Final = ("quayside", "kamal")


@dataclass
class Sample:
    """One timed command of one round."""

    tool: str
    scenario: str
    run: int
    seconds: float
    requests: int = 0
    failed: int = 0
    switch_ms: dict[str, int] = field(default_factory=dict)  # server-side, where the tool prints it
    switched_after: dict[str, float] = field(default_factory=dict)  # client-side: first answer of the new version
    first_failures: list[str] = field(default_factory=list)
    failed_before: int = 0  # failed before the command started: the path through the proxy failed on its own
    disturbed: str = ""  # why the round's figures are left out, when something outside the tools broke it


@dataclass
class Results:
    samples: list[Sample] = field(default_factory=list)

    def save(self) -> None:
        OUT.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps({"samples": [asdict(sample) for sample in self.samples]}, indent=1))

    @classmethod
    def load(cls) -> Results:
        if not RESULTS.exists():
            return cls()
        return cls([Sample(**sample) for sample in json.loads(RESULTS.read_text())["samples"]])

    def of(self, tool: str, scenario: str) -> list[Sample]:
        """The samples that count: of rounds nothing outside the tools disturbed."""
        return [s for s in self.samples if s.tool == tool and s.scenario == scenario and not s.disturbed]

    def disturbed(self) -> dict[tuple[int, str], str]:
        """(run, tool) → why that round was left out."""
        return {(s.run, s.tool): s.disturbed for s in self.samples if s.disturbed}

    def runs(self) -> int:
        return max((sample.run for sample in self.samples), default=0)


def measure(
    tool: Tool,
    scenario: str,
    run: int,
    command: Callable[[], Outcome],
    expected: Mapping[str, str],
    *,
    loaded: bool = True,
    pictured: bool = False,
) -> Sample:
    """Runs one timed command with load on every role (from MARGIN_REQUESTS responses before it until as many
    after the server settled), and notes when each role in `expected` first answered with its new version."""
    responses: list[tuple[float, str, int, str]] = []
    with ExitStack() as stack:
        loads: dict[str, tuple[float, Load]] = {}
        if loaded:
            for role in ROLES:
                load = Load(tool.proxy_port, tool.host(role), workers=WORKERS_PER_ROLE)
                loads[role] = (time.monotonic(), stack.enter_context(load))
            for _, load in loads.values():
                load.wait_for_requests(MARGIN_REQUESTS)
        started = time.monotonic()
        outcome = command()
        tool.settle()
        for _, load in loads.values():
            load.wait_for_requests(load.report.total + MARGIN_REQUESTS)
    for role, (clock, load) in loads.items():
        offset = clock - started
        responses += [(offset + r.at, role, r.status, r.version) for r in load.report.responses]
    responses.sort()
    switched: dict[str, float] = {}
    for at, role, status, version in responses:
        if status == 200 and at >= 0 and expected.get(role) == version:
            switched.setdefault(role, at)
    failures = [(at, role, status, version) for at, role, status, version in responses if status != 200]
    sample = Sample(
        tool=tool.name, scenario=scenario, run=run, seconds=outcome.seconds, requests=len(responses),
        failed=len(failures), switch_ms=outcome.switch_ms, switched_after=switched,
        first_failures=[f"{role} at {at:.2f} s: status {status}" for at, role, status, _ in failures[:5]],
        failed_before=sum(1 for failure in failures if failure[0] < 0),
    )  # fmt: skip
    if pictured:
        Timeline(tool.name, tool.label, scenario, outcome.seconds, dict(switched), responses).save()
    load_note = f", {sample.failed} failed of {sample.requests:,} requests" if loaded else ""
    print(f"    {scenario}: {sample.seconds:.2f} s{load_note}", flush=True)
    return sample


def timeline_path(tool: str) -> Path:
    return OUT / f"timeline-{tool}.json"


def everywhere(version: str) -> dict[str, str]:
    return dict.fromkeys(ROLES, version)


def round_of(tool: Tool, run: int, samples: list[Sample]) -> None:
    """One tool's scenarios on a fresh app, in order; the app is removed after, whatever happened."""
    tool.start()
    try:
        steps: list[tuple[str, Callable[[], Outcome], dict[str, str]]] = [
            (FIRST, lambda: tool.deploy(everywhere("v1")), everywhere("v1")),
            (ONE_ROLE, lambda: tool.deploy({"web": "v2"}), {"web": "v2"}),
            (THREE_ROLES, lambda: tool.deploy(everywhere("v3")), everywhere("v3")),
            (NO_OP, lambda: tool.deploy(everywhere("v3")), {}),
            (ROLLBACK, lambda: tool.rollback("web", "v2"), {"web": "v2"}),
        ]
        for scenario, command, expected in steps:
            pictured = scenario == PICTURED and not timeline_path(tool.name).exists()
            sample = measure(tool, scenario, run, command, expected, loaded=scenario != FIRST, pictured=pictured)
            samples.append(sample)
            if scenario == NO_OP and isinstance(tool, quayside.Quayside):
                samples.append(Sample(tool.name, PREVIEW, run, tool.preview()))
                samples.append(measure(tool, EMPTY_PROGRAM, run, tool.empty_program, {}))
        tool.deploy(everywhere("py-v1"))
        tool.settle()
        samples.append(measure(tool, TERM_IGNORED, run, lambda: tool.deploy(everywhere("py-v2")), everywhere("py-v2")))
        samples.append(measure(tool, TERM_IGNORED_NO_OP, run, lambda: tool.deploy(everywhere("py-v2")), {}))
    finally:
        tool.stop()


def attempt(tool: Tool, run: int, results: Results) -> str:
    """One round; "" when it counts, else why not: dockerd restarted during it (a test run does that), or
    requests failed before a command had started, i.e. the path through the proxy failed on its own."""
    since, dockerd = time.time(), dockerd_started()
    samples: list[Sample] = []
    try:
        round_of(tool, run, samples)
    finally:
        results.samples += samples
    reason = ""
    if dockerd_started() != dockerd:
        reason = "dockerd restarted during the round"
    elif before := sum(sample.failed_before for sample in samples):
        reason = f"{before} requests failed before a command had started"
    if reason:
        pictured = timeline_path(tool.name)
        if pictured.exists() and pictured.stat().st_mtime >= since:
            pictured.unlink()  # a later round draws the picture
        errors = proxy_errors(tool.proxy_container, since)
        if errors:
            count, message = errors[0]
            reason += f"; {tool.proxy_container} logged {count} times: {message}"
        for sample in samples:
            sample.disturbed = reason
    return reason


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def seconds_text(value: float | None) -> str:
    return f"{value:.2f}" if value is not None else "-"


def failed_text(samples: list[Sample], scenario: str) -> str:
    if not samples or scenario == FIRST:
        return "-"
    return f"{sum(s.failed for s in samples)} of {sum(s.requests for s in samples):,}"


def report(results: Results) -> None:
    """The table, the server-side switch times, the rollback's time to answer; the PNG timelines."""
    names = {"quayside": "quayside", "kamal": f"Kamal {kamal.KAMAL_VERSION}"}
    runs = results.runs()
    print(f"\nmedians of {runs} run(s); failed requests are summed over all runs (load on all 3 roles, "
          f"{WORKERS_PER_ROLE} keep-alive workers each)")  # fmt: skip
    header = f"{'scenario':<38} {'quayside s':>10} {'Kamal s':>8} {'q/K':>5}   {'quayside failed':<18} Kamal failed"
    print(header)
    print("-" * len(header))
    for scenario in SCENARIOS:
        ours, theirs = results.of("quayside", scenario), results.of("kamal", scenario)
        q, k = median([s.seconds for s in ours]), median([s.seconds for s in theirs])
        ratio = f"{q / k:.2f}" if q is not None and k else "-"
        print(
            f"{scenario:<38} {seconds_text(q):>10} {seconds_text(k):>8} {ratio:>5}   "
            f"{failed_text(ours, scenario):<18} {failed_text(theirs, scenario)}"
        )
    preview = median([s.seconds for s in results.of("quayside", PREVIEW)])
    print(f"\nquayside times `pulumi up --yes --skip-preview`; the preview `pulumi up` shows first without "
          f"--skip-preview took {seconds_text(preview)} s more (median, `pulumi preview` of the no-op).")  # fmt: skip
    empty = median([s.seconds for s in results.of("quayside", EMPTY_PROGRAM)])
    no_op = median([s.seconds for s in results.of("quayside", NO_OP)])
    kamal_no_op = median([s.seconds for s in results.of("kamal", NO_OP)])
    if empty is not None:
        share = f"; a quayside no-op took {no_op - empty:.2f} s more" if no_op is not None else ""
        versus = f" ({empty / kamal_no_op:.2f} of Kamal's same-version deploy)" if kamal_no_op else ""
        print(f"Pulumi's own share, `pulumi up` of a Python program that declares nothing (same CLI, language host, "
              f"virtualenv and load): {seconds_text(empty)} s{versus}{share}.")  # fmt: skip

    print("\nquayside, server side: ms from swap.sh's start to kamal-proxy serving the new version (median per role)")
    for scenario in SCENARIOS:
        samples = results.of("quayside", scenario)
        per_role = {role: [s.switch_ms[role] for s in samples if role in s.switch_ms] for role in ROLES}
        shown = [f"{role} {statistics.median(ms):.0f}" for role, ms in per_role.items() if ms]
        print(f"  {scenario:<38} {', '.join(shown) if shown else '- (no swap ran)'}")

    print("\nrollback of web: seconds from the command's start until v2 answers on web's host (median)")
    for tool in TOOLS:
        after = [s.switched_after["web"] for s in results.of(tool, ROLLBACK) if "web" in s.switched_after]
        whole = median([s.seconds for s in results.of(tool, ROLLBACK)])
        print(f"  {names[tool]:<14} {seconds_text(median(after))} s (the whole command: {seconds_text(whole)} s)")

    failed = [s for s in results.samples if s.failed and not s.disturbed]
    for sample in failed[:6]:
        print(f"  failures, {sample.tool} run {sample.run} {sample.scenario}: {'; '.join(sample.first_failures)}")
    left_out = results.disturbed()
    if left_out:
        print("\nleft out of the figures above (something outside the tools broke these rounds):")
        for (run, tool), reason in sorted(left_out.items()):
            print(f"  run {run}, {names[tool]}: {reason}")
    timelines = [timeline_path(tool) for tool in TOOLS if timeline_path(tool).exists()]
    written = render([Timeline.load(path) for path in timelines])
    if written:
        print("\ntimelines of one image change of 3 roles: " + ", ".join(str(p) for p in written))


def prepare(server: TestServer, tools: list[str]) -> dict[str, Tool]:
    """Images and Kamal's install and proxy, under the machine lock; the tools by name."""
    chosen: dict[str, Tool] = {}
    with machine_lock("preparing"):
        print("preparing: the TERM-ignoring images, Kamal's install, images and proxy", flush=True)
        quayside.push_images()
        if "quayside" in tools:
            chosen["quayside"] = quayside.Quayside(server)
        if "kamal" in tools:
            kamal.install()
            kamal.push_images()
            tool = kamal.Kamal(server)
            tool.prepare()
            chosen["kamal"] = tool
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=RUNS, help=f"rounds per tool (default {RUNS})")
    parser.add_argument("--tools", default=",".join(TOOLS), help="quayside,kamal (default both)")
    parser.add_argument("--append", action="store_true", help="add to bench/out/results.json instead of anew")
    parser.add_argument("--report", action="store_true", help="only print the table of the saved results")
    args = parser.parse_args()
    results = Results.load() if args.append or args.report else Results()
    if not (args.append or args.report):
        for name in TOOLS:
            timeline_path(name).unlink(missing_ok=True)
    if args.report:
        report(results)
        return
    tools = [name for name in args.tools.split(",") if name]
    unknown = sorted(set(tools) - set(TOOLS))
    if unknown:
        parser.error(f"unknown tool {', '.join(unknown)}; the tools are {', '.join(TOOLS)}")
    began = time.monotonic()
    server = TestServer.from_testbed()
    chosen = prepare(server, tools)
    first_run = results.runs() + 1
    try:
        for run in range(first_run, first_run + args.runs):
            order = tools if run % 2 else list(reversed(tools))
            for name in order:
                for tries in range(1 + RETRIES):
                    with machine_lock(f"run {run} {name}"):
                        print(f"[{time.monotonic() - began:5.0f} s] run {run}, {chosen[name].label}:", flush=True)
                        reason = attempt(chosen[name], run, results)
                    results.save()
                    if not reason:
                        break
                    again = f"; again in {RETRY_AFTER} s" if tries < RETRIES else "; no more tries"
                    print(f"  run {run} left out: {reason}{again}", flush=True)
                    if tries < RETRIES:
                        time.sleep(RETRY_AFTER)
    finally:
        kamal_tool = chosen.get("kamal")
        if isinstance(kamal_tool, kamal.Kamal):
            with machine_lock("removing Kamal's proxy"):
                kamal_tool.teardown()
    report(results)
    waited = sum(LOCK_WAITS)
    took = time.monotonic() - began - waited
    print(f"\nbench/run took {took / 60:.1f} minutes, and waited {waited / 60:.1f} more for the machine lock")


if __name__ == "__main__":
    try:
        main()
    except BenchError as error:
        raise SystemExit(f"bench: {error}") from None
