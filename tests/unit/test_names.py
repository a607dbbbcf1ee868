"""Names on the server: no two parts of one service, or of two services on one server, share a container, lock or
env file. lib.sh's name helpers, run by bash here over generated names and the pairs that collided under the
SERVICE-ROLE-VERSION scheme; the route name, which kamal-proxy keeps and so cannot change, is guarded by a claim
(tests/integration/test_swap.py)."""

from __future__ import annotations

import random
import re
import subprocess
from collections.abc import Iterable
from itertools import product
from typing import Final

from components.config.accessories import ACCESSORIES
from components.config.stack import RESERVED_ROLE_NAME, RESERVED_ROLE_PREFIX
from components.config.types import NAME_PATTERN, VERSION_PATTERN
from components.remote import SCRIPTS_DIR
from tests.support import remote

WORDS: Final = ["a", "b", "web", "api", "b-web", "a-b", "web-v1", "v1", "postgres", "x-postgres", "migrate"]
VERSIONS: Final = ["v1", "v1-web", "web-v1", "migrate-v1", "v1_2", "1.0", "v1@093c6d79f8b3", "v1_093c6d79f8b3"]


def generated_names(count: int, seed: int) -> list[str]:
    """Names as NAME_PATTERN allows them, short words joined by dashes so that joins can meet."""
    rng = random.Random(seed)
    alphabet = "ab1-"
    names = set(WORDS)
    while len(names) < count:
        text = rng.choice("ab") + "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 5)))
        if re.fullmatch(NAME_PATTERN, text):
            names.add(text)
    return sorted(names)


def lib(calls: Iterable[str]) -> list[str]:
    """One bash run of lib.sh printing one line per call, in order."""
    program = f'source "{SCRIPTS_DIR}/lib.sh"\n' + "\n".join(calls) + "\n"
    done = subprocess.run(["bash"], input=program, capture_output=True, text=True, timeout=60, check=True)
    return done.stdout.splitlines()


def quoted(*words: str) -> str:
    return " ".join(f"'{word}'" for word in words)


def test_no_two_roles_or_services_share_a_container_name() -> None:
    names = generated_names(40, seed=1)
    parts = list(product(names, names, VERSIONS))
    containers = lib(f"container_name {quoted(*part)}" for part in parts)
    migrations = lib(f"migration_container_name {quoted(*part)}" for part in parts)
    accessories = lib(f"echo {quoted(service)}-{kind}" for service in names for kind in ACCESSORIES)

    owners: dict[str, tuple[str, str]] = {}
    for (service, role, _version), name in zip(parts * 2, containers + migrations, strict=True):
        assert owners.setdefault(name, (service, role)) == (service, role), f"{name} is two roles'"
    assert not set(migrations) & set(containers)
    assert len(set(accessories)) == len(accessories)
    assert not set(accessories) & (set(containers) | set(migrations))


def test_the_pairs_that_collided_under_dashes_now_differ() -> None:
    service_a_b_role_web, service_a_role_b_web = lib(
        [f"container_name {quoted('a-b', 'web', 'v1')}", f"container_name {quoted('a', 'b-web', 'v1')}"]
    )
    assert service_a_b_role_web != service_a_role_b_web
    role_web_version_migrate, migration_of_web = lib(
        [f"container_name {quoted('s', 'web', 'migrate-v1')}", f"migration_container_name {quoted('s', 'web', 'v1')}"]
    )
    assert role_web_version_migrate != migration_of_web


def test_a_container_name_is_service_role_version_with_a_pinned_digest_after_an_underscore() -> None:
    assert lib([f"container_name {quoted('demo', 'web', 'v1@093c6d79f8b3')}"]) == ["demo_web_v1_093c6d79f8b3"]
    assert remote.container_name("demo", "web", "v1@093c6d79f8b3") == "demo_web_v1_093c6d79f8b3"
    assert re.fullmatch(VERSION_PATTERN, "v1_093c6d79f8b3"), "a tag may spell a pinned name: the same role's only"


def test_locks_and_env_files_of_roles_accessories_and_the_host_never_meet() -> None:
    names = generated_names(40, seed=2)
    roles = [name for name in names if name != RESERVED_ROLE_NAME and not name.startswith(RESERVED_ROLE_PREFIX)]
    own_parts = ["host", *(f"accessory-{kind}" for kind in ACCESSORIES)]
    services = names[:10]
    owners = [(service, part) for service in services for part in [*roles, *own_parts]]
    env_files = lib(f"env_file {quoted(service, part)}" for service, part in owners)
    lock_files = lib(f"service_dir {quoted(service)}" for service, _part in owners)
    locks = [f"{directory}/locks/{part}.lock" for directory, (_service, part) in zip(lock_files, owners, strict=True)]
    assert len(set(env_files)) == len(owners)
    assert len(set(locks)) == len(owners)


def test_the_steps_check_part_names_as_the_config_does() -> None:
    assert lib(['echo "$PART_NAME_PATTERN"']) == [NAME_PATTERN]
    samples = ["web", "b-web", "a1", "Web", "web_1", "web.1", "-web", "web-", "1web", "a--b", "web-2"]
    program = 'for name in "$@"; do (check_part_name --role "$name" 2>/dev/null) && echo yes || echo no; done'
    done = subprocess.run(
        ["bash", "-c", f'source "{SCRIPTS_DIR}/lib.sh"\n{program}', "check", *samples],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    assert done.stdout.split() == ["yes" if re.fullmatch(NAME_PATTERN, sample) else "no" for sample in samples]


def test_no_service_network_can_take_the_name_of_a_fixed_network() -> None:
    services = generated_names(60, seed=3)
    targets = lib(f"fixed_network {quoted(service)}" for service in services)
    assert targets == [remote.fixed_network(service) for service in services]
    assert not set(targets) & set(services), "a service's own network is named as the service"


def test_a_container_is_given_a_host_address_of_the_subnet_never_its_network_gateway_or_broadcast() -> None:
    picks = lib(["for _ in $(seq 2000); do random_address 10.9.8.0/29; done"])
    assert set(picks) <= {f"10.9.8.{host}" for host in range(2, 7)}
    assert len(set(picks)) == 5, "every host address but the gateway can be picked"
    assert lib(["random_address 172.18.0.0/16"])[0].startswith("172.18.")


def test_a_target_names_the_container_at_its_address_or_by_its_id_when_routed_before_addresses() -> None:
    addresses = "addresses=$'3f2a9c1d2e4b5a6b7c8d 172.18.0.7/16\\n9a8b7c6d5e4f3a2b1c0d 172.18.0.17/16'"
    targets = ("172.18.0.17:80", "172.18.0.7:3000", "172.18.0.1:80", "3f2a9c1d2e4b:80")
    calls = [addresses, *(f'target_id {target} "$addresses"' for target in targets)]
    assert lib(calls) == ["9a8b7c6d5e4f", "3f2a9c1d2e4b", "-", "3f2a9c1d2e4b"]
