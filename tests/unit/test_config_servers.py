"""Several servers in the stack config: where each role and accessory runs, how many servers swap at a time, and
each server's private address; a stack with one `server:` answers the same questions with that server."""

from __future__ import annotations

import re
from typing import Any

import pytest

from components import config
from components.config import examples

# Every secret any example needs: the tests here are about placement, not secrets.
SECRETS = {
    "ssh_private_key",
    "registry_password",
    "DATABASE_URL",
    "postgres_password",
    "backup_passphrase",
    "s3_access_key_id",
    "s3_secret_access_key",
    "betterstack_token",
}
BACKUP: dict[str, Any] = {"s3": {"bucket": "acme-backups"}}


def parsed(stack: dict[str, Any]) -> config.StackConfig:
    return config.parse(stack, secrets_set=SECRETS)


def existing(n: int, **keys: Any) -> dict[str, Any]:
    return {"provider": "existing", "host": f"203.0.113.{n}", "private_ip": f"10.0.0.{n}", "trust_first_use": True,
            **keys}  # fmt: skip


def on_servers(servers: dict[str, Any], roles: dict[str, Any], accessories: dict[str, Any] | None = None) -> Any:
    role = {"image": "ghcr.io/acme/web:1.0", "proxy": False}
    stack = {"service": "acme", "servers": servers, "roles": {name: role | keys for name, keys in roles.items()}}
    return parsed(stack | ({"accessories": accessories} if accessories is not None else {}))


def test_a_one_server_stack_answers_with_its_server_named_server() -> None:
    stack = parsed(examples.saas())

    assert not stack.several_servers
    assert stack.servers_by_name() == {"server": stack.server}
    assert stack.first_server is stack.server
    assert stack.role_servers("web") == ["server"]
    assert [stack.accessory_server(name) for name in config.ACCESSORIES] == ["server", "server", "server"]
    assert stack.network is None and stack.private_address("server") is None
    assert stack.roles["web"].boot is None and stack.roles["web"].servers is None


def test_the_shipped_multi_server_example_places_each_role_and_accessory() -> None:
    stack = parsed(examples.hetzner_servers())

    assert stack.several_servers and stack.server is None
    assert list(stack.servers_by_name()) == ["app-1", "app-2", "db"]
    assert stack.first_server is stack.servers_by_name()["app-1"]
    assert stack.role_servers("web") == ["app-1", "app-2"], "db holds accessories only: web's default leaves it out"
    assert stack.role_servers("backend") == ["app-1", "app-2"]
    assert stack.role_servers("api") == ["app-2"]
    assert [stack.accessory_server(name) for name in config.ACCESSORIES] == ["db", "db", "app-1"]
    assert [stack.private_address(name) for name in stack.servers_by_name()] == ["10.0.1.10", "10.0.1.11", "10.0.1.12"]


def test_a_role_without_servers_runs_on_every_server_but_those_only_accessories_are_placed_on() -> None:
    servers = {"app-1": existing(11), "app-2": existing(12), "db": existing(13), "logs": existing(14)}
    stack = on_servers(
        servers,
        roles={"web": {}, "worker": {"servers": ["logs"]}},
        accessories={"postgres": {"server": "db"}, "vector": {"server": "logs"}},
    )

    assert stack.role_servers("web") == ["app-1", "app-2", "logs"], "db holds accessories only; logs runs a role too"
    assert stack.role_servers("worker") == ["logs"]


def test_the_server_postgres_names_runs_no_role_that_does_not_name_it() -> None:
    servers = {"app-1": existing(11), "app-2": existing(12)}
    stack = on_servers(servers, roles={"web": {}}, accessories={"postgres": {"server": "app-1"}})

    assert stack.accessory_server("postgres") == "app-1"
    assert stack.role_servers("web") == ["app-2"]


@pytest.mark.parametrize(
    ("accessories", "placed"),
    [
        ({"postgres": {"server": "app-1"}, "backup": BACKUP, "vector": {}}, ["app-1", "app-1", "app-1"]),
        ({"postgres": {"server": "db"}, "backup": BACKUP}, ["db", "db", "app-1"]),
        ({"postgres": {"server": "db"}, "vector": {"server": "app-2"}}, ["db", "db", "app-2"]),
        ({"postgres": {"server": "db"}, "backup": BACKUP | {"server": "app-2"}}, ["db", "app-2", "app-1"]),
    ],
    ids=["vector on the first", "backups follow postgres", "vector placed", "backups placed"],
)
def test_accessories_default_to_the_first_server_and_backups_to_postgress(
    accessories: dict[str, Any], placed: list[str]
) -> None:
    servers = {"app-1": existing(11), "app-2": existing(12), "db": existing(13)}
    stack = on_servers(servers, roles={"web": {"servers": ["app-1"]}}, accessories=accessories)

    assert [stack.accessory_server(name) for name in config.ACCESSORIES] == placed


