"""Every connection quayside makes verifies the server's SSH host key, through the real engine and real SSH: a
server presenting another key gets no command (and so no secret), and trust on first use pins what it saw."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from pulumi import automation as auto

from components import ssh, stack
from tests.support.stacks import DemoStack, changes, service_containers, unique_service
from tests.support.testbed import TestServer


def other_host_key(directory: Path) -> str:
    """A fresh ed25519 public key: what an impostor at the server's address would present."""
    key = directory / "impostor_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return (directory / "impostor_ed25519.pub").read_text().strip()


def stack_with_host_key(tmp_path: Path, test_server: TestServer, **host_key: str | bool) -> DemoStack:
    """The demo stack with the host key given some other way than the test server's key file."""
    demo = DemoStack.create(tmp_path, test_server, unique_service("e2e-hk"))
    server = demo.config["quayside:server"]
    del server["host_key_file"]
    server.update(host_key)
    return demo


def test_a_server_presenting_another_host_key_is_refused_in_one_line_before_any_step_dials_it(
    tmp_path: Path, test_server: TestServer
) -> None:
    pinned = other_host_key(tmp_path)
    demo = stack_with_host_key(tmp_path, test_server, host_key=pinned)
    where = f"{test_server.host}:{test_server.port}"
    presented, impostor = (
        ssh.Endpoint(test_server.host, test_server.port, test_server.user, key).fingerprint
        for key in (test_server.host_key_file.read_text(), pinned)
    )
    refusal = (
        f"quayside: server.host_key: {where} presents the host key ED25519 {presented}, not the pinned {impostor}, so "
        "nothing was sent to it"
    )

    with pytest.raises(auto.errors.CommandError) as previewed:
        demo.preview()
    with pytest.raises(auto.errors.CommandError) as refused:
        demo.up()

    assert refusal in str(previewed.value) and refusal in str(refused.value)
    assert "Traceback" not in str(refused.value)
    assert "host key mismatch" not in str(refused.value), "pulumi-command dialled it: the run should end first"
    assert not demo.service_dir.exists(), "a command ran on a server that presented another host key"
    assert service_containers(demo.service) == []
    assert demo.destroy().summary.result == "succeeded"


def test_trust_on_first_use_pins_the_key_the_server_presented_and_deploys(
    tmp_path: Path, test_server: TestServer
) -> None:
    demo = stack_with_host_key(tmp_path, test_server, trust_first_use=True)
    try:
        result = demo.up()

        assert result.summary.result == "succeeded"
        assert demo.get("web") == (200, "v1")
        state = demo.stack().export_stack().deployment or {}
        scans = [
            r for r in state["resources"]
            if r["type"] == "command:local:Command" and not r["urn"].endswith(f"::{stack.STACK_ID_RESOURCE}")
        ]  # fmt: skip
        presented = " ".join(test_server.host_key_file.read_text().split()[:2])
        assert len(scans) == 1 and presented in scans[0]["outputs"]["stdout"]
        assert changes(demo.preview().change_summary) == set(), "the pinned key must not be scanned again"
    finally:
        demo.destroy()
