"""Sends an image of the deploying machine's Docker engine to a server over SSH (`registry: none`): only the layers
the server lacks. Run by the role's transfer step (components/image_transfer.py) on the deploying machine; the
standard library and components/ssh.py only, so any python3 runs it.

    python3 components/send_image.py --host H --port P --user U --host-key 'ssh-ed25519 AAAA...' \\
        --image myapp:dev --image-id sha256:<64 hex> --tag myapp:<12 hex> --remote-command '<image-receive.sh ...>'
    stdin: the SSH private key

One SSH session runs image-receive.sh on the server. It answers `present` when the server has the image already
(and tags it), else `layers`, the layer diff IDs of each image it has (one image a line) and `send`. This side then
`docker save`s the image, leaves out the layers whose whole chain the server has (docker load skips a layer whose
chain it has and never opens its file), names it by --tag, and streams it gzip-compressed into the session, where
`docker load` reads it; a line before it says what the layers sent take unpacked, for the server to check its disk
has room (it answers `full` when not). The last line counts what went over the wire:

    send-image: sent 24301 bytes: 1 of 5 layers of myapp:dev (4f7f0929f5df, 7087184 image bytes) as myapp:4f7f0929f5df

The key goes into a 0600 file in a 0700 directory that is removed at the end; the host key is pinned in a known_hosts
file there (StrictHostKeyChecking=yes), as every quayside connection pins it (components/ssh.py).
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import io
import json
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, Any, Final

if not __package__:  # run as `python3 components/send_image.py`: the project's directory on the path, for components
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from components import ssh
from components.image_ref import short_digest

PROGRAM: Final = "send-image"
# Fast compression: the link is the bottleneck on a deploy, the deploying machine's CPU rarely is.
GZIP_LEVEL: Final = 1
CHUNK_BYTES: Final = 1 << 20
DOCKER_SECONDS: Final = 1800
# A session that streams an image for minutes: a link that died is noticed within a minute.
KEEP_ALIVE: Final = ("-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4")


class SendError(RuntimeError):
    """A transfer failed; str() is the one line to show."""


def say(message: str) -> None:
    print(f"{PROGRAM}: {message}", flush=True)


def layers_to_send(diff_ids: Sequence[str], server_images: Iterable[Sequence[str]]) -> int:
    """How many of the image's first layers the server has as a whole chain: the longest prefix of `diff_ids` that
    some image of the server starts with. Those layers stay home; the rest travel."""
    have = 0
    for layers in server_images:
        common = 0
        for mine, theirs in zip(diff_ids, layers, strict=False):
            if mine != theirs:
                break
            common += 1
        have = max(have, common)
    return have


def saved_manifest(archive: tarfile.TarFile) -> list[dict[str, Any]]:
    """The manifest.json of a `docker save` archive of one image."""
    manifest_file = archive.extractfile("manifest.json")
    if manifest_file is None:
        raise SendError("docker save wrote no manifest.json")
    manifest: list[dict[str, Any]] = json.load(manifest_file)
    if len(manifest) != 1:
        raise SendError(f"docker save wrote {len(manifest)} images, expected one")
    return manifest


def unpacked_bytes(saved: IO[bytes], *, have: int) -> int:
    """What the layers after the first `have` take unpacked: their files' sizes in a `docker save` archive."""
    saved.seek(0)
    with tarfile.open(fileobj=saved, mode="r:") as archive:
        layers: list[str] = saved_manifest(archive)[0]["Layers"]
        return sum(archive.getmember(path).size for path in set(layers[have:]))


def strip_archive(saved: IO[bytes], out: IO[bytes], *, have: int, tag: str) -> tuple[int, int]:
    """Copies a `docker save` archive from `saved` (seekable) to `out`, without the files of its first `have` layers
    (unless a later layer needs the same file), with `tag` as its only name. Returns (layers sent, layers)."""
    saved.seek(0)
    with tarfile.open(fileobj=saved, mode="r:") as archive:
        manifest = saved_manifest(archive)
        layers: list[str] = manifest[0]["Layers"]
        needed = set(layers[have:])
        left_out = {path for path in layers[:have] if path not in needed}
        manifest[0]["RepoTags"] = [tag]
        renamed = json.dumps(manifest).encode()
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as sent:
            for member in archive:
                if member.name in left_out or member.name == "repositories":  # the legacy name file: not read
                    continue
                if member.name == "manifest.json":
                    member.size = len(renamed)
                    sent.addfile(member, io.BytesIO(renamed))
                else:
                    sent.addfile(member, archive.extractfile(member) if member.isfile() else None)
    return len(layers) - have, len(layers)


class CountingWriter(io.RawIOBase):
    """Writes through to `target` and counts the bytes."""

    def __init__(self, target: IO[bytes]) -> None:
        self.target = target
        self.count = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self.target.write(view)
        self.count += len(view)
        return len(view)


