"""host.sh and registry-login.sh: the server made ready, Docker logged in."""

from __future__ import annotations

import json
import shlex
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest

from components import remote, steps
from tests.integration.conftest import DAEMON_JSON, Service
from tests.support import images
from tests.support.docker import docker, unique_name
from tests.support.remote import REMOTE_ROOT
from tests.support.testbed import registry_address


@pytest.fixture
def daemon_json_absent() -> Iterator[None]:
    """host.sh only writes daemon.json when there is none: take any away for the test, then put it back."""
    original = DAEMON_JSON.read_bytes() if DAEMON_JSON.exists() else None
    DAEMON_JSON.unlink(missing_ok=True)
    try:
        yield
    finally:
        if original is None:
            DAEMON_JSON.unlink(missing_ok=True)
        else:
            DAEMON_JSON.write_bytes(original)


@pytest.fixture
def bystander() -> Iterator[str]:
    """A running container of no service's: what host.sh never restarts."""
    name = unique_name("qs-bystander")
    docker("run", "-d", "--name", name, images.app("v1"))
    try:
        yield name
    finally:
        docker("rm", "--force", name, check=False)


def started_at(container: str) -> str:
    return docker("inspect", "--format", "{{.State.StartedAt}}", container)


def test_host_prepares_network_and_directories_without_restarting_docker(
    bare_service: Service, daemon_json_absent: None, bystander: str
) -> None:
    bystander_started = started_at(bystander)
    stack_id = uuid.uuid4().hex
    first = bare_service.run("host.sh", "--service", bare_service.name, "--stack-id", stack_id)
    daemon_json = json.loads(DAEMON_JSON.read_text())
    DAEMON_JSON.write_text('{"log-driver": "json-file"}\n')  # an operator's own file stays as it is
    second = bare_service.run("host.sh", "--service", bare_service.name, "--stack-id", stack_id)

    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    version = docker("version", "--format", "{{.Server.Version}}")
    assert f"host: docker {version}, network {bare_service.name} ready" in first.stdout
    assert daemon_json == {
        "live-restore": True,
        "log-driver": "json-file",
        "log-opts": {"max-size": "10m", "max-file": "3"},
        "userland-proxy": False,
    }
    assert DAEMON_JSON.read_text() == '{"log-driver": "json-file"}\n'
    assert docker("network", "inspect", "--format", "{{.Name}}", bare_service.name) == bare_service.name
    root = Path(REMOTE_ROOT) / bare_service.name
    assert (root.stat().st_mode & 0o777, (root / "env").stat().st_mode & 0o777) == (0o700, 0o700)
    assert started_at(bystander) == bystander_started


# What host.sh wrote before it asked for live-restore.
DAEMON_JSON_BEFORE_LIVE_RESTORE: Final = """{
  "log-driver": "json-file",
  "log-opts": {"max-size": "10m", "max-file": "3"},
  "userland-proxy": false
}
"""


def test_host_turns_live_restore_on_where_it_wrote_daemon_json_before_and_the_engine_takes_it_at_once(
    bare_service: Service, daemon_json_absent: None, bystander: str
) -> None:
    bystander_started = started_at(bystander)
    DAEMON_JSON.write_text(DAEMON_JSON_BEFORE_LIVE_RESTORE)

    done = bare_service.run("host.sh", "--service", bare_service.name, "--stack-id", uuid.uuid4().hex)

    assert done.returncode == 0, done.stderr
    before = json.loads(DAEMON_JSON_BEFORE_LIVE_RESTORE)
    assert json.loads(DAEMON_JSON.read_text()) == {**before, "live-restore": True}
    assert "host: wrote /etc/docker/daemon.json (live-restore, log rotation, no userland proxy)" in done.stdout
    assert docker("info", "--format", "{{.LiveRestoreEnabled}}") == "true", "the engine reloads its config"
    assert started_at(bystander) == bystander_started


