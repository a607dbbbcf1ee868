"""What the e2e tests share: the demo stack of Pulumi.local.yaml deployed as a service of the test's own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.stacks import DemoStack, unique_service
from tests.support.testbed import TestServer


@pytest.fixture
def demo(request: pytest.FixtureRequest, tmp_path: Path, test_server: TestServer) -> Iterator[DemoStack]:
    """The three demo roles (web v1, backend v2 with a migration, api v3), up; destroyed after the test. The service
    is named after the test's module (test_canary.py: canary-<6 hex>)."""
    module = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_").replace("_", "-")
    stack = DemoStack.create(tmp_path, test_server, unique_service(module))
    stack.up()
    try:
        yield stack
    finally:
        stack.destroy()
