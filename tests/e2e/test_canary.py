"""A canary through `pulumi up` of quayside's program, on the loopback server, with load counted: `roles.web.canary`
sends a new version to a share of kamal-rollout cookie values (and to listed values) beside the version serving;
removing the canary promotes it, setting the image back aborts it.

kamal-proxy picks the canary for a request when the FNV-1a hash of its cookie's value is within the share, so each
answer is predicted exactly here, not only counted."""

from __future__ import annotations

import http.client

import pytest
from pulumi import automation as auto

from tests.support.load import Load, LoadReport, Response
from tests.support.stacks import (
    PROXY_PORT,
    DemoStack,
    container_name,
    container_states,
    pinned_version,
    registry_image,
)

NEVER_HEALTHY = registry_image("never-healthy")
PERCENT = 30
CANARY = {"percent": PERCENT, "allow": ["staff-1"]}
# Requests with a cookie counted once the split is set, for the share.
SPLIT_SAMPLE = 2_000


def in_canary(cookie: str, percent: int) -> bool:
    """kamal-proxy v0.9.2's choice (RolloutController): FNV-1a of the value against percent of the 32-bit range."""
    digest = 0x811C9DC5
    for byte in cookie.encode():
        digest = ((digest ^ byte) * 0x01000193) & 0xFFFFFFFF
    return float(digest) <= float(0xFFFFFFFF) * (percent / 100.0)


def web_with_cookie(demo: DemoStack, value: str) -> str:
    """The version that answers GET / of web for a kamal-rollout cookie of `value`."""
    connection = http.client.HTTPConnection("127.0.0.1", PROXY_PORT, timeout=10)
    try:
        connection.request("GET", "/", headers={"Host": demo.host("web"), "Cookie": f"kamal-rollout={value}"})
        reply = connection.getresponse()
        return reply.read().decode().split()[0] if reply.status == 200 else f"status {reply.status}"
    finally:
        connection.close()


def cookie_load(demo: DemoStack) -> Load:
    return Load(PROXY_PORT, demo.host("web"), workers=3, rollout_cookie=True)


def up_under_both_loads(demo: DemoStack) -> tuple[auto.UpResult, LoadReport, LoadReport, float]:
    """`pulumi up` with load on web with random cookies and without any; returns the cookie load's clock when the up
    ended, and keeps both loads going for SPLIT_SAMPLE more requests with cookies after it."""
    with cookie_load(demo) as with_cookie, Load(PROXY_PORT, demo.host("web"), workers=1) as without:
        with_cookie.wait_for_requests(100)
        result = demo.up()
        ended = with_cookie.elapsed()
        with_cookie.wait_for_requests(with_cookie.report.total + SPLIT_SAMPLE, timeout=120)
    return result, with_cookie.report, without.report, ended


def after(report: LoadReport, moment: float) -> list[Response]:
    return [response for response in report.responses if response.at > moment]


def test_a_canary_serves_its_share_of_cookie_values_and_promoting_it_switches_everyone_with_no_request_failed(
    demo: DemoStack,
) -> None:
    demo.roles["web"]["image"] = registry_image("v2")
    demo.roles["web"]["canary"] = CANARY

    result, with_cookie, without, ended = up_under_both_loads(demo)

    assert result.summary.result == "succeeded"
    assert with_cookie.failures == [] and without.failures == [], (with_cookie.summary(), without.summary())
    split = after(with_cookie, ended)
    wrong = [r for r in split if r.version != ("v2" if in_canary(r.cookie, PERCENT) else "v1")]
    assert wrong == [], f"{len(wrong)} of {len(split)} answered by the other version, e.g. {wrong[:3]}"
    share = sum(r.version == "v2" for r in split) / len(split)
    assert abs(share - PERCENT / 100) < 0.05, f"the canary answered {share:.1%} of {len(split)} cookie values"
    assert set(without.versions()) == {"v1"}, "a request without the cookie stays on the version serving"
    assert {web_with_cookie(demo, "staff-1") for _ in range(20)} == {"v2"}, "an allowed value always gets the canary"
    assert container_states(demo.service, "web") == {
        container_name(demo.service, "web", "v1"): "running",
        container_name(demo.service, "web", "v2"): "running",
    }
    outputs = demo.stack().outputs()["roles"].value["web"]
    assert (outputs["version"], outputs["canary"]) == (pinned_version("v2"), CANARY)
    assert "a new version goes live as a canary for 30% of kamal-rollout cookie values and staff-1" in result.stdout
    print(f"canary at {PERCENT}%: v2 answered {share:.1%} of {len(split)} cookie values; with cookies "
          f"{with_cookie.tally()}; without {without.tally()}")  # fmt: skip

    canary_container = container_states(demo.service, "web")
    del demo.roles["web"]["canary"]
    _, with_cookie, without, ended = up_under_both_loads(demo)

    assert with_cookie.failures == [] and without.failures == [], (with_cookie.summary(), without.summary())
    assert {r.version for r in after(with_cookie, ended)} == {"v2"}
    assert {r.version for r in after(without, ended)} == {"v2"}
    assert container_states(demo.service, "web") == {**canary_container, container_name(demo.service, "web", "v1"):
                                                      "exited"}, "promoted where it runs: no new container"  # fmt: skip
    assert "canary" not in demo.stack().outputs()["roles"].value["web"]
    print(f"promoted: with cookies {with_cookie.tally()}; without {without.tally()}")


def test_setting_the_image_back_aborts_a_canary_and_one_failing_its_health_check_never_serves(
    demo: DemoStack,
) -> None:
    demo.roles["web"]["image"] = registry_image("v2")
    demo.roles["web"]["canary"] = CANARY
    assert demo.up().summary.result == "succeeded"
    assert web_with_cookie(demo, "staff-1") == "v2"

    demo.roles["web"]["image"] = registry_image("v1")
    _, with_cookie, without, ended = up_under_both_loads(demo)

    assert with_cookie.failures == [] and without.failures == [], (with_cookie.summary(), without.summary())
    assert {r.version for r in after(with_cookie, ended)} == {"v1"}
    assert web_with_cookie(demo, "staff-1") == "v1"
    assert container_states(demo.service, "web")[container_name(demo.service, "web", "v2")] == "exited"
    print(f"aborted: with cookies {with_cookie.tally()}; without {without.tally()}")

    demo.roles["web"]["image"] = NEVER_HEALTHY
    demo.roles["web"]["deploy_timeout"] = "3s"
    with cookie_load(demo) as load:
        load.wait_for_requests(100)
        with pytest.raises(auto.errors.CommandError) as failed:
            demo.up()
        load.wait_for_requests(load.report.total + 200)

    assert "swap failed: role web" in str(failed.value)
    assert load.report.failures == [] and set(load.report.versions()) == {"v1"}, load.report.summary()
    assert web_with_cookie(demo, "staff-1") == "v1"
    print(f"a canary failing its health check: {load.report.tally()}")
