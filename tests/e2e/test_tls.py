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

from components.defaults import PROXY_STATE_DIR
from tests.support.acme import HTTPS_PORT, AcmeBed, make_ca, make_certificate
from tests.support.hosts import HostBed, TestHost
from tests.support.load import HTTPSTo, Load
from tests.support.polling import wait_for
from tests.support.pulumi_engine import QuaysideProject, secret
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
        self.secrets: dict[str, str] = {}
        app = {"health": {"path": "/up", "interval": "500ms"}, "deploy_timeout": "20s", "drain_timeout": "5s"}
        self.config: dict[str, Any] = {
            "quayside:service": self.service,
            "quayside:server": host.server_config(),
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

    def own_certificate(self, role: str, certificate: tuple[Path, Path]) -> None:
        """The role serves `certificate` (and its key), set as two config secrets."""
        names = {"certificate_pem": f"{role.upper()}_PEM", "private_key_pem": f"{role.upper()}_KEY_PEM"}
        self.config["quayside:roles"][role]["ssl_certificate"] = names
        self.secrets[names["certificate_pem"]] = certificate[0].read_text()
        self.secrets[names["private_key_pem"]] = certificate[1].read_text()

    def up(self) -> None:
        handle = self.project.stack(STACK, self.config)
        for key, value in self.secrets.items():
            handle.set_config(f"quayside:{key}", secret(value))
        result = handle.up(color="never")
        assert result.summary.result == "succeeded"

    def containers(self, role: str) -> list[str]:
        """The IDs of the role's running containers on the host."""
        ps = ["docker", "ps", "--quiet", "--filter", f"label=quayside.service={self.service}",
              "--filter", f"label=quayside.role={role}"]  # fmt: skip
        return self.host.run(shlex.join(ps)).stdout.split()

    def destroy(self) -> None:
        self.project.stack(STACK, self.config).destroy(color="never")

    def https(self, role: str, timeout: float = 30, trust: ssl.SSLContext | None = None) -> tuple[int, str, str]:
        """(status, first word of the body, SHA-256 of the certificate served) of GET / over HTTPS, the certificate
        checked against Pebble's root (or `trust`) for the role's hostname. The first handshake for a name makes
        kamal-proxy get its certificate, so it may take seconds."""
        connection = HTTPSTo(self.host.address, self.hostname(role), HTTPS_PORT, trust or self.trust, timeout)
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

    def load(self, role: str, trust: ssl.SSLContext | None = None) -> Load:
        return Load(HTTPS_PORT, self.hostname(role), workers=2, address=self.host.address, tls=trust or self.trust)


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


def test_a_roles_own_certificate_is_served_instead_of_acmes_and_a_renewed_one_replaces_it_under_load(
    tls_stack: TlsStack, tmp_path: Path
) -> None:
    ca = make_ca(tmp_path / "own", "own")
    own = ssl.create_default_context(cafile=str(ca[0]))
    first = make_certificate(ca, tls_stack.hostname("api"), "api-1")
    tls_stack.own_certificate("api", first)
    tls_stack.up()

    assert tls_stack.https("api", trust=own) == (200, "v3", _fingerprint(first[0]))
    assert tls_stack.acme.certificates_fetched() == [], "no ACME certificate for a role with its own"
    containers = tls_stack.containers("api")

    renewed = make_certificate(ca, tls_stack.hostname("api"), "api-2")
    with tls_stack.load("api", trust=own) as load:
        load.wait_for_requests(50)
        tls_stack.own_certificate("api", renewed)
        tls_stack.up()
        load.wait_for_requests(load.report.total + 50)

    assert load.report.failures == [], load.report.summary()
    assert tls_stack.https("api", trust=own) == (200, "v3", _fingerprint(renewed[0]))
    assert tls_stack.containers("api") == containers, "a renewed certificate is served by the container that runs"
    print(f"certificate renewed under HTTPS load: {load.report.summary()}")

    del tls_stack.config["quayside:roles"]["api"]["ssl_certificate"]
    tls_stack.secrets.clear()  # a secret no key names is refused: the user removes them too (pulumi config rm)
    tls_stack.up()

    assert tls_stack.https("api")[:2] == (200, "v3"), "without its own, the role gets one from the ACME server"
    assert len(tls_stack.acme.certificates_fetched()) == 1
    kept = ["docker", "cp", f"{PROXY}:{PROXY_STATE_DIR}/tls/{tls_stack.service}_api.pem", "-"]
    assert tls_stack.host.run(f"{shlex.join(kept)} | tar --extract --to-stdout").stdout == "", (
        "no key left in the proxy"
    )


def _fingerprint(certificate: Path) -> str:
    """SHA-256 of the certificate's DER bytes, as `https` reports the one served."""
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(certificate.read_text())).hexdigest()


def _answers(stack: TlsStack) -> bool:
    try:
        return stack.https("web", timeout=2)[0] == 200
    except OSError:
        return False