def test_a_host_without_docker_is_refused_when_installing_is_not_allowed(bare_service: Service) -> None:
    # A PATH with no docker on it: only what host.sh needs before it looks for docker.
    bin_dir = f"/tmp/{bare_service.name}-no-docker"
    bare_service.server.run(shlex.join(["sh", "-c", 'mkdir -p "$1" && ln -sf /usr/bin/dirname "$1/"', "-", bin_dir]))
    # A service's record of its stack, which host.sh reads before it looks for docker, with no other tool at hand.
    record = f"{REMOTE_ROOT}/{bare_service.name}/stack-id"
    bare_service.server.run(shlex.join(["sh", "-c", 'echo 0f0f > "$1"', "-", record]))
    argv = steps.HOST.argv(service=bare_service.name, no_install_docker=True, stack_id=uuid.uuid4().hex)
    command = remote.script(bare_service.name, steps.HOST.name, argv, timeout_seconds=30)
    command = command.replace("bash ", f"env PATH={bin_dir} /bin/bash ", 1)
    try:
        done = bare_service.server.run(command, check=False)
    finally:
        bare_service.server.run(shlex.join(["rm", "-rf", bin_dir]))

    assert done.returncode == 1
    assert done.stderr == "host: docker is not installed and --no-install-docker forbids installing it\n"
    assert remote.scripts_dir(bare_service.name) in command


def test_registry_login_takes_the_password_from_stdin_and_swap_pulls_from_the_registry(service: Service) -> None:
    registry = registry_address()
    image = f"{registry}/{service.name}/app:v2"
    docker("tag", images.app("v2"), image)
    docker("push", image, timeout=300)
    docker("image", "rm", image)
    service.extra_images.append(image)
    try:
        login = service.run("registry-login.sh", "--server", registry, "--username", "deployer", stdin="hunter2\n")
        no_password = service.run("registry-login.sh", "--server", registry, "--username", "deployer")
        service.deploy("web", "v1")
        swapped, report = service.swap_under_load("web", "v2", image=image)
    finally:
        docker("logout", registry, check=False)

    assert login.returncode == 0, login.stderr
    assert login.stdout == f"registry-login: logged in to {registry} as deployer\n"
    assert no_password.returncode == 1 and no_password.stderr == "registry-login: no password on stdin\n"
    assert swapped.returncode == 0, swapped.stderr
    assert f"pulling {image}" in swapped.stdout
    assert report.failures == [] and report.version_sequence() == ["v1", "v2"], report.summary()


def test_a_service_its_stack_runs_under_another_name_here_is_refused_until_that_one_is_removed(
    bare_service: Service, other_service: Service, server_hostname: str
) -> None:
    """`service:` renamed in a stack that is deployed: the new name would start on empty data beside the old one."""
    stack_id = uuid.uuid4().hex
    deployed = bare_service.run("host.sh", "--service", bare_service.name, "--stack-id", stack_id)
    assert deployed.returncode == 0, deployed.stderr

    renamed = other_service.run("host.sh", "--service", other_service.name, "--stack-id", stack_id)
    another_stack = other_service.run("host.sh", "--service", other_service.name, "--stack-id", uuid.uuid4().hex)

    assert renamed.returncode == 1
    assert renamed.stderr == (
        f"host: this stack runs service '{bare_service.name}' on {server_hostname}: as '{other_service.name}' it "
        f"would start on empty data beside it. Set service: {bare_service.name} back; a new name takes a new stack "
        "(or pulumi destroy first; data is kept under the old name)\n"
    )
    assert another_stack.returncode == 0, "a second service of another stack is welcome"
    removed = bare_service.run(steps.HOST_REMOVE.name, *steps.HOST_REMOVE.argv(service=bare_service.name))
    assert removed.returncode == 0, removed.stderr
    after_destroy = other_service.run("host.sh", "--service", other_service.name, "--stack-id", stack_id)
    assert after_destroy.returncode == 0, after_destroy.stderr
