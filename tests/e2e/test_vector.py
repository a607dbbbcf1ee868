"""Vector for real: the `vector` accessory runs Vector 0.57.0 (built from the vendored sources by
scripts/setup.d/vector.sh) with the config quayside generates, and ships the service's container logs, gzip JSON
with the bearer token, to an HTTPS endpoint standing in for Better Stack's ingest (tests/support/log_sink.py).
Through `pulumi up` of quayside's program, on a host of the multi-host bed."""

from __future__ import annotations

import re
import shlex
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import pytest

from components.accessories import vector
from tests.support import images
from tests.support.docker import docker
from tests.support.hosts import HostBed, TestHost
from tests.support.log_sink import LogSink
from tests.support.polling import wait_for
from tests.support.pulumi_engine import QuaysideProject, secret
from tests.support.stacks import STACK, unique_service
from tests.support.testbed import registry_address

# A worker that logs a numbered line five times a second: which lines arrive, and which do not, is plain to see.
TICKER: Final = 'i=0; while :; do i=$((i+1)); echo "tick $i"; sleep 0.2; done'
TICK: Final = re.compile(r"^tick (\d+)$")


def vector_image(directory: Path, ca: Path) -> str:
    """The Vector image of the set-up, trusting the sink's CA (as the official one trusts Better Stack's), pushed to
    the loopback registry."""
    _, built = images.vector()
    context = directory / "vector-image"
    context.mkdir(parents=True)
    (context / "sink-ca.pem").write_bytes(ca.read_bytes())
    trusted = "/etc/ssl/quayside-log-sink.pem"
    (context / "Dockerfile").write_text(f"FROM {built}\nCOPY sink-ca.pem {trusted}\nENV SSL_CERT_FILE={trusted}\n")
    repository, tag = built.rsplit(":", 1)
    image = f"{registry_address()}/{repository}:{tag}-sink-{uuid.uuid4().hex[:6]}"
    docker("build", "--quiet", "--tag", image, str(context))
    docker("push", "--quiet", image)
    return image


class VectorStack:
    """A service with one ticking worker and the Vector accessory on one bed host."""

    def __init__(self, directory: Path, host: TestHost, sink: LogSink) -> None:
        self.project = QuaysideProject.create(directory)
        self.service = unique_service("logs")
        self.host = host
        self.sink = sink
        self.token = f"bst-{uuid.uuid4().hex}"
        self.config: dict[str, Any] = {
            "quayside:service": self.service,
            "quayside:server": host.server_config(),
            "quayside:proxy": {"image": f"{registry_address()}/quayside-test/kamal-proxy", "version": "v0.9.2"},
            "quayside:roles": {
                "ticker": {"image": f"{registry_address()}/quayside-test/app:v1", "proxy": False,
                           "readiness_delay": 1, "cmd": ["sh", "-c", TICKER]},
            },
            "quayside:accessories": {
                "vector": {"ingest_url": sink.url, "image": vector_image(directory, sink.ca), "delete_data": True},
            },
        }  # fmt: skip

    def up(self) -> None:
        handle = self.project.stack(STACK, self.config)
        handle.set_config("quayside:betterstack_token", secret(self.token))
        result = handle.up(color="never")
        assert result.summary.result == "succeeded"

    def destroy(self) -> None:
        self.project.stack(STACK, self.config).destroy(color="never")

    def ticks(self) -> list[int]:
        """The tick numbers the sink received from the worker, in the order they came."""
        return [int(match[1]) for text in self.sink.messages(f"{self.service}_ticker") if (match := TICK.match(text))]

    def ticks_logged(self) -> int:
        """The last tick the worker has logged on the host (Docker's own log of it)."""
        name = self.run(["docker", "ps", "--quiet", "--filter", f"label=quayside.service={self.service}",
                         "--filter", "label=quayside.role=ticker"]).split()[0]  # fmt: skip
        last = self.run(["docker", "logs", "--tail", "1", name]).strip()
        match = TICK.match(last)
        return int(match[1]) if match else 0

    def vector_container(self) -> str:
        return f"{self.service}-{vector.NAME}"

    def run(self, argv: list[str]) -> str:
        return self.host.run(shlex.join(argv)).stdout


