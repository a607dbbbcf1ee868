"""Drift, as the program judges it at `preview`/`up`: what serves on each server (serving.sh) against what the
stack's steps recorded there; a role found not serving its recorded version, or a recorded kamal-proxy or
accessory not running, runs its step again with its count of heals raised (--heal), and nothing else changes.
Under Pulumi mocks, with the servers' answers made up; tests/e2e/test_drift.py heals real drift through the real
engine."""

from __future__ import annotations

import asyncio
import shlex
from dataclasses import replace
from typing import Any

import pulumi
import pytest
from pulumi_command import remote as remote_command

from components import config, drift, ssh, stack
from components.drift import PartHere, Reading, RoleHere, Verdict
from tests.support.commands import is_secret, option
from tests.support.mocks import EchoMocks, EngineLog, RecordingMonitor

HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHq9u5mVwK0p2Zr7xqQb3cJYtLk8dWn1sFv6gHe4aRz0"
RECORDED: dict[str, Any] = {
    "roles": {
        "web": {"urls": ["http://acme.com/"], "version": "1.0", "image": "ghcr.io/acme/web:1.0", "heals": 2},
        "api": {"urls": ["http://api.acme.com/"], "version": "1.0", "image": "ghcr.io/acme/api:1.0"},
    },
    "heals": {"server": {"proxy": 0, "postgres": 4}, "app-1": {"proxy": 1}, "app-2": {"proxy": 0}},
}
# A server serving all that its steps recorded: web healed twice, Postgres four times.
ALL_SERVE = Reading(
    {"web": RoleHere("1.0", "1.0", 2), "api": RoleHere("1.0", "1.0", 0)},
    {"proxy": PartHere(True, 0), "postgres": PartHere(True, 4)},
)


class RecordedMocks(EchoMocks):
    """The stack's own last outputs, as its StackReference to itself reads them."""

    def __init__(self, outputs: dict[str, Any] | None) -> None:
        self.outputs = outputs
        self.reads = 0  # how many times the program read them

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        if args.typ == "pulumi:pulumi:StackReference":
            self.reads += 1
            outputs = self.outputs or {}
            return args.name, {"name": args.inputs["name"], "outputs": outputs, "secretOutputNames": []}
        return super().new_resource(args)


@pytest.fixture
def pulumi_mocks(request: pytest.FixtureRequest) -> RecordedMocks:
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
            "accessories": {"postgres": {"version": "16"}, "vector": {"ingest_url": "https://in.logs.example"}},
        },
        secrets_set={"ssh_private_key", "postgres_password", "betterstack_token"},
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
    return pulumi.Output.secret("deploy-key" if name == "ssh_private_key" else f"{name}-value")


def heal_of(command: str) -> list[str]:
    return option(shlex.split(command), "--heal")


# --- the verdict -------------------------------------------------------------------------------------------------


def here(live: str | None, deployed: str | None = "1.0", heals: int = 2) -> Reading:
    return Reading({"web": RoleHere(live, deployed, heals)})


def test_a_role_serving_what_its_records_name_keeps_their_count() -> None:
    assert drift.judge("web", "1.0", {"app-1": here("1.0"), "app-2": here("1.0")}) == Verdict(2)


def test_a_server_serving_another_version_or_nothing_than_its_record_raises_the_count_by_one_and_is_named() -> None:
    readings = {"app-1": here("0.9"), "app-2": here(None), "app-3": here("1.0")}

    assert drift.judge("web", "1.0", readings) == Verdict(
        3,
        "quayside: web: app-1 serves 0.9, app-2 serves nothing, not 1.0 as the stack recorded: this update puts 1.0 "
        "back live (heal 3)",
    )


def test_a_new_version_or_a_server_without_a_record_of_it_is_not_judged_and_the_count_stays() -> None:
    assert drift.judge("web", "1.1", {"app-1": here("1.0")}) == Verdict(2), "a new version: its swap runs anyway"
    assert drift.judge("web", "1.0", {"app-1": here(None, None, 0), "app-2": here("1.0", "1.0", 2)}) == Verdict(2)
    assert drift.judge("web", "1.0", {"app-1": Reading()}) == Verdict(0), "never deployed there"


