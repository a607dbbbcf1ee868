"""The load the bench sends through a switch: which answers of the old version after the switch are a switch back."""

from __future__ import annotations

from tests.support.load import LoadReport, Response


def answer(began: float, answered: float, version: str) -> Response:
    return Response(began, answered, 200, version, "")


def test_an_old_answer_to_a_request_that_began_before_the_new_version_answered_is_not_a_switch_back() -> None:
    # The worker of the first v2 answer was descheduled between its stamp and the send: a request that began
    # 0.3 s after its stamp still reached v1, before the switch.
    report = LoadReport([answer(9.9, 9.91, "v1"), answer(10.0, 10.5, "v2"), answer(10.3, 10.31, "v1")])

    assert report.version_sequence() == ["v1", "v2"]


def test_an_old_answer_to_a_request_that_began_after_the_new_version_answered_is_a_switch_back() -> None:
    report = LoadReport([answer(9.9, 9.91, "v1"), answer(10.0, 10.01, "v2"), answer(10.02, 10.03, "v1")])

    assert report.version_sequence() == ["v1", "v2", "v1"]


def test_the_switch_surely_happened_once_any_answer_of_the_new_version_was_in_not_only_the_first_begun() -> None:
    # v2's first request began at 10.0 but was in at 10.5; its second, begun at 10.1, was in at 10.11.
    before = [answer(9.9, 9.91, "v1"), answer(10.0, 10.5, "v2"), answer(10.1, 10.11, "v2")]

    assert LoadReport([*before, answer(10.05, 10.2, "v1")]).version_sequence() == ["v1", "v2"]
    assert LoadReport([*before, answer(10.2, 10.21, "v1")]).version_sequence() == ["v1", "v2", "v1"]
