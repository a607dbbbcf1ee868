"""The value types of the stack config, and the base of its models.

Each pattern is in PATTERN_HELP with what it allows in words: an error says a value `must be <words>`, and
docs/configuration.md describes its type in the same words.
"""

from __future__ import annotations

import base64
import ipaddress
import re
from collections.abc import Mapping
from typing import Annotated, Final

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from components.image_ref import DIGEST, Reference

# Parts the patterns below are made of: one label of a DNS name (letters, digits, inner dashes: never a leading
# dash, so no host reaches a command line as an option), a DNS name, an IPv4 address, one path component of a
# Docker repository (as Docker's reference grammar has it: separators `.`, `_`, `__` or dashes).
DNS_LABEL: Final = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
DNS_NAME: Final = rf"({DNS_LABEL}\.)*{DNS_LABEL}"
IPV4: Final = r"[0-9]{1,3}(\.[0-9]{1,3}){3}"
REPOSITORY_PART: Final = r"[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*"

NAME_PATTERN: Final = r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$"
ENV_NAME_PATTERN: Final = r"^[A-Za-z_][A-Za-z0-9_]*$"
DURATION_PATTERN: Final = r"^[1-9][0-9]*(ms|s|m)$"
HOSTNAME_PATTERN: Final = rf"^(\*\.)?{DNS_NAME}$"
# A server SSH connects to: a DNS name or an IPv4 address (which DNS_NAME spells too), or an IPv6 address.
SERVER_HOST_PATTERN: Final = rf"^({DNS_NAME}|[0-9a-f]*:[0-9a-f:.]*)$"
# A registry as Docker names it in an image reference: a host (or [IPv6]) and an optional port.
REGISTRY_HOST_PATTERN: Final = rf"^({DNS_NAME}|\[[0-9a-f:]+\])(:[0-9]{{1,5}})?$"
IPV4_PATTERN: Final = rf"^{IPV4}$"
VERSION_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
PATH_PATTERN: Final = r"^/\S*$"
DIRECTORY_PATTERN: Final = r"^/\S+$"
# A Docker volume's name (two characters or more, as Docker requires) or an absolute host path, then the path in
# the container. A relative host path would be resolved against wherever the step happens to run.
VOLUME_PATTERN: Final = r"^([A-Za-z0-9][A-Za-z0-9_.-]+|/[^:\s]*):/[^:\s]*(:(ro|rw))?$"
MEMORY_PATTERN: Final = r"^[1-9][0-9]*[kmg]$"
CIDR_PATTERN: Final = r"^[0-9a-fA-F.:]+/[0-9]{1,3}$"
IPV4_CIDR_PATTERN: Final = rf"^{IPV4}/[0-9]{{1,2}}$"
PERCENT_PATTERN: Final = r"^([1-9][0-9]?|100)%$"
# One platform, as `docker build --platform` takes it: os/arch, and an arm variant.
PLATFORM_PATTERN: Final = r"^linux/(amd64|arm64|arm/v[5-8]|386|ppc64le|s390x|riscv64)$"
# A repository path under the registry host, as Docker names them (acme/web).
REPOSITORY_PATTERN: Final = rf"^{REPOSITORY_PART}(/{REPOSITORY_PART})*$"
# An OpenSSH public key line, optionally after the host name ssh-keyscan puts first.
HOST_KEY_PATTERN: Final = r"^(\S+ )?(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/]+={0,3}( .*)?$"
IDENTIFIER_PATTERN: Final = r"^[a-z_][a-z0-9_]{0,62}$"
# A value of the kamal-rollout cookie (an account or user id): no comma, which kamal-proxy's --list splits on.
COOKIE_VALUE_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,63}$"
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
# An image's content digest as registries name it (image_ref.DIGEST).
DIGEST_PATTERN: Final = rf"^{DIGEST.pattern}$"

# A URL with a password in it (scheme://user:password@host, the user may be empty as in redis://:pw@host).
CREDENTIAL_URL: Final = r"[A-Za-z][A-Za-z0-9+.-]*://[^/?#@\s:]*:[^/?#@\s]+@"

