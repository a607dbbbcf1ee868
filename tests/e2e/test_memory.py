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