def test_a_recorded_part_not_running_raises_its_count_and_one_without_a_record_is_not_judged() -> None:
    stopped = Reading(
        parts={"postgres": PartHere(False, 4), "proxy": PartHere(False, 0), "vector": PartHere(False, None)}
    )

    assert drift.judge_part("postgres", "db", stopped) == Verdict(
        5, "quayside: postgres: not running on db, as the stack recorded it: this update starts it again (heal 5)"
    )
    assert drift.judge_part("proxy", "server", stopped) == Verdict(
        1,
        "quayside: kamal-proxy: not running on the service's network on the server, as the stack recorded it: "
        "this update starts it again (heal 1)",
    )
    assert drift.judge_part("vector", "db", stopped) == Verdict(0), "no record: deployed before records were kept"
    assert drift.judge_part("backup", "db", stopped) == Verdict(0), "not there at all: new to the stack"
    assert drift.judge_part("postgres", "db", Reading(parts={"postgres": PartHere(True, 4)})) == Verdict(4)


def test_serving_sh_answers_a_line_for_each_part_running_or_recorded() -> None:
    answer = (
        "role web 1.0 1.0 2\nrole api - 2.0@3f2a9c1d2e4b 0\nrole old 0.9 - -\naccessory postgres no 4\n"
        "data postgres 15\nproxy yes -\n"
    )

    assert Reading.parse(answer) == Reading(
        {
            "web": RoleHere("1.0", "1.0", 2),
            "api": RoleHere(None, "2.0@3f2a9c1d2e4b", 0),
            "old": RoleHere("0.9", None, 0),
        },
        {"postgres": PartHere(False, 4), "proxy": PartHere(True, None)},
        {"postgres": "15"},
    )
    assert Reading.parse("") == Reading()
    assert Reading.parse("role web 1.0\n").error == (
        "serving.sh printed 'role web 1.0', not a role, accessory, data or proxy line"
    )


def test_the_counts_of_a_server_that_cannot_be_read_come_from_the_outputs_of_any_age() -> None:
    assert drift.count_at(RECORDED["roles"], "web", "heals") == 2
    assert drift.count_at(RECORDED["roles"], "api", "heals") == 0, "outputs from before heals were counted"
    assert drift.count_at(None, "web", "heals") == 0, "a stack never deployed has no outputs"
    assert drift.count_at(RECORDED["heals"], "server", "postgres") == 4
    assert drift.count_at(RECORDED["heals"], "server", "vector") == 0
    assert drift.count_at(None, "server", "proxy") == 0


# --- through the program -----------------------------------------------------------------------------------------


def created(deployment: stack.Deployment) -> pulumi.Output[dict[str, str]]:
    """The create command of each role's swap or rollout, each server's proxy and each accessory, by name."""
    steps = {name: role.deployed.create for name, role in deployment.roles.items()}
    steps |= {f"proxy on {name}": side.proxy.ready.create for name, side in deployment.servers.items() if side.proxy}
    if deployment.accessories.postgres is not None:
        steps["postgres"] = deployment.accessories.postgres.ready.create
    steps |= {f"vector on {name}": vector.ready.create for name, vector in deployment.accessories.vectors.items()}
    return pulumi.Output.all(**steps)


def healed(commands: dict[str, str]) -> dict[str, str]:
    """The steps sent a count of heals, and the count."""
    return {name: heal_of(command)[0] for name, command in commands.items() if heal_of(command)}


@pulumi.runtime.test
def test_a_drifted_role_runs_its_swap_with_one_more_heal_and_the_rest_keep_their_counts(
    engine_log: EngineLog, pulumi_mocks: RecordedMocks
) -> pulumi.Output[None]:
    web_gone = replace(ALL_SERVE, roles={**ALL_SERVE.roles, "web": RoleHere(None, "1.0", 2)})
    servers = Servers(**{"app-1": web_gone})
    deployment = stack.deploy(one_server(), secret, read_server=servers)

    def check(commands: dict[str, str]) -> None:
        assert healed(commands) == {"web": "3", "postgres": "4"}, "api and the proxy have never been healed"
        assert servers.read == ["app-1.acme.com"], "one read of the server for all its parts"
        assert engine_log.messages == [
            "quayside: web: the server serves nothing, not 1.0 as the stack recorded: this update puts 1.0 back live "
            "(heal 3)"
        ]
        assert pulumi_mocks.reads == 0, "the stack's own outputs are not read"

    return created(deployment).apply(check)


