"""Before pulling an image, a step checks that the disk under Docker's data root has room for it: lib.sh's
ensure_room_for and the functions that read the image's download from `docker manifest inspect`, run by bash here,
with `docker` and `df` standing in as shell functions for the unit's own cases."""

from __future__ import annotations

import subprocess
from typing import Final

import pytest

from components.remote import SCRIPTS_DIR

IMAGE: Final = "registry.example.com:5000/acme/web:v2@sha256:" + "a" * 64
AMD64_MANIFEST: Final = "sha256:" + "b" * 64


def manifest(sizes: list[int]) -> str:
    """One image's manifest as `docker manifest inspect` prints it (tab-indented): its config's size, then its
    layers'."""
    layers = ",\n".join(f'\t\t{{\n\t\t\t"mediaType": "layer",\n\t\t\t"size": {size}\n\t\t}}' for size in sizes[1:])
    return (
        f'{{\n\t"schemaVersion": 2,\n\t"config": {{\n\t\t"mediaType": "config",\n\t\t"size": {sizes[0]}\n\t}},\n'
        f'\t"layers": [\n{layers}\n\t]\n}}'
    )


def manifest_list(platforms: dict[str, str]) -> str:
    """A list of manifests, one per platform (architecture: digest), as `docker manifest inspect` prints it."""
    entries = ",\n".join(
        f'\t\t{{\n\t\t\t"mediaType": "manifest",\n\t\t\t"size": 944,\n\t\t\t"digest": "{digest}",\n'
        f'\t\t\t"platform": {{\n\t\t\t\t"architecture": "{arch}",\n\t\t\t\t"os": "linux"\n\t\t\t}}\n\t\t}}'
        for arch, digest in platforms.items()
    )
    return f'{{\n\t"schemaVersion": 2,\n\t"manifests": [\n{entries}\n\t]\n}}'


def lib(function: str, *args: str, stdin: str) -> subprocess.CompletedProcess[str]:
    program = f'source "{SCRIPTS_DIR}/lib.sh"; {function} "$@"'
    return subprocess.run(
        ["bash", "-c", program, "room", *args], input=stdin, capture_output=True, text=True, timeout=30
    )


def test_the_download_is_the_config_and_layers_of_the_manifest_in_kib_rounded_up() -> None:
    assert lib("manifest_download_kb", stdin=manifest([3294, 1064344, 3431, 1016])).stdout == "1047\n"  # 1,072,085 B
    assert lib("manifest_download_kb", stdin=manifest([1024, 1024 * 1024])).stdout == "1025\n"


def test_of_a_list_the_servers_platforms_manifest_is_read_and_an_attestation_is_never_it() -> None:
    listed = manifest_list({"unknown": "sha256:" + "0" * 64, "arm64": "sha256:" + "1" * 64, "amd64": AMD64_MANIFEST})

    assert lib("platform_manifest", "amd64", stdin=listed).stdout == f"{AMD64_MANIFEST}\n"
    assert lib("platform_manifest", "arm64", stdin=listed).stdout == f"sha256:{'1' * 64}\n"
    none = lib("platform_manifest", "s390x", stdin=listed)
    assert none.returncode != 0 and none.stdout == ""


def ensure_room(
    free_kb: int | None, download_bytes: int | None, *, listed: bool = False
) -> subprocess.CompletedProcess[str]:
    """ensure_room_for IMAGE on a server whose data root has `free_kb` free (None: df cannot read it); the registry
    lists the image's download as `download_bytes` (behind a list of manifests when `listed`), or does not answer
    (None)."""
    answers: dict[str, str] = {}
    if download_bytes is not None:
        image = manifest([0, download_bytes])
        platform_ref = f"registry.example.com:5000/acme/web@{AMD64_MANIFEST}"
        answers = {IMAGE: manifest_list({"amd64": AMD64_MANIFEST}), platform_ref: image} if listed else {IMAGE: image}
    # The registry's answers by reference, in the environment as REF_n and ANSWER_n.
    registry: dict[str, str] = {}
    for n, (ref, answer) in enumerate(answers.items()):
        registry |= {f"REF_{n}": ref, f"ANSWER_{n}": answer}
    program = f"""
        source "{SCRIPTS_DIR}/lib.sh"
        docker() {{
          case "$1 $2" in
            "version --format") echo amd64 ;;
            "info --format") echo /var/lib/docker ;;
            "manifest inspect")
              [[ $3 == --insecure && $4 == -- ]] || return 98
              for n in 0 1; do
                ref=REF_$n answer=ANSWER_$n
                [[ $5 != "${{!ref:-}}" ]] || {{ printf '%s\\n' "${{!answer}}"; return 0; }}
              done
              return 1 ;;
            *) return 99 ;;
          esac
        }}
        timeout() {{ [[ $1 == --kill-after ]] && shift 3 && "$@"; }}
        df() {{
          [[ -n $FREE_KB ]] || {{ echo "df: /var/lib/docker: Permission denied" >&2; return 1; }}
          printf 'Filesystem 1024-blocks Used Available Capacity Mounted on\\nroot 9 9 %s 99%% /\\n' "$FREE_KB"
        }}
        ensure_room_for "$1"
    """
    return subprocess.run(
        ["bash", "-c", program, "room", IMAGE], capture_output=True, text=True, timeout=30,
        env={"PATH": "/usr/bin:/bin", "FREE_KB": "" if free_kb is None else str(free_kb), **registry},
    )  # fmt: skip


def test_a_pull_goes_ahead_when_three_times_the_download_is_free() -> None:
    assert ensure_room(free_kb=3 * 40 * 1024, download_bytes=40 * 1024 * 1024).returncode == 0
    assert ensure_room(free_kb=3 * 40 * 1024, download_bytes=40 * 1024 * 1024, listed=True).returncode == 0


@pytest.mark.parametrize("listed", [False, True], ids=["one manifest", "a list of them"])
def test_a_pull_stops_in_one_line_saying_the_disk_is_full_and_what_the_image_needs(listed: bool) -> None:
    refused = ensure_room(free_kb=80 * 1024, download_bytes=40 * 1024 * 1024, listed=listed)

    assert refused.returncode == 1
    assert refused.stderr == (
        f"the server's disk is too full to pull {IMAGE}: 80.0 MiB free under /var/lib/docker, and pulling it takes "
        "about 120.0 MiB (3 x its 40.0 MiB download): free space on the server (docker system df shows what Docker "
        "holds) and deploy again\n"
    )


def test_a_registry_that_does_not_give_the_size_leaves_the_pull_to_say_what_it_does() -> None:
    assert ensure_room(free_kb=1, download_bytes=None).returncode == 0


def test_a_data_root_whose_free_space_cannot_be_read_leaves_the_pull_to_docker() -> None:
    assert ensure_room(free_kb=None, download_bytes=40 * 1024 * 1024).returncode == 0
