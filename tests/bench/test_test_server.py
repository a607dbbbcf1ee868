"""The loopback test server is a real sshd that reaches this machine's Docker engine."""

from __future__ import annotations

import json
import subprocess
import urllib.request

from tests.support.testbed import TestServer


def test_ssh_to_the_test_server_runs_docker_ps(test_server: TestServer) -> None:
    done = test_server.run("docker ps --format '{{json .}}' && echo ssh-ok")
    assert done.stdout.strip().endswith("ssh-ok"), done.stdout + done.stderr


def test_test_server_refuses_a_key_it_does_not_know(test_server: TestServer, tmp_path: object) -> None:
    argv = test_server.ssh_argv("true")
    argv[argv.index("-i") + 1] = "/dev/null"
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert done.returncode == 255, done.stderr


def test_registry_on_loopback_answers_the_v2_api(registry: str) -> None:
    with urllib.request.urlopen(f"http://{registry}/v2/_catalog", timeout=5) as reply:
        assert reply.status == 200
        assert "repositories" in json.load(reply)
