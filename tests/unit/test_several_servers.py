"""The wiring of a service on several servers, under Pulumi mocks: what runs where, under which names, and what the
rollout of each role is given (on its command line, and on stdin as a secret)."""

from __future__ import annotations

import json
import shlex
from typing import Any

import pulumi

from components import config, rollout, server, stack, steps
from components.config import examples
from components.load_balancer import LoadBalancer
from components.role import AppRole
from tests.support.commands import is_secret

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHq9u5mVwK0p2Zr7xqQb3cJYtLk8dWn1sFv6gHe4aRz0"
ADDRESSES = {"app-1": "10.97.0.11", "app-2": "10.97.0.12", "db": "10.97.0.13"}
PRIVATE_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nkey\n"


def several_stack(**roles: dict[str, Any]) -> config.StackConfig:
    servers = {
        name: {"provider": "existing", "host": address, "host_key": KEY, "private_ip": address}
        for name, address in ADDRESSES.items()
    }
    return config.parse(
        {
            "service": "acme",
            "servers": servers,
            "roles": roles or {
                "web": {"image": "ghcr.io/acme/web:1.0", "hosts": ["acme.com"], "health": {"path": "/up"},
                        "servers": ["app-1", "app-2"], "boot": {"limit": 1}},
                "api": {"image": "ghcr.io/acme/api:1.0", "hosts": ["api.acme.com"], "health": {"path": "/up"},
                        "servers": ["app-2"], "env": {"secret": ["DATABASE_URL"]}},
            },
            "accessories": {"postgres": {"server": "db"}, "vector": {}},
        },
        secrets_set={"ssh_private_key", "postgres_password", "betterstack_token"},
    )  # fmt: skip


def secret(name: str) -> pulumi.Output[str]:
    values = {"ssh_private_key": PRIVATE_KEY, "postgres_password": "pw", "betterstack_token": "token"}
    return pulumi.Output.secret(values[name])


def test_each_server_gets_its_own_parts_named_by_it_and_a_proxy_only_where_a_proxied_role_runs() -> None:
    deployment = stack.deploy(several_stack(), secret)

    assert list(deployment.servers) == ["app-1", "app-2", "db"]
    assert [side.proxy is not None for side in deployment.servers.values()] == [True, True, False]
    assert {name: side.private_ip for name, side in deployment.servers.items()} == ADDRESSES
    assert deployment.accessories.servers == {"postgres": "db", "vector": "app-1"}
    assert list(deployment.accessories.vectors) == ["app-1", "app-2", "db"], "Vector ships each server's logs"


def test_a_role_is_placed_on_each_of_its_servers_and_rolled_out_by_one_step() -> None:
    web = stack.deploy(several_stack(), secret).roles["web"]

    assert list(web.placements) == ["app-1", "app-2"] and web.servers == ["app-1", "app-2"]
    assert isinstance(web, AppRole)


@pulumi.runtime.test
def test_the_rollout_names_its_servers_limit_and_swap_and_keeps_keys_and_env_on_stdin_as_a_secret() -> Any:
    api = stack.deploy(several_stack(), secret).roles["web"]

    def check(values: list[Any]) -> None:
        create, stdin, stdin_secret = values
        words = shlex.split(create)
        assert words[:2] == ["python3", "components/rollout.py"] or words[1].endswith("components/rollout.py")
        request = rollout.parse_request(words[2:], stdin)
        assert [server.where for server in request.servers] == ["app-1 (10.97.0.11)", "app-2 (10.97.0.12)"]
        assert request.limit == 1
        assert steps.SWAP.parse(request.swap_argv)["role"] == "web"
        assert PRIVATE_KEY not in create and stdin_secret
        assert json.loads(stdin)["private_keys"] == {"app-1": PRIVATE_KEY, "app-2": PRIVATE_KEY}

    return pulumi.Output.all(api.deployed.create, api.deployed.stdin, is_secret(api.deployed.stdin)).apply(check)


