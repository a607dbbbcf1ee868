"""A registry that stops answering between the plan and the pull, through `pulumi up` of quayside's program with load
on the role: the new version's image is pinned by digest (so the plan reads nothing from the registry) and lives in
a registry of the test's own, which is stopped before the `up`, or frozen (SIGSTOP: it still takes connections and
answers none). The swap fails in one line naming the registry, the old version serves on, and once the registry is
back the next `up` deploys the version."""

from __future__ import annotations

import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.docker import docker, free_loopback_port
from tests.support.load import LoadReport
from tests.support.polling import wait_for
from tests.support.stacks import DemoStack, container_name, container_states

APP: str = "quayside-test/app:v2"


@dataclass
class Registry:
    """Debian's docker-registry on a loopback port of its own, its data in the test's directory."""

    config: Path
    address: str
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(["docker-registry", "serve", str(self.config)], stderr=subprocess.DEVNULL)
        wait_for(f"the registry at {self.address} answering", self.answers, seconds=30)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)
            self.process = None

    def freeze(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.address}/v2/", timeout=2):
                return True
        except (urllib.error.URLError, OSError):
            return False

    def push(self, image: str) -> str:
        """Pushes a local image here; returns it as `address/repository@digest`, gone from the local engine again
        (the loopback test server pulls with that engine, so it must pull)."""
        tagged = f"{self.address}/{image}"
        docker("tag", image, tagged)
        docker("push", "--quiet", tagged, timeout=120)
        pinned = docker("image", "inspect", "--format", "{{index .RepoDigests 0}}", tagged)
        docker("image", "rm", tagged)
        return f"{tagged}@{pinned.split('@')[1]}"


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    address = f"127.0.0.1:{free_loopback_port()}"
    config = tmp_path / "registry.yml"
    config.write_text(
        "version: 0.1\nlog: {level: error}\n"
        f"storage: {{filesystem: {{rootdirectory: {tmp_path / 'registry-data'}}}}}\nhttp: {{addr: {address}}}\n"
    )
    found = Registry(config, address)
    found.start()
    try:
        yield found
    finally:
        if found.process is not None:
            found.thaw()
        found.stop()


def assert_the_swap_named_the_registry_and_v1_served(
    demo: DemoStack, message: str, report: LoadReport, pulled_from: str, server_hostname: str
) -> None:
    """The swap failed in one line naming the image and its registry; v1 served every request and runs alone."""
    assert f"swap failed: role web on {server_hostname}: could not pull {pulled_from}: " in message, message
    assert report.failures == [] and set(report.versions()) == {"v1"}, report.summary()
    assert container_states(demo.service, "web") == {container_name(demo.service, "web", "v1"): "running"}


def assert_the_next_up_deploys_v2(demo: DemoStack) -> None:
    assert demo.up().summary.result == "succeeded"
    assert demo.get("web")[1].split()[0] == "v2"


def test_a_registry_gone_before_the_pull_fails_the_swap_naming_it_and_the_next_up_converges(
    demo: DemoStack, registry: Registry, server_hostname: str
) -> None:
    image = registry.push(APP)
    assert subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode == 1
    demo.roles["web"]["image"] = image
    registry.stop()

    message, report = demo.failed_up_under_load("web")

    assert_the_swap_named_the_registry_and_v1_served(
        demo, message, report, f"{image} from the registry {registry.address}", server_hostname
    )
    assert "connection refused" in message, message
    print(f"web's image from a stopped registry: {report.tally()}")

    registry.start()
    assert_the_next_up_deploys_v2(demo)


def test_a_registry_that_stops_answering_fails_the_swap_naming_it_and_the_next_up_converges(
    demo: DemoStack, registry: Registry, server_hostname: str
) -> None:
    image = registry.push(APP)
    demo.roles["web"]["image"] = image
    registry.freeze()

    started = time.monotonic()
    message, report = demo.failed_up_under_load("web")
    seconds = time.monotonic() - started

    assert_the_swap_named_the_registry_and_v1_served(
        demo, message, report, f"{image} from the registry {registry.address}", server_hostname
    )
    assert "deadline exceeded" in message or "timeout" in message, message
    print(f"web's image from a frozen registry: failed after {seconds:.0f} s; {report.tally()}")

    registry.thaw()
    assert_the_next_up_deploys_v2(demo)
