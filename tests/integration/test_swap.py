"""swap.sh over real SSH against the real Docker engine and kamal-proxy, with load through the proxy."""

from __future__ import annotations

import re
import shlex
import subprocess
import threading
import time
from pathlib import Path

from tests.integration.conftest import Service, derived_image, prepare
from tests.support import images
from tests.support.docker import docker, unique_name
from tests.support.polling import wait_for
from tests.support.remote import REMOTE_ROOT, fixed_network, run_script


def image_exists(reference: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", reference], capture_output=True).returncode == 0


def switched_ms(output: str) -> int:
    """The script's own measure: its start to kamal-proxy's switch."""
    match = re.search(r"switched (\d+) ms after start", output)
    assert match is not None, output
    return int(match[1])


def test_a_first_deploy_answers_through_the_proxy_by_its_host(service: Service) -> None:
    output = service.deploy("web", "v1")

    status, body = service.get("web")
    assert (status, body.split()[0]) == (200, "v1")
    assert "swap: web now v1" in output
    assert service.containers("web") == {service.container("web", "v1"): "running"}
    assert service.audit_events() == [("web", "v1", "deploy")]


def test_a_new_version_takes_over_under_load_without_a_failed_request(service: Service) -> None:
    service.deploy("web", "v1")

    started = time.monotonic()
    swapped, report = service.swap_under_load("web", "v2")
    wall = time.monotonic() - started

    assert swapped.returncode == 0, swapped.stderr
    assert report.failures == [], report.summary()
    assert report.version_sequence() == ["v1", "v2"], report.summary()
    assert service.containers("web") == {
        service.container("web", "v1"): "exited",
        service.container("web", "v2"): "running",
    }
    print(f"\nswap v1→v2: switched {switched_ms(swapped.stdout)} ms after the script started; "
          f"ssh round trip incl. load warm-up {wall:.1f} s; {report.summary()}")  # fmt: skip


def test_a_never_healthy_version_fails_clearly_and_the_old_one_keeps_serving(
    service: Service, server_hostname: str
) -> None:
    service.deploy("web", "v1")

    failed, report = service.swap_under_load("web", "never-healthy", "--deploy-timeout", "4s")

    output = failed.stdout + failed.stderr
    first_line = failed.stderr.splitlines()[0]
    assert failed.returncode == 1, output
    assert first_line.startswith(f"swap failed: role web on {server_hostname}: "), output
    assert "healthy" in first_line and first_line.endswith("(health path /up)"), output
    assert "app never-healthy: listening on :80 (healthy: no" in failed.stderr, output
    assert report.failures == [], report.summary()
    assert set(report.versions()) == {"v1"}, report.summary()
    assert service.get("web")[1].split()[0] == "v1"
    assert service.containers("web") == {service.container("web", "v1"): "running"}
    assert service.audit_events()[-1] == ("web", "never-healthy", "failed")

    recovered, report = service.swap_under_load("web", "v3")
    assert recovered.returncode == 0, recovered.stderr
    assert report.failures == [], report.summary()
    assert report.version_sequence() == ["v1", "v3"], report.summary()


def test_a_container_docker_refuses_to_run_fails_the_swap_in_one_line(service: Service, server_hostname: str) -> None:
    service.deploy("web", "v1")

    failed, report = service.swap_under_load("web", "v2", "--memory", "1k")

    assert failed.returncode == 1
    assert failed.stderr.splitlines() == [
        f"swap failed: role web on {server_hostname}: "
        "docker: Error response from daemon: Minimum memory limit allowed is 6MB (health path /up)"
    ]
    assert report.failures == [] and set(report.versions()) == {"v1"}, report.summary()
    assert service.containers("web") == {service.container("web", "v1"): "running"}


def test_an_image_that_cannot_be_pulled_fails_the_swap_and_the_old_one_keeps_serving(
    service: Service, registry: str, server_hostname: str
) -> None:
    service.deploy("web", "v1")
    missing = f"{registry}/{service.name}/absent:v9"

    failed = service.swap("web", "v9", image=missing)

    assert failed.returncode == 1
    assert f"swap failed: role web on {server_hostname}: could not pull {missing}" in failed.stderr
    assert service.get("web")[1].split()[0] == "v1"
    assert service.audit_events()[-1] == ("web", "v9", "failed")


def test_a_swap_killed_by_its_timeout_leaves_both_running_and_the_next_run_converges(service: Service) -> None:
    service.deploy("web", "v1")
    slow = ("--env", "START_DELAY=4", "--deploy-timeout", "20s")

    with service.load("web") as load:
        load.wait_for_requests(100)
        killed = service.run("swap.sh", *service.swap_args("web", images.app("slow-start"), "slow", *slow),
                             timeout_seconds=2)  # fmt: skip
        states_after_kill = service.containers("web")
        rerun = service.run("swap.sh", *service.swap_args("web", images.app("slow-start"), "slow", *slow))
        load.wait_for_requests(load.report.total + 100)
    report = load.report

    assert killed.returncode == 124, killed.stdout + killed.stderr
    assert "interrupted" in killed.stderr
    assert states_after_kill == {service.container("web", "v1"): "running", service.container("web", "slow"): "running"}
    assert rerun.returncode == 0, rerun.stderr
    assert report.failures == [], report.summary()
    assert report.version_sequence() == ["v1", "slow-start"], report.summary()
    assert service.containers("web") == {
        service.container("web", "v1"): "exited",
        service.container("web", "slow"): "running",
    }


def test_a_slow_starting_version_is_waited_for_within_the_deploy_timeout(service: Service) -> None:
    service.deploy("web", "v1")

    swapped, report = service.swap_under_load("web", "slow-start", "--env", "START_DELAY=3", "--deploy-timeout", "20s")

    assert swapped.returncode == 0, swapped.stderr
    assert switched_ms(swapped.stdout) >= 3000, swapped.stdout
    assert report.failures == [], report.summary()
    assert report.version_sequence() == ["v1", "slow-start"], report.summary()


def oom_score_adj(container: str) -> int:
    """The kernel's OOM score adjustment of the container's main process (the test server is this machine)."""
    pid = docker("inspect", "--format", "{{.State.Pid}}", container)
    return int(Path(f"/proc/{pid}/oom_score_adj").read_text())


def test_a_booting_version_is_what_the_kernel_kills_first_and_once_it_serves_it_is_ordinary(service: Service) -> None:
    service.deploy("web", "v1")
    live, booting = service.container("web", "v1"), service.container("web", "slow-start")
    assert oom_score_adj(live) == 0

    swapping = threading.Thread(target=service.swap, args=("web", "slow-start", "--env", "START_DELAY=3"))
    swapping.start()
    try:
        wait_for("the new version booting", lambda: service.containers("web").get(booting) == "running", seconds=30)
        during = (oom_score_adj(live), oom_score_adj(booting))
    finally:
        swapping.join(timeout=120)

    assert during == (0, 500), "while it boots, the new version goes first when memory runs out"
    assert oom_score_adj(booting) == 0, "serving, it is an ordinary process"


def test_the_proxy_first_checks_a_new_version_once_it_listens_so_no_check_fails(service: Service) -> None:
    """kamal-proxy checks health as a deploy starts and then every interval; an app still starting would fail
    the first check and wait a whole interval. swap.sh starts the deploy once the container accepts connections."""
    service.deploy("web", "v1")
    since = f"{time.time():.3f}"

    swapped, report = service.swap_under_load(
        "web", "slow-start", "--env", "START_DELAY=1", "--health-interval", "5s", "--deploy-timeout", "20s"
    )

    assert swapped.returncode == 0, swapped.stderr
    proxy_log = subprocess.run(["docker", "logs", "--since", since, service.proxy], capture_output=True, text=True)
    failed_checks = [
        line for line in (proxy_log.stdout + proxy_log.stderr).splitlines() if "Healthcheck failed" in line
    ]
    assert failed_checks == [], failed_checks
    assert report.failures == [], report.summary()
    assert report.version_sequence() == ["v1", "slow-start"], report.summary()


def test_swapping_back_restarts_the_retained_container_as_a_rollback(service: Service) -> None:
    service.deploy("web", "v1")
    first_id = docker("inspect", "--format", "{{.Id}}", service.container("web", "v1"))
    service.deploy("web", "v2")

    rolled_back, report = service.swap_under_load("web", "v1")

    assert rolled_back.returncode == 0, rolled_back.stderr
    assert "rollback" in rolled_back.stdout
    assert docker("inspect", "--format", "{{.Id}}", service.container("web", "v1")) == first_id
    assert report.failures == [], report.summary()
    assert report.version_sequence() == ["v2", "v1"], report.summary()
    assert service.audit_events()[-1] == ("web", "v1", "rollback")
    assert service.containers("web") == {
        service.container("web", "v1"): "running",
        service.container("web", "v2"): "exited",
    }


def fixed_address(container: str, service: Service) -> str:
    """The address the container was given on the service's fixed network, or nothing."""
    network = fixed_network(service.name)
    template = '{{with index .NetworkSettings.Networks "' + network + '"}}{{.IPAddress}}{{end}}'
    return docker("inspect", "--format", template, container)


def test_a_new_version_runs_at_a_fixed_address_which_is_the_proxys_target(service: Service) -> None:
    service.deploy("web", "v1")

    address = fixed_address(service.container("web", "v1"), service)
    assert address, "the container is not on the fixed network"
    assert f" {address}:80 " in service.proxy_routes(), service.proxy_routes()
    docker("restart", service.container("web", "v1"))
    assert fixed_address(service.container("web", "v1"), service) == address, "Docker gives the address back"


def test_a_role_routed_by_container_id_moves_to_a_fixed_address_with_its_next_version_and_a_rollback(
    service: Service,
) -> None:
    """A role deployed before containers had fixed addresses: kamal-proxy routes it by container ID, and its container
    is on the service network only. Its next version runs at an address and takes over under load; a rollback to the
    old one gives that one an address too."""
    service.deploy("web", "v1")
    v1 = service.container("web", "v1")
    v1_id = docker("inspect", "--format", "{{.Id}}", v1)[:12]
    docker("exec", service.proxy, "kamal-proxy", "deploy", f"{service.name}-web", "--target", f"{v1_id}:80",
           "--host", service.host("web"))  # fmt: skip
    docker("network", "disconnect", fixed_network(service.name), v1)
    assert f" {v1_id}:80 " in service.proxy_routes() and service.get("web")[0] == 200

    swapped, report = service.swap_under_load("web", "v2")

    assert swapped.returncode == 0, swapped.stderr
    assert report.failures == [] and report.version_sequence() == ["v1", "v2"], report.summary()
    assert f" {fixed_address(service.container('web', 'v2'), service)}:80 " in service.proxy_routes()

    rolled_back, report = service.swap_under_load("web", "v1")

    assert rolled_back.returncode == 0, rolled_back.stderr
    assert report.failures == [] and report.version_sequence() == ["v2", "v1"], report.summary()
    assert fixed_address(v1, service), "the kept container went live without an address"
    assert f" {fixed_address(v1, service)}:80 " in service.proxy_routes()


def test_the_same_swap_twice_changes_nothing_the_second_time(service: Service) -> None:
    service.deploy("web", "v1")
    before = service.container_ids()
    audit_before = service.audit()

    again = service.swap("web", "v1")

    assert again.returncode == 0, again.stderr
    assert "already live" in again.stdout
    assert service.container_ids() == before
    assert service.audit() == audit_before


def test_a_changed_config_boots_a_fresh_container_of_the_same_version_under_load(service: Service) -> None:
    service.deploy("web", "v1")

    args = service.swap_args("web", images.app("v1"), "v1", "--env", "VERSION=v1-recolored", config_hash="c0ffee2")
    with service.load("web") as load:
        load.wait_for_requests(100)
        changed = service.run("swap.sh", *args)
        load.wait_for_requests(load.report.total + 100)
    report = load.report

    assert changed.returncode == 0, changed.stderr
    assert report.failures == [], report.summary()
    assert report.version_sequence() == ["v1", "v1-recolored"], report.summary()
    states = service.containers("web")
    assert states.pop(service.container("web", "v1")) == "running"
    [(aside, state)] = states.items()
    assert aside.startswith(service.container("web", "v1") + "_replaced_") and state == "exited", states


def test_retention_keeps_only_the_newest_stopped_containers_and_drops_unused_images(service: Service) -> None:
    repository = unique_name("qs-retain")
    tags = {}
    for index, base in enumerate(["v1", "v2", "v3", "v1"], start=1):
        # A distinct image per version (a label makes a new ID), so removing one never touches another.
        tag = f"{repository}/app:r{index}"
        derived_image(tag, f"FROM {images.app(base)}\nLABEL quayside.test.retention={repository}-{index}\n")
        service.extra_images.append(tag)
        tags[f"r{index}"] = tag

    for version, tag in tags.items():
        swapped = service.run("swap.sh", *service.swap_args("web", tag, version, "--retain", "2"))
        assert swapped.returncode == 0, swapped.stderr

    assert service.containers("web") == {
        service.container("web", "r2"): "exited",
        service.container("web", "r3"): "exited",
        service.container("web", "r4"): "running",
    }
    assert not image_exists(tags["r1"])
    assert image_exists(tags["r2"]) and image_exists(tags["r3"])


def swap_at_once(service: Service, *swaps: tuple[str, str]) -> list[subprocess.CompletedProcess[str]]:
    """Runs swaps (role, version) in parallel, each of the slow-start image with a 2 s start."""
    results: dict[int, subprocess.CompletedProcess[str]] = {}

    def swap(index: int, role: str, version: str) -> None:
        results[index] = service.swap(role, "slow-start", "--env", "START_DELAY=2", version=version)

    threads = [threading.Thread(target=swap, args=(i, *pair)) for i, pair in enumerate(swaps)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return [results[index] for index in range(len(swaps))]


def test_two_roles_swapped_at_once_switch_at_the_same_time(service: Service) -> None:
    done = swap_at_once(service, ("web", "slow"), ("api", "slow"))

    assert [result.returncode for result in done] == [0, 0], [result.stderr for result in done]
    assert service.get("web")[1].split()[0] == "slow-start" and service.get("api")[1].split()[0] == "slow-start"
    # Each waits only for its own 2 s start (and a health interval), not for the other role.
    switched = sorted(switched_ms(result.stdout) for result in done)
    assert switched[1] < 4000, switched
    assert all("waiting for the lock" not in result.stdout for result in done)
    assert sorted(service.audit_events()) == [("api", "slow", "deploy"), ("web", "slow", "deploy")]


def test_two_swaps_of_one_role_at_once_take_turns_and_the_waiting_one_says_for_whom(service: Service) -> None:
    done = swap_at_once(service, ("web", "slow-a"), ("web", "slow-b"))

    assert [result.returncode for result in done] == [0, 0], [result.stderr for result in done]
    switched = sorted(switched_ms(result.stdout) for result in done)
    assert switched[1] >= 4000, switched
    waited = [result.stdout for result in done if "waiting for the lock" in result.stdout]
    assert len(waited) == 1 and f"waiting for the lock of {service.name} web: swap (pid " in waited[0], waited


def test_a_slow_migration_of_one_role_does_not_delay_another_roles_swap(service: Service) -> None:
    migration: list[subprocess.CompletedProcess[str]] = []
    slow = ("--", "sleep", "6")
    migrating = threading.Thread(
        target=lambda: migration.append(service.migrate("backend", images.app("v1"), "v1", *slow))
    )
    migrating.start()
    migrations = ("--filter", f"label=quayside.service={service.name}", "--filter", "label=quayside.migration=backend")
    wait_for("backend's migration running", lambda: docker("ps", "--quiet", *migrations) != "", seconds=30)
    swapped = service.swap("web", "v2")
    migration_still_running = migrating.is_alive()
    migrating.join(timeout=60)

    assert swapped.returncode == 0 and migration[0].returncode == 0, swapped.stderr + migration[0].stderr
    assert "waiting for the lock" not in swapped.stdout
    assert migration_still_running, "the swap of web waited for the 6 s migration of backend"


def test_a_role_without_the_proxy_is_live_once_it_keeps_running(service: Service) -> None:
    for tag in ("v1", "v2"):
        swapped = service.swap("worker", tag, "--no-proxy", "--readiness-delay", "1")
        assert swapped.returncode == 0, swapped.stderr

    again = service.swap("worker", "v2", "--no-proxy", "--readiness-delay", "1")

    assert "already live" in again.stdout, again.stdout
    assert service.containers("worker") == {
        service.container("worker", "v1"): "exited",
        service.container("worker", "v2"): "running",
    }
    assert "worker" not in service.proxy_routes()


def test_a_role_moved_off_the_proxy_loses_its_route(service: Service) -> None:
    service.deploy("web", "v1")
    assert f"{service.name}-web " in service.proxy_routes()

    moved = service.swap("web", "v2", "--no-proxy", "--readiness-delay", "1")

    assert moved.returncode == 0, moved.stdout + moved.stderr
    assert f"{service.name}-web " not in service.proxy_routes()
    assert service.get("web")[0] == 404
    assert service.containers("web") == {
        service.container("web", "v1"): "exited",
        service.container("web", "v2"): "running",
    }


def test_a_role_without_the_proxy_that_exits_fails_and_the_old_one_keeps_running(
    service: Service, server_hostname: str
) -> None:
    service.deploy("worker", "v1", "--no-proxy", "--readiness-delay", "1")

    failed = service.swap("worker", "v2", "--no-proxy", "--readiness-delay", "2", "--env", "START_DELAY=never")

    assert failed.returncode == 1
    assert failed.stderr.startswith(f"swap failed: role worker on {server_hostname}: not running 2s after start")
    assert "(readiness delay 2s)" in failed.stderr.splitlines()[0]
    assert "sleep: invalid number 'never'" in failed.stderr, failed.stderr
    assert service.containers("worker") == {service.container("worker", "v1"): "running"}


def test_a_role_without_the_proxy_waits_for_its_docker_healthcheck(service: Service) -> None:
    healthcheck = "HEALTHCHECK --interval=1s --timeout=1s CMD wget -q -O /dev/null http://127.0.0.1/up\n"
    good = derived_image(f"{unique_name('qs-health')}/app:good", f"FROM {images.app('slow-start')}\n{healthcheck}")
    bad = derived_image(f"{unique_name('qs-health')}/app:bad", f"FROM {images.app('never-healthy')}\n{healthcheck}")
    service.extra_images += [good, bad]
    no_proxy = ("--no-proxy", "--readiness-delay", "0", "--env", "START_DELAY=2")

    healthy = service.run("swap.sh", *service.swap_args("worker", good, "good", *no_proxy, "--deploy-timeout", "20s"))
    unhealthy = service.run("swap.sh", *service.swap_args("worker", bad, "bad", *no_proxy, "--deploy-timeout", "5s"))

    assert healthy.returncode == 0, healthy.stderr
    assert docker("inspect", "--format", "{{.State.Health.Status}}", service.container("worker", "good")) == "healthy"
    assert unhealthy.returncode == 1
    assert "not healthy within 5s (docker healthcheck)" in unhealthy.stderr, unhealthy.stderr
    assert service.containers("worker") == {service.container("worker", "good"): "running"}


def test_bad_options_are_named_in_one_line(service: Service) -> None:
    cases = {
        ("--role", "web"): "swap: missing required option --service",
        ("--bogus",): "swap: unknown option --bogus",
        ("--service", service.name, "--role"): "swap: option --role needs a value",
        ("--service", service.name, "--role", "web", "--image", "app", "--version", "v1", "--config-hash", "c0"): (
            "swap: missing required option --port"
        ),
    }
    for args, message in cases.items():
        done = service.run("swap.sh", *args)
        assert done.returncode == 1 and done.stderr.startswith(message), (args, done.stderr)
        assert len(done.stderr.splitlines()) == 1, done.stderr
    bad_timeout = service.swap("web", "v1", "--deploy-timeout", "soon")
    assert bad_timeout.stderr.strip() == "swap: --deploy-timeout 'soon' is not a duration like 500ms, 30s or 2m"
    bad_name = service.run("swap.sh", *service.swap_args("web", images.app("v1"), "v1")[2:], "--service", "../etc")
    assert bad_name.stderr.strip().startswith("swap: --service '../etc' may hold only lowercase letters"), (
        bad_name.stderr
    )


# --- the fast switch of a rollback (scripts/rollback): --retained-only ----------------------------------------


def env_file(service: Service, role: str) -> str:
    return Path(REMOTE_ROOT, service.name, "env", f"{role}.env").read_text()


def test_a_fast_rollback_starts_the_retained_container_and_leaves_the_env_file_as_it_is(service: Service) -> None:
    service.deploy("web", "v1", stdin="API_TOKEN=tok-1\n")
    first_id = docker("inspect", "--format", "{{.Id}}", service.container("web", "v1"))
    service.deploy("web", "v2", stdin="API_TOKEN=tok-1\n")

    with service.load("web") as load:
        load.wait_for_requests(100)
        rolled_back = service.run("swap.sh", *service.swap_args("web", images.app("v1"), "v1"), "--retained-only")
        load.wait_for_requests(load.report.total + 100)

    assert rolled_back.returncode == 0, rolled_back.stderr
    assert "rollback to" in rolled_back.stdout
    assert docker("inspect", "--format", "{{.Id}}", service.container("web", "v1")) == first_id
    assert env_file(service, "web") == "API_TOKEN=tok-1\n", "stdin is not read: the env file stays"
    assert load.report.failures == [] and load.report.version_sequence() == ["v2", "v1"], load.report.summary()
    assert service.containers("web") == {
        service.container("web", "v1"): "running",
        service.container("web", "v2"): "exited",
    }


def test_a_fast_rollback_without_a_retained_container_of_that_config_touches_nothing(service: Service) -> None:
    service.deploy("web", "v1")
    service.deploy("web", "v2")
    before = service.container_ids()

    other_config = service.swap_args("web", images.app("v1"), "v1", config_hash="beef01")
    changed = service.run("swap.sh", *other_config, "--retained-only")
    never_deployed = service.run("swap.sh", *service.swap_args("web", images.app("v3"), "v3"), "--retained-only")

    for failed, version in ((changed, "v1"), (never_deployed, "v3")):
        assert failed.returncode == 1, failed.stdout + failed.stderr
        assert f"no container of web {version} with the role's current config is kept" in failed.stderr
    assert service.container_ids() == before
    assert service.get("web")[1].split()[0] == "v2"
    assert service.containers("web") == {
        service.container("web", "v1"): "exited",
        service.container("web", "v2"): "running",
    }


def test_a_fast_rollback_ends_a_slow_stop_of_the_version_it_goes_back_to_instead_of_waiting(service: Service) -> None:
    # An app that ignores SIGTERM stops at its stop_timeout: 600 s, longer than any lock wait.
    slow_stop = ("--stop-timeout", "600")
    service.deploy("web", "noterm-v1", *slow_stop)
    to_v2 = service.swap_args("web", images.app("noterm-v2"), "noterm-v2", *slow_stop)
    swapped = run_script(service.server, service.name, "swap.sh", to_v2)
    assert swapped.returncode == 0, swapped.stderr
    stopping = "stopping, drained already:"
    wait_for("v2's swap stopping v1 in the background", lambda: stopping in lock_holder(service, "web"), seconds=30)

    with service.load("web") as load:
        load.wait_for_requests(100)
        back = service.swap_args("web", images.app("noterm-v1"), "noterm-v1", *slow_stop, "--retained-only")
        rolled_back = run_script(service.server, service.name, "swap.sh", back, timeout_seconds=120)
        load.wait_for_requests(load.report.total + 100)

    assert rolled_back.returncode == 0, rolled_back.stdout + rolled_back.stderr
    assert "(drained already) ended for this rollback" in rolled_back.stdout, rolled_back.stdout
    assert "web noterm-v1: rollback to" in rolled_back.stdout, rolled_back.stdout
    assert load.report.failures == [], load.report.summary()
    assert load.report.version_sequence() == ["noterm-v2", "noterm-v1"], load.report.summary()


def lock_holder(service: Service, role: str) -> str:
    done = service.server.run(shlex.join(["cat", f"{REMOTE_ROOT}/{service.name}/locks/{role}.lock"]), check=False)
    return done.stdout


# --- names: what a swap touches is its role's alone ------------------------------------------------------------


def test_a_container_that_only_has_the_name_survives_a_swap_that_cannot_take_it(
    service: Service, server_hostname: str
) -> None:
    service.deploy("web", "v1")
    stranger = service.container("web", "v2")
    docker("run", "--detach", "--name", stranger, images.app("v1"))

    failed, report = service.swap_under_load("web", "v2")

    assert failed.returncode == 1
    assert failed.stderr.startswith(
        f"swap failed: role web on {server_hostname}: docker: Error response from daemon: "
        f'Conflict. The container name "/{stranger}" is already in use'
    ), failed.stderr
    assert docker("inspect", "--format", "{{.State.Status}}", stranger) == "running"
    assert report.failures == [] and set(report.versions()) == {"v1"}, report.summary()
    docker("rm", "--force", stranger)


def test_a_route_another_services_role_holds_is_refused_and_keeps_serving_it(
    service: Service, namesake: Service, server_hostname: str
) -> None:
    service.deploy("b-web", "v1")

    with service.load("b-web") as load:
        load.wait_for_requests(50)
        refused = namesake.swap("web", "v2")
        load.wait_for_requests(load.report.total + 50)

    assert refused.returncode == 1
    assert refused.stderr == (
        f"swap: kamal-proxy's route {service.name}-b-web on {server_hostname} belongs to service '{service.name}' "
        f"role 'b-web': rename service '{namesake.name}' or its role 'web' so SERVICE-ROLE differs\n"
    )
    assert load.report.failures == [] and set(load.report.versions()) == {"v1"}, load.report.summary()
    assert namesake.containers("web") == {}

    retired = namesake.retire("web", "v2")

    assert retired.returncode == 0, retired.stderr
    assert service.get("b-web")[1].split()[0] == "v1"


def test_a_container_named_by_the_dashed_scheme_is_found_again_by_its_version(service: Service) -> None:
    service.deploy("web", "v1")
    service.deploy("web", "v2")
    dashed = f"{service.name}-web-v1"
    docker("rename", service.container("web", "v1"), dashed)

    rolled_back = service.deploy("web", "v1")

    assert "web v1: rollback to" in rolled_back, rolled_back
    assert service.containers("web") == {
        service.container("web", "v1"): "running",
        service.container("web", "v2"): "exited",
    }


def test_a_named_volume_is_its_services_and_another_service_mounting_it_is_refused(
    service: Service, other_service: Service, server_hostname: str
) -> None:
    volume = unique_name("qs-data")
    try:
        service.deploy("web", "v1", "--volume", f"{volume}:/data")
        prepare(other_service)

        refused = other_service.swap("web", "v1", "--volume", f"{volume}:/data")

        assert refused.returncode == 1
        assert refused.stderr == (
            f"swap: volume '{volume}' on {server_hostname} belongs to service '{service.name}': Docker volumes are "
            f"the server's, so name this one for service '{other_service.name}' ({other_service.name}-{volume}:/data)\n"
        )
        assert other_service.containers("web") == {}
        assert docker("volume", "inspect", "--format", '{{index .Labels "quayside.service"}}', volume) == service.name
    finally:
        service.remove_everything()
        docker("volume", "rm", volume, check=False)
