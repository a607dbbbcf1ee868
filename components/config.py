"""The stack config, as pydantic models: the documentation of every key, and its validation.

A stack file holds these under the project's namespace (`quayside:service`, `quayside:roles`, ...).
Secrets are separate config keys set with `pulumi config set --secret`: `ssh_private_key`,
`registry_password`, and one key per name a role lists in `env.secret` (e.g. `DATABASE_URL`).

Every error is one line that names the key and what is allowed, raised before any resource exists.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails

from components import defaults

NAME_PATTERN = r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$"
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
DURATION_PATTERN = r"^[1-9][0-9]*(ms|s|m)$"
HOSTNAME_PATTERN = r"^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
PATH_PATTERN = r"^/\S*$"
VOLUME_PATTERN = r"^[^:\s]+:/[^:\s]*(:(ro|rw))?$"
MEMORY_PATTERN = r"^[1-9][0-9]*[kmg]$"
CIDR_PATTERN = r"^[0-9a-fA-F.:]+/[0-9]{1,3}$"
# One platform, as `docker build --platform` takes it: os/arch, and an arm variant.
PLATFORM_PATTERN = r"^linux/(amd64|arm64|arm/v[5-8]|386|ppc64le|s390x|riscv64)$"
# A repository path under the registry host, as Docker names them (acme/web).
REPOSITORY_PATTERN = r"^[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*$"
HETZNER_LOCATIONS = Literal["fsn1", "nbg1", "hel1", "ash", "hil", "sin"]
# Hetzner Cloud's server types (shared Intel and AMD, Arm, dedicated vCPU), as its API lists them: a typo stops
# the preview here instead of failing at Hetzner halfway through an `up`. A new type Hetzner adds goes here.
HETZNER_SERVER_TYPES = Literal[
    "cx22", "cx32", "cx42", "cx52", "cx23", "cx33", "cx43", "cx53",
    "cpx11", "cpx21", "cpx31", "cpx41", "cpx51", "cpx12", "cpx22", "cpx32", "cpx42", "cpx52", "cpx62",
    "cax11", "cax21", "cax31", "cax41",
    "ccx13", "ccx23", "ccx33", "ccx43", "ccx53", "ccx63",
]  # fmt: skip
# An OpenSSH public key line, optionally after the host name ssh-keyscan puts first.
HOST_KEY_PATTERN = r"^(\S+ )?(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/]+={0,3}( .*)?$"

Name = Annotated[str, Field(pattern=NAME_PATTERN, max_length=40)]
Port = Annotated[int, Field(ge=1, le=65535)]
Duration = Annotated[str, Field(pattern=DURATION_PATTERN, description="a duration like 500ms, 30s or 2m")]
EnvName = Annotated[str, Field(pattern=ENV_NAME_PATTERN)]
Hostname = Annotated[str, Field(pattern=HOSTNAME_PATTERN, max_length=253)]


def public_key(line: str) -> str:
    """`<type> <base64>` out of a host key line (ssh-keyscan puts the host name first; a comment may follow)."""
    fields = line.split()
    start = 0 if fields[0].startswith(("ssh-", "ecdsa-")) else 1
    return " ".join(fields[start : start + 2])


def milliseconds(duration: str) -> int:
    """A config duration in milliseconds (500ms → 500, 30s → 30000, 2m → 120000)."""
    match = re.fullmatch(r"(\d+)(ms|s|m)", duration)
    if match is None:
        raise ValueError(f"not a duration: {duration!r}")
    return int(match[1]) * {"ms": 1, "s": 1000, "m": 60_000}[match[2]]


class ConfigError(ValueError):
    """A stack config mistake; str() is the one line to show the user."""


class Model(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class ImageSpec(Model):
    """A ready image (`image: ghcr.io/acme/web:1.4`), or a build (`image: {context: ../web}`)."""

    ref: str | None = Field(
        default=None,
        description="an image reference with a tag or @sha256 digest; a tag is read from its registry at every "
        "preview and up and deployed by the digest it names then (a re-pushed tag is a new version)",
    )
    context: str | None = Field(
        default=None,
        description=(
            "a build context directory, relative to the project directory (Pulumi.yaml's): built by the deploying "
            "machine's Docker engine, pushed to registry.server, and deployed by its digest; unchanged, no change"
        ),
    )
    dockerfile: str | None = Field(default=None, description="the Dockerfile, relative to the context (Dockerfile)")
    target: str | None = Field(default=None, description="the build stage to build")
    args: dict[str, str] = Field(default_factory=dict, description="build arguments")
    platform: str | None = Field(
        default=None,
        pattern=PLATFORM_PATTERN,
        description=f"the platform to build for (default {defaults.BUILD_PLATFORM}, as Kamal's builder)",
    )
    repository: str | None = Field(
        default=None,
        pattern=REPOSITORY_PATTERN,
        max_length=200,
        description="the repository under registry.server to push to (default <service>-<role>)",
    )

    @model_validator(mode="before")
    @classmethod
    def _ref_shorthand(cls, value: Any) -> Any:
        return {"ref": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _ref_or_context(self) -> Self:
        if (self.ref is None) == (self.context is None):
            raise ValueError("give an image reference (image: repo:tag) or a build (image: {context: dir})")
        build_keys = [key for key in ("dockerfile", "target", "args", "platform", "repository") if getattr(self, key)]
        if self.ref is not None and build_keys:
            raise ValueError(f"{', '.join(build_keys)} go with context, not with an image reference")
        if self.ref is not None:
            _check_image_ref(self.ref)
        return self


def _check_image_ref(ref: str) -> None:
    name, _, digest = ref.partition("@")
    last = name.rsplit("/", 1)[-1]  # a registry's host:port comes before the last slash
    repo, _, tag = last.partition(":")
    if not repo or re.search(r"\s", ref) or (digest and not re.fullmatch(r"sha256:[0-9a-f]{64}", digest)):
        raise ValueError(f"{ref!r} is not an image reference like registry/repo:tag or repo@sha256:<64 hex>")
    if not tag and not digest:
        raise ValueError(f"{ref!r} has no tag or digest: pin one (repo:1.4 or repo@sha256:...)")
    if tag and not re.fullmatch(r"[\w][\w.-]{0,127}", tag):
        raise ValueError(f"{ref!r} has a malformed tag {tag!r}")


class Health(Model):
    path: str = Field(default=defaults.HEALTH_PATH, pattern=PATH_PATTERN, description="path answering 200 when ready")
    interval: Duration = Field(default=defaults.HEALTH_INTERVAL, description="time between health checks")
    timeout: Duration = Field(default=defaults.HEALTH_TIMEOUT, description="time one health check may take")


class Env(Model):
    clear: dict[EnvName, str] = Field(default_factory=dict, description="plain variables, visible in the plan")
    secret: list[EnvName] = Field(
        default_factory=list, description="names of config secrets passed to the container (never in plain text)"
    )

    @model_validator(mode="after")
    def _no_overlap(self) -> Self:
        both = sorted(set(self.clear) & set(self.secret))
        if both:
            raise ValueError(f"{', '.join(both)} is both clear and secret: keep it in one of them")
        return self


class Role(Model):
    """One app role: a container per version, behind kamal-proxy unless `proxy: false`."""

    image: ImageSpec = Field(description="the image: a reference, or a build context")
    version: str | None = Field(
        default=None,
        pattern=VERSION_PATTERN,
        description="pin the version name (default: the image's tag and its digest's first 12 hex, v1.4@093c6d79f8b3; "
        "the 12 hex alone for repo@sha256:...)",
    )
    port: Port = Field(default=defaults.APP_PORT, description="the port the app listens on in its container")
    proxy: bool = Field(default=True, description="serve through kamal-proxy; false for workers")
    hosts: list[Hostname] = Field(default_factory=list, description="hostnames the proxy routes to this role")
    path_prefix: str | None = Field(default=None, pattern=PATH_PATTERN, description="route only below this path")
    health: Health | None = Field(default=None, description="the proxy's health check (required with proxy)")
    deploy_timeout: Duration = Field(default=defaults.DEPLOY_TIMEOUT, description="time to become healthy")
    drain_timeout: Duration = Field(default=defaults.DRAIN_TIMEOUT, description="time old requests have to finish")
    readiness_delay: int = Field(
        default=defaults.READINESS_DELAY_SECONDS, ge=0, le=600,
        description="seconds a proxy-less role must keep running to count as ready (no Docker healthcheck)",
    )  # fmt: skip
    stop_timeout: int = Field(
        default=defaults.STOP_TIMEOUT_SECONDS, ge=0, le=3600,
        description="seconds an old container gets after SIGTERM before it is killed (docker stop -t); "
        "it stops after the switch, off the deploy's critical path",
    )  # fmt: skip
    cmd: list[str] | None = Field(default=None, description="the container command, as an argument list")
    env: Env = Field(default_factory=Env, description="the container's environment: clear values and secret names")
    volumes: list[Annotated[str, Field(pattern=VOLUME_PATTERN)]] = Field(
        default_factory=list, description="volume or /host/dir:/container/dir[:ro]"
    )
    memory: str | None = Field(default=None, pattern=MEMORY_PATTERN, description="memory limit, e.g. 512m")
    cpus: float | None = Field(default=None, gt=0, le=256, description="CPU limit, e.g. 0.5")
    retain_containers: int = Field(
        default=defaults.RETAIN_CONTAINERS, ge=1, le=50,
        description="stopped versions kept for rollback, with their images; older versions' images are removed",
    )  # fmt: skip
    migrate: list[str] | None = Field(
        default=None, description="a one-off command of the new image, run before its swap (argument list)"
    )
    depends_on: list[Name] = Field(default_factory=list, description="roles whose deploy (and migration) goes first")

    @field_validator("cmd", "migrate", mode="before")
    @classmethod
    def _command_as_list(cls, value: Any) -> Any:
        # A string is run by the image's shell, as Kamal's `cmd:` is.
        return ["sh", "-c", value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _proxy_needs_routing(self) -> Self:
        if self.proxy and self.health is None:
            raise ValueError("a proxied role needs health: {path: /up} (or set proxy: false)")
        if not self.proxy and (self.hosts or self.path_prefix):
            raise ValueError("hosts and path_prefix need proxy: true")
        if self.proxy and self.health and milliseconds(self.health.interval) > milliseconds(self.deploy_timeout):
            raise ValueError(
                f"health.interval {self.health.interval} is longer than deploy_timeout {self.deploy_timeout}: "
                "the first health check would come too late; shorten the interval or lengthen deploy_timeout"
            )
        return self


class Bootstrap(Model):
    """Each step checks first: run again (when a setting changes), they change only what differs."""

    swap_mb: int = Field(
        default=defaults.SWAP_MB,
        ge=0,
        le=65536,
        description="size of /swapfile in MiB when the server has no swap; 0: none",
    )
    unattended_upgrades: bool = Field(
        default=True, description="install unattended-upgrades: Debian's security updates, daily"
    )


class ExistingServer(Model):
    provider: Literal["existing"] = Field(description="existing: any SSH host, Docker installed when missing")
    host: str = Field(min_length=1, description="address or name the deploy connects to over SSH")
    port: Port = Field(default=defaults.SSH_PORT, description="SSH port")
    user: str = Field(
        default=defaults.SSH_USER,
        pattern=r"^[a-z_][a-z0-9_-]*$",
        description="SSH user (root, or one in the docker group)",
    )
    install_docker: bool = Field(default=True, description="install Debian's docker.io when Docker is missing")
    bootstrap: Bootstrap | None = Field(
        default=None,
        description="prepare the server first, as root with the same key: Docker, a swap file, `user` made a "
        "member of the docker group with root's SSH keys, password SSH off, unattended security upgrades",
    )
    private_key_file: str | None = Field(
        default=None,
        min_length=1,
        description="the SSH private key as a file on the deploying machine (~ expanded), instead of the "
        "ssh_private_key secret; it is kept secret in state",
    )
    host_key: str | None = Field(
        default=None,
        pattern=HOST_KEY_PATTERN,
        description="the server's SSH host key, as `ssh-keyscan -t ed25519 <host>` prints it: deploys ask the "
        "server for a key of this type only, and refuse any other key",
    )
    host_key_file: str | None = Field(
        default=None, min_length=1, description="the host key as a file on the deploying machine, instead of host_key"
    )
    trust_first_use: bool = Field(
        default=False,
        description="instead of a host key: pin the key the server presents at the first deploy (ssh-keyscan)",
    )

    @model_validator(mode="after")
    def _host_key_given_once(self) -> Self:
        given = [key for key in ("host_key", "host_key_file", "trust_first_use") if getattr(self, key)]
        if not given:
            raise ValueError(
                "host_key: required: the server's SSH host key, e.g. the line `ssh-keyscan -t ed25519 "
                f"{self.host}` prints (or host_key_file, or trust_first_use: true to pin the key it presents first)"
            )
        if len(given) > 1:
            raise ValueError(f"{' and '.join(given)}: give the host key one way only")
        return self


class HetznerVolume(Model):
    """Formatted (ext4) by Hetzner when it is made, never again; its mount never hides files already there."""

    size_gb: int = Field(
        ge=defaults.HETZNER_VOLUME_MIN_GB,
        le=defaults.HETZNER_VOLUME_MAX_GB,
        description=f"size in GB ({defaults.HETZNER_VOLUME_MIN_GB} to {defaults.HETZNER_VOLUME_MAX_GB}, as Hetzner "
        "allows); it can grow later (the file system grows with it), never shrink",
    )
    delete_protection: bool = Field(default=True, description="refuse to delete the volume (and the data on it)")


class HetznerServer(Model):
    provider: Literal["hetzner"] = Field(description="hetzner: a Hetzner Cloud server made by pulumi-hcloud")
    type: HETZNER_SERVER_TYPES = Field(default="cx22", description="server type, e.g. cx32")
    location: Literal[HETZNER_LOCATIONS] = Field(default="nbg1", description="the Hetzner Cloud location")
    image: str = Field(default="debian-12", description="operating system image")
    ssh_public_key: str = Field(
        pattern=r"^ssh-(ed25519|rsa) \S+", description="public half of ssh_private_key, installed for root"
    )
    # Replacing the server loses everything on it: Hetzner refuses to delete it unless this is false.
    delete_protection: bool = Field(default=True, description="refuse to delete or rebuild the server")
    ssh_from: list[Annotated[str, Field(pattern=CIDR_PATTERN)]] = Field(
        default_factory=lambda: list(defaults.ANYWHERE),
        min_length=1,
        description="the networks SSH (port 22) is open to, as CIDRs; HTTP, HTTPS and ICMP are open to all",
    )
    user: str = Field(
        default=defaults.DEPLOY_USER,
        pattern=r"^[a-z_][a-z0-9_-]*$",
        description="the user deploys connect as after the bootstrap (root's keys, in the docker group)",
    )
    bootstrap: Bootstrap = Field(
        default_factory=Bootstrap, description="the bootstrap, which runs as root before the first deploy"
    )
    primary_ipv4: bool = Field(
        default=False,
        description="a primary IPv4 of its own, kept when the server goes (and protected as the server is): a "
        "replaced server keeps the address, and DNS stays right",
    )
    volume: HetznerVolume | None = Field(
        default=None,
        description=f"a Hetzner volume mounted at {defaults.REMOTE_ROOT}/<service> (accessory data, logs, the "
        "audit log): it outlives the server, and a replaced server gets it back",
    )

    @field_validator("ssh_from")
    @classmethod
    def _networks_are_networks(cls, networks: list[str]) -> list[str]:
        for network in networks:
            try:
                ipaddress.ip_network(network)
            except ValueError:
                try:
                    # An address inside the network (host bits set): name the network it meant.
                    meant = ipaddress.ip_network(network, strict=False)
                except ValueError:
                    raise ValueError(
                        f"{network!r} is not a network like 203.0.113.0/24 (address/prefix length)"
                    ) from None
                raise ValueError(f"{network!r} has host bits set: the network is {meant}") from None
        return networks


Server = Annotated[ExistingServer | HetznerServer, Field(discriminator="provider")]


class Registry(Model):
    server: str = Field(min_length=1, description="registry host, e.g. ghcr.io (password: config secret)")
    username: str | None = Field(default=None, description="login name; with it, registry_password is required")


class Proxy(Model):
    image: str = Field(default=defaults.PROXY_IMAGE, description="kamal-proxy image repository")
    version: str = Field(default=defaults.PROXY_VERSION, pattern=VERSION_PATTERN, description="kamal-proxy tag")
    ssl: bool = Field(default=False, description="TLS by Let's Encrypt for every role host")
    http_port: Port = Field(default=defaults.HTTP_PORT, description="host port for HTTP")
    https_port: Port = Field(default=defaults.HTTPS_PORT, description="host port for HTTPS")
    bind: str = Field(default="0.0.0.0", description="address the ports are published on")
    state_dir: str = Field(default=defaults.PROXY_STATE_DIR, pattern=r"^/\S+$", description="state path in the image")

    @model_validator(mode="after")
    def _ports_differ(self) -> Self:
        if self.http_port == self.https_port:
            raise ValueError(f"https_port {self.https_port} is also http_port: give HTTP and HTTPS a port each")
        return self

    @property
    def image_ref(self) -> str:
        return f"{self.image}:{self.version}"


class StackConfig(Model):
    service: Name = Field(description="the service name: container, network and proxy route prefix")
    server: Server = Field(description="the server: an existing SSH host, or a Hetzner Cloud server")
    registry: Registry | Literal["none"] | None = Field(
        default=None,
        description="the registry roles' images are pulled from; `none`: no registry, each role's image is an "
        "image of the deploying machine's Docker engine (image: myapp:dev), sent to the server over SSH, only the "
        "layers it lacks, and versioned by its image ID",
    )
    proxy: Proxy = Field(default_factory=Proxy, description="kamal-proxy, shared by every role on the server")
    roles: dict[Name, Role] = Field(min_length=1, description="app roles by name")
    accessories: Accessories | None = Field(
        default=None, description="Postgres, its backups and Vector, beside the roles; their data is kept"
    )

    @field_validator("registry", mode="before")
    @classmethod
    def _registry_none_or_object(cls, value: Any) -> Any:
        if isinstance(value, str) and value != "none":
            raise ValueError(f"must be `none` or a registry like {{server: ghcr.io, username: acme}} (got {value!r})")
        return value

    @model_validator(mode="after")
    def _roles_fit_together(self) -> Self:
        routes: dict[tuple[str, str], str] = {}
        for name, role in self.roles.items():
            for other in role.depends_on:
                if other not in self.roles or other == name:
                    raise ValueError(f"roles.{name}.depends_on: {other!r} is not another role ({self._role_names()})")
            for host in (role.hosts or [""]) if role.proxy else []:
                route = (host, role.path_prefix or "/")
                if route in routes:
                    where = f"host {host or '(any)'} path {route[1]}"
                    raise ValueError(f"roles.{name}.hosts: {where} is already served by role {routes[route]}")
                routes[route] = name
            if self.proxy.ssl and role.proxy and not role.hosts:
                raise ValueError(f"roles.{name}.hosts: proxy.ssl needs at least one hostname per proxied role")
            if self.sends_images and role.image.context is not None:
                raise ValueError(
                    f"roles.{name}.image: registry: none sends an image of the local Docker engine: give its "
                    "reference (image: myapp:dev), or a registry to build for"
                )
            if role.image.context is not None and self.registry is None:
                raise ValueError(f"roles.{name}.image.context: a build needs registry: {{server: ...}} to push to")
        self._check_no_cycle()
        return self

    @property
    def sends_images(self) -> bool:
        """`registry: none`: roles' images go from the deploying machine's engine to the server over SSH."""
        return self.registry == "none"

    @property
    def pull_registry(self) -> Registry | None:
        """The registry the server pulls from and logs in to, if any."""
        return self.registry if isinstance(self.registry, Registry) else None

    def _role_names(self) -> str:
        return "roles: " + ", ".join(self.roles)

    def _check_no_cycle(self) -> None:
        visiting: set[str] = set()
        done: set[str] = set()

        def visit(name: str, path: list[str]) -> None:
            if name in done:
                return
            if name in visiting:
                raise ValueError(f"roles.{name}.depends_on: a cycle {' -> '.join([*path, name])}")
            visiting.add(name)
            for other in self.roles[name].depends_on:
                visit(other, [*path, name])
            done.add(name)

        for name in self.roles:
            visit(name, [])

    def secret_names(self) -> set[str]:
        """Config secrets this stack needs (role env, accessories, SSH, registry): they must be set before `up`."""
        needed = {name for role in self.roles.values() for name in role.env.secret}
        if self.accessories is not None:
            needed |= self.accessories.secret_names()
            if self.accessories.postgres is not None:
                needed.discard(DATABASE_URL)  # the Postgres accessory provides it
        if getattr(self.server, "private_key_file", None) is None:
            needed.add("ssh_private_key")
        if self.pull_registry is not None and self.pull_registry.username is not None:
            needed.add("registry_password")
        return needed


TOP_LEVEL_KEYS = tuple(StackConfig.model_fields)

# What each pattern allows, in words, for error messages.
PATTERN_HELP: dict[str, str] = {
    NAME_PATTERN: "lowercase letters and digits, words joined by single dashes, starting with a letter (web, api-v2)",
    ENV_NAME_PATTERN: "letters, digits and underscores, not starting with a digit (DATABASE_URL)",
    DURATION_PATTERN: "a duration like 500ms, 30s or 2m",
    HOSTNAME_PATTERN: "a lowercase hostname like app.example.com (or *.example.com)",
    VERSION_PATTERN: "letters, digits, dot, dash and underscore, up to 64 (v1.4.2)",
    PATH_PATTERN: "a path starting with / (/up)",
    VOLUME_PATTERN: "name:/path or /host/dir:/path, optionally :ro (data:/var/lib/app)",
    MEMORY_PATTERN: "a size with its unit k, m or g (512m)",
    HOST_KEY_PATTERN: "an SSH public key line like `ssh-ed25519 AAAA...` (what ssh-keyscan prints)",
    CIDR_PATTERN: "a network in CIDR form like 203.0.113.0/24 or 2001:db8::/32",
    PLATFORM_PATTERN: "one Linux platform like linux/amd64 or linux/arm64",
    REPOSITORY_PATTERN: "a lowercase repository path like acme/web",
}


NAMESPACE = "quayside"
# A role listing this secret gets the Postgres accessory's URL when there is one.
DATABASE_URL = "DATABASE_URL"


def load(values: Mapping[str, str]) -> StackConfig:
    """The stack config from Pulumi's raw config (`{"quayside:roles": "<json>", ...}`), validated."""
    mine = {key.split(":", 1)[1]: value for key, value in values.items() if key.startswith(f"{NAMESPACE}:")}
    raw = {key: _decode(value) for key, value in mine.items() if key in TOP_LEVEL_KEYS}
    config = parse(raw, secrets_set={key for key in mine if key not in TOP_LEVEL_KEYS})
    unknown = sorted(set(mine) - set(TOP_LEVEL_KEYS) - config.secret_names())
    if unknown:
        allowed = ", ".join([*TOP_LEVEL_KEYS, *sorted(config.secret_names())])
        raise ConfigError(f"quayside config: {unknown[0]}: unknown key; allowed: {allowed}")
    return config


