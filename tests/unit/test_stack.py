"""The wiring, under Pulumi mocks: which remote commands a stack creates, with which inputs."""

from __future__ import annotations

import asyncio
import hashlib
import re
import zlib
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml

from components import config, stack, swap_command
from components import role as role_module
from components.config import examples
from components.server import ExistingServer, HetznerServer, web_ports
from tests.support.commands import is_secret, option, script_argv
from tests.support.mocks import echoed

ROOT = Path(__file__).resolve().parents[2]
DATABASE_URL = "postgres://acme:s3cr3t-p4ss@db/acme"
BACKEND_DIGEST = "3f2a" * 16
BUILT_DIGEST = "9c0e" * 16


HETZNER_ADDRESS = "198.51.100.4"
HOST_PRIVATE_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"


class Mocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        # The inputs of each docker.Image and push check the program registered, by resource name.
        self.builds: dict[str, dict[str, Any]] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        outputs = dict(args.inputs)
        if args.typ == "hcloud:index/server:Server":
            outputs["ipv4Address"] = HETZNER_ADDRESS
        if args.typ == "docker:index/image:Image" or args.name.endswith("-push-check"):
            self.builds[args.name] = dict(args.inputs)
        if args.typ == "docker:index/image:Image":
            outputs["repoDigest"] = f"{args.inputs['imageName'].rsplit(':', 1)[0]}@sha256:{BUILT_DIGEST}"
        if echoed(args):
            outputs.update(echoed(args))
        elif args.typ == "command:local:Command" and "ssh-keygen" in args.inputs.get("create", ""):
            outputs["stdout"] = f"{HOST_PRIVATE_KEY}{HOST_KEY} quayside-host\n"
        elif args.typ == "command:local:Command":
            outputs["stdout"] = f"# 203.0.113.7:2200 SSH-2.0-OpenSSH_9.2\n[203.0.113.7]:2200 {HOST_KEY}\n"
        # Numeric ids, as Hetzner's: firewall_ids takes them as integers.
        return str(zlib.crc32(args.name.encode())), outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None


@pytest.fixture
def pulumi_mocks() -> Mocks:
    return Mocks()


HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHq9u5mVwK0p2Zr7xqQb3cJYtLk8dWn1sFv6gHe4aRz0"


def example_stack() -> config.StackConfig:
    """The SaaS example as these tests deploy it: the backend pulled by its digest instead of built, and no
    registry login, TLS or accessories (tests of their own cover those)."""
    raw = examples.saas()
    raw["roles"]["backend"]["image"] = f"ghcr.io/acme/backend@sha256:{BACKEND_DIGEST}"
    for key in ("registry", "proxy", "accessories"):
        del raw[key]
    return config.parse(raw, secrets_set={"ssh_private_key", "DATABASE_URL"})


def secret(name: str) -> pulumi.Output[str]:
    values = {"ssh_private_key": "-----BEGIN OPENSSH PRIVATE KEY-----\nkey\n", "DATABASE_URL": DATABASE_URL}
    return pulumi.Output.secret(values[name])


@pulumi.runtime.test
def test_a_proxied_role_swaps_through_swap_sh_with_its_hosts_and_health_check() -> pulumi.Output[None]:
    web = stack.deploy(example_stack(), secret).roles["web"]

    def check(create: str | None) -> None:
        assert create is not None
        argv = script_argv(create, "swap.sh")
        assert argv[:6] == ["--service", "acme", "--role", "web", "--image", "ghcr.io/acme/web:2026.11.1"]
        assert argv[6:8] == ["--version", "2026.11.1"]
        assert "--proxy" in argv
        assert option(argv, "--host") == ["acme.com"]
        assert option(argv, "--health-path") == ["/"]
        assert option(argv, "--deploy-timeout") == ["30s"]
        assert option(argv, "--retain") == ["5"]

    return web.deployed.create.apply(check)


@pulumi.runtime.test
def test_a_worker_has_no_proxy_route_and_keeps_its_command_argv() -> pulumi.Output[None]:
    worker = stack.deploy(example_stack(), secret).roles["worker"]

    def check(create: str | None) -> None:
        assert create is not None
        argv = script_argv(create, "swap.sh")
        assert "--no-proxy" in argv and "--host" not in argv and "--health-path" not in argv
        assert option(argv, "--cmd") == ["node", "dist/worker.js"]
        assert worker.urls == []

    return worker.deployed.create.apply(check)


