"""The cloud-init document a Hetzner server gets, checked by Debian's own cloud-init (`cloud-init schema`) in a
throwaway container of the clean Debian image: cloud-init never runs on this machine, where its presence would
make every deploy wait for it."""

from __future__ import annotations

import subprocess

import pytest

from components.server import HOST_KEYGEN, cloud_init, split_key_pair
from tests.support import images
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