# What each pattern allows, in words.
PATTERN_HELP: Final[Mapping[str, str]] = {
    NAME_PATTERN: "lowercase letters and digits, words joined by single dashes, starting with a letter (web, api-v2)",
    ENV_NAME_PATTERN: "letters, digits and underscores, not starting with a digit (DATABASE_URL)",
    DURATION_PATTERN: "a duration like 500ms, 30s or 2m, up to 60m",
    HOSTNAME_PATTERN: "a lowercase hostname like app.example.com (or *.example.com)",
    SERVER_HOST_PATTERN: "a lowercase hostname like deploy.acme.com, or an IP address like 203.0.113.7",
    REGISTRY_HOST_PATTERN: "a registry host like ghcr.io or registry.acme.com:5000",
    IPV4_PATTERN: "an IPv4 address like 0.0.0.0 or 127.0.0.1",
    VERSION_PATTERN: "letters, digits, dot, dash and underscore, up to 64 (v1.4.2)",
    PATH_PATTERN: "a path starting with / (/up)",
    DIRECTORY_PATTERN: "a directory's absolute path (/home/kamal-proxy/.config/kamal-proxy)",
    VOLUME_PATTERN: "name:/path or /host/dir:/path, optionally :ro (data:/var/lib/app): a Docker volume's name "
    "(letters, digits, _ . -; two or more) or an absolute host path",
    MEMORY_PATTERN: "a size with its unit k, m or g (512m), from 6m to 1024g",
    HOST_KEY_PATTERN: "an SSH public key line like `ssh-ed25519 AAAA...` (what ssh-keyscan prints)",
    CIDR_PATTERN: "a network in CIDR form like 203.0.113.0/24 or 2001:db8::/32",
    IPV4_CIDR_PATTERN: "an IPv4 network in CIDR form like 10.0.1.0/24",
    PERCENT_PATTERN: "a percentage from 1% to 100% (50%)",
    PLATFORM_PATTERN: "one Linux platform like linux/amd64 or linux/arm64",
    REPOSITORY_PATTERN: "a lowercase repository path like acme/web",
    COOKIE_VALUE_PATTERN: "a cookie value: letters, digits and _ . : @ -, up to 64, starting alphanumeric (staff-1)",
    IDENTIFIER_PATTERN: "a lowercase Postgres name: letters, digits and underscores, up to 63 (acme_app)",
    SETTING_PATTERN: "a Postgres setting name (max_connections, shared_buffers)",
    BUCKET_PATTERN: "an S3 bucket name: lowercase letters, digits, dots and dashes (acme-backups)",
    PREFIX_PATTERN: "a key prefix like acme/postgres (no leading or trailing slash)",
    REGION_PATTERN: "a region like us-east-1 or fsn1",
    URL_PATTERN: "an http(s) URL like https://fsn1.your-objectstorage.com",
    HTTPS_URL_PATTERN: "an https URL like https://in.logs.betterstack.com",
    USER_PATTERN: "a user name: lowercase letters, digits, _ and -, starting with a letter or _ (deploy)",
    SSH_PUBLIC_KEY_PATTERN: "an OpenSSH public key line, ed25519 or rsa (ssh-ed25519 AAAA... deploy@acme)",
    DIGEST_PATTERN: "an image digest: sha256: and 64 lowercase hex digits, as docker images --digests shows it",
}


def pinned_image(ref: str) -> str:
    """`ref` when it is an image reference pinned by a tag or a digest; else the error says what is wrong."""
    parts = Reference.parse(ref)
    if not well_formed(parts) or re.search(r"\s", ref) or (parts.digest and not DIGEST.fullmatch(parts.digest)):
        raise ValueError(f"{ref!r} is not an image reference like registry/repo:tag or repo@sha256:<64 hex>")
    if not parts.tag and not parts.digest:
        raise ValueError(f"{ref!r} has no tag or digest: pin one (repo:1.4 or repo@sha256:...)")
    if parts.tag and not re.fullmatch(r"[\w][\w.-]{0,127}", parts.tag):
        raise ValueError(f"{ref!r} has a malformed tag {parts.tag!r}")
    return ref


