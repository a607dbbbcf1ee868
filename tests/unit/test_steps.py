"""Each remote script and its declaration in components/steps.py agree: every flag Python can send is one the
script parses, every option the script requires is one Python sends, and a script refuses to run without one.
The scripts run here only as far as their option parsing (bash on this machine, no server)."""

from __future__ import annotations

import re
import subprocess
from typing import Final

import pytest

from components import config, defaults, steps, swap_command
from components.accessories import backup, container, postgres, vector
from components.bootstrap import bootstrap_args
from components.config.types import NAME_PATTERN
from components.load_balancer import BalancedRole, route_args
from components.proxy import boot_args, remove_args
from components.remote import SCRIPTS_DIR
from components.role import certificate_args, migrate_args, retire_args
from components.server import host_key_args, volume_mount_args
from components.swap_command import swap_args
from quayside_cli.commands.exec_ import exec_args
from quayside_cli.commands.maintenance import maintenance_args

# Shell files in components/scripts that are no step Python runs with options of its own.
NOT_STEPS: Final = {
    "lib.sh": "helpers every step sources",
    "ops-lib.sh": "helpers the `quayside` command's steps source",
    "postgres-major.sh": "accessory.sh's move of a Postgres data directory to a newer major version, sourced by it",
    "backup-agent.sh": "runs inside the backup container, called by backup.sh and the container's command",
    "container-firewall.sh": "root's copy runs at every start of the engine (systemd), installed by bootstrap.sh",
}

WEB = config.Role.model_validate({
    "image": "ghcr.io/acme/web:1.4", "hosts": ["acme.com"], "path_prefix": "/app", "health": {"path": "/up"},
    "env": {"clear": {"MODE": "web"}}, "volumes": ["data:/data"], "memory": "512m", "cpus": 0.5,
    "cmd": ["bin/web"], "migrate": ["bin/migrate"],
})  # fmt: skip
WEB_OWN_CERTIFICATE = WEB.model_copy(
    update={"ssl_certificate": config.SslCertificate(certificate_pem="WEB_PEM", private_key_pem="WEB_KEY_PEM")}
)
WEB_CANARY = WEB.model_copy(update={"canary": config.Canary(percent=10, allow=["staff-1", "staff-2"])})
WORKER = config.Role.model_validate({"image": "ghcr.io/acme/worker:1.4", "proxy": False})
IMAGE = "ghcr.io/acme/web:1.4@sha256:" + "a" * 64
ACCESSORIES = config.StackConfig.model_validate({
    "service": "acme",
    "server": {"provider": "existing", "host": "203.0.113.7", "trust_first_use": True},
    "roles": {"web": {"image": "ghcr.io/acme/web:1.4", "proxy": False}},
    "accessories": {
        "postgres": {"publish": {"port": 15432}, "memory": "1g"},
        "backup": {"s3": {"bucket": "acme-backups"}, "host_network": True},
        "vector": {"memory": "256m"},
    },
}).accessories  # fmt: skip
assert ACCESSORIES is not None and ACCESSORIES.postgres is not None and ACCESSORIES.backup is not None
assert ACCESSORIES.vector is not None
POSTGRES, BACKUP, VECTOR = ACCESSORIES.postgres, ACCESSORIES.backup, ACCESSORIES.vector
POSTGRES_HOLDING = POSTGRES.model_copy(update={"hold_requests": "30s"})

