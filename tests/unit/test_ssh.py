"""How every `ssh` quayside runs itself reaches a server (components/ssh.py): the host key pinned for the server's
address and port and checked strictly, the private key only in a 0600 file that is gone afterwards."""

from __future__ import annotations

import signal
import stat
import subprocess
import sys
from pathlib import Path
from typing import Final

import pytest

from components import ssh
from tests.support.polling import wait_for

ROOT: Final = Path(__file__).resolve().parents[2]

HOST_KEY: Final = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHq9u5mVwK0p2Zr7xqQb3cJYtLk8dWn1sFv6gHe4aRz0"
PRIVATE_KEY: Final = "-----BEGIN OPENSSH PRIVATE KEY-----\nkey\n-----END OPENSSH PRIVATE KEY-----"


def test_the_host_key_is_pinned_for_the_servers_address_and_port() -> None:
    assert ssh.Endpoint("203.0.113.7", 2200, "root", HOST_KEY).known_hosts_line == f"[203.0.113.7]:2200 {HOST_KEY}\n"
    assert ssh.Endpoint("acme.com", 22, "root", HOST_KEY).known_hosts_line == f"acme.com {HOST_KEY}\n"


def test_a_host_key_as_ssh_keyscan_prints_it_is_pinned_without_its_host_name() -> None:
    scanned = ssh.Endpoint("203.0.113.7", 2200, "root", f"203.0.113.7 {HOST_KEY}")

    assert scanned.known_hosts_line == f"[203.0.113.7]:2200 {HOST_KEY}\n"


def test_the_pinned_key_is_named_by_the_fingerprint_ssh_keygen_gives_it(tmp_path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "key")], check=True)
    public = (tmp_path / "key.pub").read_text()
    listed = subprocess.run(["ssh-keygen", "-lf", str(tmp_path / "key.pub")], capture_output=True, text=True)
    fingerprint = listed.stdout.split()[1]

    assert ssh.Endpoint("203.0.113.7", 22, "root", public).fingerprint == fingerprint
    assert ssh.Endpoint("203.0.113.7", 22, "root", f"203.0.113.7 {public}").fingerprint == fingerprint


# What ssh (OpenSSH 9.2) prints, with LogLevel=ERROR, when the server shows another key than the pinned one.
KEY_CHANGED: Final = """\
@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @
@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!
The fingerprint for the ED25519 key sent by the remote host is
SHA256:S6Jmn5bl7Cp9heY+nf1Gh6NR5Ik4GtixKj1Z30anwJo.
Please contact your system administrator.
Host key for [127.0.0.1]:2399 has changed and you have requested strict checking.
Host key verification failed.
"""


def test_a_refused_host_key_is_told_from_every_other_failure_with_the_key_the_server_sent() -> None:
    assert ssh.refused_host_key(KEY_CHANGED) == "ED25519 SHA256:S6Jmn5bl7Cp9heY+nf1Gh6NR5Ik4GtixKj1Z30anwJo"
    no_key_of_that_type = "No ED25519 host key is known for [127.0.0.1]:2399 and you have requested strict checking.\n"
    assert ssh.refused_host_key(no_key_of_that_type + "Host key verification failed.\n") == "a key of another type"
    assert ssh.refused_host_key("ssh: connect to host 127.0.0.1 port 2399: Connection refused\n") is None
    assert ssh.refused_host_key("Permission denied (publickey).\n") is None


def test_ssh_checks_the_host_key_strictly_against_that_file_only_and_uses_that_key_only() -> None:
    argv = ssh.argv("203.0.113.7", 2222, "deploy", Path("/tmp/k/key"), Path("/tmp/k/known_hosts"), "uptime")

    assert argv[:3] == ["ssh", "-i", "/tmp/k/key"]
    for option in ("StrictHostKeyChecking=yes", "UserKnownHostsFile=/tmp/k/known_hosts",
                   "GlobalKnownHostsFile=/dev/null", "IdentitiesOnly=yes", "BatchMode=yes"):  # fmt: skip
        assert argv[argv.index(option) - 1] == "-o", option
    assert argv[-3:] == ["-T", "deploy@203.0.113.7", "uptime"]
    tunnel = ssh.argv("127.0.0.1", 22, "root", Path("k"), Path("kh"), "", tty=True, options=["-N"])
    assert tunnel[-6:] == ["-N", "-o", "ControlPath=none", "-t", "root@127.0.0.1", ""]


# A user's ssh config that would hand the server the user's agent, X11 display and ports, offer other identities,
# run a local command, and share a multiplexed connection; its ProxyJump to a bastion is the user's to keep.
USER_CONFIG: Final = """\
Host *
    ForwardAgent yes
    ForwardX11 yes
    ForwardX11Trusted yes
    RemoteForward 127.0.0.1:9999 127.0.0.1:22
    LocalForward 127.0.0.1:8888 127.0.0.1:80
    DynamicForward 1080
    IdentityFile ~/.ssh/id_personal
    IdentitiesOnly no
    IdentityAgent /run/user/1000/agent.sock
    PermitLocalCommand yes
    LocalCommand touch /tmp/pwned
    ControlMaster auto
    ControlPath ~/.ssh/cm-%r@%h:%p
    ControlPersist 10m
    ProxyJump bastion.acme.com
"""


