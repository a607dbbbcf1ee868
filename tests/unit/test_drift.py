"""Drift, as the program judges it at `preview`/`up`: what serves on each server of a role (serving.sh) against what
the stack's own last outputs recorded; a role found not serving its recorded version runs its swap again with its
count of heals raised (swap.sh --heal), and nothing else changes. Under Pulumi mocks, with the servers' answers
made up; tests/e2e/test_drift.py heals real drift through the real engine."""

from __future__ import annotations

import shlex
from typing import Any

import pulumi
import pytest

from components import config, drift, ssh, stack
from components.drift import Reading, Recorded, Verdict
from tests.support.commands import is_secret, option
from tests.support.mocks import EchoMocks, EngineLog

HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHq9u5mVwK0p2Zr7xqQb3cJYtLk8dWn1sFv6gHe4aRz0"
RECORDED = {
    "web": {"urls": ["http://acme.com/"], "version": "1.0", "image": "ghcr.io/acme/web:1.0", "heals": 2},
    "api": {"urls": ["http://api.acme.com/"], "version": "1.0", "image": "ghcr.io/acme/api:1.0"},
}


class RecordedMocks(EchoMocks):
    """The stack's own last outputs, as its StackReference to itself reads them."""

    def __init__(self, roles: dict[str, Any] | None) -> None:
        self.roles = roles

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        if args.typ == "pulumi:pulumi:StackReference":
            outputs = {"roles": self.roles} if self.roles is not None else {}
            return args.name, {"name": args.inputs["name"], "outputs": outputs, "secretOutputNames": []}
        return super().new_resource(args)


@pytest.fixture
def pulumi_mocks(request: pytest.FixtureRequest) -> pulumi.runtime.Mocks:
    return RecordedMocks(getattr(request, "param", RECORDED))


class Servers:
    """serving.sh's answers, by server host; each read noted."""

    def __init__(self, **answers: Reading) -> None:
        self.answers = answers
        self.read: list[str] = []

    def __call__(self, endpoint: ssh.Endpoint, private_key: str, service: str) -> Reading:
        assert (private_key, service, endpoint.host_key) == ("deploy-key", "acme", HOST_KEY)
        self.read.append(endpoint.host)
        return self.answers[endpoint.host.split(".")[0]]


def one_server(web: str = "1.0", api: str = "1.0") -> config.StackConfig:
    return config.parse(
        {
            "service": "acme",
            "server": {"provider": "existing", "host": "app-1.acme.com", "host_key": HOST_KEY},
            "roles": {
                "web": {"image": f"ghcr.io/acme/web:{web}", "hosts": ["acme.com"], "health": {"path": "/up"}},
                "api": {"image": f"ghcr.io/acme/api:{api}", "hosts": ["api.acme.com"], "health": {"path": "/up"}},
            },
        },
        secrets_set={"ssh_private_key"},
    )


def two_servers() -> config.StackConfig:
    server = {"provider": "existing", "host_key": HOST_KEY}
    return config.parse(
        {
            "service": "acme",
            "servers": {
                "app-1": {**server, "host": "app-1.acme.com", "private_ip": "10.0.0.11"},
                "app-2": {**server, "host": "app-2.acme.com", "private_ip": "10.0.0.12"},
            },
            "roles": {
                "web": {"image": "ghcr.io/acme/web:1.0", "hosts": ["acme.com"], "health": {"path": "/up"}},
                "api": {"image": "ghcr.io/acme/api:1.0", "hosts": ["api.acme.com"], "health": {"path": "/up"},
                        "servers": ["app-2"]},
            },
        },
        secrets_set={"ssh_private_key"},
    )  # fmt: skip


def secret(name: str) -> pulumi.Output[str]:
    assert name == "ssh_private_key"
    return pulumi.Output.secret("deploy-key")


def heal_of(command: str) -> list[str]:
    return option(shlex.split(command), "--heal")


# --- the verdict -------------------------------------------------------------------------------------------------


def test_a_role_serving_its_recorded_version_everywhere_keeps_its_count() -> None:
    readings = {"app-1": Reading({"web": "1.0"}), "app-2": Reading({"web": "1.0", "api": "1.0"})}
    assert drift.judge("web", "1.0", Recorded("1.0", 2), readings) == Verdict(2)


def test_a_server_serving_another_version_or_nothing_raises_the_count_by_one_and_is_named() -> None:
    readings = {"app-1": Reading({"web": "0.9"}), "app-2": Reading({"api": "1.0"}), "app-3": Reading({"web": "1.0"})}
    verdict = drift.judge("web", "1.0", Recorded("1.0", 2), readings)

    assert verdict == Verdict(3, drifted={"app-1": "0.9", "app-2": None})
    assert verdict.warnings("web", "1.0") == [
        "web: app-1 serves 0.9, app-2 serves nothing, not 1.0 as the stack recorded: this update puts 1.0 back live "
        "(heal 3)"
    ]


def test_a_new_version_or_a_role_never_deployed_is_not_judged_its_swap_runs_anyway() -> None:
    nothing = {"app-1": Reading()}
    assert drift.judge("web", "1.1", Recorded("1.0", 2), nothing) == Verdict(2)
    assert drift.judge("web", "1.0", Recorded(), nothing) == Verdict(0)


def test_a_server_that_cannot_be_read_is_warned_about_and_changes_nothing() -> None:
    readings = {"server": Reading(error="ssh: connect to host 203.0.113.9 port 22: Connection timed out")}
    verdict = drift.judge("web", "1.0", Recorded("1.0", 0), readings)

    assert verdict.heal == 0
    assert verdict.warnings("web", "1.0") == [
        "web: what serves on the server was not checked (ssh: connect to host 203.0.113.9 port 22: Connection timed "
        "out): a drift there would go unseen this run"
    ]