@pulumi.runtime.test
def test_the_version_is_the_digest_prefix_and_a_new_one_updates_the_swap_in_place() -> pulumi.Output[None]:
    """No trigger replaces the swap: a new version re-runs create, which stops the old container itself, so no
    delete of the old command is left for the end of `pulumi up`."""
    backend = stack.deploy(example_stack(), secret).roles["backend"]

    def check(values: list[Any]) -> None:
        create, triggers = values
        assert option(script_argv(create, "swap.sh"), "--version") == [BACKEND_DIGEST[:12]]
        assert triggers is None

    return pulumi.Output.all(backend.deployed.create, backend.deployed.triggers).apply(check)


@pulumi.runtime.test
def test_deleting_a_swap_retires_exactly_that_version() -> pulumi.Output[None]:
    api = stack.deploy(example_stack(), secret).roles["api"]

    def check(delete: str | None) -> None:
        assert delete is not None
        argv = script_argv(delete, "retire.sh")
        assert argv == [
            "--service",
            "acme",
            "--role",
            "api",
            "--version",
            "2026.11.1",
            "--proxy",
            "--proxy-name",
            "quayside-proxy",
            "--lock-wait",
            str(swap_command.lock_wait(example_stack().roles["api"])),
        ]

    return api.deployed.delete.apply(check)


@pulumi.runtime.test
def test_secret_env_travels_over_stdin_as_a_secret_and_never_in_a_command() -> pulumi.Output[None]:
    backend = stack.deploy(example_stack(), secret).roles["backend"]
    assert backend.migration is not None
    commands = [backend.deployed.create, backend.migration.create]

    def check(values: list[Any]) -> None:
        *texts, stdin = values
        assert all(DATABASE_URL not in text for text in texts)
        assert stdin == f"DATABASE_URL={DATABASE_URL}\n"

    stdin = backend.deployed.stdin
    assert stdin is not None

    def check_secret(flag: bool) -> None:
        assert flag, "the env file on stdin must stay a secret in state"

    pulumi.Output.from_input(asyncio.ensure_future(stdin.is_secret())).apply(check_secret)  # type: ignore[arg-type]
    return pulumi.Output.all(*commands, stdin).apply(check)


@pulumi.runtime.test
def test_a_migration_runs_the_new_image_with_the_roles_env_before_its_swap() -> pulumi.Output[None]:
    backend = stack.deploy(example_stack(), secret).roles["backend"]
    assert backend.migration is not None

    def check(create: str | None) -> None:
        assert create is not None
        argv = script_argv(create, "migrate.sh")
        assert option(argv, "--image") == [f"ghcr.io/acme/backend@sha256:{BACKEND_DIGEST}"]
        assert option(argv, "--env") == ["NODE_ENV=production"]
        assert argv[argv.index("--") + 1 :] == ["sh", "-c", "node dist/migrate.js"]

    return backend.migration.create.apply(check)


@pulumi.runtime.test
def test_outputs_name_each_roles_urls_version_and_image() -> pulumi.Output[None]:
    outputs = stack.deploy(example_stack(), secret).outputs()

    def check(roles: dict[str, Any]) -> None:
        assert roles["web"] == {
            "urls": ["http://acme.com/"],
            "version": "2026.11.1",
            "image": "ghcr.io/acme/web:2026.11.1",
            "heals": 0,
        }
        assert roles["backend"]["version"] == BACKEND_DIGEST[:12]
        assert roles["worker"]["urls"] == []

    assert outputs["proxy_version"] == "v0.9.2"
    return pulumi.Output.from_input(outputs["roles"]).apply(check)


