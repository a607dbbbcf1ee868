"""Image references split in one place (components/image_ref.py): the parts as written, and back together again."""

from __future__ import annotations

import pytest

from components.image_ref import Reference

DIGEST = "sha256:" + "093c6d79f8b3" + "0" * 52


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        ("nginx", None, "nginx", None, None),
        ("nginx:1.25", None, "nginx", "1.25", None),
        ("acme/web:latest", None, "acme/web", "latest", None),
        ("ghcr.io/acme/web:1.4", "ghcr.io", "acme/web", "1.4", None),
        ("127.0.0.1:5000/quayside-test/app:v1", "127.0.0.1:5000", "quayside-test/app", "v1", None),
        ("localhost/app", "localhost", "app", None, None),
        (f"localhost:5000/app:v1@{DIGEST}", "localhost:5000", "app", "v1", DIGEST),
        (f"acme/web@{DIGEST}", None, "acme/web", None, DIGEST),
    ],
)
def test_a_reference_splits_into_its_parts_as_written_and_joins_back(
    text: str, registry: str | None, repository: str, tag: str | None, digest: str | None
) -> None:
    parts = Reference.parse(text)

    assert parts == Reference(registry, repository, tag, digest)
    assert str(parts) == text


def test_the_name_is_the_registry_and_repository_without_tag_or_digest() -> None:
    assert Reference.parse(f"127.0.0.1:5000/acme/web:1.4@{DIGEST}").name == "127.0.0.1:5000/acme/web"
    assert Reference.parse("web:1.4").name == "web"