@pulumi.runtime.test
def test_a_proxy_or_accessory_not_running_as_recorded_runs_its_step_again(engine_log: EngineLog) -> pulumi.Output[None]:
    stopped = {name: PartHere(False, part.heals) for name, part in ALL_SERVE.parts.items()}
    deployment = stack.deploy(one_server(), secret, read_server=Servers(**{"app-1": replace(ALL_SERVE, parts=stopped)}))

    def check(commands: dict[str, str]) -> None:
        assert healed(commands) == {"web": "2", "proxy on server": "1", "postgres": "5"}
        assert sorted(engine_log.messages) == [
            "quayside: kamal-proxy: not running on the service's network on the server, as the stack recorded it: "
            "this update starts it again (heal 1)",
            "quayside: postgres: not running on the server, as the stack recorded it: this update starts it again "
            "(heal 5)",
        ], "vector has no record there: it is new to the stack"

    return created(deployment).apply(check)


@pulumi.runtime.test
def test_the_counts_go_into_the_outputs_once_their_steps_have_run() -> pulumi.Output[None]:
    deployment = stack.deploy(one_server(), secret, read_server=Servers(**{"app-1": ALL_SERVE}))
    outputs = deployment.outputs()

    def check(values: list[Any]) -> None:
        roles, parts = values
        assert (roles["web"]["heals"], roles["api"]["heals"]) == (2, 0)
        assert parts == {"server": {"proxy": 0, "postgres": 4, "vector": 0}}

    return pulumi.Output.all(
        pulumi.Output.from_input(outputs["roles"]), pulumi.Output.from_input(outputs["heals"])
    ).apply(check)


@pulumi.runtime.test
def test_a_new_version_keeps_the_count_its_servers_recorded() -> pulumi.Output[None]:
    deployment = stack.deploy(one_server(web="1.1", api="1.1"), secret, read_server=Servers(**{"app-1": ALL_SERVE}))

    def check(commands: dict[str, str]) -> None:
        assert healed(commands) == {"web": "2", "postgres": "4"}

    return created(deployment).apply(check)


@pulumi.runtime.test
def test_a_server_deployed_before_the_records_were_kept_sends_no_count() -> pulumi.Output[None]:
    unrecorded = Reading(
        {"web": RoleHere("1.0", None, 0), "api": RoleHere(None, None, 0)},
        {"proxy": PartHere(False, None), "postgres": PartHere(True, None)},
    )
    deployment = stack.deploy(one_server(), secret, read_server=Servers(**{"app-1": unrecorded}))

    def check(commands: dict[str, str]) -> None:
        assert healed(commands) == {}, "nothing is judged without a record: no step changes"

    return created(deployment).apply(check)


@pulumi.runtime.test
def test_a_server_that_cannot_be_read_is_named_in_one_warning_and_keeps_the_counts_the_stack_recorded(
    engine_log: EngineLog, pulumi_mocks: RecordedMocks
) -> pulumi.Output[None]:
    timed_out = Reading(error="ssh: connect to host app-1.acme.com port 22: Connection timed out")
    deployment = stack.deploy(one_server(), secret, read_server=Servers(**{"app-1": timed_out}))

    def check(commands: dict[str, str]) -> None:
        assert healed(commands) == {"web": "2", "postgres": "4"}, "as the last up recorded them: no change"
        assert engine_log.messages == [
            "what serves on the server was not checked (ssh: connect to host app-1.acme.com port 22: Connection "
            "timed out): a drift there would go unseen this run"
        ]
        assert pulumi_mocks.reads == 1, "the stack's own outputs, read once for all its parts there"

    return created(deployment).apply(check)