def _decode(value: str) -> Any:
    # Structured values arrive as JSON; a plain string (service: acme) does not.
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def parse(raw: Mapping[str, Any], *, secrets_set: set[str]) -> StackConfig:
    """Validates the stack's config values; `secrets_set` names the keys present as secrets."""
    try:
        config = StackConfig.model_validate(dict(raw))
    except ValidationError as error:
        raise ConfigError(_one_line(error.errors()[0])) from None
    missing = sorted(config.secret_names() - secrets_set)
    if missing:
        raise ConfigError(f"quayside config: {missing[0]} is not set: pulumi config set --secret {missing[0]} <value>")
    return config


SERVER_PROVIDERS: dict[str, type[BaseModel]] = {"existing": ExistingServer, "hetzner": HetznerServer}


def _one_line(error: ErrorDetails) -> str:
    full_loc = [str(part) for part in error["loc"]]
    # pydantic names the server's provider in the location (server.hetzner.type); the key a user wrote has none.
    # So does it name which of registry's forms (an object, or the word none) it tried.
    loc = [part for index, part in enumerate(full_loc) if not (index == 1 and full_loc[0] in ("server", "registry"))]
    key = ".".join(loc)
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        allowed = _allowed_keys(full_loc[:-1])
        return f"quayside config: {key}: unknown key; allowed: {', '.join(allowed)}"
    if error["type"] == "missing":
        return f"quayside config: {key}: required"
    if error["type"] == "union_tag_invalid" or error["type"] == "union_tag_not_found":
        return f"quayside config: {key}.provider: must be one of existing, hetzner"
    if error["type"] == "string_pattern_mismatch":
        pattern = str((error.get("ctx") or {}).get("pattern", ""))
        message = "must be " + PATTERN_HELP.get(pattern, f"text matching {pattern}")
        if loc and loc[-1] == "[key]":
            key = ".".join(loc[:-1]) + f" (name {loc[-2]!r})"
    got = error.get("input")
    plain = not isinstance(got, dict | list) and got is not None and not error["type"].startswith("value_error")
    shown = f" (got {got!r})" if plain else ""
    # Messages raised by our validators already name their own key when it is not the location's.
    return f"quayside config: {key + ': ' if key else ''}{message}{shown}"


def _allowed_keys(loc: list[str]) -> list[str]:
    model: type[BaseModel] = StackConfig
    fields = model.model_fields
    index = 0
    while index < len(loc):
        part = loc[index]
        annotation = fields[part].annotation if part in fields else None
        if part == "roles" and index + 1 < len(loc):
            model, index = Role, index + 2
        elif part == "server" and index + 1 < len(loc):
            model, index = SERVER_PROVIDERS[loc[index + 1]], index + 2
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model, index = annotation, index + 1
        else:
            inner = _model_in(annotation)
            if inner is None:
                break
            model, index = inner, index + 1
        fields = model.model_fields
    return list(fields)


def _model_in(annotation: Any) -> type[BaseModel] | None:
    for arg in getattr(annotation, "__args__", ()):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


# The accessories' models build on the ones above; the stack config names them last.
from components.accessories.models import Accessories  # noqa: E402

StackConfig.model_rebuild()
