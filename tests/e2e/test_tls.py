"""TLS the way users get it: `proxy.ssl: true` and a hostname per role, and kamal-proxy's own ACME client gets each
hostname a certificate from a real ACME server (Pebble, tests/support/acme.py), validated against the server as
Let's Encrypt validates. Through `pulumi up` of quayside's program, on a host of the multi-host bed."""

from __future__ import annotations

import hashlib
import http.client
import shlex
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.acme import HTTPS_PORT, AcmeBed
from tests.support.hosts import HostBed, TestHost
from tests.support.load import HTTPSTo, Load
from tests.support.polling import wait_for
from tests.support.pulumi_engine import QuaysideProject
from tests.support.stacks import PROXY, STACK, unique_service
from tests.support.testbed import registry_address


class TlsStack:
    """A service with two TLS roles on one bed host, its proxy the ACME-bed's image."""

    def __init__(self, directory: Path, host: TestHost, acme: AcmeBed) -> None:
        self.project = QuaysideProject.create(directory)
        self.service = unique_service("tls")
        self.host = host
        self.acme = acme
        self.trust = ssl.create_default_context(cafile=str(acme.root))
        app = {"health": {"path": "/up", "interval": "500ms"}, "deploy_timeout": "20s", "drain_timeout": "5s"}
        self.config: dict[str, Any] = {
            "quayside:service": self.service,
            "quayside:server": {
                "provider": "existing", "host": host.address, "port": host.port, "user": host.user,
                "install_docker": False, "private_key_file": str(host.private_key),
                "host_key_file": str(host.host_key_file),
            },
            "quayside:proxy": {"image": acme.proxy_repository, "version": acme.proxy_tag, "ssl": True},
            "quayside:roles": {
                "web": {**app, "image": self.image("v1"), "hosts": [self.hostname("web")]},
                "api": {**app, "image": self.image("v3"), "port": 3002, "env": {"clear": {"PORT": "3002"}},
                        "hosts": [self.hostname("api")]},
            },
        }  # fmt: skip

    @staticmethod
    def image(tag: str) -> str:
        return f"{registry_address()}/quayside-test/app:{tag}"

    def hostname(self, role: str) -> str:
        return f"{role}.{self.service}.test"

    def up(self) -> None:
        result = self.project.stack(STACK, self.config).up(color="never")
        assert result.summary.result == "succeeded"

    def destroy(self) -> None:
        self.project.stack(STACK, self.config).destroy(color="never")

    def https(self, role: str, timeout: float = 30) -> tuple[int, str, str]:
        """(status, first word of the body, SHA-256 of the certificate served) of GET / over HTTPS, the certificate
        checked against Pebble's root for the role's hostname. The first handshake for a name makes kamal-proxy
        get its certificate, so it may take seconds."""
        connection = HTTPSTo(self.host.address, self.hostname(role), HTTPS_PORT, self.trust, timeout)
        try:
            connection.request("GET", "/", headers={"Host": self.hostname(role)})
            reply = connection.getresponse()
            words = reply.read().decode(errors="replace").split()
            served = connection.sock.getpeercert(binary_form=True) if connection.sock else b""
            return reply.status, words[0] if words else "", hashlib.sha256(served or b"").hexdigest()
        finally:
            connection.close()

    def http(self, role: str) -> tuple[int, str]:
        """(status, Location) of GET / over plain HTTP."""
        connection = http.client.HTTPConnection(self.host.address, 80, timeout=10)
        try:
            connection.request("GET", "/", headers={"Host": self.hostname(role)})
            reply = connection.getresponse()
            reply.read()
            return reply.status, reply.getheader("Location") or ""
        finally:
            connection.close()

    def load(self, role: str) -> Load:
        return Load(HTTPS_PORT, self.hostname(role), workers=2, address=self.host.address, tls=self.trust)


@pytest.fixture
def tls_stack(tmp_path: Path, host_bed: HostBed) -> Iterator[TlsStack]:
    host = host_bed.hosts[-1]
    with AcmeBed.start(host_bed, host, tmp_path / "acme") as acme:
        stack = TlsStack(tmp_path / "project", host, acme)
        try:
            yield stack
        finally:
            stack.destroy()


def test_each_tls_role_gets_its_own_certificate_from_the_acme_server_and_http_redirects_to_https(
    tls_stack: TlsStack,
) -> None:
    tls_stack.up()

    started = time.monotonic()
    web_status, web_version, web_certificate = tls_stack.https("web")
    first_answer = time.monotonic() - started
    api_status, api_version, api_certificate = tls_stack.https("api")

    assert (web_status, web_version) == (200, "v1")
    assert (api_status, api_version) == (200, "v3")
    assert web_certificate != api_certificate
    assert len(tls_stack.acme.certificates_fetched()) == 2, tls_stack.acme.front.requests
    assert tls_stack.http("web") == (301, f"https://{tls_stack.hostname('web')}/")
    print(f"first HTTPS answer, the certificate issued on the way: {first_answer:.2f} s")


def test_with_ssl_redirect_false_plain_http_is_served_beside_https(tls_stack: TlsStack) -> None:
    tls_stack.config["quayside:proxy"]["ssl_redirect"] = False
    tls_stack.up()

    assert tls_stack.https("web")[:2] == (200, "v1")
    assert tls_stack.http("web") == (200, "")


def test_an_image_change_of_a_tls_role_under_https_load_drops_no_request_and_keeps_its_certificate(
    tls_stack: TlsStack,
) -> None:
    tls_stack.up()
    _, _, certificate = tls_stack.https("web")

    with tls_stack.load("web") as load:
        load.wait_for_requests(50)
        tls_stack.config["quayside:roles"]["web"]["image"] = tls_stack.image("v2")
        tls_stack.up()
        load.wait_for_requests(load.report.total + 50)

    assert load.report.failures == [], load.report.summary()
    assert load.report.version_sequence() == ["v1", "v2"], load.report.summary()
    assert tls_stack.https("web")[2] == certificate
    print(f"image change of a TLS role under HTTPS load: {load.report.summary()}")


def test_the_certificate_survives_a_proxy_restart_without_asking_the_acme_server_again(tls_stack: TlsStack) -> None:
    tls_stack.up()
    _, _, certificate = tls_stack.https("web")
    asked = len(tls_stack.acme.front.requests)

    tls_stack.host.run(shlex.join(["docker", "restart", PROXY]))
    wait_for("the restarted proxy answering HTTPS", lambda: _answers(tls_stack), seconds=30)

    assert tls_stack.https("web") == (200, "v1", certificate)
    assert len(tls_stack.acme.front.requests) == asked, tls_stack.acme.front.requests[asked:]


def _answers(stack: TlsStack) -> bool:
    try:
        return stack.https("web", timeout=2)[0] == 200
    except OSError:
        return False
