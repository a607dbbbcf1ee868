"""How every `ssh` quayside runs itself reaches a server (components/ssh.py): the host key pinned for the server's
address and port and checked strictly, the private key only in a 0600 file that is gone afterwards."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Final

from components import ssh

HOST_KEY: Final = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHq9u5mVwK0p2Zr7xqQb3cJYtLk8dWn1sFv6gHe4aRz0"
PRIVATE_KEY: Final = "-----BEGIN OPENSSH PRIVATE KEY-----\nkey\n-----END OPENSSH PRIVATE KEY-----"


def test_the_host_key_is_pinned_for_the_servers_address_and_port() -> None:
    assert ssh.Endpoint("203.0.113.7", 2200, "root", HOST_KEY).known_hosts_line == f"[203.0.113.7]:2200 {HOST_KEY}\n"
    assert ssh.Endpoint("acme.com", 22, "root", HOST_KEY).known_hosts_line == f"acme.com {HOST_KEY}\n"


def test_a_host_key_as_ssh_keyscan_prints_it_is_pinned_without_its_host_name() -> None:
    scanned = ssh.Endpoint("203.0.113.7", 2200, "root", f"203.0.113.7 {HOST_KEY}")

    assert scanned.known_hosts_line == f"[203.0.113.7]:2200 {HOST_KEY}\n"


def test_ssh_checks_the_host_key_strictly_against_that_file_only_and_uses_that_key_only() -> None:
    argv = ssh.argv("203.0.113.7", 2222, "deploy", Path("/tmp/k/key"), Path("/tmp/k/known_hosts"), "uptime")

    assert argv[:3] == ["ssh", "-i", "/tmp/k/key"]
    for option in ("StrictHostKeyChecking=yes", "UserKnownHostsFile=/tmp/k/known_hosts",
                   "GlobalKnownHostsFile=/dev/null", "IdentitiesOnly=yes", "BatchMode=yes"):  # fmt: skip
        assert argv[argv.index(option) - 1] == "-o", option
    assert argv[-3:] == ["-T", "deploy@203.0.113.7", "uptime"]
    tunnel = ssh.argv("127.0.0.1", 22, "root", Path("k"), Path("kh"), "", tty=True, options=["-N", "-R", "1:h:2"])
    assert tunnel[-6:] == ["-N", "-R", "1:h:2", "-t", "root@127.0.0.1", ""]


def test_the_private_key_is_a_0600_file_in_a_0700_directory_removed_afterwards() -> None:
    endpoint = ssh.Endpoint("203.0.113.7", 22, "root", HOST_KEY)

    with ssh.key_files(endpoint, PRIVATE_KEY, prefix="quayside-test-") as files:
        assert stat.S_IMODE(files.directory.stat().st_mode) == 0o700
        assert stat.S_IMODE(files.key.stat().st_mode) == 0o600
        assert files.key.read_text() == PRIVATE_KEY + "\n", "ssh wants the key's last line ended"
        assert files.known_hosts.read_text() == f"203.0.113.7 {HOST_KEY}\n"
        assert files.key.parent == files.known_hosts.parent == files.directory

    assert not files.directory.exists()
