"""The swap step's command line: a role's version name, swap.sh's arguments and the step's timeout.

Plain functions of the config, without Pulumi: the AppRole component builds its swap command from them, and
`quayside rollback` builds the very same line for its fast switch without importing the SDK (it answers sooner).
"""

from __future__ import annotations

import hashlib
import json
from typing import Final

from components import config, defaults, steps
from components import remote as commands
from components.image_ref import Reference, short_digest

PULL_SECONDS: Final = 300


def version_of(role: config.Role, image_ref: str) -> str:
    """The role's version name: `version:` when pinned; else `<tag>@<digest's first 12 hex>` for an image pinned by
    digest (the 12 hex alone when it has no tag), or the tag of an unpinned one."""
    if role.version is not None:
        return role.version
    parts = Reference.parse(image_ref)
    tag = parts.tag or ""
    if parts.digest:
        return f"{tag}@{short_digest(parts.digest)}" if tag else short_digest(parts.digest)
    return tag


def swap_args(
    service: str,
    name: str,
    role: config.Role,
    image_ref: str,
    version: str,
    *,
    proxy: config.Proxy | None = None,
    proxy_name: str = defaults.PROXY_CONTAINER,
    retained_only: bool = False,
    certificate_id: str | None = None,
    heal: int = 0,
) -> list[str]:
    """swap.sh's arguments: the role's container options, and a hash of them that names its config. `certificate_id`
    names the certificate of the role's own that the proxy serves (ssl_certificate): outside the hash, so a renewed
    one is served by the container that runs. So is the role's canary, which a rollback's fast switch ends: a promoted
    canary serves on in the container it runs in; what a swap does when memory is short (memory_short); and `heal`,
    the count of drifts healed (components/drift.py), sent once there was one."""
    proxy = proxy or config.Proxy()
    options = container_options(role, proxy=proxy, proxy_name=proxy_name)
    if role.ssl_certificate is not None:
        options["tls_certificate_path"] = certificate_path(proxy, service, name)
    canary = role.canary if not retained_only else None
    return steps.SWAP.argv(
        service=service, role=name, image=image_ref, version=version,
        config_hash=config_hash(steps.SWAP.words(options)), **options, retained_only=retained_only,
        tls_certificate_id=certificate_id,
        canary_percent=canary.percent if canary else None, canary_allow=canary.allow if canary else [],
        memory_short="stop-first" if role.memory_short == "stop_first" and not retained_only else None,
        heal=heal or None, lock_wait=lock_wait(role),
    )  # fmt: skip


def certificate_path(proxy: config.Proxy, service: str, role: str) -> str:
    """Where the proxy keeps a role's own certificate (ssl_certificate): on its state volume, so a proxy reboot keeps
    it. One file holds the chain and the key; kamal-proxy reads each from it."""
    return f"{proxy.state_dir}/tls/{service}_{role}.pem"


def container_options(role: config.Role, *, proxy: config.Proxy, proxy_name: str) -> dict[str, object]:
    """What the role's container runs with, by swap.sh's option keys (all of them but the naming ones)."""
    health = role.health or config.Health()
    tls = proxy.ssl and role.proxy
    proxied = {"health_path": health.path, "health_interval": health.interval, "health_timeout": health.timeout}
    return {
        "port": role.port,
        "proxy": role.proxy,
        "tls": tls,
        # Sent only when off, so the words (and the config hash) of a role with the redirect stay as they were.
        "no_tls_redirect": tls and not proxy.ssl_redirect,
        "host": role.hosts,
        "path_prefix": [role.path_prefix] if role.path_prefix else [],
        **(proxied if role.proxy else {}),
        "deploy_timeout": role.deploy_timeout,
        "drain_timeout": role.drain_timeout,
        "readiness_delay": role.readiness_delay,
        "retain": role.retain_containers,
        "stop_timeout": role.stop_timeout,
        "env": [f"{key}={value}" for key, value in sorted(role.env.clear.items())],
        "volume": role.volumes,
        "memory": role.memory,
        "cpus": role.cpus,
        "proxy_name": proxy_name,
        "cmd": role.cmd or [],
    }


def config_hash(options: list[str]) -> str:
    """Names the container's public options; the script mixes in the secret env file's own hash."""
    return hashlib.sha256(json.dumps(options).encode()).hexdigest()[:16]


def role_work(role: config.Role) -> int:
    """The longest a swap of the role holds its lock: a pull, the deploy, the drain, the readiness delay, and the
    stop of what it replaced (swap.sh stops those all at once, in the background, still holding the lock)."""
    waits = (
        commands.seconds(role.deploy_timeout) + commands.seconds(role.drain_timeout) + role.readiness_delay
        + role.stop_timeout
    )  # fmt: skip
    return PULL_SECONDS + waits + defaults.STEP_SLACK_SECONDS


def lock_wait(role: config.Role) -> int:
    """How long a step of the role (a swap, a migration, its retire) waits for the role's lock: never shorter than
    a swap of it may hold the lock, and never shorter than the server's usual wait."""
    return max(defaults.LOCK_WAIT_SECONDS, role_work(role))


def swap_timeout(role: config.Role) -> int:
    return lock_wait(role) + role_work(role)