def test_serving_sh_answers_role_and_version_lines() -> None:
    assert Reading.parse("web 1.0\napi 2.0@3f2a9c1d2e4b\n") == Reading({"web": "1.0", "api": "2.0@3f2a9c1d2e4b"})
    assert Reading.parse("") == Reading()
    assert Reading.parse("web\n").error == "serving.sh printed 'web', not ROLE VERSION"


def test_the_recorded_role_is_read_from_the_roles_output_of_any_age() -> None:
    assert Recorded.of(RECORDED, "web") == Recorded("1.0", 2)
    assert Recorded.of(RECORDED, "api") == Recorded("1.0", 0), "outputs from before heals were counted"
    assert Recorded.of(RECORDED, "worker") == Recorded()
    assert Recorded.of(None, "web") == Recorded(), "a stack never deployed has no outputs"


# --- through the program -----------------------------------------------------------------------------------------


def swaps(deployment: stack.Deployment) -> pulumi.Output[dict[str, str]]:
    return pulumi.Output.all(**{name: role.deployed.create for name, role in deployment.roles.items()})


@pulumi.runtime.test
def test_a_drifted_role_runs_its_swap_with_one_more_heal_and_the_others_stay_as_recorded(
    engine_log: EngineLog,
) -> pulumi.Output[None]:
    servers = Servers(**{"app-1": Reading({"api": "1.0"})})
    deployment = stack.deploy(one_server(), secret, read_server=servers)

    def check(created: dict[str, str]) -> None:
        assert heal_of(created["web"]) == ["3"]
        assert heal_of(created["api"]) == [], "api serves 1.0 as recorded, and has never been healed"
        assert servers.read == ["app-1.acme.com"], "one read of the server for both roles"
        assert engine_log.messages == [
            "web: the server serves nothing, not 1.0 as the stack recorded: this update puts 1.0 back live (heal 3)"
        ]

    return swaps(deployment).apply(check)


@pulumi.runtime.test
def test_the_count_a_role_was_healed_before_stays_on_its_swap_and_goes_into_the_outputs() -> pulumi.Output[None]:
    deployment = stack.deploy(
        one_server(), secret, read_server=Servers(**{"app-1": Reading({"web": "1.0", "api": "1.0"})})
    )
    roles = pulumi.Output.from_input(deployment.outputs()["roles"])

    def check(values: list[Any]) -> None:
        created, outputs = values
        assert heal_of(created["web"]) == ["2"] and heal_of(created["api"]) == []
        assert (outputs["web"]["heals"], outputs["api"]["heals"]) == (2, 0)

    return pulumi.Output.all(swaps(deployment), roles).apply(check)


@pulumi.runtime.test
def test_a_new_version_deploys_without_reading_the_servers() -> pulumi.Output[None]:
    servers = Servers()
    deployment = stack.deploy(one_server(web="1.1", api="1.1"), secret, read_server=servers)

    def check(created: dict[str, str]) -> None:
        assert servers.read == []
        assert heal_of(created["web"]) == ["2"], "the count stays with the role"

    return swaps(deployment).apply(check)


@pytest.mark.parametrize("pulumi_mocks", [None], indirect=True)
@pulumi.runtime.test
def test_a_stack_never_deployed_reads_no_server_and_sends_no_count() -> pulumi.Output[None]:
    servers = Servers()
    deployment = stack.deploy(one_server(), secret, read_server=servers)

    def check(created: dict[str, str]) -> None:
        assert servers.read == []
        assert heal_of(created["web"]) == [] and heal_of(created["api"]) == []

    return swaps(deployment).apply(check)


@pulumi.runtime.test
def test_on_several_servers_a_drift_on_one_reruns_the_roles_rollout_and_each_server_is_read_once(
    engine_log: EngineLog,
) -> pulumi.Output[None]:
    servers = Servers(**{"app-1": Reading({"web": "1.0"}), "app-2": Reading({"web": "0.9", "api": "1.0"})})
    deployment = stack.deploy(two_servers(), secret, read_server=servers)

    def check(created: dict[str, str]) -> None:
        assert heal_of(created["web"]) == ["3"] and heal_of(created["api"]) == []
        assert sorted(servers.read) == ["app-1.acme.com", "app-2.acme.com"]
        assert engine_log.messages == [
            "web: app-2 serves 0.9, not 1.0 as the stack recorded: this update puts 1.0 back live (heal 3)"
        ]

    return swaps(deployment).apply(check)


@pulumi.runtime.test
def test_the_swap_stays_public_though_the_key_that_read_the_server_is_secret() -> pulumi.Output[None]:
    deployment = stack.deploy(one_server(), secret, read_server=Servers(**{"app-1": Reading({"web": "0.9"})}))
    role = deployment.roles["web"]

    def check(secret_ness: list[bool]) -> None:
        assert secret_ness == [False, False]

    return pulumi.Output.all(is_secret(role.heal), is_secret(role.deployed.create)).apply(check)


def test_reading_an_unreachable_server_gives_its_error_within_the_connect_timeout() -> None:
    endpoint = ssh.Endpoint("127.0.0.1", 1, "deploy", HOST_KEY)  # port 1: nothing listens
    reading = drift.read_server(endpoint, "not a key", "acme")
    assert reading.versions == {} and reading.error is not None and "127.0.0.1" in reading.error, reading