@pulumi.runtime.test
def test_a_hetzner_server_is_protected_firewalled_and_reached_at_its_address() -> pulumi.Output[None]:
    settings = example_stack().model_copy(
        update={
            "server": config.HetznerServer(
                provider="hetzner",
                type="cx32",
                location="nbg1",
                ssh_public_key="ssh-ed25519 AAAA deploy",
                ssh_from=["198.51.100.0/24"],
            )
        }
    )
    deployment = stack.deploy(settings, secret)
    server = deployment.server
    assert isinstance(server, HetznerServer)

    def check(values: list[Any]) -> None:
        host, protected, ports = values
        assert host == HETZNER_ADDRESS
        assert protected is True
        assert sorted((rule["protocol"], rule.get("port") or "") for rule in ports) == [
            ("icmp", ""), ("tcp", "22"), ("tcp", "443"), ("tcp", "80"),
        ]  # fmt: skip
        assert {rule["port"]: rule["source_ips"] for rule in ports if rule.get("port")}["22"] == ["198.51.100.0/24"]

    return pulumi.Output.all(server.host, server.machine.delete_protection, server.firewall.rules).apply(check)


def test_a_hetzner_firewall_opens_the_ports_its_proxy_publishes_and_no_web_port_without_a_public_proxy() -> None:
    assert web_ports(config.Proxy(), with_proxy=True) == (80, 443)
    assert web_ports(config.Proxy(http_port=8080, https_port=8443), with_proxy=True) == (8080, 8443)
    assert web_ports(config.Proxy(bind="127.0.0.1", http_port=8080, https_port=8443), with_proxy=True) == ()
    assert web_ports(config.Proxy(), with_proxy=False) == (), "a server of several that runs no proxied role"


@pulumi.runtime.test
def test_a_hetzner_server_whose_proxy_listens_on_loopback_opens_only_ssh() -> pulumi.Output[None]:
    settings = example_stack().model_copy(
        update={
            "server": config.HetznerServer(
                provider="hetzner", type="cx32", location="nbg1", ssh_public_key="ssh-ed25519 AAAA deploy"
            ),
            "proxy": config.Proxy(bind="127.0.0.1", http_port=8080, https_port=8443),
        }
    )
    server = stack.deploy(settings, secret).server
    assert isinstance(server, HetznerServer)

    def check(rules: Any) -> None:  # the mocks give the rules as dicts
        assert sorted((rule["protocol"], rule.get("port") or "") for rule in rules) == [("icmp", ""), ("tcp", "22")]

    return server.firewall.rules.apply(check)


@pulumi.runtime.test
def test_a_hetzner_server_gets_a_host_key_of_ours_in_cloud_init_and_connections_pin_it() -> pulumi.Output[None]:
    settings = example_stack().model_copy(
        update={"server": config.HetznerServer(provider="hetzner", ssh_public_key="ssh-ed25519 AAAA deploy")}
    )
    server = stack.deploy(settings, secret).server
    assert isinstance(server, HetznerServer)

    def check(values: list[Any]) -> None:
        user_data, host_key, user_data_is_secret = values
        assert user_data.startswith("#cloud-config\n")
        cloud_config = yaml.safe_load(user_data)
        assert cloud_config["ssh_keys"] == {
            "ed25519_private": HOST_PRIVATE_KEY,
            "ed25519_public": f"{HOST_KEY} quayside-host",
        }
        assert cloud_config["ssh_deletekeys"] is True and cloud_config["ssh_genkeytypes"] == ["ed25519"]
        # Only what must precede the first SSH connection: Docker and the rest are bootstrap.sh's, over SSH.
        assert set(cloud_config) == {"ssh_deletekeys", "ssh_genkeytypes", "ssh_keys"}
        assert host_key == HOST_KEY
        assert user_data_is_secret, "the host's private key must stay secret in state"

    user_data = server.machine.user_data
    assert user_data is not None
    return pulumi.Output.all(user_data, server.connection.host_key, is_secret(user_data)).apply(check)


@pulumi.runtime.test
def test_a_hetzner_server_is_bootstrapped_as_root_and_deployed_to_as_the_deploy_user() -> pulumi.Output[None]:
    settings = example_stack().model_copy(
        update={"server": config.HetznerServer(provider="hetzner", ssh_public_key="ssh-ed25519 AAAA deploy")}
    )
    deployment = stack.deploy(settings, secret)
    server = deployment.server
    bootstrap = deployment.bootstrap
    assert isinstance(server, HetznerServer) and bootstrap is not None

    def check(values: list[Any]) -> None:
        create, bootstrap_user, deploy_user, host_key = values
        argv = script_argv(create, "bootstrap.sh")
        assert option(argv, "--deploy-user") == ["deploy"] and option(argv, "--swap-mb") == ["2048"]
        assert "--no-unattended-upgrades" not in argv
        assert (bootstrap_user, deploy_user, host_key) == ("root", "deploy", HOST_KEY)

    return pulumi.Output.all(
        bootstrap.done.create,
        server.bootstrap_connection.user,
        server.connection.user,
        server.bootstrap_connection.host_key,
    ).apply(check)


