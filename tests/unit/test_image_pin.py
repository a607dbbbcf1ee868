"""Pinning tags to digests: parsing references, the version names users see, the registry API lookup (against a
small registry of this file's own on loopback, with Basic and Bearer logins), and the role wiring under mocks."""

from __future__ import annotations

import base64
import http.server
import json
import threading
from collections.abc import Iterator
from typing import Any, ClassVar

import pulumi
import pytest

from components import config, image_pin, stack
from components.swap_command import version_of

DIGEST = "sha256:" + "093c6d79f8b3" + "0" * 52
OTHER_DIGEST = "sha256:" + "ab" * 32


def role(image: str, **extra: Any) -> config.Role:
    return config.Role.model_validate({"image": image, "proxy": False, **extra})


@pytest.mark.parametrize(
    ("ref", "registry", "repository", "tag", "digest"),
    [
        ("nginx:1.25", "docker.io", "library/nginx", "1.25", None),
        ("acme/web:latest", "docker.io", "acme/web", "latest", None),
        ("ghcr.io/acme/web:1.4", "ghcr.io", "acme/web", "1.4", None),
        ("127.0.0.1:5000/quayside-test/app:v1", "127.0.0.1:5000", "quayside-test/app", "v1", None),
        (f"localhost:5000/app:v1@{DIGEST}", "localhost:5000", "app", "v1", DIGEST),
        (f"ghcr.io/acme/web@{DIGEST}", "ghcr.io", "acme/web", None, DIGEST),
    ],
)
def test_a_reference_splits_as_the_registry_api_addresses_it(
    ref: str, registry: str, repository: str, tag: str | None, digest: str | None
) -> None:
    assert image_pin.ImageName.parse(ref) == image_pin.ImageName(registry, repository, tag, digest)


def test_only_loopback_registries_are_asked_over_plain_http() -> None:
    assert [image_pin.ImageName.parse(f"{host}/app:v1").scheme for host in
            ("127.0.0.1:5000", "localhost:5000", "[::1]:5000", "ghcr.io", "10.0.0.5:5000")] == \
        ["http", "http", "http", "https", "https"]  # fmt: skip


def test_the_version_of_a_pinned_tag_is_the_tag_and_the_digests_first_12_hex() -> None:
    assert version_of(role("ghcr.io/acme/web:1.4"), f"ghcr.io/acme/web:1.4@{DIGEST}") == "1.4@093c6d79f8b3"
    assert version_of(role(f"127.0.0.1:5000/app@{DIGEST}"), f"127.0.0.1:5000/app@{DIGEST}") == "093c6d79f8b3"
    assert version_of(role("127.0.0.1:5000/app:v1"), "127.0.0.1:5000/app:v1") == "v1"


def test_a_pinned_version_key_still_names_the_version() -> None:
    assert version_of(role("ghcr.io/acme/web:1.4", version="release-7"), f"ghcr.io/acme/web:1.4@{DIGEST}") == (
        "release-7"
    )


def test_pinning_looks_each_tag_up_once_and_leaves_digests_alone() -> None:
    asked: list[str] = []

    def read_digest(ref: str) -> str:
        asked.append(ref)
        return DIGEST

    refs = {
        "roles.web.image": "ghcr.io/acme/app:1.4",
        "roles.worker.image": "ghcr.io/acme/app:1.4",
        "roles.api.image": f"ghcr.io/acme/api@{OTHER_DIGEST}",
        "accessories.postgres.image": f"postgres:16.6@{OTHER_DIGEST}",
    }

    assert image_pin.pin_images(refs, read_digest) == {
        "roles.web.image": f"ghcr.io/acme/app:1.4@{DIGEST}",
        "roles.worker.image": f"ghcr.io/acme/app:1.4@{DIGEST}",
        "roles.api.image": f"ghcr.io/acme/api@{OTHER_DIGEST}",
        "accessories.postgres.image": f"postgres:16.6@{OTHER_DIGEST}",
    }
    assert asked == ["ghcr.io/acme/app:1.4"]


