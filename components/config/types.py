"""The value types of the stack config, and the base of its models.

Each pattern is in PATTERN_HELP with what it allows in words: an error says a value `must be <words>`, and
docs/configuration.md describes its type in the same words.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Final

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from components.image_ref import DIGEST, Reference

NAME_PATTERN: Final = r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$"
ENV_NAME_PATTERN: Final = r"^[A-Za-z_][A-Za-z0-9_]*$"
DURATION_PATTERN: Final = r"^[1-9][0-9]*(ms|s|m)$"
HOSTNAME_PATTERN: Final = r"^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
VERSION_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
PATH_PATTERN: Final = r"^/\S*$"
DIRECTORY_PATTERN: Final = r"^/\S+$"
VOLUME_PATTERN: Final = r"^[^:\s]+:/[^:\s]*(:(ro|rw))?$"
MEMORY_PATTERN: Final = r"^[1-9][0-9]*[kmg]$"
CIDR_PATTERN: Final = r"^[0-9a-fA-F.:]+/[0-9]{1,3}$"
IPV4_CIDR_PATTERN: Final = r"^[0-9]{1,3}(\.[0-9]{1,3}){3}/[0-9]{1,2}$"
PERCENT_PATTERN: Final = r"^([1-9][0-9]?|100)%$"
# One platform, as `docker build --platform` takes it: os/arch, and an arm variant.
PLATFORM_PATTERN: Final = r"^linux/(amd64|arm64|arm/v[5-8]|386|ppc64le|s390x|riscv64)$"
# A repository path under the registry host, as Docker names them (acme/web).
REPOSITORY_PATTERN: Final = r"^[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*$"
# An OpenSSH public key line, optionally after the host name ssh-keyscan puts first.
HOST_KEY_PATTERN: Final = r"^(\S+ )?(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/]+={0,3}( .*)?$"
IDENTIFIER_PATTERN: Final = r"^[a-z_][a-z0-9_]{0,62}$"
SETTING_PATTERN: Final = r"^[a-z_][a-z0-9_.]{0,62}$"
BUCKET_PATTERN: Final = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
PREFIX_PATTERN: Final = r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$"
REGION_PATTERN: Final = r"^[a-z0-9-]{1,32}$"
URL_PATTERN: Final = r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/\S*)?$"
HTTPS_URL_PATTERN: Final = r"^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/\S*)?$"
# A login name as useradd takes it (root, deploy).
USER_PATTERN: Final = r"^[a-z_][a-z0-9_-]*$"
# The key types Hetzner Cloud takes for a server's root.
SSH_PUBLIC_KEY_PATTERN: Final = r"^ssh-(ed25519|rsa) \S+"

# What each pattern allows, in words.
PATTERN_HELP: Final[Mapping[str, str]] = {
    NAME_PATTERN: "lowercase letters and digits, words joined by single dashes, starting with a letter (web, api-v2)",
    ENV_NAME_PATTERN: "letters, digits and underscores, not starting with a digit (DATABASE_URL)",
    DURATION_PATTERN: "a duration like 500ms, 30s or 2m",
    HOSTNAME_PATTERN: "a lowercase hostname like app.example.com (or *.example.com)",
    VERSION_PATTERN: "letters, digits, dot, dash and underscore, up to 64 (v1.4.2)",
    PATH_PATTERN: "a path starting with / (/up)",
    DIRECTORY_PATTERN: "a directory's absolute path (/home/kamal-proxy/.config/kamal-proxy)",
    VOLUME_PATTERN: "name:/path or /host/dir:/path, optionally :ro (data:/var/lib/app)",
    MEMORY_PATTERN: "a size with its unit k, m or g (512m)",
    HOST_KEY_PATTERN: "an SSH public key line like `ssh-ed25519 AAAA...` (what ssh-keyscan prints)",
    CIDR_PATTERN: "a network in CIDR form like 203.0.113.0/24 or 2001:db8::/32",
    IPV4_CIDR_PATTERN: "an IPv4 network in CIDR form like 10.0.1.0/24",
    PERCENT_PATTERN: "a percentage from 1% to 100% (50%)",
    PLATFORM_PATTERN: "one Linux platform like linux/amd64 or linux/arm64",
    REPOSITORY_PATTERN: "a lowercase repository path like acme/web",
    IDENTIFIER_PATTERN: "a lowercase Postgres name: letters, digits and underscores, up to 63 (acme_app)",
    SETTING_PATTERN: "a Postgres setting name (max_connections, shared_buffers)",
    BUCKET_PATTERN: "an S3 bucket name: lowercase letters, digits, dots and dashes (acme-backups)",
    PREFIX_PATTERN: "a key prefix like acme/postgres (no leading or trailing slash)",
    REGION_PATTERN: "a region like us-east-1 or fsn1",
    URL_PATTERN: "an http(s) URL like https://fsn1.your-objectstorage.com",
    HTTPS_URL_PATTERN: "an https URL like https://in.logs.betterstack.com",
    USER_PATTERN: "a user name: lowercase letters, digits, _ and -, starting with a letter or _ (deploy)",
    SSH_PUBLIC_KEY_PATTERN: "an OpenSSH public key line, ed25519 or rsa (ssh-ed25519 AAAA... deploy@acme)",
}


def pinned_image(ref: str) -> str:
    """`ref` when it is an image reference pinned by a tag or a digest; else the error says what is wrong."""
    parts = Reference.parse(ref)
    named = bool(parts.repository.rsplit("/", 1)[-1])
    if not named or re.search(r"\s", ref) or (parts.digest and not DIGEST.fullmatch(parts.digest)):
        raise ValueError(f"{ref!r} is not an image reference like registry/repo:tag or repo@sha256:<64 hex>")
    if not parts.tag and not parts.digest:
        raise ValueError(f"{ref!r} has no tag or digest: pin one (repo:1.4 or repo@sha256:...)")
    if parts.tag and not re.fullmatch(r"[\w][\w.-]{0,127}", parts.tag):
        raise ValueError(f"{ref!r} has a malformed tag {parts.tag!r}")
    return ref


def milliseconds(duration: str) -> int:
    """A config duration in milliseconds (500ms → 500, 30s → 30000, 2m → 120000)."""
    match = re.fullmatch(r"(\d+)(ms|s|m)", duration)
    if match is None:
        raise ValueError(f"not a duration: {duration!r}")
    return int(match[1]) * {"ms": 1, "s": 1000, "m": 60_000}[match[2]]


def public_key(line: str) -> str:
    """`<type> <base64>` out of a host key line (ssh-keyscan puts the host name first; a comment may follow)."""
    fields = line.split()
    start = 0 if fields[0].startswith(("ssh-", "ecdsa-")) else 1
    return " ".join(fields[start : start + 2])


Name = Annotated[str, Field(pattern=NAME_PATTERN, max_length=40)]
Port = Annotated[int, Field(ge=1, le=65535)]
Duration = Annotated[str, Field(pattern=DURATION_PATTERN)]
EnvName = Annotated[str, Field(pattern=ENV_NAME_PATTERN)]
Hostname = Annotated[str, Field(pattern=HOSTNAME_PATTERN, max_length=253)]
Version = Annotated[str, Field(pattern=VERSION_PATTERN)]
UrlPath = Annotated[str, Field(pattern=PATH_PATTERN)]
Directory = Annotated[str, Field(pattern=DIRECTORY_PATTERN)]
Volume = Annotated[str, Field(pattern=VOLUME_PATTERN)]
Memory = Annotated[str, Field(pattern=MEMORY_PATTERN)]
Percent = Annotated[str, Field(pattern=PERCENT_PATTERN)]
Cidr = Annotated[str, Field(pattern=CIDR_PATTERN)]
Ipv4Cidr = Annotated[str, Field(pattern=IPV4_CIDR_PATTERN)]
Platform = Annotated[str, Field(pattern=PLATFORM_PATTERN)]
Repository = Annotated[str, Field(pattern=REPOSITORY_PATTERN, max_length=200)]
HostKey = Annotated[str, Field(pattern=HOST_KEY_PATTERN)]
UserName = Annotated[str, Field(pattern=USER_PATTERN)]
SshPublicKey = Annotated[str, Field(pattern=SSH_PUBLIC_KEY_PATTERN)]
Identifier = Annotated[str, Field(pattern=IDENTIFIER_PATTERN)]
SettingName = Annotated[str, Field(pattern=SETTING_PATTERN)]
Bucket = Annotated[str, Field(pattern=BUCKET_PATTERN)]
KeyPrefix = Annotated[str, Field(pattern=PREFIX_PATTERN)]
Region = Annotated[str, Field(pattern=REGION_PATTERN)]
Url = Annotated[str, Field(pattern=URL_PATTERN)]
HttpsUrl = Annotated[str, Field(pattern=HTTPS_URL_PATTERN)]
ImageRef = Annotated[str, AfterValidator(pinned_image)]


class Model(BaseModel):
    """A section of the stack config: strict types, every unknown key an error, read-only once parsed."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)
