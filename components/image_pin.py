"""Pins each image a server pulls (each role's, kamal-proxy's, each accessory's) from `repo:tag` to the digest the
tag names in its registry at `preview`/`up` time.

A tag moves (`latest` re-pushed, `postgres:16` rebuilt for a minor release); a digest does not. Deploying
`repo:tag@sha256:<digest>` makes the server run exactly the content the plan named, and a re-pushed tag a change the
plan shows: a new version of a role (its swap), a restart of an accessory with its data kept, a reboot of
kamal-proxy. The lookup is the registry's HTTP API (`HEAD /v2/<repo>/manifests/<tag>`, `Docker-Content-Digest`),
from the deploying machine, before any resource is declared: a registry that does not answer fails the run with one
line naming the config key, the image and the registry, and nothing on the server changes.

Plain HTTP only for loopback registries (127.0.0.0/8, ::1, localhost), as Docker itself allows them; https else.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

from components import config
from components.image_ref import DIGEST, Reference

# Docker Hub's names: images without a registry host come from here.
DOCKER_HUB: Final = "docker.io"
DOCKER_HUB_API: Final = "registry-1.docker.io"
DOCKER_HUB_ALIASES: Final = frozenset({DOCKER_HUB, "index.docker.io", DOCKER_HUB_API})
# What a pull by tag resolves to: a multi-platform index when there is one, else the single manifest.
MANIFEST_TYPES: Final = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
)
LOOKUP_TIMEOUT_SECONDS: Final = 15
# Registry lookups in flight at once, at most (one per distinct tag).
LOOKUPS_AT_ONCE: Final = 8

# Reads the digest (`sha256:<64 hex>`) a `repo:tag` reference names now; raises RegistryError.
DigestReader = Callable[[str], str]


class RegistryError(RuntimeError):
    """The registry did not say which digest a tag names; str() is one line naming image and registry."""


class PinError(ValueError):
    """A role's image could not be pinned; str() is the one line to show the user (role, image, registry)."""


@dataclass(frozen=True)
class ImageName:
    """`registry/repository:tag@digest` as a registry's API addresses it: Docker Hub's names made whole."""

    registry: str  # host[:port]; docker.io for names without one
    repository: str  # library/nginx for Docker Hub's official images
    tag: str | None
    digest: str | None

    @classmethod
    def parse(cls, ref: str) -> ImageName:
        parts = Reference.parse(ref)
        registry, repository = parts.registry or DOCKER_HUB, parts.repository
        if registry == DOCKER_HUB and "/" not in repository:
            repository = f"library/{repository}"
        return cls(registry=registry, repository=repository, tag=parts.tag, digest=parts.digest)

    @property
    def api_host(self) -> str:
        return DOCKER_HUB_API if self.registry in DOCKER_HUB_ALIASES else self.registry

    @property
    def scheme(self) -> str:
        return "http" if is_loopback(self.registry) else "https"


