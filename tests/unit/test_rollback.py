"""quayside_cli/rollback.py's choice of an earlier version, now that versions carry the digest their tag named."""

from __future__ import annotations

import json
from typing import Final

import pytest

from components import image_pin
from quayside_cli import rollback

DIGEST: Final = "sha256:" + "093c6d79f8b3" + "0" * 52


def history_config(image: str) -> dict[str, object]:
    roles = {"web": {"image": image, "health": {"path": "/up"}}}
    return {"quayside:roles": {"value": json.dumps(roles), "secret": False}}


def test_a_tag_in_the_history_is_pinned_as_up_pins_it() -> None:
    deployed = rollback.role_in(history_config("ghcr.io/acme/web:1.4"), "web", lambda ref: DIGEST)

    assert deployed == rollback.Deployed("1.4@093c6d79f8b3", f"ghcr.io/acme/web:1.4@{DIGEST}", None)


def test_a_registry_that_fails_names_the_role() -> None:
    def unreachable(ref: str) -> str:
        raise image_pin.RegistryError(f"cannot read the digest of {ref} from registry ghcr.io: timed out")

    with pytest.raises(rollback.RollbackError, match=r"^roles\.web\.image: cannot read the digest of ghcr\.io/"):
        rollback.role_in(history_config("ghcr.io/acme/web:1.4"), "web", unreachable)


def test_a_version_may_be_named_by_its_tag_alone() -> None:
    candidates = [rollback.Deployed("1.4@093c6d79f8b3", f"ghcr.io/acme/web:1.4@{DIGEST}", None)]

    assert rollback.choose(candidates, "web", "1.4") == candidates[0]
    assert rollback.choose(candidates, "web", "1.4@093c6d79f8b3") == candidates[0]
    with pytest.raises(rollback.RollbackError, match=r"never deployed at 1\.3; earlier versions: 1\.4@093c6d79f8b3$"):
        rollback.choose(candidates, "web", "1.3")
