"""ImageTransfer: a role's image sent from the deploying machine's Docker engine to the server over SSH, for stacks
with `registry: none`. Only the layers the server lacks travel (components/send_image.py and
scripts/image-receive.sh); swap.sh then finds the image present and deploys it as a pulled one.

The image is named on the server by its ID, `<repository>:<first 12 hex of the ID>`, so a rebuilt local tag is a new
image, a new version and a new transfer, and an unchanged one is neither.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import pulumi
from pulumi_command import local, remote

from components import config, steps
from components import remote as commands
from components.image_ref import Reference, short_digest

SEND_SCRIPT: Final = Path(__file__).with_name("send_image.py")
# A large image over a slow link: the server's side ends after this long.
TRANSFER_SECONDS: Final = 3600
INSPECT_SECONDS: Final = 60


def local_image_id(key: str, ref: str) -> str:
    """The ID (`sha256:<64 hex>`) of `ref` in the deploying machine's Docker engine (DOCKER_HOST, if set); a missing
    image or engine is a ConfigError naming the config key."""
    try:
        done = subprocess.run(
            ["docker", "image", "inspect", "--format", "{{json .Id}}", ref],
            capture_output=True, text=True, timeout=INSPECT_SECONDS, check=False,
        )  # fmt: skip
    except FileNotFoundError:
        raise config.ConfigError(
            f"quayside config: {key}: registry: none sends images of the local Docker engine, and this machine has no "
            "docker command"
        ) from None
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["docker image inspect failed"])[-1]
        raise config.ConfigError(
            f"quayside config: {key}: {ref} is not an image of the local Docker engine ({reason}); registry: none "
            "sends local images: build or pull it first"
        )
    image_id: str = json.loads(done.stdout)
    return image_id


def local_image_ids(stack: config.StackConfig) -> dict[str, str]:
    """Each role's local image ID when the stack sends images (registry: none); read before any resource exists."""
    if not stack.sends_images:
        return {}
    ids: dict[str, str] = {}
    for name, role in stack.roles.items():
        assert role.image.ref is not None  # config refuses builds without a registry
        ids[name] = local_image_id(f"roles.{name}.image", role.image.ref)
    return ids


def server_tag(ref: str, image_id: str) -> str:
    """`<repository>:<first 12 hex of the image ID>`: the name the image has on the server."""
    return f"{Reference.parse(ref).name}:{short_digest(image_id)}"


def send_command(service: str, ref: str, image_id: str, *, host: str, port: int, user: str, host_key: str) -> str:
    """The transfer step's command on the deploying machine: send_image.py, its path relative to the program's
    directory (the project's), so the command reads the same on every machine that deploys."""
    tag = server_tag(ref, image_id)
    receive = commands.script(
        service, steps.IMAGE_RECEIVE.name, steps.IMAGE_RECEIVE.argv(service=service, image_id=image_id, tag=tag),
        timeout_seconds=TRANSFER_SECONDS,
    )  # fmt: skip
    return shlex.join([
        "python3", os.path.relpath(SEND_SCRIPT), "--host", host, "--port", str(port), "--user", user,
        "--host-key", host_key, "--image", ref, "--image-id", image_id, "--tag", tag, "--remote-command", receive,
    ])  # fmt: skip


@dataclass
class ImageTransferArgs:
    service: str
    ref: str  # the image in the deploying machine's engine
    image_id: str  # its ID, read when the program started (local_image_ids)
    connection: remote.ConnectionArgs  # the server's: address, user, host key, and the private key (a secret)
    depends_on: list[pulumi.Resource] = field(default_factory=list)  # the server ready, its scripts shipped


class ImageTransfer(pulumi.ComponentResource):
    """`sent` is the step the role's migration and swap depend on; `image_ref` is the image's name on the server."""

    sent: local.Command
    image_ref: str

    def __init__(self, name: str, args: ImageTransferArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("quayside:index:ImageTransfer", name, None, opts)
        self.image_ref = server_tag(args.ref, args.image_id)
        connection = args.connection
        assert connection.private_key is not None  # every quayside connection has a key (server.py)
        create = pulumi.Output.all(connection.host, connection.port, connection.user, connection.host_key).apply(
            lambda values: send_command(
                args.service, args.ref, args.image_id,
                host=str(values[0]), port=int(values[1] or 22), user=str(values[2] or "root"), host_key=str(values[3]),
            )
        )  # fmt: skip
        self.sent = local.Command(
            f"{name}-send",
            create=create,
            # The private key reaches send_image.py on stdin only: it writes it to a 0600 file for ssh.
            stdin=pulumi.Output.secret(connection.private_key),
            # Once per image: another ID replaces the step (create sends it); anything else re-runs create, which
            # finds the image present and sends nothing.
            triggers=[args.image_id],
            add_previous_output_in_env=False,
            opts=pulumi.ResourceOptions(parent=self, depends_on=args.depends_on, additional_secret_outputs=["stdin"]),
        )
        self.register_outputs({"image": self.image_ref, "sent": self.sent.stdout})