def versioned_image(ref: str) -> str:
    """`ref` when it is pinned by a digest or a tag naming a version (16, 16.6-bookworm, v0.9.2): an accessory keeps
    data or runs beside every role, and a moving tag (latest, stable, alpine) would upgrade it at any reboot."""
    parts = Reference.parse(pinned_image(ref))
    if not parts.digest and not re.match(r"v?[0-9]", parts.tag or ""):
        raise ValueError(f"{ref!r} names no version: pin one, its major version at least ({parts.name}:16)")
    return ref


ARMOR_BLOCK: Final = re.compile(
    r"-----BEGIN PGP (PUBLIC|PRIVATE) KEY BLOCK-----(.*?)-----END PGP \1 KEY BLOCK-----", re.S
)
# OpenPGP's packet tag of a public key (RFC 4880, 4.3): the first packet of an exported public key.
PUBLIC_KEY_TAG: Final = 6


def openpgp_public_key(text: str) -> str:
    """`text` when it is an ASCII-armored OpenPGP public key, as `gpg --armor --export KEY` writes it."""
    block = ARMOR_BLOCK.search(text.replace("\r\n", "\n"))
    if block is not None and block[1] == "PRIVATE":
        raise ValueError(
            "this is a private key, which must never be in the stack: give its public half (gpg --armor --export KEY)"
        )
    first = _first_packet_tag(block[2]) if block is not None else None
    if first != PUBLIC_KEY_TAG:
        raise ValueError("this is not an ASCII-armored OpenPGP public key: give what `gpg --armor --export KEY` writes")
    return text.strip() + "\n"


def _first_packet_tag(armored: str) -> int | None:
    """The tag of the first packet in an armor block's body (its headers and checksum line left out)."""
    body = armored.strip().split("\n\n", 1)[-1]
    lines = [line.strip() for line in body.splitlines() if line.strip() and not line.strip().startswith("=")]
    try:
        first = base64.b64decode("".join(lines), validate=True)[:1]
    except ValueError:
        return None
    if not first or not first[0] & 0x80:
        return None
    # The new packet format keeps the tag in six bits, the old one in four above two bits of length type.
    return first[0] & 0x3F if first[0] & 0x40 else (first[0] >> 2) & 0x0F


def well_formed(parts: Reference) -> bool:
    """The registry and repository are as Docker parses them: nothing starts with a dash, so no image reference
    reaches docker's command line as an option."""
    registry_ok = parts.registry is None or re.fullmatch(REGISTRY_HOST_PATTERN, parts.registry) is not None
    return registry_ok and re.fullmatch(REPOSITORY_PATTERN, parts.repository) is not None


def image_name(name: str) -> str:
    """`name` when it is an image's name without tag or digest ([registry/]repository), as proxy.image is."""
    parts = Reference.parse(name)
    if not well_formed(parts) or parts.digest:
        raise ValueError(f"{name!r} is not an image name like registry.acme.com/kamal-proxy (its tag goes in version)")
    if parts.tag:
        raise ValueError(f"{name!r} has a tag: give the image's name here and the tag as version")
    return name


# The longest a duration may be: each one bounds a wait of a deploy step (a health check, a drain, a boot), which
# holds its part's lock and an SSH session meanwhile; a step that needs longer is stuck, not slow.
DURATION_MAX: Final = "60m"


def milliseconds(duration: str) -> int:
    """A config duration in milliseconds (500ms → 500, 30s → 30000, 2m → 120000)."""
    match = re.fullmatch(r"(\d+)(ms|s|m)", duration)
    if match is None:
        raise ValueError(f"not a duration: {duration!r}")
    return int(match[1]) * {"ms": 1, "s": 1000, "m": 60_000}[match[2]]


def bounded_duration(duration: str) -> str:
    """`duration` when it is at most DURATION_MAX."""
    if milliseconds(duration) > milliseconds(DURATION_MAX):
        raise ValueError(f"{duration} is longer than {DURATION_MAX}, the most a deploy step waits: shorten it")
    return duration


# Docker refuses a memory limit under 6 MiB; no server has more than 1 TiB. Units as Docker's: k, m, g of 1024.
MEMORY_UNITS: Final[Mapping[str, int]] = {"k": 1024, "m": 1024**2, "g": 1024**3}
MEMORY_MIN: Final = "6m"
MEMORY_MAX: Final = "1024g"


def memory_bytes(size: str) -> int:
    """A config memory size in bytes (512m → 536870912)."""
    return int(size[:-1]) * MEMORY_UNITS[size[-1]]


