"""registry: none, without a server: the config, which layers stay home, the archive that travels, and the transfer
step a role gets (Pulumi mocks)."""

from __future__ import annotations

import gzip
import io
import json
import os
import shlex
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pulumi
import pytest

from components import config, image_transfer, stack
from components.send_image import layers_to_send, strip_archive
from quayside_cli.rollback import roll_back
from quayside_cli.stack import Stack
from tests.support.commands import is_secret, option, script_argv

HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHq9u5mVwK0p2Zr7xqQb3cJYtLk8dWn1sFv6gHe4aRz0"
PRIVATE_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nkey\n"
ROOT = Path(__file__).resolve().parents[2]
IMAGE_ID = "sha256:" + "4f7f0929f5df" + "0" * 52


def registryless(**role: Any) -> config.StackConfig:
    return config.parse(
        {
            "service": "acme",
            "server": {"provider": "existing", "host": "203.0.113.7", "port": 2200, "host_key": HOST_KEY},
            "registry": "none",
            "roles": {"web": {"image": "myapp:dev", "hosts": ["acme.com"], "health": {"path": "/up"}, **role}},
        },
        secrets_set={"ssh_private_key"},
    )


def test_registry_none_is_a_word_and_anything_else_but_an_object_is_one_line() -> None:
    assert registryless().sends_images and registryless().pull_registry is None
    with pytest.raises(config.ConfigError) as error:
        config.parse({**_raw(), "registry": "nope"}, secrets_set={"ssh_private_key"})
    assert str(error.value) == (
        "quayside config: registry: must be `none` or a registry like {server: ghcr.io, username: acme} (got 'nope')"
    )
    with pytest.raises(config.ConfigError) as error:
        config.parse({**_raw(), "registry": {"server": ""}}, secrets_set={"ssh_private_key"})
    assert str(error.value).startswith("quayside config: registry.server: ")


def test_registry_none_refuses_a_build_naming_the_role() -> None:
    with pytest.raises(config.ConfigError) as error:
        registryless(image={"context": "."})
    assert str(error.value) == (
        "quayside config: roles.web.image: registry: none sends an image of the local Docker engine: give its "
        "reference (image: myapp:dev), or a registry to build for"
    )


def _raw() -> dict[str, Any]:
    return {
        "service": "acme",
        "server": {"provider": "existing", "host": "203.0.113.7", "host_key": HOST_KEY},
        "roles": {"web": {"image": "myapp:dev", "proxy": False}},
    }


A, B, C, D = (f"sha256:{letter * 64}" for letter in "abcd")


def test_the_layers_that_stay_home_are_the_longest_chain_some_server_image_starts_with() -> None:
    assert layers_to_send([A, B, C], []) == 0
    assert layers_to_send([A, B, C], [[A], [A, B, D]]) == 2
    assert layers_to_send([A, B, C], [[B, C], [D]]) == 0, "a layer counts only with the same layers below it"
    assert layers_to_send([A, B], [[A, B, C]]) == 2


