"""Fixtures every layer shares: the bench started by scripts/setup."""

from __future__ import annotations

import pytest

from tests.support.hosts import HostBed
from tests.support.testbed import TestServer, registry_address


@pytest.fixture(scope="session")
def test_server() -> TestServer:
    """The loopback SSH server; fails (never skips) when scripts/setup has not started it."""
    return TestServer.from_testbed()


@pytest.fixture(scope="session")
def registry() -> str:
    """host:port of the loopback registry."""
    return registry_address()


@pytest.fixture(scope="session")
def server_hostname(test_server: TestServer) -> str:
    """What the test server's failures name as the host (uname -n)."""
    return test_server.run("uname -n").stdout.strip()


@pytest.fixture(scope="session")
def host_bed() -> HostBed:
    """The multi-host test bed (scripts/setup.d/test-hosts.sh); fails (never skips) naming that step when it is
    missing or a host does not answer."""
    return HostBed.from_testbed()