# Command lines as the components and the `quayside` command build them, at least one per script and action.
EXAMPLES: Final[dict[str, list[list[str]]]] = {
    "swap.sh": [
        swap_args("acme", "web", WEB, IMAGE, "1.4@aaaaaaaaaaaa", proxy=config.Proxy(ssl=True)),
        swap_args("acme", "web", WEB, IMAGE, "1.4@aaaaaaaaaaaa", proxy=config.Proxy(ssl=True, ssl_redirect=False)),
        swap_args("acme", "worker", WORKER, IMAGE, "1.4@aaaaaaaaaaaa", retained_only=True),
        swap_args("acme", "web", WEB, IMAGE, "1.4@aaaaaaaaaaaa", heal=2),
        swap_args(
            "acme",
            "web",
            WEB_OWN_CERTIFICATE,
            IMAGE,
            "1.4@aaaaaaaaaaaa",
            proxy=config.Proxy(ssl=True),
            certificate_id="0123456789abcdef",
        ),
        swap_args("acme", "web", WEB_CANARY, IMAGE, "1.4@aaaaaaaaaaaa"),
    ],
    "tls-certificate.sh": [
        certificate_args("write", "acme", "web", config.Proxy(ssl=True)),
        certificate_args("remove", "acme", "web", config.Proxy(ssl=True)),
    ],
    "retire.sh": [retire_args("acme", "web", WEB, "1.4"), retire_args("acme", "worker", WORKER, "1.4")],
    "migrate.sh": [migrate_args("acme", "web", WEB, IMAGE, "1.4")],
    "accessory.sh": [
        container.boot_args("acme", postgres.spec("acme", POSTGRES)),
        container.boot_args("acme", postgres.spec("acme", POSTGRES_HOLDING, held_roles=["web", "api"])),
        container.boot_args("acme", backup.spec("acme", BACKUP, POSTGRES)),
        container.boot_args("acme", vector.spec("acme", VECTOR)),
        container.boot_args("acme", vector.spec("acme", VECTOR), heal=1),
        container.remove_args("acme", postgres.spec("acme", POSTGRES), delete_data=True),
    ],
    "proxy.sh": [boot_args("acme", config.Proxy()), boot_args("acme", config.Proxy(), heal=3), remove_args("acme")],
    "balancer.sh": [
        route_args("deploy", "acme", "web", BalancedRole(WEB, ["10.0.0.21:80", "10.0.0.22:80"], None), config.Proxy()),  # type: ignore[arg-type]
        route_args("remove", "acme", "web", None, config.Proxy(ssl=True)),
    ],
    "host.sh": [steps.HOST.argv(service="acme", no_install_docker=True, stack_id="3f0c9d8e2b7a4c61a5e4d3c2b1a09f8e")],
    "host-remove.sh": [steps.HOST_REMOVE.argv(service="acme")],
    "registry-login.sh": [steps.REGISTRY_LOGIN.argv(server="ghcr.io", username="acme")],
    "bootstrap.sh": [
        bootstrap_args("acme", "deploy", config.Bootstrap(unattended_upgrades=False), install_docker=False)
    ],
    "volume.sh": [volume_mount_args("/dev/disk/by-id/scsi-0HC_Volume_1", "acme")],
    "host-key.sh": [host_key_args("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHq9u5mVwK0p2Zr7xqQb3cJYtLk8dWn1sFv6gHe4aRz0")],
    "image-receive.sh": [
        steps.IMAGE_RECEIVE.argv(service="acme", image_id="sha256:" + "b" * 64, tag="web:bbbbbbbbbbbb")
    ],
    "backup.sh": [
        backup.image_args("postgres:16"),
        steps.BACKUP.argv("now", service="acme"),
        steps.BACKUP.argv("restore", service="acme", backup="latest", passphrase_stdin=True),
    ],
    "details.sh": [steps.DETAILS.argv(service="acme", proxy_name=defaults.PROXY_CONTAINER)],
    "logs.sh": [
        steps.LOGS.argv(
            service="acme",
            role="web",
            follow=True,
            since="10m",
            lines=20,
            grep="ERROR",
            proxy_name=defaults.PROXY_CONTAINER,
        ),
    ],
    "exec.sh": [exec_args("acme", "web", ["sh", "-c", "env"], reuse=True, interactive=True, tty=True)],
    "maintenance.sh": [maintenance_args("on", "acme", "web", "Back at noon")],
    "audit.sh": [steps.AUDIT.argv(service="acme", lines=50)],
    "live.sh": [steps.LIVE.argv(service="acme", role="web", proxy_name=defaults.PROXY_CONTAINER)],
    "serving.sh": [steps.SERVING.argv(service="acme", proxy_name=defaults.PROXY_CONTAINER)],
}


def parser_of(script: str) -> str:
    """The script's parse_options function: its option cases and its checks."""
    text = (SCRIPTS_DIR / script).read_text()
    match = re.search(r"^parse_options\(\) \{\n(.*?)^\}\n", text, re.MULTILINE | re.DOTALL)
    assert match is not None, f"{script} has no parse_options function"
    return match[1]


def parsed_flags(script: str) -> set[str]:
    return set(re.findall(r"^\s*(--[a-z][a-z0-9-]*)\)", parser_of(script), re.MULTILINE))


def required_flags(script: str) -> set[str]:
    return set(re.findall(r"\brequired(?:_toggle)? (--[a-z][a-z0-9-]*)", parser_of(script)))


def declared_flags(script: steps.Script) -> set[str]:
    return {flag for option in script.options for flag in option.flags}


def needs_something(option: steps.Option) -> bool:
    return option.required or bool(option.required_for) or option.required_with is not None


def run_parser(script: str, argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPTS_DIR / script), *argv], capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL
    )