@pulumi.runtime.test
def test_on_several_servers_a_drift_on_one_reruns_the_roles_rollout_and_each_server_is_read_once(
    engine_log: EngineLog,
) -> pulumi.Output[None]:
    app_1 = Reading({"web": RoleHere("1.0", "1.0", 2)}, {"proxy": PartHere(True, 1)})
    app_2 = Reading({"web": RoleHere("0.9", "1.0", 2), "api": RoleHere("1.0", "1.0", 0)}, {"proxy": PartHere(False, 0)})
    servers = Servers(**{"app-1": app_1, "app-2": app_2})
    deployment = stack.deploy(two_servers(), secret, read_server=servers)

    def check(commands: dict[str, str]) -> None:
        assert healed(commands) == {"web": "3", "proxy on app-1": "1", "proxy on app-2": "1"}
        assert sorted(servers.read) == ["app-1.acme.com", "app-2.acme.com"]
        assert sorted(engine_log.messages) == [
            "quayside: kamal-proxy: not running on the service's network on app-2, as the stack recorded it: "
            "this update starts it again (heal 1)",
            "quayside: web: app-2 serves 0.9, not 1.0 as the stack recorded: this update puts 1.0 back live (heal 3)",
        ]

    return created(deployment).apply(check)


@pulumi.runtime.test
def test_the_steps_stay_public_though_the_key_that_read_the_server_is_secret() -> pulumi.Output[None]:
    web_moved = replace(ALL_SERVE, roles={**ALL_SERVE.roles, "web": RoleHere("0.9", "1.0", 2)})
    deployment = stack.deploy(one_server(), secret, read_server=Servers(**{"app-1": web_moved}))
    role, proxy = deployment.roles["web"], deployment.first.proxy
    assert proxy is not None

    def check(secret_ness: list[bool]) -> None:
        assert secret_ness == [False, False, False]

    return pulumi.Output.all(
        is_secret(role.heal), is_secret(role.deployed.create), is_secret(proxy.ready.create)
    ).apply(check)


def test_reading_an_unreachable_server_gives_its_error_within_the_connect_timeout() -> None:
    endpoint = ssh.Endpoint("127.0.0.1", 1, "deploy", HOST_KEY)  # port 1: nothing listens
    reading = drift.read_server(endpoint, "not a key", "acme")
    assert reading.roles == {} and reading.error is not None and "127.0.0.1" in reading.error, reading
    assert reading.refused, "nothing listens there: the connection is refused"


def unknown() -> pulumi.Output[str]:
    """A value a preview does not know yet, as a new Hetzner server's address."""
    loop = asyncio.get_event_loop()
    value: asyncio.Future[str | None] = loop.create_future()
    value.set_result(None)
    known: asyncio.Future[bool] = loop.create_future()
    known.set_result(False)
    return pulumi.Output(set(), value, known)  # type: ignore[arg-type]


@pulumi.runtime.test
def test_a_server_not_made_yet_is_not_read_and_its_parts_send_no_count() -> pulumi.Output[None]:
    servers = Servers()
    check = drift.DriftCheck("acme", servers)
    check.add_server(
        "app-1",
        remote_command.ConnectionArgs(host=unknown(), private_key="deploy-key"),
        drift.HostKeyPin("server", "server", ""),
    )

    def check_counts(counts: list[int]) -> None:
        assert counts == [0, 0] and servers.read == []

    return pulumi.Output.all(
        check.part_heal("app-1", "proxy"), check.role_heal("web", ["app-1"], pulumi.Output.from_input("1.0"))
    ).apply(check_counts)


def refusing(endpoint: ssh.Endpoint, private_key: str, service: str) -> Reading:
    """A server that shows another host key than the pinned one, as ssh names such a key."""
    raise drift.HostKeyRefused(endpoint, "ED25519 SHA256:S6Jmn5bl7Cp9heY+nf1Gh6NR5Ik4GtixKj1Z30anwJo")


def refusal(stack_config: config.StackConfig, read_server: drift.ServerReader = refusing) -> str:
    """The one line a run ends with when the program reads a server that no step may reach (by default, one that
    shows another host key)."""

    @pulumi.runtime.test
    def program() -> pulumi.Output[dict[str, str]]:
        return created(stack.deploy(stack_config, secret, read_server=read_server))

    with pytest.raises(pulumi.RunError) as refused:
        program()
    return str(refused.value)


def pinned(host: str) -> str:
    return ssh.Endpoint(host, 22, "root", HOST_KEY).fingerprint


