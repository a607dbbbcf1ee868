"""Image references, `[registry/]repository[:tag][@digest]`, split in one place for every reader: the config's
checks, the registry lookup that pins a tag, a role's version name, the name a sent image gets on the server, the plan.

Plain and permissive: parsing never fails, and the parts are as written (no Docker Hub defaults: image_pin adds those
for the registry's API). The standard library only, so components.config and the command import it freely.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

DIGEST: Final = re.compile(r"sha256:[0-9a-f]{64}")


@dataclass(frozen=True)
class Reference:
    """One image reference in its parts; str() puts them back together."""

    registry: str | None  # host[:port], when the first path component names one (a dot, a port, or localhost)
    repository: str  # the path after the registry: web, acme/web
    tag: str | None
    digest: str | None  # sha256:<64 hex>, when pinned

    @classmethod
    def parse(cls, text: str) -> Reference:
        name, _, digest = text.partition("@")
        first, _, rest = name.partition("/")
        has_registry = bool(rest) and ("." in first or ":" in first or first == "localhost")
        registry, path = (first, rest) if has_registry else (None, name)
        head, _, last = path.rpartition("/")  # a registry's host:port came before the first slash
        repository_last, _, tag = last.partition(":")
        repository = f"{head}/{repository_last}" if head else repository_last
        return cls(registry=registry, repository=repository, tag=tag or None, digest=digest or None)

    @property
    def name(self) -> str:
        """registry/repository, without tag or digest."""
        return f"{self.registry}/{self.repository}" if self.registry else self.repository

    def __str__(self) -> str:
        return self.name + (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")


def unpinned(text: str) -> str:
    """The reference as its config word names it, without a digest: what a tag names may move, and a hash of a
    part's options keeps to what the config says (the script compares the content by image ID)."""
    return text.partition("@")[0]


def short_digest(digest: str) -> str:
    """A digest's (or image ID's) first 12 hex digits, as version names and messages show it."""
    return digest.removeprefix("sha256:")[:12]
