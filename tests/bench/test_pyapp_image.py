"""quayside-test/pyapp, the bench's small Python web app (tests/images/pyapp): it serves its version and /up over
kept-alive HTTP/1.1 connections, runs a one-off command given after the image, and ignores SIGTERM as a Python app
run without an init does (PID 1, no handler), so `docker stop` waits its whole grace period and KILLs it."""

from __future__ import annotations

import http.client
import socket
import time
from collections.abc import Callable, Iterator

import pytest

from tests.support import images
from tests.support.docker import docker, free_loopback_port, remove_containers, unique_name
from tests.support.polling import wait_for

# start(tag) runs quayside-test/pyapp:TAG detached with port 80 published on a free loopback port, waits until it
# answers, and returns (container, port).
Start = Callable[[str], tuple[str, int]]


def get(port: int, path: str) -> tuple[int, str] | None:
    """(status, body) of GET http://127.0.0.1:PORT/PATH, or None when nothing answers."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", path)
        reply = connection.getresponse()
        return reply.status, reply.read().decode()
    except (OSError, http.client.HTTPException):
        return None
    finally:
        connection.close()


@pytest.fixture
def start() -> Iterator[Start]:
    started: list[str] = []

    def run(tag: str) -> tuple[str, int]:
        name, port = unique_name("qs-pyapp"), free_loopback_port()
        started.append(name)
        docker("run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:80", images.pyapp(tag))
        wait_for(
            f"pyapp {tag} answering /up on 127.0.0.1:{port}", lambda: get(port, "/up") == (200, "ok\n"), seconds=15,
            detail=lambda: docker("logs", name, check=False),
        )  # fmt: skip
        return name, port

    try:
        yield run
    finally:
        remove_containers(*started)


@pytest.mark.parametrize("tag", images.PYAPP_TAGS)
def test_pyapp_answers_its_version_and_hostname_on_root_and_ok_on_up(start: Start, tag: str) -> None:
    container, port = start(tag)
    hostname = docker("inspect", "--format", "{{.Config.Hostname}}", container)

    assert get(port, "/") == (200, f"{tag} {hostname}\n")
    assert get(port, "/up") == (200, "ok\n")
    assert get(port, "/missing") == (404, "not found\n")


def test_pyapp_keeps_the_connection_open_between_requests(start: Start) -> None:
    _, port = start("py-v1")
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)

    def ask(path: str) -> tuple[int, str, bool]:
        connection.request("GET", path)
        reply = connection.getresponse()
        return reply.status, reply.read().decode().split()[0], reply.will_close

    try:
        replies = [ask("/")]
        first_socket = connection.sock
        replies += [ask("/up"), ask("/")]
        # http.client opens a new socket only when the server closed the last one.
        same_socket = connection.sock is first_socket
    finally:
        connection.close()

    assert replies == [(200, "py-v1", False), (200, "ok", False), (200, "py-v1", False)]
    assert same_socket


def test_pyapp_sends_each_answer_in_one_write_so_a_kept_alive_client_never_waits_on_nagle(start: Start) -> None:
    # Headers and body written apart leave the body behind Nagle's algorithm until the client's delayed ACK (40 ms
    # on Linux): a kept-alive load through such an app makes 25 requests a second per connection, not thousands.
    _, port = start("py-v1")
    first_reads = []
    with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
        for _ in range(3):  # the later requests on the connection are the ones Nagle would hold back
            client.sendall(b"GET / HTTP/1.1\r\nHost: app\r\n\r\n")
            first_reads.append(client.recv(65536).decode())

    for first_read in first_reads:
        head, _, body = first_read.partition("\r\n\r\n")
        assert head.startswith("HTTP/1.1 200"), first_read
        assert body.startswith("py-v1 "), f"the first read held the headers only: {first_read!r}"


def test_pyapp_ignores_sigterm_so_docker_stop_waits_its_grace_period_and_kills_it(start: Start) -> None:
    container, _ = start("py-v1")

    began = time.monotonic()
    docker("stop", "--time", "2", container)
    took = time.monotonic() - began

    assert docker("inspect", "--format", "{{.State.ExitCode}}", container) == "137"  # 128 + SIGKILL
    assert took >= 2, f"docker stop --time 2 returned after {took:.1f} s: the TERM was not ignored"


def test_pyapp_runs_arguments_after_the_image_as_a_one_off_command() -> None:
    name = unique_name("qs-pyapp")
    try:
        assert docker("run", "--name", name, images.pyapp("py-v1"), "echo", "migrated") == "migrated"
        assert docker("inspect", "--format", "{{.State.ExitCode}}", name) == "0"
    finally:
        remove_containers(name)
