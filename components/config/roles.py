"""The `roles` section of the stack config: each app role, its image, health check, environment, and the servers
it runs on."""

from __future__ import annotations

import math
import posixpath
import re
from typing import Annotated, Any, Final, Literal, Self

from pydantic import BeforeValidator, Field, field_validator, model_validator

from components import defaults
from components.config.errors import how_to_set_secret
from components.config.types import (
    CREDENTIAL_URL,
    PERCENT_PATTERN,
    CookieValue,
    Duration,
    EnvName,
    Hostname,
    Memory,
    Model,
    Name,
    Percent,
    Platform,
    Port,
    Repository,
    UrlPath,
    Version,
    Volume,
    milliseconds,
    pinned_image,
)


class ImageSpec(Model):
    """A ready image (`image: ghcr.io/acme/web:1.4`), or a build (`image: {context: ../web}`)."""

    # An ImageRef, checked with the whole image: an error names `image`, the key `image: repo:tag` writes.
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
    platform: Platform | None = Field(
        default=None,
        description=f"the platform to build for (default {defaults.BUILD_PLATFORM}, as Kamal's builder)",
    )
    repository: Repository | None = Field(
        default=None,
        description="the repository under registry.server to push to (default <service>-<role>)",
    )

    @model_validator(mode="before")
    @classmethod
    def _ref_shorthand(cls, value: Any) -> Any:
        return {"ref": value} if isinstance(value, str) else value

    @field_validator("dockerfile")
    @classmethod
    def _dockerfile_in_context(cls, value: str | None) -> str | None:
        # BuildKit reads a Dockerfile from anywhere; the context's own one is what the provider hashes for changes.
        if value is not None and (posixpath.isabs(value) or posixpath.normpath(value).split("/")[0] == ".."):
            raise ValueError(
                f"{value} is outside the context: give a path inside it, relative to it (docker/Dockerfile)"
            )
        return value

    @model_validator(mode="after")
    def _ref_or_context(self) -> Self:
        if (self.ref is None) == (self.context is None):
            raise ValueError("give an image reference (image: repo:tag) or a build (image: {context: dir})")
        build_keys = [key for key in ("dockerfile", "target", "args", "platform", "repository") if getattr(self, key)]
        if self.ref is not None and build_keys:
            raise ValueError(f"{', '.join(build_keys)} go with context, not with an image reference")
        if self.ref is not None:
            pinned_image(self.ref)
        return self


class Health(Model):
    path: UrlPath = Field(default=defaults.HEALTH_PATH, description="path answering 200 when ready")
    interval: Duration = Field(default=defaults.HEALTH_INTERVAL, description="time between health checks")
    timeout: Duration = Field(default=defaults.HEALTH_TIMEOUT, description="time one health check may take")


class Env(Model):
    clear: dict[EnvName, str] = Field(default_factory=dict, description="plain variables, visible in the plan")
    secret: list[EnvName] = Field(
        default_factory=list, description="names of config secrets passed to the container (never in plain text)"
    )

    @field_validator("clear")
    @classmethod
    def _no_password_in_plain_text(cls, value: dict[str, str]) -> dict[str, str]:
        # Clear values are in the stack file, the plan and the state in plain text.
        named = next((name for name, text in value.items() if re.search(CREDENTIAL_URL, text)), None)
        if named is not None:
            raise ValueError(
                f"{named} holds a password in a URL (user:password@): list {named} in env.secret instead, and set "
                f"it with {how_to_set_secret(named)}"
            )
        return value

    @model_validator(mode="after")
    def _no_overlap(self) -> Self:
        both = sorted(set(self.clear) & set(self.secret))
        if both:
            raise ValueError(f"{', '.join(both)} is both clear and secret: keep it in one of them")
        return self


class SslCertificate(Model):
    """The names of two config secrets, each holding PEM text, as Kamal's `ssl: {certificate_pem, private_key_pem}`."""

    certificate_pem: EnvName = Field(
        description="the config secret holding the certificate, then any intermediates, in PEM"
    )
    private_key_pem: EnvName = Field(description="the config secret holding its private key, in PEM")

    @model_validator(mode="after")
    def _two_secrets(self) -> Self:
        if self.certificate_pem == self.private_key_pem:
            raise ValueError(
                f"certificate_pem and private_key_pem both name {self.certificate_pem}: give each its own secret"
            )
        return self


class Canary(Model):
    """A new version goes live beside the one serving, for a share of users only. kamal-proxy sends a request to it
    when its `kamal-rollout` cookie's value hashes into `percent` or is listed in `allow`; a request without the
    cookie gets the version serving. The app sets the cookie (an account or user id), so a user stays on one side."""

    percent: int = Field(
        default=0, ge=0, le=100, description="the share of kamal-rollout cookie values sent to the new version"
    )
    allow: list[CookieValue] = Field(
        default_factory=list, description="kamal-rollout cookie values always sent to the new version (staff-1)"
    )

    def said(self) -> str:
        """Who the canary serves, in words: 10% of kamal-rollout cookie values and staff-1."""
        share = f"{self.percent}% of kamal-rollout cookie values" if self.percent else ""
        return " and ".join(part for part in (share, ", ".join(self.allow)) if part)

    @model_validator(mode="after")
    def _sends_someone(self) -> Self:
        if self.percent == 0 and not self.allow:
            raise ValueError("a canary with percent 0 and no allow sends no one to it: give a percent or allow")
        return self


BOOT_LIMIT_MAX: Final = 1000