def saved_archive(layer_files: list[str]) -> io.BytesIO:
    """A `docker save` archive as Docker 20.10 writes it: a directory per layer, the config, manifest.json."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:

        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))

        for path in dict.fromkeys(layer_files):
            add(path, f"contents of {path}".encode())
        add("4f7f.json", b"{}")
        add("repositories", b'{"myapp": {"dev": "4f7f"}}')
        manifest = [{"Config": "4f7f.json", "RepoTags": ["myapp:dev"], "Layers": layer_files}]
        add("manifest.json", json.dumps(manifest).encode())
    buffer.seek(0)
    return buffer


def stripped(layer_files: list[str], have: int) -> tuple[dict[str, bytes], tuple[int, int]]:
    out = io.BytesIO()
    counts = strip_archive(saved_archive(layer_files), out, have=have, tag="myapp:4f7f0929f5df")
    out.seek(0)
    with tarfile.open(fileobj=out, mode="r:") as archive:
        files = {member.name: archive.extractfile(member).read() for member in archive}  # type: ignore[union-attr]
    return files, counts


def test_the_archive_leaves_out_the_layers_the_server_has_and_names_the_image_by_its_id() -> None:
    files, counts = stripped(["a/layer.tar", "b/layer.tar", "c/layer.tar"], have=2)

    assert sorted(files) == ["4f7f.json", "c/layer.tar", "manifest.json"]
    assert counts == (1, 3)
    manifest = json.loads(files["manifest.json"])
    assert manifest[0]["RepoTags"] == ["myapp:4f7f0929f5df"]
    assert manifest[0]["Layers"] == ["a/layer.tar", "b/layer.tar", "c/layer.tar"], "docker load skips, by chain"


def test_a_file_a_later_layer_needs_travels_even_when_an_earlier_layer_the_server_has_shares_it() -> None:
    files, counts = stripped(["a/layer.tar", "b/layer.tar", "a/layer.tar"], have=2)

    assert sorted(files) == ["4f7f.json", "a/layer.tar", "manifest.json"]
    assert counts == (1, 3)


def test_the_server_names_the_image_by_its_repository_and_id() -> None:
    assert image_transfer.server_tag("myapp:dev", IMAGE_ID) == "myapp:4f7f0929f5df"
    assert image_transfer.server_tag("127.0.0.1:5000/acme/web:1.4", IMAGE_ID) == "127.0.0.1:5000/acme/web:4f7f0929f5df"
    assert image_transfer.server_tag(f"acme/web@sha256:{'1' * 64}", IMAGE_ID) == "acme/web:4f7f0929f5df"


def fake_docker(tmp_path: Path, script: str) -> str:
    (tmp_path / "docker").write_text(f"#!/bin/sh\n{script}\n")
    (tmp_path / "docker").chmod(0o755)
    return str(tmp_path)


def test_a_local_image_that_is_missing_is_one_line_naming_the_role(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", fake_docker(tmp_path, 'echo "Error: No such image: myapp:dev" >&2; exit 1'))
    with pytest.raises(config.ConfigError) as error:
        image_transfer.local_image_ids(registryless())
    assert str(error.value) == (
        "quayside config: roles.web.image: myapp:dev is not an image of the local Docker engine (Error: No such "
        "image: myapp:dev); registry: none sends local images: build or pull it first"
    )
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    with pytest.raises(config.ConfigError, match=r"^quayside config: roles.web.image: .* no docker command$"):
        image_transfer.local_image_ids(registryless())


def test_the_local_image_id_is_what_docker_says(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", fake_docker(tmp_path, f"echo '\"{IMAGE_ID}\"'"))
    assert image_transfer.local_image_ids(registryless()) == {"web": IMAGE_ID}


def deployed(monkeypatch: pytest.MonkeyPatch, **role: Any) -> stack.Deployment:
    monkeypatch.setattr(image_transfer, "local_image_id", lambda key, ref: IMAGE_ID)
    return stack.deploy(registryless(**role), lambda name: pulumi.Output.secret(PRIVATE_KEY))


@pulumi.runtime.test
def test_a_registryless_role_sends_its_image_over_ssh_once_per_image_id_with_the_key_on_stdin(
    monkeypatch: pytest.MonkeyPatch,
) -> pulumi.Output[None]:
    web = deployed(monkeypatch).roles["web"]
    assert web.transfer is not None
    sent = web.transfer.sent

    def check(values: list[Any]) -> None:
        create, stdin, triggers, secret_stdin = values
        argv = shlex.split(create)
        assert argv[:2] == ["python3", "components/send_image.py"], "relative: the same on every deploying machine"
        assert option(argv, "--host") == ["203.0.113.7"] and option(argv, "--port") == ["2200"]
        assert option(argv, "--host-key") == [HOST_KEY]
        assert option(argv, "--image") == ["myapp:dev"] and option(argv, "--image-id") == [IMAGE_ID]
        assert option(argv, "--tag") == ["myapp:4f7f0929f5df"]
        receive = script_argv(option(argv, "--remote-command")[0], "image-receive.sh")
        assert receive == ["--service", "acme", "--image-id", IMAGE_ID, "--tag", "myapp:4f7f0929f5df"]
        assert "PRIVATE KEY" not in create and stdin == PRIVATE_KEY and secret_stdin
        assert triggers == [IMAGE_ID]

    return pulumi.Output.all(sent.create, sent.stdin, sent.triggers, is_secret(sent.stdin)).apply(check)


@pulumi.runtime.test
def test_a_registryless_role_deploys_the_sent_image_at_the_version_of_its_id(
    monkeypatch: pytest.MonkeyPatch,
) -> pulumi.Output[None]:
    web = deployed(monkeypatch).roles["web"]

    def check(values: list[Any]) -> None:
        create, version = values
        argv = script_argv(create, "swap.sh")
        assert option(argv, "--image") == ["myapp:4f7f0929f5df"] and option(argv, "--version") == ["4f7f0929f5df"]
        assert version == "4f7f0929f5df"

    return pulumi.Output.all(web.deployed.create, web.version).apply(check)


def preview_step(op: str, urn: str, parent: str, inputs: dict[str, Any]) -> dict[str, Any]:
    state = {"urn": urn, "parent": parent, "inputs": inputs}
    return {"op": op, "urn": urn, "oldState": state, "newState": state, "diffReasons": ["create", "triggers"]}


def test_the_plan_says_which_image_goes_to_the_server_over_ssh() -> None:
    component = "urn:pulumi:prod::quayside::quayside:index:AppRole$quayside:index:ImageTransfer::acme-web-image"
    send = component.replace("ImageTransfer::", "ImageTransfer$command:local:Command::") + "-send"
    create = image_transfer.send_command("acme", "myapp:dev", IMAGE_ID, host="203.0.113.7", port=22, user="root",
                                         host_key=HOST_KEY)  # fmt: skip
    preview = {
        "config": {"quayside:service": "acme"},
        "steps": [
            preview_step("same", component, "urn:pulumi:prod::quayside::quayside:index:AppRole::acme-web", {}),
            preview_step("replace", send, component, {"create": create, "triggers": [IMAGE_ID]}),
        ],
    }
    done = subprocess.run(
        [sys.executable, "-m", "quayside_cli.plan"], input=json.dumps(preview), cwd=ROOT, capture_output=True,
        text=True, timeout=60, check=False,
    )  # fmt: skip

    assert done.stdout.splitlines() == [
        "web: image myapp:dev (4f7f0929f5df) goes to the server over SSH, only the layers it lacks"
    ], done.stderr


def test_a_rollback_of_a_registryless_stack_says_why_it_cannot_and_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "Pulumi.prod.yaml").write_text("config:\n  quayside:registry: none\n")

    assert roll_back(Stack("prod", tmp_path, {}), "web", None) == 1
    assert capsys.readouterr().err == (
        "rollback: web: registry: none deploys local images by tag, which the stack's history cannot tell apart; "
        "deploy the earlier image with pulumi up (its local tag in the stack file)\n"
    )


FAKE_DOCKER = """#!/bin/sh
case "$1" in
  image) printf '[{"RootFS": {"Layers": ["%s", "%s"]}, "Size": 4096}]' "$LAYER_A" "$LAYER_B" ;;
  save) cat "$FAKE/saved.tar" ;;
