"""Names of the images scripts/setup.d/images.sh builds locally (nothing is pulled)."""

from __future__ import annotations

from typing import Final

APP: Final = "quayside-test/app"  # tags: v1 v2 v3 never-healthy slow-start
KAMAL_PROXY: Final = "quayside-test/kamal-proxy:v0.9.2"
# Another build of it (its own image ID and tag): what a proxy upgrade moves to.
KAMAL_PROXY_NEXT: Final = "quayside-test/kamal-proxy:v0.9.2-next"
POSTGRES: Final = "quayside-test/postgres:15"
# A later major (Debian trixie's postgresql-17): what a major upgrade moves POSTGRES's data to.
POSTGRES_NEXT_MAJOR: Final = "quayside-test/postgres:17"
# A Python http.server app that ignores SIGTERM, as Python apps without an init do (issue 27's bench app).
PYAPP: Final = "quayside-test/pyapp"
# Its tags, apart from APP's so a tag names its app; scripts/setup.d/images.sh builds each (tests/bench pins it).
PYAPP_TAGS: Final = ("py-v1", "py-v2", "py-v3")
# A clean Debian server with cloud-init and sshd, no Docker (scripts/setup.d/clean-debian.sh).
CLEAN_DEBIAN: Final = "quayside-clean-debian/server:bookworm"


def app(tag: str) -> str:
    return f"{APP}:{tag}"


def pyapp(tag: str) -> str:
    return f"{PYAPP}:{tag}"


VECTOR_SETUP_STEP: Final = "bash scripts/setup.d/vector.sh (or scripts/test)"


def vector() -> tuple[str, str]:
    """(the Vector binary, the image quayside-test/vector:<version>) scripts/setup.d/vector.sh built from the vendored
    sources; BenchMissing names that step when it has not run."""
    from tests.support.testbed import BenchMissing, read_env_file

    try:
        built = read_env_file("vector.env")
        return built["QUAYSIDE_VECTOR"], built["QUAYSIDE_VECTOR_IMAGE"]
    except (BenchMissing, KeyError):
        raise BenchMissing(f"Vector is not built: run {VECTOR_SETUP_STEP}") from None
