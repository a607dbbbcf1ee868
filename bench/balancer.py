"""The load balancer's cost, on the multi-host test bed: one stack deployed by `pulumi up` of quayside's program with
`load_balancer: {provider: kamal-proxy}` (web on two hosts, the balancer on the third), then the same HTTP load
(keep-alive workers, GET / of web) sent in turns through the balancer and straight to one host's own proxy, for the
same time each, in the same run. Prints requests per second and latency (p50, p99) of each, and their ratios, in two
layouts of the machine's cores: shared, as the bed runs (the balancer's hop then takes CPU from the hosts' proxies,
the apps and the load generator), and the balancer's kamal-proxy alone on the last core with everything else of the
run on the others, as a balancer on a machine of its own would be. Nothing is asserted.

    .venv/bin/python -m bench.balancer [--rounds N] [--seconds S] [--workers W]   (bench/run --balancer passes them)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.hosts import HostBed, TestHost
from tests.support.load import Load, LoadReport
from tests.support.several import PROXY_PORT, BalancedStack
from tests.support.stacks import unique_service


@dataclass
class Measured:
    name: str
    address: str
    rates: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    failed: int = 0
    requests: int = 0

    def record(self, report: LoadReport, seconds: float) -> None:
        self.rates.append(report.total / seconds)
        self.latencies += [response.done - response.at for response in report.responses]
        self.failed += len(report.failures)
        self.requests += report.total

    def percentile(self, share: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000

    def row(self) -> str:
        return (
            f"{self.name:<32} {statistics.median(self.rates):10.0f} {self.percentile(0.5):8.2f} "
            f"{self.percentile(0.99):8.2f} {self.failed:>4} of {self.requests}"
        )


def measure(stack: BalancedStack, path: Measured, seconds: float, workers: int) -> None:
    """`workers` keep-alive connections to `path` for `seconds` after a warm-up of 100 requests."""
    with Load(PROXY_PORT, stack.host_name("web"), workers=workers, address=path.address) as load:
        load.wait_for_requests(100)
        load.report.responses.clear()
        started = time.monotonic()
        time.sleep(seconds)  # the measured window: the load runs on its own threads meanwhile
        load.stop()
        path.record(load.report, time.monotonic() - started)


def container_pids(host: TestHost, filters: str) -> list[int]:
    """This machine's PIDs of the main processes of the host's containers that `docker ps` FILTERS select (the bed's
    hosts share the root PID namespace)."""
    listing = f"docker ps --quiet {filters} | xargs --no-run-if-empty docker inspect --format '{{{{.State.Pid}}}}'"
    return [int(pid) for pid in host.run(listing).stdout.split()]


def pin(pid: int, cores: set[int]) -> None:
    """Every thread of the process and of its descendants on `cores`; threads and children made later inherit it."""
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            os.sched_setaffinity(int(task.name), cores)
            for child in (task / "children").read_text().split():
                pin(int(child), cores)


@contextlib.contextmanager
def balancer_on_its_own_core(stack: BalancedStack) -> Iterator[str]:
    """The balancer's proxy on the last core; both app hosts' proxies and web's containers, and this process (the
    load generator's threads start after), on the others. Yields the layout's name; every core again afterwards."""
    every = os.sched_getaffinity(0)
    own = {max(every)}
    rest = every - own
    balancer = container_pids(stack.balancer, "--filter name=^quayside-proxy$")
    others = [
        pid
        for server in ("app-1", "app-2")
        for pid in container_pids(
            stack.hosts[server], f"--filter name=^quayside-proxy$ --filter name=^{stack.service}_"
        )
    ]
    try:
        for pid in balancer:
            pin(pid, own)
        for pid in [*others, os.getpid()]:
            pin(pid, rest)
        yield f"the balancer alone on core {min(own)}, the rest on {','.join(map(str, sorted(rest)))}"
    finally:
        for pid in [*balancer, *others, os.getpid()]:
            pin(pid, every)


@contextlib.contextmanager
def shared_cores() -> Iterator[str]:
    yield f"all {len(os.sched_getaffinity(0))} cores shared"


def compare(stack: BalancedStack, layout: str, args: argparse.Namespace) -> None:
    paths = [
        Measured("through the balancer (2 hosts)", stack.balancer.address),
        Measured("straight to app-1's proxy", stack.hosts["app-1"].address),
    ]
    # In turns, so both paths meet the machine in the same state.
    for round_ in range(args.rounds):
        for path in paths:
            measure(stack, path, args.seconds, args.workers)
            print(f"{layout}: round {round_ + 1}: {path.name}: {path.rates[-1]:.0f} requests/s", flush=True)
    print(f"\n{layout}\n{'path':<32} {'req/s med':>10} {'p50 ms':>8} {'p99 ms':>8} failed requests")
    for path in paths:
        print(path.row())
    balanced, straight = paths
    ratio = statistics.median(balanced.rates) / statistics.median(straight.rates)
    print(
        f"through the balancer / straight: {ratio:.2f} of the requests per second (goal >= 0.90); the balancer adds "
        f"{balanced.percentile(0.5) - straight.percentile(0.5):.2f} ms at p50, "
        f"{balanced.percentile(0.99) - straight.percentile(0.99):.2f} ms at p99 ({args.rounds} rounds of "
        f"{args.seconds:g} s, {args.workers} connections)\n",
        flush=True,
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench/run --balancer", description=__doc__)
    parser.add_argument("--rounds", type=int, default=5, help="turns of each path (default 5)")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds of load per turn (default 5)")
    parser.add_argument("--workers", type=int, default=4, help="keep-alive connections (default 4)")
    args = parser.parse_args(argv)
    bed = HostBed.from_testbed()
    with tempfile.TemporaryDirectory() as directory:
        stack = BalancedStack.create(Path(directory), bed, unique_service("bb"))
        try:
            stack.up()
            layouts = [shared_cores()]
            if len(os.sched_getaffinity(0)) > 1:
                layouts.append(balancer_on_its_own_core(stack))
            else:
                print("one core only: the balancer cannot have one of its own here")
            for layout in layouts:
                with layout as name:
                    compare(stack, name, args)
        finally:
            stack.destroy()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
