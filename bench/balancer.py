"""The load balancer's cost, on the multi-host test bed: one stack deployed by `pulumi up` of quayside's program with
`load_balancer: {provider: kamal-proxy}` (web on two hosts, the balancer on the third), then the same HTTP load
(keep-alive workers, GET / of web) sent in turns through the balancer and straight to one host's own proxy, for the
same time each, in the same run. Prints requests per second and latency (p50, p99) of each, and their ratios. The
bed's hosts share this machine's two cores, the load generator too. Nothing is asserted.

    .venv/bin/python -m bench.balancer [--rounds N] [--seconds S] [--workers W]   (bench/run --balancer passes them)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.hosts import HostBed
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
            paths = [
                Measured("through the balancer (2 hosts)", stack.balancer.address),
                Measured("straight to app-1's proxy", stack.hosts["app-1"].address),
            ]
            # In turns, so both paths meet the machine in the same state.
            for round_ in range(args.rounds):
                for path in paths:
                    measure(stack, path, args.seconds, args.workers)
                    print(f"round {round_ + 1}: {path.name}: {path.rates[-1]:.0f} requests/s", flush=True)
        finally:
            stack.destroy()
    print(f"\n{'path':<32} {'req/s med':>10} {'p50 ms':>8} {'p99 ms':>8} failed requests")
    for path in paths:
        print(path.row())
    balanced, straight = paths
    ratio = statistics.median(balanced.rates) / statistics.median(straight.rates)
    print(
        f"\nthrough the balancer / straight: {ratio:.2f} of the requests per second (goal >= 0.90); the balancer adds "
        f"{balanced.percentile(0.5) - straight.percentile(0.5):.2f} ms at p50, "
        f"{balanced.percentile(0.99) - straight.percentile(0.99):.2f} ms at p99 ({args.rounds} rounds of "
        f"{args.seconds:g} s, {args.workers} connections)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
