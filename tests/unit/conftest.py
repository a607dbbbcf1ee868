"""Every unit test runs under Pulumi mocks of its own, whichever tests ran before it and in whatever order."""

from __future__ import annotations

from collections.abc import Iterator

import pulumi
import pytest

from tests.support.mocks import EchoMocks, EngineLog, RecordingMonitor, fresh_mocks


@pytest.fixture
def pulumi_mocks() -> pulumi.runtime.Mocks:
    """The mocks a test runs under: each resource's inputs as its outputs. A module whose resources need other
    answers overrides this fixture."""
    return EchoMocks()


@pytest.fixture
def engine_log() -> EngineLog:
    """What the program under test logged through the engine."""
    return EngineLog()


@pytest.fixture
def mock_monitor(pulumi_mocks: pulumi.runtime.Mocks) -> RecordingMonitor:
    """What the program registered, with the resource options the mocks are not shown."""
    return RecordingMonitor(pulumi_mocks)


@pytest.fixture(autouse=True)
def fresh_pulumi_mocks(
    pulumi_mocks: pulumi.runtime.Mocks, engine_log: EngineLog, mock_monitor: RecordingMonitor
) -> Iterator[None]:
    with fresh_mocks(pulumi_mocks, engine_log, mock_monitor):
        yield
