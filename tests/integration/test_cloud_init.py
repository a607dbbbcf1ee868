"""The cloud-init document a Hetzner server gets, checked by Debian's own cloud-init (`cloud-init schema`) in a
throwaway container of the clean Debian image: cloud-init never runs on this machine, where its presence would
make every deploy wait for it. Then a clean Debian server booted from that user data has its host key replaced, as a
new Hetzner server's first connection has it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from components import config
from components import remote as commands
from components.server import HOST_KEY_SECONDS, HOST_KEYGEN, cloud_init, host_key_args, split_key_pair
from tests.support import images
from tests.support.clean_debian import CleanDebianServer, clean_debian_server
from tests.support.docker import docker

SETUP_STEP = "scripts/setup.d/clean-debian.sh"


def schema_check(document: str) -> subprocess.CompletedProcess[str]:
    """`cloud-init schema --config-file` of the document, which travels on stdin (it holds a private key)."""
    if not docker("image", "inspect", images.CLEAN_DEBIAN, check=False):
        pytest.fail(f"image {images.CLEAN_DEBIAN} is missing: run {SETUP_STEP}")
    return subprocess.run(
        ["docker", "run", "--rm", "-i", "--network", "none", "--entrypoint", "sh", images.CLEAN_DEBIAN,
         "-c", 'cat >/tmp/user-data && cloud-init schema --config-file /tmp/user-data'],
        input=document, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def rendered_user_data() -> str:
    """What HetznerServer puts in user data: a host key pair made by HOST_KEYGEN, rendered by cloud_init()."""
    keygen = subprocess.run(["sh", "-c", HOST_KEYGEN], capture_output=True, text=True, check=True)
    return cloud_init(*split_key_pair(keygen.stdout))


def test_the_user_data_of_a_hetzner_server_passes_cloud_init_schema() -> None:
    document = rendered_user_data()

    checked = schema_check(document)

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "Valid cloud-config: /tmp/user-data" in checked.stdout


def test_cloud_init_schema_refuses_the_document_with_one_value_of_the_wrong_type() -> None:
    # The check has teeth: the same document with one value cloud-init's schema does not allow fails it.
    document = rendered_user_data().replace("ssh_deletekeys: true", "ssh_deletekeys: sometimes")
    assert "ssh_deletekeys: sometimes" in document

    checked = schema_check(document)

    assert checked.returncode != 0
    assert "ssh_deletekeys" in checked.stdout + checked.stderr


def replace_host_key(server: CleanDebianServer, user_data_key: str) -> subprocess.CompletedProcess[str]:
    """host-key.sh as a Hetzner server's rotation step runs it: as root, its text on stdin, over SSH that pins the
    key the server presents now (known_hosts)."""
    command = commands.piped_script(host_key_args(user_data_key), timeout_seconds=HOST_KEY_SECONDS)
    return subprocess.run(
        server.ssh_argv("root", command), input=commands.script_text("host-key.sh"), capture_output=True, text=True,
        timeout=HOST_KEY_SECONDS + 30,
    )  # fmt: skip


def test_the_host_key_from_the_user_data_is_replaced_over_a_connection_that_verifies_it(tmp_path: Path) -> None:
    with clean_debian_server(tmp_path / "server") as server:
        user_data_key = config.public_key(server.host_key_file.read_text())

        replaced = replace_host_key(server, user_data_key)

        assert replaced.returncode == 0, replaced.stderr
        served = replaced.stdout.strip()
        assert served.startswith("ssh-ed25519 ") and served != user_data_key
        refused = server.run("root", "true")  # known_hosts still pins the key from the user data
        assert refused.returncode == 255 and "Host key verification failed" in refused.stderr, refused.stderr
        server.known_hosts.write_text(f"[127.0.0.1]:{server.ssh_port} {served}\n")
        on_server = server.run("root", "ssh-keygen -y -f /etc/ssh/ssh_host_ed25519_key; ls /etc/ssh")
        assert on_server.returncode == 0, on_server.stderr
        assert config.public_key(on_server.stdout.splitlines()[0]) == served, (
            "the private key on the server is the new one"
        )
        assert "quayside-host-key." not in on_server.stdout

        again = replace_host_key(server, user_data_key)

        assert again.returncode == 0 and again.stdout.strip() == served, again.stderr
        assert "no longer the one from the user data: kept" in again.stderr
