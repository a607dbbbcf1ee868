"""The swap step's command line: a role's version name, swap.sh's arguments and the step's timeout.

Plain functions of the config, without Pulumi: the AppRole component builds its swap command from them, and
`quayside rollback` builds the very same line for its fast switch without importing the SDK (it answers sooner).
"""

from __future__ import annotations

import hashlib
import json
from typing import Final

from components import config, defaults
from components import remote as commands
from components.image_ref import Reference

PULL_SECONDS: Final = 300


def version_of(role: config.Role, image_ref: str) -> str:
    """The role's version name: `version:` when pinned; else `<tag>@<digest's first 12 hex>` for an image pinned by
    digest (the 12 hex alone when it has no tag), or the tag of an unpinned one."""
    if role.version is not None:
        return role.version
    parts = Reference.parse(image_ref)
    tag, digest = parts.tag or "", (parts.digest or "").removeprefix("sha256:")
    if digest:
        return f"{tag}@{digest[:12]}" if tag else digest[:12]
    return tag


def swap_args(
    service: str, name: str, role: config.Role, image_ref: str, version: str, *, tls: bool = False
) -> list[str]:
    health = role.health or config.Health()
    options = [
        "--port", str(role.port),
        *commands.switch("proxy", role.proxy),
        *(["--tls"] if tls and role.proxy else []),
        *commands.flags("host", role.hosts),
        *commands.flag("path-prefix", role.path_prefix),
        *(["--health-path", health.path, "--health-interval", health.interval, "--health-timeout", health.timeout]
          if role.proxy else []),
        "--deploy-timeout", role.deploy_timeout,
        "--drain-timeout", role.drain_timeout,
        "--readiness-delay", str(role.readiness_delay),
        "--retain", str(role.retain_containers),
        "--stop-timeout", str(role.stop_timeout),
        *commands.flags("env", (f"{key}={value}" for key, value in sorted(role.env.clear.items()))),
        *commands.flags("volume", role.volumes),
        *commands.flag("memory", role.memory),
        *commands.flag("cpus", role.cpus),
        "--proxy-name", defaults.PROXY_CONTAINER,
        *commands.flags("cmd", role.cmd or []),
    ]  # fmt: skip
    return [
        "--service", service, "--role", name, "--image", image_ref, "--version", version,
        "--config-hash", config_hash(options), *options,
    ]  # fmt: skip


def config_hash(options: list[str]) -> str:
    """Names the container's public options; the script mixes in the secret env file's own hash."""
    return hashlib.sha256(json.dumps(options).encode()).hexdigest()[:16]


def swap_timeout(role: config.Role) -> int:
    waits = (
        commands.seconds(role.deploy_timeout) + commands.seconds(role.drain_timeout) + role.readiness_delay
        + role.stop_timeout
    )  # fmt: skip
    return defaults.LOCK_TIMEOUT_SECONDS + PULL_SECONDS + waits + defaults.STEP_SLACK_SECONDS
