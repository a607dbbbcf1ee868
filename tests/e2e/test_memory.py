"""Memory during a deploy, through `pulumi up` of quayside's program with load on the role: a new version boots
beside the one serving, so one that may take more memory than the server has is refused before it boots, and one
the kernel kills for running out of memory fails its deploy saying so. Either way the old version serves on."""

from __future__ import annotations

from tests.support.stacks import DemoStack, container_name, container_states, pinned_version, registry_image

# A version that holds 200 MiB in a shell variable before it would listen: past a 32m limit, the kernel kills it.
GREEDY_COMMAND = "x=$(yes | head -c 209715200); echo ${#x}"


def test_a_version_that_may_take_more_memory_than_the_server_has_is_refused_before_it_boots(
    demo: DemoStack, server_hostname: str
) -> None:
    serving = demo.stack().outputs()["roles"].value["web"]
    demo.roles["web"]["image"] = registry_image("v2")
    demo.roles["web"]["memory"] = "1000g"

    message, report = demo.failed_up_under_load("web")

    v1, v2 = pinned_version("v1"), pinned_version("v2")
    assert (
        f"swap failed: role web on {server_hostname}: {v2} may take 1000.0 GiB (its memory limit, roles.web.memory) "
        f"beside {v1}, and {server_hostname} has "
    ) in message, message
    assert f"available: lower roles.web.memory or free memory on {server_hostname}; {v1} serves on" in message
    assert report.failures == [] and set(report.versions()) == {"v1"}, report.summary()
    assert container_states(demo.service, "web") == {container_name(demo.service, "web", "v1"): "running"}
    assert demo.stack().outputs()["roles"].value["web"] == serving


def test_a_version_killed_for_running_out_of_memory_fails_its_deploy_saying_so_and_the_old_one_serves(
    demo: DemoStack, server_hostname: str
) -> None:
    demo.roles["web"] |= {"image": registry_image("v2"), "memory": "32m", "cmd": GREEDY_COMMAND, "deploy_timeout": "5s"}

    message, report = demo.failed_up_under_load("web")

    assert f"swap failed: role web on {server_hostname}: " in message, message
    assert "; it ran out of memory: the kernel killed it " in message, message
    assert "time(s) at its limit of 32m (roles.web.memory: raise it, or make the app use less)" in message, message
    assert report.failures == [] and set(report.versions()) == {"v1"}, report.summary()
    assert container_states(demo.service, "web") == {container_name(demo.service, "web", "v1"): "running"}
    print(f"web v2 killed for want of memory under load: {report.tally()}")


def test_with_memory_short_stop_first_the_version_serving_stops_first_and_its_requests_wait_for_the_new_one(
    demo: DemoStack,
) -> None:
    demo.roles["web"] |= {"image": registry_image("v2"), "memory": "1000g", "memory_short": "stop_first"}
    preview = demo.preview()

    with demo.load("web") as load:
        load.wait_for_requests(100)
        result = demo.up()
        load.wait_for_requests(load.report.total + 100)

    report = load.report
    assert "the version serving stops before the new one boots" in preview.stdout, preview.stdout
    assert f"{pinned_version('v1')} stopped first (memory_short: stop_first), its requests held" in result.stdout
    assert report.failures == [] and report.version_sequence() == ["v1", "v2"], report.summary()
    assert container_states(demo.service, "web")[container_name(demo.service, "web", "v2")] == "running"
    longest = max(response.done - response.at for response in report.responses)
    print(f"web v1 stopped before v2 booted, requests held: {report.tally()}, longest request {longest:.2f} s")


def test_a_new_version_failing_after_stop_first_starts_the_old_one_again(demo: DemoStack, server_hostname: str) -> None:
    demo.roles["web"] |= {
        "image": registry_image("never-healthy"), "memory": "1000g", "memory_short": "stop_first",
        "deploy_timeout": "2s",
    }  # fmt: skip

    message, report = demo.failed_up_under_load("web")

    assert f"swap failed: role web on {server_hostname}: " in message, message
    assert container_states(demo.service, "web") == {container_name(demo.service, "web", "v1"): "running"}
    assert demo.get("web")[1].split()[0] == "v1"
    longest = max(response.done - response.at for response in report.responses)
    print(f"web's never-healthy version after stop_first, v1 started again: {report.tally()}, longest {longest:.2f} s")
    assert report.failures == [] and set(report.versions()) == {"v1"}, report.summary()