def is_loopback(registry: str) -> bool:
    """127.0.0.0/8, ::1 or localhost, with or without a port: Docker pulls from these over plain HTTP."""
    host = registry[1:].split("]", 1)[0] if registry.startswith("[") else registry.rsplit(":", 1)[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_pinned(ref: str) -> bool:
    return Reference.parse(ref).digest is not None


def pinned(ref: str, read_digest: DigestReader) -> str:
    """`repo:tag@sha256:<digest>` for `repo:tag`; a reference already pinned by digest as it is."""
    return ref if is_pinned(ref) else f"{ref}@{read_digest(ref)}"


def role_key(name: str) -> str:
    """The config key a role's image is given at, as pin_images' keys and its errors name it."""
    return f"roles.{name}.image"


def pulled_images(stack: config.StackConfig, roles: Mapping[str, config.Role]) -> dict[str, str]:
    """Config key → the image reference a server pulls from a registry for it: each of `roles` given an image (roles
    built from a context, or sent over SSH, are not here), kamal-proxy's when the stack runs one, each accessory's
    (the backup's when the config names one: else it is built on the server from the Postgres image)."""
    refs = {role_key(name): role.image.ref for name, role in roles.items() if role.image.ref is not None}
    if stack.proxy_servers():
        refs["proxy.image"] = stack.proxy.image_ref
    accessories = stack.accessories
    if accessories is None:
        return refs
    if accessories.postgres is not None:
        refs["accessories.postgres.image"] = accessories.postgres.image_ref()
    if accessories.backup is not None and accessories.backup.image is not None:
        refs["accessories.backup.image"] = accessories.backup.image
    if accessories.vector is not None:
        refs["accessories.vector.image"] = accessories.vector.image
    return refs


def pin_images(refs: Mapping[str, str], read_digest: DigestReader) -> dict[str, str]:
    """Config key → its image reference pinned by digest (one already pinned stays as it is). Each tag is looked up
    once per run, however many keys name it, and the distinct tags at once: each lookup is a round trip or two to
    its registry, and on a stack of many images the waits overlap. A failure names the first key, in `refs`' order,
    whose tag failed."""
    found = _look_up_at_once(list(dict.fromkeys(refs.values())), read_digest)
    pins: dict[str, str] = {}
    for key, ref in refs.items():
        pin = found[ref]
        if isinstance(pin, RegistryError):
            raise PinError(f"quayside: {key}: {pin}; {pin_by_hand(key)}")
        pins[key] = pin
    return pins


def pin_by_hand(key: str) -> str:
    """How the config names the digest itself, for a registry the deploying machine cannot read."""
    if key == "proxy.image":
        return "or pin it by hand: proxy.digest: sha256:<64 hex>"
    return f"or pin it by hand: {key}: repo:tag@sha256:<64 hex>"


def with_pins(stack: config.StackConfig, pins: Mapping[str, str]) -> config.StackConfig:
    """The stack with kamal-proxy's and the accessories' images as `pins` names them (the roles' pins go to each
    role apart: their version names come from them). What the stack declares is unchanged otherwise."""
    changed: dict[str, object] = {}
    if "proxy.image" in pins:
        changed["proxy"] = stack.proxy.model_copy(update={"digest": Reference.parse(pins["proxy.image"]).digest})
    accessories = stack.accessories
    if accessories is not None:
        pinned = {
            name: getattr(accessories, name).model_copy(update={"image": pins[f"accessories.{name}.image"]})
            for name in config.ACCESSORIES
            if f"accessories.{name}.image" in pins
        }
        if pinned:
            changed["accessories"] = accessories.model_copy(update=pinned)
    return stack.model_copy(update=changed)


def _look_up_at_once(refs: list[str], read_digest: DigestReader) -> dict[str, str | RegistryError]:
    def look_up(ref: str) -> str | RegistryError:
        try:
            return pinned(ref, read_digest)
        except RegistryError as error:
            return error

    if len(refs) <= 1:
        return {ref: look_up(ref) for ref in refs}
    # Only a stack of several tags pays for the import and the threads.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(LOOKUPS_AT_ONCE, len(refs))) as pool:
        return dict(zip(refs, pool.map(look_up, refs), strict=True))


@dataclass(frozen=True)
class Login:
    """`registry.username` and the `registry_password` secret, for images on `registry.server` only."""

    server: str
    username: str
    password: str = field(repr=False)

    def covers(self, registry: str) -> bool:
        if registry in DOCKER_HUB_ALIASES:
            return self.server in DOCKER_HUB_ALIASES
        return self.server == registry

    def basic(self) -> str:
        return "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()


def login_for(registry: object, password: str | None) -> Login | None:
    """The stack's login, when `registry` is a config.Registry with a username and the password is set."""
    if not isinstance(registry, config.Registry) or registry.username is None or password is None:
        return None
    return Login(server=registry.server, username=registry.username, password=password)


@dataclass(frozen=True)
class RegistryDigests:
    """A DigestReader asking each image's registry (Distribution API v2), with the stack's login where it applies."""

    login: Login | None = None
    timeout: float = LOOKUP_TIMEOUT_SECONDS

    def __call__(self, ref: str) -> str:
        image = ImageName.parse(ref)
        where = f"{ref} from registry {image.registry}"
        if image.tag is None:
            raise RegistryError(f"{ref} has no tag to look up in registry {image.registry}")
        url = f"{image.scheme}://{image.api_host}/v2/{image.repository}/manifests/{urllib.parse.quote(image.tag)}"
        login = self.login if self.login is not None and self.login.covers(image.registry) else None
        try:
            digest = self._manifest_digest(url, image, login)
        except urllib.error.HTTPError as error:
            raise RegistryError(f"cannot read the digest of {where}: {_http_reason(error, login)}") from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise RegistryError(f"cannot read the digest of {where}: {reason}") from None
        except RegistryError as error:
            raise RegistryError(f"cannot read the digest of {where}: {error}") from None
        if DIGEST.fullmatch(digest) is None:
            raise RegistryError(f"cannot read the digest of {where}: the registry answered {digest[:80]!r}")
        return digest

    def _manifest_digest(self, url: str, image: ImageName, login: Login | None) -> str:
        try:
            return self._head(url, authorization=None)
        except urllib.error.HTTPError as error:
            if error.code != 401:
                raise
            challenge = error.headers.get("WWW-Authenticate", "")
        return self._head(url, authorization=self._authorization(challenge, image, login))

    def _head(self, url: str, *, authorization: str | None) -> str:
        headers = {"Accept": ", ".join(MANIFEST_TYPES)}
        if authorization is not None:
            headers["Authorization"] = authorization
        request = urllib.request.Request(url, method="HEAD", headers=headers)
        with urllib.request.urlopen(request, timeout=self.timeout) as reply:
            digest = reply.headers.get("Docker-Content-Digest")
        if digest:
            return str(digest)
        # A registry that names no digest on HEAD: the digest is the manifest's own hash, as a pull computes it.
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=self.timeout) as reply:
            return "sha256:" + hashlib.sha256(reply.read()).hexdigest()

    def _authorization(self, challenge: str, image: ImageName, login: Login | None) -> str:
        """The Authorization header the registry's 401 challenge asks for: Basic, or a Bearer token from its realm."""
        scheme = challenge.split(" ", 1)[0].lower()
        if scheme == "basic":
            if login is None:
                raise RegistryError("the registry asks for a login: set registry.username and registry_password")
            return login.basic()
        if scheme != "bearer":
            raise RegistryError(f"the registry asks for an unknown authentication {challenge[:40]!r}")
        params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        if "realm" not in params:
            raise RegistryError("the registry asks for a token but names no realm")
        query = {"scope": f"repository:{image.repository}:pull"}
        if "service" in params:
            query["service"] = params["service"]
        request = urllib.request.Request(f"{params['realm']}?{urllib.parse.urlencode(query)}")
        if login is not None:
            request.add_header("Authorization", login.basic())
        with urllib.request.urlopen(request, timeout=self.timeout) as reply:
            answer = json.loads(reply.read())
        token = answer.get("token") or answer.get("access_token")
        if not token:
            raise RegistryError("the registry's token service gave no token")
        return f"Bearer {token}"


def _http_reason(error: urllib.error.HTTPError, login: Login | None) -> str:
    if error.code == 404:
        return "no such tag or repository (HTTP 404)"
    if error.code in (401, 403):
        hint = "the login was refused" if login is not None else "set registry.username and registry_password"
        return f"access denied (HTTP {error.code}): {hint}"
    return f"HTTP {error.code} {error.reason}"