def test_each_image_a_server_pulls_is_pinned_the_proxys_and_the_accessories_too() -> None:
    settings = one_role_stack("ghcr.io/acme/web:1.4", accessories={
        "postgres": {"version": "16"}, "vector": {"sink": "betterstack"},
        "backup": {"s3": {"bucket": "acme-backups"}, "image": "ghcr.io/acme/backup:2"},
    })  # fmt: skip
    built = config.Role.model_validate({"image": {"context": "."}, "proxy": False})

    assert image_pin.pulled_images(settings, {**settings.roles, "built": built}) == {
        "roles.web.image": "ghcr.io/acme/web:1.4",
        "proxy.image": "basecamp/kamal-proxy:v0.9.2",
        "accessories.postgres.image": "postgres:16",
        "accessories.backup.image": "ghcr.io/acme/backup:2",
        "accessories.vector.image": "timberio/vector:0.57.0-debian",
    }


def test_a_stack_with_its_pins_names_each_pulled_image_by_digest_and_nothing_else_changes() -> None:
    settings = one_role_stack("ghcr.io/acme/web:1.4", accessories={"postgres": {"version": "16"}})
    pins = image_pin.pin_images(image_pin.pulled_images(settings, settings.roles), lambda ref: DIGEST)

    pinned = image_pin.with_pins(settings, pins)

    assert pinned.proxy.image_ref == f"basecamp/kamal-proxy:v0.9.2@{DIGEST}"
    assert pinned.accessories is not None and pinned.accessories.postgres is not None
    assert pinned.accessories.postgres.image_ref() == f"postgres:16@{DIGEST}"
    assert pinned.roles == settings.roles
    assert pinned.model_dump(exclude={"proxy", "accessories"}) == settings.model_dump(exclude={"proxy", "accessories"})
    assert image_pin.with_pins(settings, {}) == settings


def test_distinct_tags_are_looked_up_at_once_and_a_failure_names_the_first_key_in_order() -> None:
    both_asking = threading.Barrier(2, timeout=10)  # broken unless the two lookups are in flight together

    def read_digest(ref: str) -> str:
        both_asking.wait()
        if ref.endswith(":broken"):
            raise image_pin.RegistryError(f"cannot read the digest of {ref}")
        return DIGEST

    pins = image_pin.pin_images({"roles.web.image": "ghcr.io/acme/web:1", "roles.api.image": "ghcr.io/acme/api:1"},
                                read_digest)  # fmt: skip

    assert pins == {
        "roles.web.image": f"ghcr.io/acme/web:1@{DIGEST}",
        "roles.api.image": f"ghcr.io/acme/api:1@{DIGEST}",
    }
    both_asking.reset()
    refs = {"roles.web.image": "ghcr.io/acme/web:1", "accessories.postgres.image": "ghcr.io/acme/api:broken",
            "roles.worker.image": "ghcr.io/acme/api:broken"}  # fmt: skip
    with pytest.raises(image_pin.PinError, match=r"^quayside: accessories\.postgres\.image: cannot read the digest "):
        image_pin.pin_images(refs, read_digest)


def test_a_registry_that_fails_names_the_key_the_image_and_the_registry_in_one_line() -> None:
    with pytest.raises(image_pin.PinError) as failed:
        image_pin.pin_images({"roles.web.image": "127.0.0.1:9/acme/web:1.4"}, image_pin.RegistryDigests(timeout=5))

    message = str(failed.value)
    assert message.startswith(
        "quayside: roles.web.image: cannot read the digest of 127.0.0.1:9/acme/web:1.4 from registry 127.0.0.1:9: "
    ), message
    assert "refused" in message and "\n" not in message
    assert message.endswith("; or pin it by hand: roles.web.image: repo:tag@sha256:<64 hex>"), message


