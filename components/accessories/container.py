"""One accessory container as a remote command: accessory.sh boots or reconciles it on create and update, and
stops it on delete (keeping its data unless the config said delete_data). Python only builds the argv."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
from pulumi_command import remote

from components import defaults as core
from components import image_ref, steps
from components import remote as commands
from components.accessories import defaults


@dataclass(frozen=True)
class ContainerSpec:
    """What `<service>-<name>` runs with; every field but the secrets (which go over stdin)."""

    name: str
    image: str
    env: dict[str, str] = field(default_factory=dict)
    data: str | None = None  # the container path of /var/lib/quayside/<service>/<name>/data
    volumes: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)  # container path → content, mounted read-only
    publish: list[str] = field(default_factory=list)
    health_cmd: str | None = None
    health_interval: str = "2s"
    ready_timeout: int = 120
    readiness_delay: int = 5
    stop_timeout: int = 30
    memory: str | None = None
    network: str | None = None  # default: the service network
    cmd: list[str] = field(default_factory=list)
    hold: Hold | None = None  # how a restart goes: the roles' requests held meanwhile (outside the config hash)
    upgrade_seconds: int = 0  # what a move of its data to a new version may add to a boot (Postgres's major)


@dataclass(frozen=True)
class Hold:
    """While the accessory restarts, kamal-proxy holds the requests of these roles' routes, each up to `duration`."""

    roles: list[str]
    duration: str
    proxy_name: str = core.PROXY_CONTAINER


def boot_args(service: str, spec: ContainerSpec, heal: int = 0) -> list[str]:
    options: dict[str, object] = {
        "env": [f"{key}={value}" for key, value in sorted(spec.env.items())],
        "data": spec.data,
        "volume": spec.volumes,
        "file": [f"{path}={_base64(text)}" for path, text in sorted(spec.files.items())],
        "publish": spec.publish,
        "health_cmd": spec.health_cmd,
        "health_interval": spec.health_interval if spec.health_cmd else None,
        "ready_timeout": spec.ready_timeout,
        "readiness_delay": spec.readiness_delay,
        "stop_timeout": spec.stop_timeout,
        "memory": spec.memory,
        "cmd": spec.cmd,
    }
    # The hash names the service's own network by no word at all: a new hash reboots the accessory, and the
    # containers booted before the network was always sent must not reboot for it. Nor does it name the image's
    # digest: accessory.sh compares the content itself by image ID, so pinning a tag to the content that already
    # runs restarts nothing.
    hashed = steps.ACCESSORY.words({"network": spec.network, **options})
    hold = spec.hold
    held = {"hold_for": hold.duration, "hold_role": hold.roles, "proxy_name": hold.proxy_name} if hold else {}
    return steps.ACCESSORY.argv(
        "boot", service=service, name=spec.name, image=spec.image,
        config_hash=config_hash([image_ref.unpinned(spec.image), *hashed]),
        network=spec.network or service, **options, **held, heal=heal or None,
    )  # fmt: skip


def remove_args(service: str, spec: ContainerSpec, *, delete_data: bool) -> list[str]:
    return steps.ACCESSORY.argv(
        "remove", service=service, name=spec.name, stop_timeout=spec.stop_timeout, delete_data=delete_data
    )


def config_hash(options: Sequence[str]) -> str:
    """Names the container's public options; the script adds the secret env file's hash and the image ID."""
    return hashlib.sha256(json.dumps(list(options)).encode()).hexdigest()[:16]


def boot_timeout(spec: ContainerSpec) -> int:
    # A hold drains the held routes first, up to its duration.
    drain = commands.seconds(spec.hold.duration) if spec.hold else 0
    waits = spec.ready_timeout + spec.readiness_delay + spec.stop_timeout + drain + spec.upgrade_seconds
    return core.LOCK_WAIT_SECONDS + defaults.PULL_SECONDS + waits + core.STEP_SLACK_SECONDS


def env_file(values: dict[str, str]) -> str:
    """KEY=VALUE lines for docker --env-file (a value cannot hold a newline there)."""
    for key, value in values.items():
        if "\n" in value:
            raise ValueError(f"the secret for {key} holds a newline; docker env files cannot carry one")
    return "".join(f"{key}={value}\n" for key, value in sorted(values.items()))


def secret_env(values: dict[str, pulumi.Input[str]]) -> pulumi.Output[str]:
    """The env file for stdin; built from secrets, so it stays a secret."""
    return pulumi.Output.secret(pulumi.Output.all(**values).apply(env_file))


def container_command(
    resource_name: str,
    *,
    service: str,
    spec: ContainerSpec,
    connection: remote.ConnectionArgs,
    stdin: pulumi.Input[str],
    delete_data: bool,
    parent: pulumi.Resource,
    depends_on: Sequence[pulumi.Resource],
    heal: pulumi.Input[int] = 0,
) -> remote.Command:
    """create: boot (a no-op when nothing changed); update: the same, reconciling; delete: remove. `heal` counts
    the drifts healed (components/drift.py)."""
    timeout = boot_timeout(spec)
    return remote.Command(
        resource_name,
        connection=connection,
        create=pulumi.Output.from_input(heal).apply(
            lambda count: commands.script(
                service, steps.ACCESSORY.name, boot_args(service, spec, count), timeout_seconds=timeout
            )
        ),
        delete=commands.script(
            service, steps.ACCESSORY.name, remove_args(service, spec, delete_data=delete_data), timeout_seconds=timeout
        ),
        stdin=stdin,
        add_previous_output_in_env=False,
        opts=pulumi.ResourceOptions(
            parent=parent, depends_on=list(depends_on), additional_secret_outputs=commands.SECRET_STREAMS
        ),
    )


def once_ready(ready: remote.Command, heal: pulumi.Input[int]) -> pulumi.Output[int]:
    """The count of heals, resolved once the accessory's step has run: an `up` that fails registers no outputs."""
    return pulumi.Output.all(ready.id, heal).apply(lambda done: int(done[1]))


def _base64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()
