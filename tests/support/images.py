"""Names of the images scripts/setup.d/images.sh builds locally (nothing is pulled)."""

from __future__ import annotations

from typing import Final

APP: Final = "quayside-test/app"  # tags: v1 v2 v3 never-healthy slow-start
KAMAL_PROXY: Final = "quayside-test/kamal-proxy:v0.9.2"
POSTGRES: Final = "quayside-test/postgres:15"
# A clean Debian server with cloud-init and sshd, no Docker (scripts/setup.d/clean-debian.sh).
CLEAN_DEBIAN: Final = "quayside-clean-debian/server:bookworm"


def app(tag: str) -> str:
    return f"{APP}:{tag}"