@pytest.fixture
def vector_stack(tmp_path: Path, host_bed: HostBed) -> Iterator[VectorStack]:
    with LogSink.start(host_bed.gateway, tmp_path / "sink") as sink:
        stack = VectorStack(tmp_path / "project", host_bed.hosts[0], sink)
        try:
            yield stack
        finally:
            stack.destroy()


def test_vector_ships_the_services_container_logs_as_gzip_json_with_the_token_and_nothing_else(
    vector_stack: VectorStack,
) -> None:
    other = f"other-{uuid.uuid4().hex[:6]}"
    chatter = "while :; do echo not ours; sleep 0.2; done"
    vector_stack.run(["docker", "run", "--detach", "--name", other, "--label", "quayside.service=someone-else",
                      f"{registry_address()}/quayside-test/app:v1", "sh", "-c", chatter])  # fmt: skip
    try:
        vector_stack.up()
        wait_for("the worker's lines at the sink", lambda: len(vector_stack.ticks()) >= 10, seconds=60)
        # Vector logs its own start and the containers it watches: none of that is shipped.
        shipped_from = {str(event.get("container_name")) for event in vector_stack.sink.events()}
    finally:
        vector_stack.run(["docker", "rm", "--force", other])

    requests = vector_stack.sink.requests()
    assert {(batch.authorization, batch.content_encoding) for batch in requests} == {
        (f"Bearer {vector_stack.token}", "gzip")
    }
    assert shipped_from == {name for name in shipped_from if name.startswith(f"{vector_stack.service}_ticker")}
    assert vector_stack.ticks()[:10] == sorted(vector_stack.ticks()[:10])
    inspected = vector_stack.run(["docker", "inspect", "--format", "{{json .Args}} {{json .Config.Labels}}",
                                  vector_stack.vector_container()])  # fmt: skip
    assert vector_stack.token not in inspected
    assert vector_stack.project.backend.files_containing(vector_stack.token) == []
    assert vector_stack.token not in (vector_stack.project.work_dir / f"Pulumi.{STACK}.yaml").read_text()
    print(f"shipped {len(vector_stack.sink.events())} events in {len(requests)} requests, from {sorted(shipped_from)}")


def test_lines_logged_while_the_sink_is_down_arrive_once_it_is_back(vector_stack: VectorStack) -> None:
    vector_stack.up()
    wait_for("the worker's lines at the sink", lambda: len(vector_stack.ticks()) >= 5, seconds=60)

    vector_stack.sink.down()
    down_from = vector_stack.ticks_logged()
    wait_for("the worker logging 50 lines while the sink is down",
             lambda: vector_stack.ticks_logged() >= down_from + 50, seconds=30)  # fmt: skip
    back_at = vector_stack.ticks_logged()
    vector_stack.sink.up()
    wait_for("the lines logged while the sink was down", lambda: max(vector_stack.ticks()) >= back_at, seconds=90)

    received = set(vector_stack.ticks())
    missing = sorted(set(range(min(received), back_at + 1)) - received)
    assert missing == [], f"{len(missing)} lines never arrived: {missing[:20]}"
    print(f"sink down for ticks {down_from}..{back_at}: all {back_at - down_from} arrived once it was back")


def test_a_change_of_the_vector_config_restarts_vector_and_it_keeps_shipping(vector_stack: VectorStack) -> None:
    vector_stack.up()
    wait_for("the worker's lines at the sink", lambda: len(vector_stack.ticks()) >= 5, seconds=60)
    first = vector_stack.run(["docker", "inspect", "--format", "{{.Id}}", vector_stack.vector_container()])

    vector_stack.config["quayside:accessories"]["vector"]["memory"] = "300m"
    vector_stack.up()
    restarted_at = vector_stack.ticks_logged()

    assert vector_stack.run(["docker", "inspect", "--format", "{{.Id}}", vector_stack.vector_container()]) != first
    wait_for("lines logged after the restart at the sink",
             lambda: max(vector_stack.ticks()) >= restarted_at + 10, seconds=60)  # fmt: skip
