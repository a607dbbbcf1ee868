"""quayside_cli/rollback.py's choice of an earlier version, now that versions carry the digest their tag named, and
its look at the stack's lock before it switches anything."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Final

import pytest

from components import image_pin
from quayside_cli import rollback
from quayside_cli.stack import Stack

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


LOCK: Final = {"pid": 4121, "username": "ops", "hostname": "laptop", "timestamp": "2026-12-04T22:07:57Z"}


def test_a_file_backends_lock_on_the_stack_names_who_holds_it(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.yaml").write_text("name: shop\nruntime: python\n")
    stack = Stack("prod", tmp_path, {})
    whoami = json.dumps({"user": "ops", "url": f"file://{tmp_path / 'state'}"})
    locks = tmp_path / "state" / ".pulumi" / "locks" / "organization" / "shop"
    (locks / "staging").mkdir(parents=True)
    (locks / "staging" / "a.json").write_text(json.dumps(LOCK))

    assert rollback.updater(stack, "[]", whoami) is None, "another stack's lock is not this one's"

    (locks / "prod").mkdir()
    (locks / "prod" / "b.json").write_text(json.dumps(LOCK))

    assert rollback.updater(stack, "[]", whoami) == "pulumi update by ops@laptop, pid 4121, since 2026-12-04T22:07:57Z"


def test_pulumi_clouds_update_in_progress_is_read_and_other_backends_are_not(tmp_path: Path) -> None:
    stack = Stack("prod", tmp_path, {})
    cloud = json.dumps([{"name": "acme/shop/staging", "updateInProgress": True}, {"name": "acme/shop/prod"}])
    busy = json.dumps([{"name": "acme/shop/prod", "updateInProgress": True}])

    assert rollback.updater(stack, cloud, json.dumps({"url": "https://api.pulumi.com"})) is None
    assert rollback.updater(stack, busy, json.dumps({"url": "https://api.pulumi.com"})) == (
        "an update is in progress (Pulumi Cloud says so)"
    )
    assert rollback.updater(stack, "[]", json.dumps({"url": "s3://acme-state"})) is None
