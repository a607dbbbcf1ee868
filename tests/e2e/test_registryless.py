"""`registry: none` through the real engine: `pulumi up` of quayside's program sends a role's image from the deploying
machine's Docker engine to the server over SSH, only the layers the server lacks, and deploys it.

The loopback server drives this machine's Docker engine, so the deploying side gets an engine of its own: a second
dockerd (its own data root, exec root, socket and containerd namespaces; no networking of its own), which the program
reaches through DOCKER_HOST. The role's image exists only there: a unique name, a layer of random bytes (gzip cannot
shrink it, so the bytes sent are the layers sent), never pushed to any registry. The registry that scripts/setup runs
stays up for the other tests; nothing here uses it: the server's copy of the image has no registry digest.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest
from pulumi import automation as auto

from quayside_cli.local_stack import CACHE
from tests.support.docker import docker
from tests.support.pulumi_engine import PULUMI_HOME, ROOT, pulumi_cli
from tests.support.stacks import STACK, DemoStack, Events, changes, unique_service
from tests.support.testbed import TestServer

BASE_IMAGE: Final = "quayside-test/app:v1"
ENGINE_SECONDS: Final = 60
RANDOM_LAYER_BYTES: Final = 16 << 20
CHANGED_LAYER_BYTES: Final = 64 << 10
SENT_PREFIX: Final = "send-image: sent "


@dataclass(frozen=True)
class DeployingEngine:
    """A Docker engine of its own on this machine: the deploying machine's, for the program (DOCKER_HOST)."""

    host: str  # unix:///.../docker.sock

    def docker(self, *args: str, timeout: float = 300) -> str:
        return docker("-H", self.host, *args, timeout=timeout)

    def build(self, context: Path, tag: str) -> str:
        """Builds `context` (no RUN steps: this engine has no network) into `tag`; returns the image ID."""
        done = subprocess.run(
            ["docker", "-H", self.host, "build", "--quiet", "--tag", tag, str(context)],
            capture_output=True, text=True, timeout=300, check=False, env={**os.environ, "DOCKER_BUILDKIT": "0"},
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return self.docker("image", "inspect", "--format", "{{.Id}}", tag)


@pytest.fixture
def deploying_engine() -> Iterator[DeployingEngine]:
    """A second dockerd, with the base image loaded from the server's engine; stopped and removed at the end."""
    if shutil.which("dockerd") is None:
        raise AssertionError("no dockerd: run scripts/setup.d/packages.sh (installs Debian's docker.io)")
    name = uuid.uuid4().hex[:8]
    runtime = Path(f"/tmp/quayside-registryless-{name}")  # short: containerd's sockets live below it
    data = CACHE / "registryless" / name  # overlay2 needs a real filesystem, not /tmp's
    runtime.mkdir(parents=True)
    socket = runtime / "docker.sock"
    bridge = f"qsrl{name[:6]}"  # an interface name has at most 15 characters
    subprocess.run(["ip", "link", "add", bridge, "type", "bridge"], check=True)
    log = (runtime / "dockerd.log").open("wb")
    # A session of its own (pytest's signals are not its), and no descriptor but 0-2 (close_fds): a lock held by the
    # test run must not stay held for the engine's lifetime.
    engine = subprocess.Popen(
        [
            "dockerd", "--data-root", str(data), "--exec-root", str(runtime / "exec"),
            "--pidfile", str(runtime / "dockerd.pid"), "-H", f"unix://{socket}",
            # A bridge of its own: `--bridge=none` would make dockerd delete the host's docker0, which the server's
            # engine uses. With iptables off it touches no rule of the server's engine.
            f"--bridge={bridge}", "--iptables=false", "--ip-masq=false",
            "--containerd-namespace", f"quayside-registryless-{name}",
            "--containerd-plugins-namespace", f"quayside-registryless-{name}-plugins",
        ],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, close_fds=True,
    )  # fmt: skip
    try:
        deploying = DeployingEngine(f"unix://{socket}")
        deadline = time.monotonic() + ENGINE_SECONDS
        while subprocess.run(["docker", "-H", deploying.host, "info"], capture_output=True, check=False).returncode:
            assert engine.poll() is None, (
                f"the deploying dockerd exited: {(runtime / 'dockerd.log').read_text()[-2000:]}"
            )
            assert time.monotonic() < deadline, f"the deploying dockerd did not answer in {ENGINE_SECONDS} s"
            time.sleep(0.5)
        save = subprocess.Popen(["docker", "save", BASE_IMAGE], stdout=subprocess.PIPE)
        loaded = subprocess.run(["docker", "-H", deploying.host, "load"], stdin=save.stdout, capture_output=True)
        assert save.wait() == 0 and loaded.returncode == 0, f"{BASE_IMAGE}: run scripts/setup.d/images.sh"
        yield deploying
    finally:
        engine.send_signal(signal.SIGTERM)
        try:
            engine.wait(timeout=ENGINE_SECONDS)
        except subprocess.TimeoutExpired:
            engine.kill()
            engine.wait()
        log.close()
        shutil.rmtree(data, ignore_errors=True)
        shutil.rmtree(runtime, ignore_errors=True)
        subprocess.run(["ip", "link", "delete", bridge], check=False)


def app_context(directory: Path, base: str, version: str, layer_bytes: int) -> Path:
    """A build context: `base` plus one layer of random bytes, answering `version`."""
    directory.mkdir()
    (directory / "layer.bin").write_bytes(os.urandom(layer_bytes))
    (directory / "Dockerfile").write_text(f"FROM {base}\nCOPY layer.bin /{version}.bin\nENV VERSION={version}\n")
    return directory


def with_engine(handle: auto.Stack, engine: DeployingEngine) -> auto.Stack:
    handle.workspace.env_vars = {**handle.workspace.env_vars, "DOCKER_HOST": engine.host}
    return handle


def up(demo: DemoStack, engine: DeployingEngine, events: Events | None = None) -> auto.UpResult:
    try:
        on_event = events.record if events is not None else None
        return with_engine(demo.stack(), engine).up(color="never", on_event=on_event)
    finally:
        demo.settle()


def plan(demo: DemoStack, engine: DeployingEngine) -> list[str]:
    """scripts/plan of the stack as it is written now, run as a user runs it, with the deploying engine."""
    demo.stack()
    env = {**os.environ, **demo.project.env(), "PULUMI_HOME": str(PULUMI_HOME), "DOCKER_HOST": engine.host}
    env["PATH"] = f"{pulumi_cli().parent}{os.pathsep}{env['PATH']}"
    done = subprocess.run(
        [str(ROOT / "scripts" / "plan"), "-s", STACK, "--cwd", str(demo.project.work_dir)],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.splitlines()


def sent_bytes(demo: DemoStack, engine: DeployingEngine) -> tuple[int, str]:
    """What the web role's transfer step said it sent: (bytes, its line)."""
    state = with_engine(demo.stack(), engine).export_stack().deployment
    assert state is not None
    (stdout,) = [
        resource["outputs"]["stdout"] for resource in state["resources"]
        if resource["urn"].endswith(f"::{demo.service}-web-image-send")
    ]  # fmt: skip
    (line,) = [line for line in stdout.splitlines() if line.startswith(SENT_PREFIX)]
    return int(line.removeprefix(SENT_PREFIX).split()[0]), line


def server_image(repository: str) -> list[str]:
    """`<tag> <registry digests>` of each image of `repository` in the server's engine."""
    return docker("image", "ls", "--format", "{{.Tag}}", repository).split()


def test_a_registryless_stack_sends_only_the_layers_the_server_lacks_and_deploys_under_load(
    tmp_path: Path, test_server: TestServer, deploying_engine: DeployingEngine
) -> None:
    repository = f"quayside-test/registryless-{uuid.uuid4().hex[:8]}"
    first_id = deploying_engine.build(
        app_context(tmp_path / "one", BASE_IMAGE, "one", RANDOM_LAYER_BYTES), f"{repository}:dev"
    )
    demo = DemoStack.create(tmp_path / "stack", test_server, unique_service("e2e-rl"))
    demo.config["quayside:registry"] = "none"
    demo.config["quayside:roles"] = {
        "web": {"image": f"{repository}:dev", "hosts": [demo.host("web")], "health": {"path": "/up"}}
    }
    try:
        assert up(demo, deploying_engine).summary.result == "succeeded"
        assert demo.get("web") == (200, "one")
        first_sent, first_line = sent_bytes(demo, deploying_engine)
        assert server_image(repository) == [first_id[7:19]]
        assert docker("image", "inspect", "--format", "{{json .RepoDigests}}", first_id) == "[]", "pulled, not sent"

        # One layer more: the tag moves to a new image, which is a new version.
        second_id = deploying_engine.build(
            app_context(tmp_path / "two", f"{repository}:dev", "two", CHANGED_LAYER_BYTES), f"{repository}:dev"
        )
        image_bytes = int(deploying_engine.docker("image", "inspect", "--format", "{{.Size}}", second_id))
        old, new = first_id[7:19], second_id[7:19]
        assert plan(demo, deploying_engine) == [
            f"web: image {repository}:dev ({new}) goes to the server over SSH, only the layers it lacks",
            f"web: new version {new} (was {old}): boots beside {old}, switches after its health check, keeps {old} "
            "for rollback",
        ]
        events = Events()
        with demo.load("web") as load:
            load.wait_for_requests(100)
            assert up(demo, deploying_engine, events).summary.result == "succeeded"
            load.wait_for_requests(load.report.total + 100)
        second_sent, second_line = sent_bytes(demo, deploying_engine)

        print(f"first deploy: {first_line}")
        print(f"one-layer change: {second_line}")
        print(f"one-layer change sent {second_sent} of {image_bytes} image bytes ({second_sent / image_bytes:.1%})")
        assert load.report.failures == [] and load.report.version_sequence() == ["one", "two"], load.report.summary()
        assert first_sent > RANDOM_LAYER_BYTES, "the first deploy sends the random layer the server lacks"
        assert second_sent < image_bytes / 10, second_line
        assert events.changed()[f"{demo.service}-web-image-send"] == [
            "create-replacement",
            "replace",
            "delete-replaced",
        ]
        assert demo.get("web") == (200, "two")

        # Nothing changed: the transfer step is the same, and nothing is sent.
        assert changes(with_engine(demo.stack(), deploying_engine).preview(color="never").change_summary) == set()
        # The key went to the transfer on stdin, kept secret: no file of the backend holds it in plain text.
        key_line = test_server.private_key_text.strip().splitlines()[1]
        assert demo.project.backend.files_containing(key_line) == []
    finally:
        with_engine(demo.stack(), deploying_engine).destroy(color="never")
        tags = [f"{repository}:{tag}" for tag in server_image(repository)]
        if tags:
            docker("image", "rm", *tags, check=False)