def without(argv: list[str], option: steps.Option) -> list[str]:
    """The command line with every occurrence of the option (and its value) left out."""
    kept: list[str] = []
    skip = False
    for index, word in enumerate(argv):
        if skip:
            skip = False
        elif word == "--" and index > 0:
            kept.extend(argv[index:])
            break
        elif word in option.flags:
            skip = option.takes_value
        else:
            kept.append(word)
    return kept


def test_every_shell_file_is_a_declared_step_or_a_named_helper() -> None:
    files = {path.name for path in SCRIPTS_DIR.glob("*.sh")}

    assert files - set(NOT_STEPS) == set(steps.SCRIPTS)
    assert set(EXAMPLES) == set(steps.SCRIPTS)


@pytest.mark.parametrize("name", sorted(steps.SCRIPTS))
def test_the_script_parses_exactly_the_flags_its_declaration_sends(name: str) -> None:
    script = steps.SCRIPTS[name]

    assert parsed_flags(name) == declared_flags(script)
    assert ("--)" in parser_of(name)) == script.command


@pytest.mark.parametrize("name", sorted(steps.SCRIPTS))
def test_the_script_requires_exactly_the_options_its_declaration_always_sends(name: str) -> None:
    script = steps.SCRIPTS[name]

    assert required_flags(name) == {f"--{option.flag}" for option in script.options if needs_something(option)}


@pytest.mark.parametrize("name", sorted(steps.SCRIPTS))
def test_the_scripts_first_arguments_are_its_declared_actions(name: str) -> None:
    script = steps.SCRIPTS[name]
    accepted = re.findall(r"\$action == (\w+)|^\s+([a-z|\s]+)\) ;;$", parser_of(name), re.MULTILINE)
    words = {word.strip() for pair in accepted for part in pair for word in part.split("|") if word.strip()}

    assert words == set(script.actions)


@pytest.mark.parametrize("name", sorted(steps.SCRIPTS))
def test_the_command_lines_python_builds_read_back_as_their_declaration_says(name: str) -> None:
    script = steps.SCRIPTS[name]
    for argv in EXAMPLES[name]:
        values = script.parse(argv)
        action = values.pop("action", None)
        command = values.pop("command", [])
        assert isinstance(command, list)

        assert script.argv(action if isinstance(action, str) else None, command=command, **values) == argv


@pytest.mark.parametrize("name", sorted(steps.SCRIPTS))
def test_without_any_option_it_requires_the_script_stops_and_names_it(name: str) -> None:
    script = steps.SCRIPTS[name]
    for argv in EXAMPLES[name]:
        values = script.parse(argv)
        action = values.get("action")
        for option in script.options:
            if not option.needed(action if isinstance(action, str) else None, values):
                continue
            done = run_parser(name, without(argv, option))

            assert done.returncode != 0, f"{name} ran without --{option.flag}"
            assert f"missing required option --{option.flag}" in done.stderr, done.stderr


def test_python_refuses_to_build_a_command_line_without_an_option_the_script_requires() -> None:
    with pytest.raises(ValueError, match=re.escape("swap.sh: --port is required")):
        steps.SWAP.argv(service="acme", role="web", image=IMAGE, version="1", config_hash="c0ffee", proxy=False)
    with pytest.raises(ValueError, match=re.escape("accessory.sh boot: --network is required")):
        steps.ACCESSORY.argv("boot", service="acme", name="postgres", image="postgres:16", config_hash="c0ffee")
    with pytest.raises(TypeError, match=re.escape("swap.sh has no option --lock-timeout")):
        steps.SWAP.words({"lock_timeout": 300})


def test_the_lock_wait_the_scripts_use_is_the_one_the_steps_timeouts_allow_for() -> None:
    lib = (SCRIPTS_DIR / "lib.sh").read_text()

    assert re.findall(r"^readonly LOCK_WAIT_SECONDS=(\d+)$", lib, re.MULTILINE) == [str(defaults.LOCK_WAIT_SECONDS)]


@pytest.mark.parametrize("stop_timeout", [10, 600, 3600])
def test_a_roles_steps_wait_for_its_lock_at_least_as_long_as_a_swap_of_it_holds_it(stop_timeout: int) -> None:
    role = config.Role.model_validate(
        {"image": IMAGE, "health": {"path": "/up"}, "stop_timeout": stop_timeout, "deploy_timeout": "20m"}
    )
    migrating = role.model_copy(update={"migrate": ["true"]})
    sent = [
        steps.SWAP.parse(swap_args("acme", "web", role, IMAGE, "1"))["lock_wait"],
        steps.RETIRE.parse(retire_args("acme", "web", role, "1"))["lock_wait"],
        steps.MIGRATE.parse(migrate_args("acme", "web", migrating, IMAGE, "1"))["lock_wait"],
    ]

    assert set(sent) == {str(swap_command.lock_wait(role))}
    assert swap_command.lock_wait(role) >= max(defaults.LOCK_WAIT_SECONDS, swap_command.role_work(role))
    assert swap_command.role_work(role) > 20 * 60 + stop_timeout
    assert swap_command.swap_timeout(role) >= swap_command.lock_wait(role) + swap_command.role_work(role)


