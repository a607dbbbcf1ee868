"""The local test images keep the contracts the other tests rely on (see the headers of tests/images/*/Dockerfile):
the app serves its version and /up, its variants fail or start late as named, every container stops at once;
kamal-proxy answers its CLI over `docker exec`; Postgres initialises once and keeps its data across containers."""

from __future__ import annotations

import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support import images
from tests.support.docker import docker, remove_containers, unique_name
from tests.support.polling import wait_for

Run = Callable[..., str]


@pytest.fixture
def run() -> Iterator[Run]:
    """run(image, *docker_run_args) starts a detached container; each is removed after the test."""
    started: list[str] = []

    def start(image: str, *args: str) -> str:
        name = unique_name("qs-images")
        started.append(name)
        docker("run", "-d", "--name", name, *args, image)
        return name

    try:
        yield start
    finally:
        remove_containers(*started)


def published(container: str, port: int) -> str:
    """host:port Docker chose on 127.0.0.1 for the container's port (started with -p 127.0.0.1::PORT)."""
    return docker("port", container, f"{port}/tcp").splitlines()[0]


def get(address: str, path: str, *, timeout: float = 2) -> tuple[int, str] | None:
    """(status, body) of GET http://address/path, or None when nothing answers."""
    try:
        with urllib.request.urlopen(f"http://{address}{path}", timeout=timeout) as reply:
            return int(reply.status), reply.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def start_app(run: Run, tag: str, *args: str) -> tuple[str, str]:
    """Starts quayside-test/app:TAG with port 80 published on loopback; returns (container, address)."""
    container = run(images.app(tag), "-p", "127.0.0.1::80", *args)
    return container, published(container, 80)


def logs(container: str) -> str:
    done = subprocess.run(["docker", "logs", container], capture_output=True, text=True, timeout=30)
    return done.stdout + done.stderr


def answers(address: str, path: str) -> bool:
    return get(address, path) is not None


# --- quayside-test/app ------------------------------------------------------------------------------


def test_app_image_serves_its_version_and_health_path(run: Run) -> None:
    container, address = start_app(run, "v1")
    wait_for("app v1 answering", lambda: answers(address, "/"), seconds=10)

    status, body = get(address, "/") or (0, "")
    hostname = docker("inspect", "--format", "{{.Config.Hostname}}", container)
    assert (status, body) == (200, f"v1 {hostname}\n")
    assert get(address, "/up") == (200, "ok\n")


@pytest.mark.parametrize("tag", ["v2", "v3"])
def test_each_app_tag_bakes_its_own_version(run: Run, tag: str) -> None:
    _, address = start_app(run, tag)
    wait_for(f"app {tag} answering", lambda: answers(address, "/"), seconds=10)

    status, body = get(address, "/") or (0, "")
    assert status == 200
    assert body.split()[0] == tag


def test_app_version_and_port_can_be_overridden_and_up_answers_busybox_wget_inside(run: Run) -> None:
    container = run(images.app("v1"), "-e", "VERSION=v9", "-e", "PORT=8080")
    probe = ["exec", container, "wget", "-q", "-O-", "http://127.0.0.1:8080/up"]
    wait_for("app answering on 8080", lambda: docker(*probe, check=False) == "ok", seconds=10)

    assert docker("exec", container, "wget", "-q", "-O-", "http://127.0.0.1:8080/").split()[0] == "v9"


def test_never_healthy_app_answers_its_root_but_never_its_health_path(run: Run) -> None:
    _, address = start_app(run, "never-healthy")
    wait_for("never-healthy answering /", lambda: answers(address, "/"), seconds=10)

    statuses = set()
    for _ in range(10):
        reply = get(address, "/up")
        statuses.add(reply[0] if reply else None)
        time.sleep(0.2)
    status, body = get(address, "/") or (0, "")
    assert (status, body.split()[0]) == (200, "never-healthy")
    assert statuses == {404}


def test_slow_start_app_answers_only_after_its_start_delay(run: Run) -> None:
    started = time.monotonic()
    _, address = start_app(run, "slow-start", "-e", "START_DELAY=2")
    early_replies = []
    while time.monotonic() - started < 1.0:
        early_replies.append(get(address, "/up", timeout=0.5))
        time.sleep(0.1)

    wait_for("slow-start answering /up", lambda: get(address, "/up") == (200, "ok\n"), seconds=6)

    answered_after = time.monotonic() - started

    assert early_replies, "the first second went by without a single probe"
    assert early_replies == [None] * len(early_replies)
    assert 2.0 <= answered_after < 4.5, f"answered after {answered_after:.1f} s with START_DELAY=2 (image default 5)"


@pytest.mark.parametrize("tag", ["v1", "slow-start"])
def test_app_container_stops_within_a_second_or_two(run: Run, tag: str) -> None:
    container, address = start_app(run, tag)
    if tag == "v1":
        wait_for("app answering", lambda: answers(address, "/up"), seconds=10)
    else:
        # Inside its 5 s start delay, with the entrypoint's TERM trap set.
        wait_for("slow-start in its start delay", lambda: "starting in" in logs(container), seconds=10)

    started = time.monotonic()
    docker("stop", container)
    took = time.monotonic() - started

    assert took < 3, f"docker stop took {took:.1f} s: the entrypoint does not end on SIGTERM"
    assert docker("inspect", "--format", "{{.State.ExitCode}}", container) == "0"