def effective_config(argv: list[str], user_config: Path) -> dict[str, list[str]]:
    """What ssh would use for that argv with `user_config` as the user's config file (`ssh -G`: it connects to
    nothing), each setting's values by its lower-case name."""
    given = ["ssh", "-G", "-F", str(user_config), *argv[1:-1]]
    done = subprocess.run(given, capture_output=True, text=True, timeout=30, check=True)
    settings: dict[str, list[str]] = {}
    for line in done.stdout.splitlines():
        name, _, value = line.partition(" ")
        settings.setdefault(name, []).append(value)
    return settings


def test_nothing_is_forwarded_and_only_the_given_key_is_offered_whatever_the_users_ssh_config_says(
    tmp_path: Path,
) -> None:
    user_config = tmp_path / "config"
    user_config.write_text(USER_CONFIG)
    key = tmp_path / "key"  # ssh leaves out an -i file it cannot read
    key.write_text(PRIVATE_KEY)
    argv = ssh.argv("203.0.113.7", 22, "deploy", key, tmp_path / "known_hosts", "uptime")

    used = effective_config(argv, user_config)

    for name, value in {
        "forwardagent": "no", "forwardx11": "no", "forwardx11trusted": "no", "clearallforwardings": "yes",
        "identitiesonly": "yes", "identityagent": "none", "permitlocalcommand": "no",
    }.items():  # fmt: skip
        assert used[name] == [value], name
    assert "controlpath" not in used, "ControlPath=none: no multiplexed master of the config's is used or left behind"
    for forwarding in ("remoteforward", "localforward", "dynamicforward"):
        assert forwarding not in used, forwarding
    # The given key is offered; so is a key file the config names (ssh adds them up, nothing clears them), but no
    # key of an agent.
    assert str(key) in used["identityfile"]
    assert used["proxyjump"] == ["bastion.acme.com"], "the user's way to the server stays"


def test_a_tunnel_forwards_its_port_and_a_shared_connection_keeps_its_control_path(tmp_path: Path) -> None:
    user_config = tmp_path / "config"
    user_config.write_text(USER_CONFIG)
    tunnel = ssh.argv(
        "127.0.0.1", 22, "root", Path("k"), Path("kh"), "", options=["-N"], forwards=["-R", "127.0.0.1:5000:h:5000"]
    )
    shared = ssh.argv("127.0.0.1", 22, "root", Path("k"), Path("kh"), "", options=["-o", "ControlPath=/tmp/k/c"])

    used = effective_config(tunnel, user_config)
    assert "[127.0.0.1]:5000 [h]:5000" in used["remoteforward"]
    assert used["forwardagent"] == ["no"]
    assert effective_config(shared, user_config)["controlpath"] == ["/tmp/k/c"]


def test_the_private_key_is_a_0600_file_in_a_0700_directory_removed_afterwards() -> None:
    endpoint = ssh.Endpoint("203.0.113.7", 22, "root", HOST_KEY)

    with ssh.key_files(endpoint, PRIVATE_KEY, prefix="quayside-test-") as files:
        assert stat.S_IMODE(files.directory.stat().st_mode) == 0o700
        assert stat.S_IMODE(files.key.stat().st_mode) == 0o600
        assert files.key.read_text() == PRIVATE_KEY + "\n", "ssh wants the key's last line ended"
        assert files.known_hosts.read_text() == f"203.0.113.7 {HOST_KEY}\n"
        assert files.key.parent == files.known_hosts.parent == files.directory

    assert not files.directory.exists()


# A program holding key files, as the quayside command, the image sender and the rollout hold them: it says where
# they are, then waits on stdin; it ends with the exit status it would end with.
HOLDER: Final = f"""
import sys
from components import ssh
try:
    with ssh.key_files(ssh.Endpoint("203.0.113.7", 22, "root", "{HOST_KEY}"), "key", prefix="quayside-test-") as files:
        print(files.directory, flush=True)
        sys.stdin.read()
except ssh.Terminated as terminated:
    sys.exit(terminated.status)
except KeyboardInterrupt:
    sys.exit(130)
"""


def signals_as_a_terminal_starts_them() -> None:
    """The holder's signals at their defaults, as a shell at a terminal starts a program: a test run in the
    background (`nohup`, `&`) would pass them on ignored, and an ignored signal rightly stays ignored."""
    for number in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(number, signal.SIG_DFL)


@pytest.mark.parametrize(
    ("signal_number", "status"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129), (signal.SIGINT, 130)]
)
def test_the_key_files_are_gone_when_the_program_holding_them_is_terminated_or_interrupted(
    signal_number: int, status: int
) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        preexec_fn=signals_as_a_terminal_starts_them,
    )  # fmt: skip
    try:
        assert holder.stdout is not None
        directory = Path(holder.stdout.readline().strip())  # the files are written once it says where
        assert (directory / "key").is_file()

        holder.send_signal(signal_number)

        wait_for("the key files' directory removed", lambda: not directory.exists(), seconds=10)
        assert holder.wait(timeout=10) == status
    finally:
        holder.kill()
        holder.wait()