def test_a_proxy_whose_registry_cannot_be_read_is_told_how_to_pin_it_by_hand() -> None:
    settings = one_role_stack("ghcr.io/acme/web:1", proxy={"image": "127.0.0.1:9/kamal-proxy"})

    with pytest.raises(image_pin.PinError) as failed:
        image_pin.pin_images({"proxy.image": settings.proxy.image_ref}, image_pin.RegistryDigests(timeout=5))

    message = str(failed.value)
    assert message.startswith("quayside: proxy.image: cannot read the digest of 127.0.0.1:9/kamal-proxy:v0.9.2 from "
                              "registry 127.0.0.1:9: "), message  # fmt: skip
    assert message.endswith("; or pin it by hand: proxy.digest: sha256:<64 hex>"), message


def test_the_stack_login_is_used_only_with_a_username_and_its_password() -> None:
    with_user = config.Registry(server="ghcr.io", username="deploy")

    assert image_pin.login_for(with_user, "s3cr3t") == image_pin.Login("ghcr.io", "deploy", "s3cr3t")
    assert image_pin.login_for(config.Registry(server="ghcr.io"), "s3cr3t") is None
    assert image_pin.login_for(with_user, None) is None
    assert image_pin.login_for(None, "s3cr3t") is None


# --- a registry of our own on loopback ---------------------------------------------------------------------


class FakeRegistry(http.server.BaseHTTPRequestHandler):
    """Answers HEAD /v2/<repo>/manifests/<tag> with the digest in `tags`; `auth` decides the 401 challenge."""

    tags: ClassVar[dict[str, str]] = {}
    auth: ClassVar[str] = "none"  # none | basic | bearer
    seen: ClassVar[list[tuple[str, str, str]]] = []  # (method, path, Authorization)
    port: ClassVar[int] = 0
    TOKEN: ClassVar[str] = "tok-e81c"
    BASIC: ClassVar[str] = "Basic " + base64.b64encode(b"deploy:s3cr3t").decode()

    def log_message(self, *args: object) -> None:
        pass

    def _authorized(self) -> bool:
        given = self.headers.get("Authorization", "")
        wanted = {"none": given, "basic": self.BASIC, "bearer": f"Bearer {self.TOKEN}"}[self.auth]
        return given == wanted

    def do_GET(self) -> None:  # the token service of the Bearer flow
        self.seen.append(("GET", self.path, self.headers.get("Authorization", "")))
        if not self.path.startswith("/token?") or self.headers.get("Authorization") != self.BASIC:
            self.send_response(401)
            self.end_headers()
            return
        body = json.dumps({"token": self.TOKEN}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_HEAD(self) -> None:
        self.seen.append(("HEAD", self.path, self.headers.get("Authorization", "")))
        port = self.port
        if not self._authorized():
            self.send_response(401)
            challenge = {
                "basic": 'Basic realm="fake"',
                "bearer": f'Bearer realm="http://127.0.0.1:{port}/token",service="fake",scope="x"',
            }[self.auth]
            self.send_header("WWW-Authenticate", challenge)
            self.end_headers()
            return
        digest = self.tags.get(self.path)
        self.send_response(200 if digest else 404)
        if digest:
            self.send_header("Docker-Content-Digest", digest)
        self.end_headers()


@pytest.fixture
def registry() -> Iterator[str]:
    FakeRegistry.tags, FakeRegistry.auth, FakeRegistry.seen = {}, "none", []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeRegistry)
    FakeRegistry.port = server.server_port
    # shutdown() waits for serve_forever's next poll: 0.5 s by default, at every test's teardown.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


LOGIN_FOR = "deploy", "s3cr3t"


def test_an_open_registry_gives_the_digest_of_a_tag(registry: str) -> None:
    FakeRegistry.tags["/v2/acme/web/manifests/1.4"] = DIGEST

    assert image_pin.RegistryDigests()(f"{registry}/acme/web:1.4") == DIGEST