@pulumi.runtime.test
def test_postgres_on_its_own_server_listens_on_its_private_address_and_the_url_names_it() -> Any:
    deployment = stack.deploy(several_stack(), secret)
    postgres = deployment.accessories.postgres
    assert postgres is not None

    def check(values: list[Any]) -> None:
        create, url = values
        argv = shlex.split(create)
        assert "10.97.0.13:5432:5432" in argv and argv[argv.index("10.97.0.13:5432:5432") - 1] == "--publish"
        assert url == "postgres://acme:pw@10.97.0.13:5432/acme"

    return pulumi.Output.all(postgres.ready.create, postgres.database_url).apply(check)


def test_one_server_keeps_the_names_and_outputs_it_had() -> None:
    raw: dict[str, Any] = {
        "service": "acme",
        "server": {"provider": "existing", "host": "203.0.113.7", "host_key": KEY},
        "roles": {"web": {"image": "ghcr.io/acme/web:1.0", "health": {"path": "/up"}}},
    }
    deployment = stack.deploy(config.parse(raw, secrets_set={"ssh_private_key"}), secret)

    assert list(deployment.servers) == [config.ONE_SERVER]
    assert deployment.roles["web"].placements == {}
    assert {"servers", "hosts", "accessory_servers"}.isdisjoint(deployment.outputs())


def balanced_stack() -> config.StackConfig:
    raw = examples.behind_a_load_balancer()
    for settings in raw["servers"].values():
        settings["host_key"] = KEY
        del settings["trust_first_use"]
    return config.parse(raw, secrets_set={"ssh_private_key"})


@pulumi.runtime.test
def test_behind_a_load_balancer_the_roles_proxies_serve_plain_http_on_private_addresses_and_tls_ends_there() -> Any:
    deployment = stack.deploy(balanced_stack(), secret)
    balancer = deployment.balancer
    assert isinstance(balancer, LoadBalancer)
    proxies = {name: side.proxy for name, side in deployment.servers.items()}
    assert all(proxy is not None for proxy in proxies.values()), "the balancer's server runs the balancer's proxy"
    assert deployment.roles["web"].servers == ["app-1", "app-2"], "no role runs on the balancer's server"
    assert deployment.roles["web"].urls == ["https://acme.com/"], "users reach the roles through the balancer"

    def check(values: list[Any]) -> None:
        lb_proxy, app_proxy, web_rollout, web_route, api_route = values
        assert option(lb_proxy, "--bind") == ["0.0.0.0"]
        assert option(app_proxy, "--bind") == ["10.0.0.21"], "a role server's proxy listens on its private address"
        words = shlex.split(web_rollout)
        assert "--tls" not in words[words.index("--") :], "the roles' own routes are plain HTTP"
        assert option(web_route, "--target") == ["10.0.0.21:80", "10.0.0.22:80"]
        assert option(web_route, "--host") == ["acme.com"] and "--tls" in shlex.split(web_route)
        assert option(api_route, "--target") == ["10.0.0.22:80"]

    return pulumi.Output.all(
        proxies["lb"].ready.create, proxies["app-1"].ready.create,  # type: ignore[union-attr]
        deployment.roles["web"].deployed.create, balancer.routes["web"].create, balancer.routes["api"].create,
    ).apply(check)  # fmt: skip


def option(command: str, flag: str) -> list[str]:
    """The values of `flag` on a command line."""
    words = shlex.split(command)
    return [words[i + 1] for i, word in enumerate(words[:-1]) if word == flag]


def test_a_hetzner_server_behind_a_load_balancer_opens_no_web_port_and_the_balancers_opens_both() -> None:
    stack_config = balanced_stack()
    app = stack.server_proxy(stack_config, "app-1", "10.0.0.21")
    balancer = stack.server_proxy(stack_config, "lb", "10.0.0.20")

    assert server.web_ports(app, with_proxy=True) == ()
    assert server.web_ports(balancer, with_proxy=True) == (80, 443)