def count_or_percentage(value: Any) -> Any:
    """A boot limit as it is written: a count (1) or a percentage (50%); else the one error that says both."""
    count = isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= BOOT_LIMIT_MAX
    if not count and not (isinstance(value, str) and re.fullmatch(PERCENT_PATTERN, value)):
        raise ValueError(f"must be a count like 1 or a percentage like 50% (got {value!r})")
    return value


BootLimit = Annotated[Annotated[int, Field(ge=1, le=BOOT_LIMIT_MAX)] | Percent, BeforeValidator(count_or_percentage)]


class Boot(Model):
    """`limit` servers swap at a time, wave after wave; when a swap fails, no further wave starts and the servers
    already switched go back: all or none of them keep the new version."""

    limit: BootLimit = Field(
        description="how many servers swap at the same time: a count (1), or a percentage of the role's servers "
        "(50%, rounded up, at least one)"
    )

    def hosts_at_once(self, n: int) -> int:
        """How many of the role's `n` servers swap at the same time."""
        if isinstance(self.limit, str):
            return max(1, math.ceil(n * int(self.limit.removesuffix("%")) / 100))
        return min(self.limit, n)


class Role(Model):
    """One app role: a container per version, behind kamal-proxy unless `proxy: false`."""

    image: ImageSpec = Field(description="the image: a reference, or a build context")
    version: Version | None = Field(
        default=None,
        description="pin the version name (default: the image's tag and its digest's first 12 hex, v1.4@093c6d79f8b3; "
        "the 12 hex alone for repo@sha256:...)",
    )
    port: Port = Field(default=defaults.APP_PORT, description="the port the app listens on in its container")
    proxy: bool = Field(default=True, description="serve through kamal-proxy; false for workers")
    hosts: list[Hostname] = Field(default_factory=list, description="hostnames the proxy routes to this role")
    path_prefix: UrlPath | None = Field(default=None, description="route only below this path")
    ssl_certificate: SslCertificate | None = Field(
        default=None,
        description="with proxy.ssl: a certificate of your own, served for the role's hosts instead of one from "
        "Let's Encrypt; set its secrets again and run up to renew it",
    )
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
    volumes: list[Volume] = Field(default_factory=list, description="volume or /host/dir:/container/dir[:ro]")
    memory: Memory | None = Field(
        default=None,
        description=(
            "memory limit, e.g. 512m: a new version whose limit is more than the server has available is refused "
            "before it boots"
        ),
    )
    memory_short: Literal["refuse", "stop_first"] = Field(
        default="refuse",
        description="when the server has less memory available than a new version may take: refuse it (the version "
        "serving serves on), or stop_first: stop the version serving before the new one boots, its requests held at "
        "the proxy meanwhile (they fail if the new one does not come up within deploy_timeout)",
    )
    cpus: float | None = Field(default=None, gt=0, le=256, description="CPU limit, e.g. 0.5")
    retain_containers: int = Field(
        default=defaults.RETAIN_CONTAINERS, ge=1, le=50,
        description="stopped versions kept for rollback, with their images; older versions' images are removed",
    )  # fmt: skip
    migrate: list[str] | None = Field(
        default=None, description="a one-off command of the new image, run before its swap (argument list)"
    )
    depends_on: list[Name] = Field(default_factory=list, description="roles whose deploy (and migration) goes first")
    servers: list[Name] | None = Field(
        default=None,
        min_length=1,
        description="the servers it runs on, by their names in `servers` (default: every server but those only "
        "accessories are placed on); its migration runs on the first",
    )
    boot: Boot | None = Field(
        default=None, description="how a new version goes live on its servers; without boot, on all at once"
    )
    canary: Canary | None = Field(
        default=None,
        description="serve a new version to this share only, beside the version serving; remove canary to promote "
        "it, set the image back to abort it",
    )

    def secret_names(self) -> dict[str, str]:
        """The config secrets the role reads, each with the key under the role that names it."""
        named = {secret: "env.secret" for secret in self.env.secret}
        if self.ssl_certificate is not None:
            named[self.ssl_certificate.certificate_pem] = "ssl_certificate.certificate_pem"
            named[self.ssl_certificate.private_key_pem] = "ssl_certificate.private_key_pem"
        return named

    @field_validator("cmd", "migrate", mode="before")
    @classmethod
    def _command_as_list(cls, value: Any) -> Any:
        # A string is run by the image's shell, as Kamal's `cmd:` is.
        return ["sh", "-c", value] if isinstance(value, str) else value

    @field_validator("servers")
    @classmethod
    def _each_server_once(cls, value: list[str] | None) -> list[str] | None:
        repeated = next((name for index, name in enumerate(value or []) if name in (value or [])[:index]), None)
        if repeated is not None:
            raise ValueError(f"{repeated} is listed twice: a role runs once per server")
        return value

    @model_validator(mode="after")
    def _proxy_needs_routing(self) -> Self:
        if self.proxy and self.health is None:
            raise ValueError("a proxied role needs health: {path: /up} (or set proxy: false)")
        if not self.proxy and (self.hosts or self.path_prefix):
            raise ValueError("hosts and path_prefix need proxy: true")
        if not self.proxy and self.canary is not None:
            raise ValueError("canary needs proxy: true: the proxy splits the requests")
        if not self.proxy and self.ssl_certificate is not None:
            raise ValueError("ssl_certificate needs proxy: true: only the proxy serves a certificate")
        if self.proxy and self.health and milliseconds(self.health.interval) > milliseconds(self.deploy_timeout):
            raise ValueError(
                f"health.interval {self.health.interval} is longer than deploy_timeout {self.deploy_timeout}: "
                "the first health check would come too late; shorten the interval or lengthen deploy_timeout"
            )
        return self
