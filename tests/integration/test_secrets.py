"""Secrets travel on stdin only: never in a process's arguments, a log or the audit; the env file is 0600."""

from __future__ import annotations

import shlex
import subprocess
import uuid

from tests.integration.conftest import Service
from tests.support.docker import docker
from tests.support.remote import REMOTE_ROOT

# Samples every process's arguments on the server until the marker file appears (at most 60 s).
SAMPLER = """
end=$((SECONDS + 60)); samples=0
while [ ! -e "$1" ] && [ $SECONDS -lt $end ]; do ps -eo args; samples=$((samples + 1)); done
echo "samples: $samples"
"""


def test_a_secret_reaches_the_container_but_never_a_command_line_log_or_audit(service: Service) -> None:
    secret = f"s3cret-{uuid.uuid4().hex}"
    marker = f"/tmp/{service.name}-swap-done"
    sampler = subprocess.Popen(
        service.server.ssh_argv(shlex.join(["bash", "-c", SAMPLER, "sampler", marker])),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        swapped = service.swap("web", "v1", stdin=f"DATABASE_URL=postgres://app:{secret}@db/app\nOTHER=x\n")
    finally:
        service.server.run(shlex.join(["touch", marker]))
        sampled, _ = sampler.communicate(timeout=90)
        service.server.run(shlex.join(["rm", "-f", marker]))

    assert swapped.returncode == 0, swapped.stderr
    samples = int(sampled.rsplit("samples: ", 1)[1])
    assert samples >= 5, sampled[-500:]
    assert "swap.sh --service" in sampled, "the sampler did not see the swap running"
    assert secret not in sampled
    assert secret not in swapped.stdout + swapped.stderr
    assert all(secret not in line for line in service.audit())
    env_file = f"{REMOTE_ROOT}/{service.name}/env/web.env"
    assert service.server.run(shlex.join(["stat", "-c", "%a %U", env_file])).stdout.split() == ["600", "root"]
    assert service.server.run(shlex.join(["stat", "-c", "%a", f"{REMOTE_ROOT}/{service.name}/env"])).stdout == "700\n"
    container_env = docker("exec", service.container("web", "v1"), "/bin/busybox", "env").splitlines()
    assert f"DATABASE_URL=postgres://app:{secret}@db/app" in container_env


def test_a_changed_secret_boots_a_fresh_container_under_load(service: Service) -> None:
    service.deploy("web", "v1", stdin="TOKEN=old\n")
    first = docker("inspect", "--format", "{{.Id}}", service.container("web", "v1"))

    swapped, report = service.swap_under_load("web", "v1", stdin="TOKEN=new\n")

    assert swapped.returncode == 0, swapped.stderr
    assert report.failures == [], report.summary()
    live = docker("inspect", "--format", "{{.Id}}", service.container("web", "v1"))
    assert live != first
    assert "TOKEN=new" in docker("exec", live, "/bin/busybox", "env").splitlines()
    assert docker("inspect", "--format", "{{.State.Status}}", first) == "exited"


def test_an_empty_secret_env_file_is_fine(service: Service) -> None:
    service.deploy("web", "v1", stdin="")

    assert service.get("web")[1].split()[0] == "v1"
    size = service.server.run(shlex.join(["stat", "-c", "%s", f"{REMOTE_ROOT}/{service.name}/env/web.env"]))
    assert size.stdout == "0\n"