esac
"""
# The server's side, as image-receive.sh answers: it has layer A; the first load fails (A went meanwhile).
FAKE_SSH = """#!/usr/bin/env bash
n=$(find "$FAKE" -name 'session-*' | wc -l); n=$((n + 1))
while (($#)); do
  case $1 in -i) key=$2; shift ;; -o) [[ $2 != UserKnownHostsFile=* ]] || known=${2#*=}; shift ;; esac
  shift
done
stat -c %a "$key" >"$FAKE/key-mode"; cp "$key" "$FAKE/key"; cp "$known" "$FAKE/known_hosts"
echo "$key" >"$FAKE/key-path"
printf 'layers\\n%s\\nsend\\n' "$LAYER_A"
IFS= read -r size && echo "$size" >"$FAKE/size-$n"
cat >"$FAKE/session-$n"
((n > 1)) || { echo "open .../a/layer.tar: no such file or directory" >&2; exit 1; }
echo loaded
"""


# A server whose disk has no room for the image: it says so, and answers `full`.
FAKE_SSH_FULL = """#!/usr/bin/env bash
n=$(find "$FAKE" -name 'session-*' | wc -l); n=$((n + 1))
printf 'layers\\n%s\\nsend\\n' "$LAYER_A"
cat >"$FAKE/session-$n"
echo "the server's disk is too full to load myapp:4f7f0929f5df: ..." >&2
echo full
exit 1
"""


def send_to_fake_server(directory: Path, fake_ssh: str) -> subprocess.CompletedProcess[str]:
    """send_image.py run with `docker` and `ssh` standing in: the image has layers A and B, the server has A."""
    for name, text in (("docker", FAKE_DOCKER), ("ssh", fake_ssh)):
        (directory / name).write_text(text)
        (directory / name).chmod(0o755)
    (directory / "saved.tar").write_bytes(saved_archive(["a/layer.tar", "b/layer.tar"]).getvalue())
    env = {**os.environ, "PATH": f"{directory}{os.pathsep}{os.environ['PATH']}", "FAKE": str(directory),
           "LAYER_A": A, "LAYER_B": B}  # fmt: skip
    argv = [
        "--host", "203.0.113.7", "--port", "2200", "--user", "root", "--host-key", HOST_KEY, "--image", "myapp:dev",
        "--image-id", IMAGE_ID, "--tag", "myapp:4f7f0929f5df", "--remote-command", "image-receive.sh",
    ]  # fmt: skip
    return subprocess.run(
        [sys.executable, str(ROOT / "components" / "send_image.py"), *argv], input=PRIVATE_KEY, env=env,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def sent_files(session: Path) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(session.read_bytes())), mode="r:") as archive:
        return sorted(archive.getnames())


def test_a_partial_send_the_server_cannot_load_is_sent_again_whole_with_the_key_only_in_a_0600_file(
    tmp_path: Path,
) -> None:
    done = send_to_fake_server(tmp_path, FAKE_SSH)

    assert done.returncode == 0, done.stdout + done.stderr
    assert sent_files(tmp_path / "session-1") == ["4f7f.json", "b/layer.tar", "manifest.json"]
    assert sent_files(tmp_path / "session-2") == ["4f7f.json", "a/layer.tar", "b/layer.tar", "manifest.json"]
    # Before each archive, what its layers take unpacked ("contents of b/layer.tar": 23 bytes), for the room check.
    assert [(tmp_path / f"size-{n}").read_text() for n in (1, 2)] == ["bytes 23\n", "bytes 46\n"]
    said = done.stdout.splitlines()
    assert said[0].startswith("send-image: the server could not load myapp:dev (exit status 1")
    assert said[0].endswith("; sending every layer")
    assert said[1].startswith("send-image: sent ") and " 2 of 2 layers of myapp:dev " in said[1]
    assert (tmp_path / "key-mode").read_text().strip() == "600"
    assert (tmp_path / "key").read_text() == PRIVATE_KEY
    assert not Path((tmp_path / "key-path").read_text().strip()).exists(), "the key file is removed at the end"
    assert (tmp_path / "known_hosts").read_text() == f"[203.0.113.7]:2200 {HOST_KEY}\n"
    assert "PRIVATE KEY" not in done.stdout + done.stderr


def test_a_server_without_room_for_the_image_fails_the_send_once_without_sending_every_layer(tmp_path: Path) -> None:
    done = send_to_fake_server(tmp_path, FAKE_SSH_FULL)

    assert done.returncode == 1
    assert "the server's disk is too full to load myapp:4f7f0929f5df" in done.stderr
    assert done.stderr.splitlines()[-1] == "send-image: the server has no room for myapp:dev (see its message above)"
    assert sorted(path.name for path in tmp_path.glob("session-*")) == ["session-1"]