def test_a_server_showing_another_host_key_ends_the_run_in_one_line_before_any_step_connects_to_it(
    mock_monitor: RecordingMonitor,
) -> None:
    said = refusal(one_server())

    registered = set(mock_monitor.types.values())
    assert "command:remote:Command" not in registered, "a step connected: each waits for the server's read"
    assert "quayside:index:DockerHost" in registered, "the program ran up to the steps"
    assert said == (
        "quayside: server.host_key: app-1.acme.com:22 presents the host key ED25519 "
        f"SHA256:S6Jmn5bl7Cp9heY+nf1Gh6NR5Ik4GtixKj1Z30anwJo, not the pinned {pinned('app-1.acme.com')}, so nothing "
        "was sent to it. If the server was rebuilt or its key changed, check the new key on the server itself "
        "(ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub) and pin it in server.host_key; if not, something else "
        "answers at its address"
    )


def test_the_refusal_names_the_key_each_way_of_pinning_reads() -> None:
    several = stack.Placement("app-2", 1, several=True)
    existing = {"provider": "existing", "host": "app-2.acme.com"}
    file = config.ExistingServer.model_validate({**existing, "host_key_file": "~/.ssh/app-2.pub"})
    first_use = config.ExistingServer.model_validate({**existing, "trust_first_use": True})
    hetzner = config.HetznerServer(provider="hetzner", type="cx32", location="nbg1", ssh_public_key="ssh-ed25519 AAAA")

    assert stack.host_key_pin(several, file, "acme-server-app-2") == drift.HostKeyPin(
        "servers.app-2", "servers.app-2.host_key_file", "pin it in servers.app-2.host_key_file"
    )
    assert stack.host_key_pin(several, first_use, "acme-server-app-2") == drift.HostKeyPin(
        "servers.app-2",
        "servers.app-2.trust_first_use",
        "pin it in servers.app-2.host_key, in place of trust_first_use (which pinned the first key seen)",
    )
    assert stack.host_key_pin(stack.Placement("server", 0, several=False), hetzner, "acme-server") == drift.HostKeyPin(
        "server",
        "server",
        "have it make and pin a new one: `pulumi up --replace URN`, URN that of acme-server-host-key-rotation "
        "(pulumi stack --show-urns)",
    )


class RefusingFor:
    """A server whose sshd refuses connections for its first `times` reads, then answers ALL_SERVE."""

    def __init__(self, times: int) -> None:
        self.times = times
        self.reads = 0

    def __call__(self, endpoint: ssh.Endpoint, private_key: str, service: str) -> Reading:
        self.reads += 1
        if self.reads <= self.times:
            return Reading(error=f"ssh: connect to host {endpoint.host} port 22: Connection refused", refused=True)
        return ALL_SERVE


@pytest.fixture
def short_refusals(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(drift, "REFUSED_SECONDS", 0.3)
    monkeypatch.setattr(drift, "REFUSED_POLL_SECONDS", 0.05)


@pytest.mark.usefixtures("short_refusals")
def test_an_up_ends_at_a_server_that_still_refuses_ssh_connections_before_any_step_dials_it(
    mock_monitor: RecordingMonitor,
) -> None:
    refusing = RefusingFor(times=1000)

    assert refusal(one_server(), refusing) == (
        "quayside: server: app-1.acme.com:22 refuses SSH connections (ssh: connect to host app-1.acme.com port 22: "
        "Connection refused), still after 0.3 s, so no step was sent to it: start its sshd, then pulumi up again"
    )
    assert refusing.reads > 2, "asked again until the deadline"
    assert "command:remote:Command" not in set(mock_monitor.types.values())


@pytest.mark.usefixtures("short_refusals")
@pulumi.runtime.test
def test_a_server_refusing_ssh_for_a_moment_an_sshd_restarting_is_asked_again_and_judged(
    engine_log: EngineLog,
) -> pulumi.Output[None]:
    refusing = RefusingFor(times=2)
    deployment = stack.deploy(one_server(), secret, read_server=refusing)

    def check(commands: dict[str, str]) -> None:
        assert refusing.reads == 3
        assert healed(commands) == {"web": "2", "postgres": "4"}, "the counts the server's records hold"
        assert engine_log.messages == []

    return created(deployment).apply(check)