def test_a_basic_login_is_sent_only_after_the_registry_asks_for_it(registry: str) -> None:
    FakeRegistry.tags["/v2/acme/web/manifests/1.4"] = DIGEST
    FakeRegistry.auth = "basic"
    login = image_pin.Login(registry, *LOGIN_FOR)

    assert image_pin.RegistryDigests(login)(f"{registry}/acme/web:1.4") == DIGEST
    assert [auth for _, _, auth in FakeRegistry.seen] == ["", FakeRegistry.BASIC]


def test_a_bearer_registry_gets_a_pull_token_for_the_repository_with_the_login(registry: str) -> None:
    FakeRegistry.tags["/v2/acme/web/manifests/1.4"] = DIGEST
    FakeRegistry.auth = "bearer"

    assert image_pin.RegistryDigests(image_pin.Login(registry, *LOGIN_FOR))(f"{registry}/acme/web:1.4") == DIGEST
    token_request = FakeRegistry.seen[1]
    assert token_request[0] == "GET" and "scope=repository%3Aacme%2Fweb%3Apull" in token_request[1]
    assert FakeRegistry.seen[2] == ("HEAD", "/v2/acme/web/manifests/1.4", f"Bearer {FakeRegistry.TOKEN}")


def test_a_login_for_another_registry_is_never_sent(registry: str) -> None:
    FakeRegistry.auth = "basic"
    login = image_pin.Login("ghcr.io", *LOGIN_FOR)

    asks = r"asks for a login: set registry\.username and registry_password"
    with pytest.raises(image_pin.RegistryError, match=asks):
        image_pin.RegistryDigests(login)(f"{registry}/acme/web:1.4")
    assert all(auth == "" for _, _, auth in FakeRegistry.seen)


def test_a_missing_tag_says_so_and_the_password_never_shows(registry: str) -> None:
    login = image_pin.Login(registry, *LOGIN_FOR)

    with pytest.raises(image_pin.RegistryError) as failed:
        image_pin.RegistryDigests(login)(f"{registry}/acme/web:gone")

    assert str(failed.value) == (
        f"cannot read the digest of {registry}/acme/web:gone from registry {registry}: "
        "no such tag or repository (HTTP 404)"
    )
    assert "s3cr3t" not in repr(login)


# --- the wiring -------------------------------------------------------------------------------------------


HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHq9u5mVwK0p2Zr7xqQb3cJYtLk8dWn1sFv6gHe4aRz0"


# Every secret a stack of this file may need.
SECRETS_SET = {"ssh_private_key", "postgres_password", "backup_passphrase", "s3_access_key_id", "s3_secret_access_key",
               "betterstack_token"}  # fmt: skip


def one_role_stack(image: str, **extra: Any) -> config.StackConfig:
    return config.parse(
        {
            "service": "acme",
            "server": {"provider": "existing", "host": "203.0.113.7", "host_key": HOST_KEY},
            "roles": {"web": {"image": image, "hosts": ["acme.com"], "health": {"path": "/up"}}},
            **extra,
        },
        secrets_set=SECRETS_SET,
    )


def secret(name: str) -> pulumi.Output[str]:
    return pulumi.Output.secret(f"value of {name}")


@pulumi.runtime.test  # type: ignore[untyped-decorator]
def test_a_role_deploys_its_tag_by_digest_under_a_readable_version() -> pulumi.Output[None]:
    web = stack.deploy(one_role_stack("ghcr.io/acme/web:latest"), secret, lambda ref: DIGEST).roles["web"]

    def check(values: list[Any]) -> None:
        image, version, create, delete = values
        assert image == f"ghcr.io/acme/web:latest@{DIGEST}"
        assert version == "latest@093c6d79f8b3"
        assert f"--image ghcr.io/acme/web:latest@{DIGEST} --version latest@093c6d79f8b3" in create
        assert "--version latest@093c6d79f8b3" in delete

    return pulumi.Output.all(web.image_ref, web.version, web.deployed.create, web.deployed.delete).apply(check)