def docker(*args: str) -> str:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=DOCKER_SECONDS, check=False)
    if done.returncode != 0:
        raise SendError(f"docker {args[0]} {args[-1]} failed: {done.stderr.strip() or done.returncode}")
    return done.stdout.strip()


def image_facts(image_id: str) -> tuple[list[str], int]:
    """(layer diff IDs, size in bytes) of a local image."""
    (facts,) = json.loads(docker("image", "inspect", image_id))
    return list(facts["RootFS"].get("Layers") or []), int(facts["Size"])


def read_answer(stdout: IO[bytes]) -> tuple[bool, list[list[str]]]:
    """The server's first answer: (present, the layer chains of its images)."""
    first = stdout.readline().decode().strip()
    if first == "present":
        return True, []
    if first != "layers":
        raise SendError(f"the server answered {first!r} instead of its layers (see its message above)")
    images: list[list[str]] = []
    for raw in iter(stdout.readline, b""):
        line = raw.decode().strip()
        if line == "send":
            return False, images
        images.append(line.split())
    raise SendError("the server closed the session before asking for the image (see its message above)")


class PartialSendFailed(SendError):
    """The server could not load an image sent without some layers: sending them all may work."""


def transfer(session_argv: list[str], image: str, image_id: str, tag: str, scratch: Path, *, trust_server: bool) -> int:
    """One session; returns the bytes sent. With `trust_server` False, every layer travels."""
    session = subprocess.Popen(session_argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert session.stdin is not None and session.stdout is not None
    have, counter, rest = 0, CountingWriter(session.stdin), ""
    try:
        present, server_images = read_answer(session.stdout)
        if present:
            session.stdin.close()
            say(f"the server has {image} ({short_digest(image_id)}) already, now tagged {tag}; sent 0 bytes")
            return 0
        diff_ids, size = image_facts(image_id)
        have = layers_to_send(diff_ids, server_images) if trust_server else 0
        saved = scratch / "image.tar"
        with saved.open("wb") as file:
            done = subprocess.run(["docker", "save", image_id], stdout=file, stderr=subprocess.PIPE, check=False)
        if done.returncode != 0:
            raise SendError(f"docker save {image} failed: {done.stderr.decode().strip()}")
        with saved.open("rb") as file:
            counter.write(f"bytes {unpacked_bytes(file, have=have)}\n".encode())  # for the server's room check
            with gzip.GzipFile(fileobj=counter, mode="wb", compresslevel=GZIP_LEVEL) as packed:
                sent_layers, all_layers = strip_archive(file, packed, have=have, tag=tag)  # type: ignore[arg-type]
        saved.unlink()
        session.stdin.close()
        rest = session.stdout.read().decode()
    except BrokenPipeError:
        rest = session.stdout.read().decode()
    finally:
        with contextlib.suppress(BrokenPipeError):  # else a failure here leaves the server's docker load waiting
            session.stdin.close()
        code = session.wait()
    if "full" in rest.split():
        raise SendError(f"the server has no room for {image} (see its message above)")
    if code != 0 or "loaded" not in rest.split():
        failure = PartialSendFailed if have else SendError
        raise failure(f"the server could not load {image} (exit status {code}; see its message above)")
    say(f"sent {counter.count} bytes: {sent_layers} of {all_layers} layers of {image} ({short_digest(image_id)}, "
        f"{size} image bytes) as {tag}")  # fmt: skip
    return counter.count


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROGRAM, description=__doc__.splitlines()[0])
    for name in ("--host", "--user", "--host-key", "--image", "--image-id", "--tag", "--remote-command"):
        parser.add_argument(name, required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    if sys.stdin.isatty():
        print(f"{PROGRAM}: the SSH private key is read from stdin: pipe it in", file=sys.stderr)
        return 2
    if shutil.which("docker") is None or shutil.which("ssh") is None:
        print(f"{PROGRAM}: needs docker and ssh on this machine (registry: none sends local images)", file=sys.stderr)
        return 1
    endpoint = ssh.Endpoint(args.host, args.port, args.user, args.host_key)
    with ssh.key_files(endpoint, sys.stdin.read(), prefix="quayside-send-image-") as files:
        session = ssh.argv(
            args.host, args.port, args.user, files.key, files.known_hosts, args.remote_command, options=KEEP_ALIVE
        )
        try:
            try:
                transfer(session, args.image, args.image_id, args.tag, files.directory, trust_server=True)
            except PartialSendFailed as error:
                # A layer the server listed may have gone since (another service pruned it): send them all once.
                say(f"{error}; sending every layer")
                transfer(session, args.image, args.image_id, args.tag, files.directory, trust_server=False)
        except SendError as error:
            print(f"{PROGRAM}: {error}", file=sys.stderr)
            return 1
        except ssh.Terminated as terminated:
            print(f"{PROGRAM}: {terminated}", file=sys.stderr)
            return terminated.status
    return 0


if __name__ == "__main__":
    sys.exit(main())