def bounded_memory(size: str) -> str:
    """`size` when Docker takes it as a memory limit and a server can have it."""
    if memory_bytes(size) < memory_bytes(MEMORY_MIN):
        raise ValueError(
            f"{size} is less than {MEMORY_MIN}, the least memory limit Docker takes: give {MEMORY_MIN} or more"
        )
    if memory_bytes(size) > memory_bytes(MEMORY_MAX):
        raise ValueError(f"{size} is more than {MEMORY_MAX} (1 TiB), more than a server has: give less")
    return size


def ipv4_address(text: str) -> str:
    """`text` when it is an IPv4 address (each number up to 255)."""
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an IPv4 address like 0.0.0.0 or 127.0.0.1") from None
    return text


def public_key(line: str) -> str:
    """`<type> <base64>` out of a host key line (ssh-keyscan puts the host name first; a comment may follow)."""
    fields = line.split()
    start = 0 if fields[0].startswith(("ssh-", "ecdsa-")) else 1
    return " ".join(fields[start : start + 2])


Name = Annotated[str, Field(pattern=NAME_PATTERN, max_length=40)]
Port = Annotated[int, Field(ge=1, le=65535)]
Duration = Annotated[str, Field(pattern=DURATION_PATTERN), AfterValidator(bounded_duration)]
EnvName = Annotated[str, Field(pattern=ENV_NAME_PATTERN)]
Hostname = Annotated[str, Field(pattern=HOSTNAME_PATTERN, max_length=253)]
ServerHost = Annotated[str, Field(pattern=SERVER_HOST_PATTERN, max_length=253)]
RegistryHost = Annotated[str, Field(pattern=REGISTRY_HOST_PATTERN, max_length=253)]
Ipv4Address = Annotated[str, Field(pattern=IPV4_PATTERN), AfterValidator(ipv4_address)]
Version = Annotated[str, Field(pattern=VERSION_PATTERN)]
UrlPath = Annotated[str, Field(pattern=PATH_PATTERN)]
Directory = Annotated[str, Field(pattern=DIRECTORY_PATTERN)]
Volume = Annotated[str, Field(pattern=VOLUME_PATTERN)]
Memory = Annotated[str, Field(pattern=MEMORY_PATTERN), AfterValidator(bounded_memory)]
Percent = Annotated[str, Field(pattern=PERCENT_PATTERN)]
Cidr = Annotated[str, Field(pattern=CIDR_PATTERN)]
Ipv4Cidr = Annotated[str, Field(pattern=IPV4_CIDR_PATTERN)]
Platform = Annotated[str, Field(pattern=PLATFORM_PATTERN)]
Repository = Annotated[str, Field(pattern=REPOSITORY_PATTERN, max_length=200)]
HostKey = Annotated[str, Field(pattern=HOST_KEY_PATTERN)]
Digest = Annotated[str, Field(pattern=DIGEST_PATTERN)]
UserName = Annotated[str, Field(pattern=USER_PATTERN)]
SshPublicKey = Annotated[str, Field(pattern=SSH_PUBLIC_KEY_PATTERN)]
Identifier = Annotated[str, Field(pattern=IDENTIFIER_PATTERN)]
CookieValue = Annotated[str, Field(pattern=COOKIE_VALUE_PATTERN)]
SettingName = Annotated[str, Field(pattern=SETTING_PATTERN)]
Bucket = Annotated[str, Field(pattern=BUCKET_PATTERN)]
KeyPrefix = Annotated[str, Field(pattern=PREFIX_PATTERN)]
Region = Annotated[str, Field(pattern=REGION_PATTERN)]
Url = Annotated[str, Field(pattern=URL_PATTERN)]
HttpsUrl = Annotated[str, Field(pattern=HTTPS_URL_PATTERN)]
ImageRef = Annotated[str, AfterValidator(pinned_image)]
ImageName = Annotated[str, AfterValidator(image_name)]
VersionedImage = Annotated[str, AfterValidator(versioned_image)]
OpenPgpPublicKey = Annotated[str, AfterValidator(openpgp_public_key)]


class Model(BaseModel):
    """A section of the stack config: strict types, every unknown key an error, read-only once parsed."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)