@pulumi.runtime.test
def test_an_existing_server_is_bootstrapped_only_when_its_config_asks() -> pulumi.Output[None]:
    plain = stack.deploy(example_stack(), secret)
    assert plain.bootstrap is None and plain.server.bootstrap_connection is None
    server = example_stack().first_server.model_copy(
        update={
            "user": "app",
            "install_docker": False,
            "bootstrap": config.Bootstrap(swap_mb=0, unattended_upgrades=False),
        }
    )
    bootstrapped = stack.deploy(example_stack().model_copy(update={"server": server}), secret)
    assert bootstrapped.bootstrap is not None

    def check(create: str | None) -> None:
        assert create is not None
        argv = script_argv(create, "bootstrap.sh")
        assert option(argv, "--deploy-user") == ["app"] and option(argv, "--swap-mb") == ["0"]
        assert "--no-unattended-upgrades" in argv and "--no-install-docker" in argv

    return bootstrapped.bootstrap.done.create.apply(check)


def test_roles_deploy_after_the_roles_they_depend_on() -> None:
    order = stack.deploy_order(example_stack())
    assert order.index("backend") < order.index("api")
    assert sorted(order) == ["api", "backend", "web", "worker"]


def with_postgres() -> config.StackConfig:
    return example_stack().model_copy(update={"accessories": config.Accessories.model_validate({"postgres": {}})})


def secret_with_postgres(name: str) -> pulumi.Output[str]:
    return pulumi.Output.secret("pg-s3cr3t") if name == "postgres_password" else secret(name)


@pulumi.runtime.test
def test_a_role_listing_database_url_gets_the_postgres_accessorys_url_as_a_secret() -> pulumi.Output[None]:
    deployment = stack.deploy(with_postgres(), secret_with_postgres)
    stdin = deployment.roles["backend"].deployed.stdin
    assert stdin is not None
    outputs = deployment.outputs()

    def check(values: list[Any]) -> None:
        env_file, url, url_is_secret = values
        assert env_file == "DATABASE_URL=postgres://acme:pg-s3cr3t@acme-postgres:5432/acme\n"
        assert url == "postgres://acme:pg-s3cr3t@acme-postgres:5432/acme"
        assert url_is_secret, "the database_url output must stay a secret"

    url_is_secret = pulumi.Output.from_input(asyncio.ensure_future(outputs["database_url"].is_secret()))
    return pulumi.Output.all(stdin, outputs["database_url"], url_is_secret).apply(check)


def test_with_postgres_database_url_is_not_a_secret_to_set_but_postgres_password_is() -> None:
    needed = with_postgres().secret_names()
    assert "DATABASE_URL" not in needed
    assert "postgres_password" in needed


def stack_with_key_file(path: Path) -> config.StackConfig:
    return config.parse(
        {
            "service": "acme",
            "server": {
                "provider": "existing",
                "host": "127.0.0.1",
                "private_key_file": str(path),
                "host_key": HOST_KEY,
            },
            "roles": {"web": {"image": "ghcr.io/acme/web:1.0", "health": {"path": "/up"}}},
        },
        secrets_set=set(),
    )


@pulumi.runtime.test
def test_a_key_file_replaces_the_ssh_private_key_secret_and_stays_secret(tmp_path: Path) -> pulumi.Output[None]:
    key = tmp_path / "id_ed25519"
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nfrom a file\n")
    settings = stack_with_key_file(key)
    assert "ssh_private_key" not in settings.secret_names()

    def no_secret_reader(name: str) -> pulumi.Output[str]:
        raise AssertionError(f"read the config secret {name}")

    server = stack.deploy(settings, no_secret_reader).server
    private_key = server.connection.private_key
    assert isinstance(private_key, pulumi.Output)

    def check(values: list[Any]) -> None:
        text, is_secret = values
        assert text == key.read_text()
        assert is_secret

    return pulumi.Output.all(private_key, is_secret(private_key)).apply(check)