def test_an_accessory_name_that_is_none_is_refused() -> None:
    with pytest.raises(ValueError, match="no accessory 'redis': accessories are postgres, backup, vector"):
        parsed(examples.hetzner_servers()).accessory_server("redis")


@pytest.mark.parametrize(
    ("limit", "servers", "at_once"),
    [(1, 3, 1), (2, 4, 2), (5, 3, 3), ("50%", 3, 2), ("34%", 3, 2), ("33%", 3, 1), ("1%", 3, 1), ("100%", 3, 3),
     ("25%", 10, 3), ("50%", 1, 1)],
)  # fmt: skip
def test_a_boot_limit_is_a_count_or_a_percentage_rounded_up_and_at_least_one(
    limit: int | str, servers: int, at_once: int
) -> None:
    stack = examples.smallest()
    stack["roles"]["web"]["boot"] = {"limit": limit}
    boot = parsed(stack).roles["web"].boot

    assert boot is not None and boot.limit == limit
    assert boot.hosts_at_once(servers) == at_once


def test_one_existing_server_in_servers_needs_no_private_address() -> None:
    server = {"provider": "existing", "host": "203.0.113.9", "trust_first_use": True}
    stack = on_servers({"app": server}, roles={"web": {}})

    assert stack.several_servers and stack.role_servers("web") == ["app"]
    assert stack.private_address("app") is None


def test_a_private_address_may_be_ipv6() -> None:
    stack = on_servers({"app-1": existing(11, private_ip="fd00::11"), "app-2": existing(12)}, roles={"web": {}})

    app_1 = stack.servers_by_name()["app-1"]
    assert isinstance(app_1, config.ExistingServer) and app_1.private_ip == "fd00::11"
    assert stack.private_address("app-1") == "fd00::11"


def test_hetzner_servers_get_a_network_at_its_defaults_and_existing_ones_none() -> None:
    hetzner = examples.hetzner_servers()
    del hetzner["network"]

    assert parsed(hetzner).network == config.Network()
    assert parsed(hetzner).network == config.Network(ip_range="10.0.0.0/16", subnet="10.0.1.0/24", zone="eu-central")
    assert parsed(examples.existing_servers()).network is None


def test_a_network_gives_the_nth_server_the_subnets_address_ten_plus_n() -> None:
    network = config.Network(ip_range="172.16.0.0/12", subnet="172.16.8.0/28", zone="us-east")

    assert [network.address_of(index) for index in range(5)] == [f"172.16.8.{10 + index}" for index in range(5)]
    with pytest.raises(ValueError, match=re.escape("the subnet 172.16.8.0/28 has addresses for servers 0 to 4, not 5")):
        network.address_of(5)


def test_servers_in_us_east_join_a_network_of_that_zone() -> None:
    stack = examples.hetzner_servers()
    for server in stack["servers"].values():
        server["location"] = "ash"
    stack["network"] = {"zone": "us-east"}

    assert parsed(stack).network == config.Network(zone="us-east")


@pytest.mark.parametrize(
    ("key_files", "needs_the_secret"),
    [({"app-1", "app-2"}, False), ({"app-1"}, True), (set(), True)],
    ids=["every server has a key file", "one has none", "none has one"],
)
def test_the_ssh_key_secret_is_needed_unless_every_server_has_a_key_file(
    key_files: set[str], needs_the_secret: bool
) -> None:
    servers = {name: existing(n) for n, name in ((11, "app-1"), (12, "app-2"))}
    for name in key_files:
        servers[name]["private_key_file"] = f"~/.ssh/{name}"
    stack = on_servers(servers, roles={"web": {}})

    assert ("ssh_private_key" in stack.secret_names()) is needs_the_secret


def test_hetzner_servers_always_need_the_ssh_key_secret() -> None:
    assert "ssh_private_key" in parsed(examples.hetzner_servers()).secret_names()