def test_app_image_given_a_command_runs_it_once_and_exits_with_its_code() -> None:
    """A migration is `docker run IMAGE CMD...`: it must end, not start the server."""
    ran = subprocess.run(
        ["docker", "run", "--rm", images.app("v1"), "sh", "-c", "echo migrated; exit 3"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip

    assert (ran.returncode, ran.stdout) == (3, "migrated\n")


# --- quayside-test/kamal-proxy ----------------------------------------------------------------------


def test_kamal_proxy_image_runs_and_answers_its_cli_over_docker_exec(run: Run) -> None:
    proxy = run(images.KAMAL_PROXY, "-p", "127.0.0.1::80")
    address = published(proxy, 80)
    list_services = ["exec", proxy, "kamal-proxy", "list"]
    wait_for("kamal-proxy list", lambda: docker(*list_services, check=False) != "", seconds=10)

    assert "Service" in docker(*list_services)
    reply = get(address, "/")
    assert reply is not None and reply[0] == 404, f"kamal-proxy with no service answered {reply} on port 80"
    assert "/home/kamal-proxy/.config/kamal-proxy/kamal-proxy.state" in logs(proxy)


# --- quayside-test/postgres -------------------------------------------------------------------------

PG_USER = "acme"
PG_PASSWORD = "correct horse battery"
PG_DB = "acme_production"
PG_ENV = (f"POSTGRES_USER={PG_USER}", f"POSTGRES_PASSWORD={PG_PASSWORD}", f"POSTGRES_DB={PG_DB}")


def start_postgres(run: Run, data: Path, *args: str) -> tuple[str, int]:
    """Postgres on the host directory DATA with extra `docker run` ARGS, ready; returns (container, port)."""
    container = run(images.POSTGRES, "-v", f"{data}:/var/lib/postgresql/data", "-p", "127.0.0.1::5432", *args)
    ready = ["docker", "exec", container, "pg_isready", "-q", "-U", PG_USER, "-d", PG_DB]
    wait_for("pg_isready", lambda: subprocess.run(ready, capture_output=True).returncode == 0, seconds=60)
    return container, int(published(container, 5432).rsplit(":", 1)[1])


def env_args(*pairs: str) -> list[str]:
    return [arg for pair in pairs for arg in ("-e", pair)]


def psql(port: int, sql: str, *, password: str = PG_PASSWORD) -> subprocess.CompletedProcess[str]:
    """The host's psql over TCP, so the password (scram-sha-256) is checked."""
    argv = ["psql", "-h", "127.0.0.1", "-p", str(port), "-U", PG_USER, "-d", PG_DB, "-v", "ON_ERROR_STOP=1",
            "--no-psqlrc", "-At", "-c", sql]  # fmt: skip
    env = {**os.environ, "PGPASSWORD": password, "PGCONNECT_TIMEOUT": "5"}
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=30)


def test_postgres_keeps_its_data_and_password_across_a_new_container(run: Run, tmp_path: Path) -> None:
    data = tmp_path / "data"
    first, port = start_postgres(run, data, *env_args(*PG_ENV))
    created = psql(port, "CREATE TABLE notes (body text); INSERT INTO notes VALUES ('kept');")
    assert created.returncode == 0, created.stderr
    assert "Success." in logs(first), "initdb did not run on an empty data directory"
    remove_containers(first)

    second, port = start_postgres(run, data, *env_args(*PG_ENV))
    count = psql(port, "SELECT count(*), min(body) FROM notes")
    wrong = psql(port, "SELECT 1", password="not the password")

    assert count.stdout.strip() == "1|kept", count.stderr
    assert wrong.returncode != 0
    assert "password authentication failed" in wrong.stderr
    assert "skipping initialisation" in logs(second)
    assert "Success." not in logs(second), "initdb ran again on a data directory that held a database"


def test_postgres_reads_its_password_from_a_file_and_stops_fast_on_docker_stop(run: Run, tmp_path: Path) -> None:
    (tmp_path / "password").write_text(PG_PASSWORD + "\n")
    container, port = start_postgres(
        run,
        tmp_path / "data",
        "-v", f"{tmp_path / 'password'}:/run/secrets/password:ro",
        *env_args(f"POSTGRES_USER={PG_USER}", "POSTGRES_PASSWORD_FILE=/run/secrets/password", f"POSTGRES_DB={PG_DB}"),
    )  # fmt: skip
    assert psql(port, "SELECT current_user").stdout.strip() == PG_USER

    started = time.monotonic()
    docker("stop", container)
    took = time.monotonic() - started

    assert took < 5, f"docker stop took {took:.1f} s"
    # Once after the initialisation server, once at the end: the stop was a clean shutdown.
    assert logs(container).count("database system is shut down") == 2
    assert docker("inspect", "--format", "{{.State.ExitCode}}", container) == "0"


def test_postgres_refuses_to_initialise_without_a_password(run: Run, tmp_path: Path) -> None:
    container = run(images.POSTGRES, "-v", f"{tmp_path / 'data'}:/var/lib/postgresql/data")
    exit_code = docker("wait", container, timeout=60)

    assert exit_code != "0"
    assert "POSTGRES_PASSWORD is not set" in logs(container)
    assert not any((tmp_path / "data").iterdir()), "a refused start must leave the data directory empty"