def test_an_unreadable_key_file_is_one_line_naming_the_key(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(config.ConfigError) as raised:
        stack.deploy(stack_with_key_file(missing), secret)

    assert str(raised.value).startswith(f"quayside config: server.private_key_file: cannot read {missing}")


def existing_server_stack(**server: Any) -> config.StackConfig:
    return config.parse(
        {
            "service": "acme",
            "server": {"provider": "existing", "host": "203.0.113.7", "port": 2200, **server},
            "roles": {"web": {"image": "ghcr.io/acme/web:1.0", "health": {"path": "/up"}}},
        },
        secrets_set={"ssh_private_key"},
    )


@pulumi.runtime.test
def test_every_connection_verifies_the_host_key_given_as_ssh_keyscan_prints_it() -> pulumi.Output[None]:
    deployment = stack.deploy(existing_server_stack(host_key=f"[203.0.113.7]:2200 {HOST_KEY}"), secret)

    def check(host_key: str | None) -> None:
        assert host_key == HOST_KEY

    return pulumi.Output.from_input(deployment.server.connection.host_key).apply(check)


def test_a_host_key_file_is_read_and_a_file_without_a_key_is_one_line(tmp_path: Path) -> None:
    good, bad = tmp_path / "host.pub", tmp_path / "empty.pub"
    good.write_text(f"{HOST_KEY} root@acme\n")
    bad.write_text("\n")

    deployment = stack.deploy(existing_server_stack(host_key_file=str(good)), secret)
    with pytest.raises(config.ConfigError) as raised:
        stack.deploy(existing_server_stack(host_key_file=str(bad)), secret)

    assert deployment.server.connection.host_key is not None
    assert str(raised.value) == (
        f"quayside config: server.host_key_file: {bad} holds no SSH public key line (ssh-ed25519 AAAA...)"
    )


@pulumi.runtime.test
def test_trust_on_first_use_pins_what_ssh_keyscan_saw_at_the_first_deploy() -> pulumi.Output[None]:
    server = stack.deploy(existing_server_stack(trust_first_use=True), secret).server
    assert isinstance(server, ExistingServer) and server.keyscan is not None

    def check(values: list[Any]) -> None:
        create, host_key = values
        assert create == "ssh-keyscan -T 10 -p 2200 -t ed25519 203.0.113.7"
        assert host_key == HOST_KEY

    return pulumi.Output.all(server.keyscan.create, server.host_key).apply(check)


@pulumi.runtime.test
def test_a_role_built_from_a_context_deploys_the_digest_its_push_gave(
    tmp_path: Path, pulumi_mocks: Mocks
) -> pulumi.Output[None]:
    (tmp_path / "web").mkdir()
    (tmp_path / "web" / "Dockerfile").write_text("FROM scratch\n")
    raw = example_stack().model_dump(exclude_unset=True)
    raw["registry"] = {"server": "registry.acme.com:5000"}
    raw["roles"]["web"]["image"] = {"context": str(tmp_path / "web"), "platform": "linux/arm64"}
    web = stack.deploy(config.parse(raw, secrets_set={"ssh_private_key", "DATABASE_URL"}), secret).roles["web"]

    def check(create: str | None) -> None:
        assert create is not None
        argv = script_argv(create, "swap.sh")
        assert option(argv, "--image") == [f"registry.acme.com:5000/acme-web@sha256:{BUILT_DIGEST}"]
        assert option(argv, "--version") == [BUILT_DIGEST[:12]]
        built = pulumi_mocks.builds["acme-web-image"]
        assert built["imageName"] == f"registry.acme.com:5000/acme-web:{pulumi.get_stack()}"
        assert built["build"]["platform"] == "linux/arm64"
        assert built["build"]["builderVersion"] == "BuilderBuildKit"
        assert built["registry"] == {"server": "registry.acme.com:5000"}
        # Checked first: whether the registry takes pushes (anonymous here, so nothing on stdin).
        check = pulumi_mocks.builds["acme-web-push-check"]
        assert check["create"] == "bash components/local/push-check.sh web registry.acme.com:5000"
        assert "stdin" not in check

    return web.deployed.create.apply(check)


CERTIFICATE_PEM = "-----BEGIN CERTIFICATE-----\nMIIBcert\n-----END CERTIFICATE-----\n"
KEY_PEM = "-----BEGIN PRIVATE KEY-----\nMIGHkey\n-----END PRIVATE KEY-----\n"


def stack_with_own_certificate() -> config.StackConfig:
    raw = examples.saas()
    raw["roles"]["backend"]["image"] = f"ghcr.io/acme/backend@sha256:{BACKEND_DIGEST}"
    raw["roles"]["web"]["ssl_certificate"] = {"certificate_pem": "WEB_PEM", "private_key_pem": "WEB_KEY_PEM"}
    for key in ("registry", "accessories"):
        del raw[key]
    return config.parse(raw, secrets_set={"ssh_private_key", "DATABASE_URL", "WEB_PEM", "WEB_KEY_PEM"})


def secret_with_certificate(name: str) -> pulumi.Output[str]:
    own = {"WEB_PEM": CERTIFICATE_PEM, "WEB_KEY_PEM": KEY_PEM}
    return pulumi.Output.secret(own[name]) if name in own else secret(name)


@pulumi.runtime.test
def test_a_roles_own_certificate_reaches_the_proxy_over_stdin_and_its_swap_names_it_by_hash() -> pulumi.Output[None]:
    web = stack.deploy(stack_with_own_certificate(), secret_with_certificate).roles["web"]
    [certificate] = web.certificates
    path = "/home/kamal-proxy/.config/kamal-proxy/tls/acme_web.pem"
    assert certificate.stdin is not None

    def check(values: list[Any]) -> None:
        written, swap, bundle, bundle_secret, swap_secret = values
        assert option(script_argv(written, "tls-certificate.sh"), "--path") == [path]
        swap_argv = script_argv(swap, "swap.sh")
        assert option(swap_argv, "--tls-certificate-path") == [path]
        assert option(swap_argv, "--tls-certificate-id") == [
            hashlib.sha256(CERTIFICATE_PEM.strip().encode()).hexdigest()[:16]
        ]
        assert "MIGHkey" not in written + swap and "MIIBcert" not in written + swap
        assert bundle == CERTIFICATE_PEM + KEY_PEM
        assert bundle_secret, "the key on stdin stays a secret in state"
        assert not swap_secret, "the swap's command line, the plan's words, holds only the certificate's hash"

    return pulumi.Output.all(
        certificate.create, web.deployed.create, certificate.stdin, is_secret(certificate.stdin),
        is_secret(web.deployed.create),
    ).apply(check)  # fmt: skip


def test_a_certificate_secret_that_holds_no_pem_is_refused_naming_the_secret() -> None:
    role = stack_with_own_certificate().roles["web"]

    with pytest.raises(ValueError, match="secret WEB_PEM holds no PEM certificate"):
        role_module.pem_bundle(role, "not a certificate", KEY_PEM)
    with pytest.raises(ValueError, match="secret WEB_KEY_PEM holds no PEM private key alone"):
        role_module.pem_bundle(role, CERTIFICATE_PEM, CERTIFICATE_PEM + KEY_PEM)


@pulumi.runtime.test
def test_each_servers_host_step_records_the_stacks_identity_which_no_service_name_is_part_of() -> pulumi.Output[None]:
    first = stack.deploy(example_stack(), secret)
    renamed = stack.deploy(example_stack().model_copy(update={"service": "acme2"}), secret)

    def check(creates: list[str]) -> None:
        ids = [option(script_argv(create, "host.sh", service), "--stack-id") for create, service in zip(
            creates, ["acme", "acme2"], strict=True)]  # fmt: skip
        assert all(len(found) == 1 and re.fullmatch(r"[0-9a-f]{32}", found[0]) for found in ids), ids

    assert stack.STACK_ID_RESOURCE == "quayside-stack-id"
    return pulumi.Output.all(first.first.host.ready.create, renamed.first.host.ready.create).apply(check)