def test_a_scripts_command_line_names_its_script_for_whoever_reads_it_back() -> None:
    line = ["timeout", "--kill-after=10s", "60s", "bash", "/var/lib/quayside/acme/bin/retire.sh", "--service", "acme"]

    assert steps.script_of(line) == (steps.RETIRE, ["--service", "acme"])
    assert steps.script_of(["echo", "hello"]) is None


def test_the_plan_names_a_changed_option_by_its_declared_words() -> None:
    assert steps.SWAP.option("--health-path").said == "health path"
    assert steps.SWAP.option("--no-proxy") is steps.SWAP.option("--proxy")
    assert steps.SWAP.option("--config-hash").names_step


def test_the_proxys_own_network_sorts_before_every_service_network() -> None:
    """Docker gives a container's published ports to its first network by name (proxy.sh): the proxy's own network
    must come before any service's, and a service name starts with a letter."""
    assert defaults.PROXY_NETWORK < "a"
    assert re.fullmatch(NAME_PATTERN, "0web") is None and re.fullmatch(NAME_PATTERN, "web") is not None


def test_the_proxy_options_a_refusal_names_are_keys_of_the_proxy_config() -> None:
    proxy = (SCRIPTS_DIR / "proxy.sh").read_text()
    label = re.findall(r"options_label\(\) \{\n\s+echo \"(.*)\"", proxy)
    label_words = re.findall(r"(\w+)=\$", label[0])
    keys = dict(re.findall(r"\[(\w+)\]=\"([^\"]+)\"", proxy))

    assert set(keys) == set(label_words) == {"image", "http", "https", "state"}
    named = {key for words in keys.values() for key in re.findall(r"proxy\.(\w+)", words)}
    assert named <= set(config.Proxy.model_fields), named - set(config.Proxy.model_fields)


def test_a_tls_roles_redirect_flag_is_sent_only_when_plain_http_is_served_too() -> None:
    # Only the off state is on the line: a role deployed before the option existed keeps its config hash.
    redirected = swap_args("acme", "web", WEB, IMAGE, "1.4@aaaaaaaaaaaa", proxy=config.Proxy(ssl=True))
    served = swap_args("acme", "web", WEB, IMAGE, "1.4@aaaaaaaaaaaa", proxy=config.Proxy(ssl=True, ssl_redirect=False))
    plain = swap_args("acme", "web", WEB, IMAGE, "1.4@aaaaaaaaaaaa", proxy=config.Proxy())

    assert "--no-tls-redirect" not in redirected and "--tls" in redirected
    assert "--no-tls-redirect" in served
    assert "--tls" not in plain and "--no-tls-redirect" not in plain
    hashes = {steps.SWAP.parse(args)["config_hash"] for args in (redirected, served, plain)}
    assert len(hashes) == 3


def test_a_canary_is_sent_beside_the_containers_options_so_promoting_it_keeps_its_container() -> None:
    canary = swap_command.swap_args("acme", "web", WEB_CANARY, IMAGE, "1.4@aaaaaaaaaaaa")
    plain = swap_command.swap_args("acme", "web", WEB, IMAGE, "1.4@aaaaaaaaaaaa")
    fast_switch = swap_command.swap_args("acme", "web", WEB_CANARY, IMAGE, "1.4@aaaaaaaaaaaa", retained_only=True)

    parsed = steps.SWAP.parse(canary)
    assert (parsed["canary_percent"], parsed["canary_allow"]) == ("10", ["staff-1", "staff-2"])
    assert parsed["config_hash"] == steps.SWAP.parse(plain)["config_hash"]
    assert "--canary-percent" not in fast_switch, "a rollback's fast switch ends any canary"


def test_holding_requests_through_a_postgres_restart_changes_how_it_restarts_not_what_runs() -> None:
    plain = steps.ACCESSORY.parse(container.boot_args("acme", postgres.spec("acme", POSTGRES)))
    holding = steps.ACCESSORY.parse(
        container.boot_args("acme", postgres.spec("acme", POSTGRES_HOLDING, held_roles=["api", "web"]))
    )

    assert (holding["hold_for"], holding["hold_role"], holding["proxy_name"]) == (
        "30s",
        ["api", "web"],
        "quayside-proxy",
    )
    assert holding["config_hash"] == plain["config_hash"], "turning the hold on must not restart Postgres"
