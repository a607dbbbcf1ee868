"""Stack config: a valid stack parses with its defaults; each malformed one fails with one line naming the key."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from components import config, defaults
from components.config import examples

Mutation = Callable[[dict[str, Any]], object]

# The SaaS example's secrets: role env (DATABASE_URL comes from its Postgres), SSH, registry, accessories.
SECRETS = {
    "ssh_private_key",
    "registry_password",
    "postgres_password",
    "backup_passphrase",
    "s3_access_key_id",
    "s3_secret_access_key",
    "betterstack_token",
}


def test_a_valid_stack_parses_with_kamal_like_defaults() -> None:
    stack = config.parse(examples.saas(), secrets_set=SECRETS)

    worker = stack.roles["worker"]
    assert worker.port == 80
    assert worker.deploy_timeout == defaults.DEPLOY_TIMEOUT
    assert worker.retain_containers == 5
    assert stack.roles["backend"].migrate == ["sh", "-c", "node dist/migrate.js"]
    assert stack.roles["backend"].image.context == "../backend"
    assert stack.proxy.image_ref == "basecamp/kamal-proxy:v0.9.2"
    assert stack.secret_names() == SECRETS


def test_an_image_from_a_registry_with_a_port_keeps_its_tag_as_version() -> None:
    stack = examples.saas()
    stack["roles"]["web"]["image"] = "127.0.0.1:5000/acme/web:v7"
    assert config.parse(stack, secrets_set=SECRETS).roles["web"].image.ref == "127.0.0.1:5000/acme/web:v7"


def set_in(path: str, value: Any) -> Mutation:
    def mutate(stack: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = stack
        for part in parents:
            node = node[part]
        node[last] = value

    return mutate


def drop(path: str) -> Mutation:
    def mutate(stack: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = stack
        for part in parents:
            node = node[part]
        del node[last]

    return mutate


# The SaaS example's server as three (several() puts them in place of `server`), and a Hetzner server.
THREE_SERVERS: dict[str, Any] = {
    name: {"provider": "existing", "host": f"203.0.113.{n}", "private_ip": f"10.0.0.{n}", "trust_first_use": True}
    for n, name in ((11, "app-1"), (12, "app-2"), (13, "db"))
}
HETZNER: dict[str, Any] = {"provider": "hetzner", "ssh_public_key": "ssh-ed25519 AAAA deploy@acme"}
THREE_HETZNER: dict[str, Any] = {name: dict(HETZNER) for name in THREE_SERVERS}


def several(*mutations: Mutation, servers: dict[str, Any] = THREE_SERVERS) -> Mutation:
    """The stack on `servers` (three existing servers) instead of its one `server`, Postgres (when it has one) on
    the last, then `mutations`."""

    def mutate(stack: dict[str, Any]) -> None:
        del stack["server"]
        stack["servers"] = copy.deepcopy(servers)
        if "postgres" in stack.get("accessories", {}):
            stack["accessories"]["postgres"].setdefault("server", list(servers)[-1])
        for mutation in mutations:
            mutation(stack)

    return mutate


OWN_CERTIFICATE = {"certificate_pem": "WEB_PEM", "private_key_pem": "WEB_KEY_PEM"}

MALFORMED: list[tuple[str, Mutation, str]] = [
    ("unknown top-level key", set_in("sever", {}), "sever: unknown key; allowed: service, server, servers, network, registry, proxy, load_balancer, roles"),
    ("unknown role key", set_in("roles.web.prot", 80), "roles.web.prot: unknown key; allowed: image, version, port,"),
    ("port out of range", set_in("roles.web.port", 70000), "roles.web.port: Input should be less than or equal to 65535 (got 70000)"),
    ("port as text", set_in("roles.web.port", "80"), "roles.web.port: Input should be a valid integer (got '80')"),
    ("two roles, one host", set_in("roles.api.hosts", ["acme.com"]), "roles.api.hosts: host acme.com path / is already served by role web"),
    ("proxied role without health", drop("roles.web.health"), "roles.web: a proxied role needs health: {path: /up} (or set proxy: false)"),
    ("bad role name", set_in("roles.Web_1", {"image": "a:1", "proxy": False}), "roles.Web_1 (name 'Web_1'): must be lowercase letters and digits"),
    ("bad service name", set_in("service", "Acme"), "service: must be lowercase letters and digits"),
    ("unknown server provider", set_in("server.provider", "aws"), "server.provider: must be one of existing, hetzner"),
    ("existing server without host", drop("server.host"), "server.host: required"),
    ("misspelt server key", set_in("server.hots", "x"), "server.hots: unknown key; allowed: provider, host, port, user, install_docker"),
    ("image without tag", set_in("roles.web.image", "ghcr.io/acme/web"), "roles.web.image: 'ghcr.io/acme/web' has no tag or digest"),
    ("image with a malformed digest", set_in("roles.web.image", "ghcr.io/acme/web@sha256:abc"), "roles.web.image: 'ghcr.io/acme/web@sha256:abc' is not an image reference"),
    ("image ref and context", set_in("roles.web.image", {"ref": "a:1", "context": "."}), "roles.web.image: give an image reference"),
    ("duration without unit", set_in("roles.web.deploy_timeout", "30"), "roles.web.deploy_timeout: must be a duration like 500ms, 30s or 2m, up to 60m (got '30')"),
    ("depends on unknown role", set_in("roles.api.depends_on", ["db"]), "roles.api.depends_on: 'db' is not another role (roles: web, backend, api, worker)"),
    ("dependency cycle", set_in("roles.backend.depends_on", ["api"]), "roles.backend.depends_on: a cycle backend -> api -> backend"),
    ("secret env not set", set_in("roles.web.env", {"secret": ["STRIPE_KEY"]}), 'STRIPE_KEY is not set: pulumi config set --secret STRIPE_KEY (it prompts; or printf %s "$VALUE" | pulumi config set --secret STRIPE_KEY)'),
    ("worker with hosts", set_in("roles.worker.hosts", ["jobs.acme.com"]), "roles.worker: hosts and path_prefix need proxy: true"),
    ("no roles", set_in("roles", {}), "roles: Dictionary should have at least 1 item"),
    ("hostname with a space", set_in("roles.web.hosts", ["acme .com"]), "roles.web.hosts.0: must be a lowercase hostname"),
    ("health path without slash", set_in("roles.web.health.path", "up"), "roles.web.health.path: must be a path starting with / (/up) (got 'up')"),
    ("retain zero containers", set_in("roles.web.retain_containers", 0), "roles.web.retain_containers: Input should be greater than or equal to 1 (got 0)"),
    ("env both clear and secret", set_in("roles.backend.env", {"clear": {"DATABASE_URL": "x"}, "secret": ["DATABASE_URL"]}), "roles.backend.env: DATABASE_URL is both clear and secret"),
    ("ssl role without host", set_in("roles.web.hosts", []), "roles.web.hosts: proxy.ssl needs at least one hostname per proxied role"),
    ("ssl for an IP address", set_in("roles.web.hosts", ["203.0.113.7"]), "roles.web.hosts: 203.0.113.7 is an IP address; Let's Encrypt certifies hostnames: give a hostname like app.example.com for proxy.ssl"),
    ("ssl for a wildcard", set_in("roles.web.hosts", ["*.acme.com"]), "roles.web.hosts: *.acme.com is a wildcard, which only a DNS challenge certifies"),
    ("ssl for a one-label name", set_in("roles.web.hosts", ["intranet"]), "roles.web.hosts: intranet is no public hostname (it has one label)"),
    ("own certificate without ssl", lambda s: [set_in("proxy", {"ssl": False})(s), set_in("roles.web.ssl_certificate", OWN_CERTIFICATE)(s)], "roles.web.ssl_certificate: serving a certificate needs proxy: {ssl: true}"),
    ("own certificate on a worker", set_in("roles.worker.ssl_certificate", OWN_CERTIFICATE), "roles.worker: ssl_certificate needs proxy: true: only the proxy serves a certificate"),
    ("own certificate, one secret for both", set_in("roles.web.ssl_certificate", {"certificate_pem": "WEB_PEM", "private_key_pem": "WEB_PEM"}), "roles.web.ssl_certificate: certificate_pem and private_key_pem both name WEB_PEM: give each its own secret"),
    ("own certificate's key is quayside's", set_in("roles.web.ssl_certificate", {"certificate_pem": "WEB_PEM", "private_key_pem": "ssh_private_key"}), "roles.web.ssl_certificate.private_key_pem: ssh_private_key is quayside's own secret (the servers' SSH key)"),
    ("own certificate's secret not set", set_in("roles.web.ssl_certificate", {"certificate_pem": "WEB_PEM", "private_key_pem": "OTHER_KEY_PEM"}), "OTHER_KEY_PEM is not set: pulumi config set --secret OTHER_KEY_PEM"),
    ("ssl redirect without ssl", set_in("proxy", {"ssl": False, "ssl_redirect": False}), "proxy: ssl_redirect: false only says something with ssl: true"),
    ("registry user without password", lambda s: None, 'registry_password is not set: pulumi config set --secret registry_password (it prompts; or printf %s "$VALUE" | pulumi config set --secret registry_password)'),
    ("volume without target", set_in("roles.web.volumes", ["data"]), "roles.web.volumes.0: must be name:/path or /host/dir:/path"),
    ("memory in words", set_in("roles.web.memory", "lots"), "roles.web.memory: must be a size with its unit k, m or g (512m), from 6m to 1024g (got 'lots')"),
    ("misspelt hetzner server key", set_in("server", {"provider": "hetzner", "ssh_public_key": "ssh-ed25519 AAAA", "tpye": "cx32"}), "server.tpye: unknown key; allowed: provider, type, location, image, ssh_public_key, delete_protection, ssh_from, user, bootstrap, primary_ipv4, volume"),
    ("hetzner server type in capitals", set_in("server", {"provider": "hetzner", "ssh_public_key": "ssh-ed25519 AAAA", "type": "CX32"}), "server.type: Input should be 'cx22', 'cx32',"),
    ("hetzner location unknown", set_in("server", {"provider": "hetzner", "ssh_public_key": "ssh-ed25519 AAAA", "location": "fra1"}), "server.location: Input should be 'fsn1', 'nbg1', 'hel1', 'ash', 'hil' or 'sin' (got 'fra1')"),
    ("ssh open to a network that is none", set_in("server", {"provider": "hetzner", "ssh_public_key": "ssh-ed25519 AAAA", "ssh_from": ["10.0.0.300/8"]}), "server.ssh_from: '10.0.0.300/8' is not a network like 203.0.113.0/24 (address/prefix length)"),
    ("ssh open to a hostname", set_in("server", {"provider": "hetzner", "ssh_public_key": "ssh-ed25519 AAAA", "ssh_from": ["office.acme.com"]}), "server.ssh_from.0: must be a network in CIDR form like 203.0.113.0/24 or 2001:db8::/32"),
    ("http and https on one port", set_in("proxy", {"http_port": 8080, "https_port": 8080}), "proxy: https_port 8080 is also http_port: give HTTP and HTTPS a port each"),
    ("health checks slower than the deploy timeout", set_in("roles.web.health", {"path": "/", "interval": "40s"}), "roles.web: health.interval 40s is longer than deploy_timeout 30s"),
    ("existing server without a host key", set_in("server", {"provider": "existing", "host": "203.0.113.7"}), "server: host_key: required: the server's SSH host key, e.g. the line `ssh-keyscan -t ed25519 203.0.113.7` prints"),
    ("host key given twice", set_in("server.trust_first_use", True), "server: host_key and trust_first_use: give the host key one way only"),
    ("host key that is no key", set_in("server.host_key", "AAAA"), "server.host_key: must be an SSH public key line"),
    ("proxy version with a space", set_in("proxy.version", "v 1"), "proxy.version: must be letters, digits, dot, dash and underscore"),
    ("build for another os", set_in("roles.backend.image.platform", "windows/amd64"), "roles.backend.image.platform: must be one Linux platform like linux/amd64 or linux/arm64 (got 'windows/amd64')"),
    ("platform of a ready image", set_in("roles.web.image", {"ref": "a:1", "platform": "linux/arm64"}), "roles.web.image: platform go with context, not with an image reference"),
    ("repository in capitals", set_in("roles.backend.image.repository", "Acme/Web"), "roles.backend.image.repository: must be a lowercase repository path like acme/web (got 'Acme/Web')"),
    ("build without a registry", drop("registry"), "roles.backend.image.context: a build needs registry: {server: ...} to push to"),
    ("server and servers", set_in("servers", THREE_SERVERS), "server and servers: give one of them"),
    ("neither server nor servers", drop("server"), "server: required (or servers, for several)"),
    ("no servers in servers", several(set_in("servers", {})), "servers: Dictionary should have at least 1 item"),
    ("server name in capitals", several(set_in("servers.App", THREE_SERVERS["db"])), "servers.App (name 'App'): must be lowercase letters and digits"),
    ("unknown provider in servers", several(set_in("servers.app-2.provider", "aws")), "servers.app-2.provider: must be one of existing, hetzner"),
    ("misspelt key of a server in servers", several(set_in("servers.db.hots", "x")), "servers.db.hots: unknown key; allowed: provider, host, port, user, install_docker"),
    ("hetzner type in servers in capitals", several(set_in("servers.app-1.type", "CX32"), servers=THREE_HETZNER), "servers.app-1.type: Input should be 'cx22', 'cx32',"),
    ("existing servers without a private address", several(drop("servers.app-2.private_ip")), "servers.app-2.private_ip: required with two or more servers"),
    ("postgres on a server by default", several(drop("accessories.postgres.server")), "accessories.postgres.server: required with several servers: name the one its data lives on (app-1, app-2, db)"),
    ("images sent to several servers", several(set_in("registry", "none")), "registry: none sends each image to one server over SSH; with servers:, give a registry the servers pull from (registry: {server: ...})"),
    ("private address that is none", several(set_in("servers.app-1.private_ip", "10.0.0")), "servers.app-1.private_ip: '10.0.0' is not an IPv4 or IPv6 address like 10.0.1.5"),
    ("public address as the private one", several(set_in("servers.app-1.private_ip", "5.75.1.2")), "servers.app-1.private_ip: 5.75.1.2 is not a private address"),
    ("two servers, one private address", several(set_in("servers.db.private_ip", "10.0.0.11")), "servers.db.private_ip: 10.0.0.11 is server app-1's already"),
    ("two servers, one host", several(set_in("servers.app-2.host", "203.0.113.11")), "servers.app-2.host: 203.0.113.11 port 22 is server app-1 already"),
    ("existing and hetzner servers mixed", several(set_in("servers.db", HETZNER)), "servers: app-1 is an existing server and db a hetzner one: no private network joins them"),
    ("hetzner servers with two keys", several(set_in("servers.db.ssh_public_key", "ssh-ed25519 BBBB"), servers=THREE_HETZNER), "servers.db.ssh_public_key: differs from app-1's: every server gets the public half of the one ssh_private_key"),
    ("network with existing servers", several(set_in("network", {})), "network: goes with hetzner servers in servers: (existing servers give their private_ip)"),
    ("network with one server", set_in("network", {}), "network: goes with hetzner servers in servers:"),
    ("hetzner server outside the network zone", several(set_in("servers.app-2.location", "ash"), servers=THREE_HETZNER), "servers.app-2.location: ash is in network zone us-east, not in network.zone eu-central"),
    ("network subnet outside its range", several(set_in("network", {"subnet": "10.1.0.0/24"}), servers=THREE_HETZNER), "network: subnet 10.1.0.0/24 is not inside ip_range 10.0.0.0/16"),
    ("network subnet with host bits", several(set_in("network", {"subnet": "10.0.1.5/24"}), servers=THREE_HETZNER), "network.subnet: '10.0.1.5/24' has host bits set: the network is 10.0.1.0/24"),
    ("public network", several(set_in("network", {"ip_range": "203.0.113.0/24"}), servers=THREE_HETZNER), "network.ip_range: 203.0.113.0/24 is not a private IPv4 network"),
    ("IPv6 network", several(set_in("network", {"subnet": "fd00::/64"}), servers=THREE_HETZNER), "network.subnet: must be an IPv4 network in CIDR form like 10.0.1.0/24 (got 'fd00::/64')"),
    ("network subnet too small", several(set_in("network", {"subnet": "10.0.1.0/28"}), set_in("servers.app-3", HETZNER), set_in("servers.app-4", HETZNER), set_in("servers.app-5", HETZNER), servers=THREE_HETZNER), "network.subnet: 10.0.1.0/28 has addresses for 5 servers (from .10); servers has 6"),
    ("network zone unknown", several(set_in("network", {"zone": "eu-west"}), servers=THREE_HETZNER), "network.zone: Input should be 'eu-central', 'us-east', 'us-west' or 'ap-southeast' (got 'eu-west')"),
    ("role on an unknown server", several(set_in("roles.api.servers", ["app-3"])), "roles.api.servers: unknown server 'app-3'; servers: app-1, app-2, db"),
    ("role on no server", several(set_in("roles.api.servers", [])), "roles.api.servers: List should have at least 1 item"),
    ("role on a server twice", several(set_in("roles.web.servers", ["app-1", "app-1"])), "roles.web.servers: app-1 is listed twice: a role runs once per server"),
    ("role servers with one server", set_in("roles.web.servers", ["app-1"]), "roles.web.servers: goes with servers: (this stack has one server:)"),
    ("every server holds accessories only", several(set_in("servers", {"db": THREE_SERVERS["db"]}), set_in("accessories.postgres.server", "db")), "roles.web.servers: every server holds accessories only (db): name the servers it runs on"),
    ("accessory on an unknown server", several(set_in("accessories.postgres.server", "app-3")), "accessories.postgres.server: unknown server 'app-3'; servers: app-1, app-2, db"),
    ("accessory on two servers", several(set_in("accessories.postgres.server", ["app-1", "db"])), "accessories.postgres.server: an accessory runs on one server: name one of app-1, db"),
    ("load balancer on one server", set_in("load_balancer", {"provider": "kamal-proxy", "server": "app-1"}), "load_balancer: goes with servers: (a balancer spreads a role over several servers)"),
    ("load balancer on an unknown server", several(set_in("load_balancer", {"provider": "kamal-proxy", "server": "lb"})), "load_balancer.server: unknown server 'lb'; servers: app-1, app-2, db"),
    ("role on the load balancer's server", several(set_in("load_balancer", {"provider": "kamal-proxy", "server": "app-2"}), set_in("roles.web.servers", ["app-1", "app-2"])), "roles.web.servers: app-2 is load_balancer.server: the balancer's kamal-proxy publishes its ports; place the role on the other servers"),
    ("load balancer of another kind", several(set_in("load_balancer", {"provider": "haproxy", "server": "db"})), "load_balancer.provider: Input should be 'kamal-proxy' or 'hetzner' (got 'haproxy')"),
    ("requests held on several servers", several(set_in("accessories.postgres.hold_requests", "30s")), "accessories.postgres.hold_requests: goes with one server:"),
    ("requests held without end", set_in("accessories.postgres.hold_requests", "2h"), "accessories.postgres.hold_requests: must be a duration"),
    ("accessory server with one server", set_in("accessories.vector.server", "app-1"), "accessories.vector.server: goes with servers: (this stack has one server:)"),
    ("backups on the host network away from postgres", several(set_in("accessories.postgres.publish", {"port": 15432}), set_in("accessories.postgres.server", "db"), set_in("accessories.backup.host_network", True), set_in("accessories.backup.server", "app-1")), "accessories.backup.server: host_network reaches Postgres on its own server's loopback: place it on db, postgres's server"),
    ("boot limit of none", set_in("roles.web.boot", {"limit": 0}), "roles.web.boot.limit: must be a count like 1 or a percentage like 50% (got 0)"),
    ("boot limit over 100%", set_in("roles.web.boot", {"limit": "150%"}), "roles.web.boot.limit: must be a count like 1 or a percentage like 50% (got '150%')"),
    ("boot limit as text", set_in("roles.web.boot", {"limit": "2"}), "roles.web.boot.limit: must be a count like 1 or a percentage like 50% (got '2')"),
    ("boot without a limit", set_in("roles.web.boot", {}), "roles.web.boot.limit: required"),
    ("canary sending no one", set_in("roles.web.canary", {"percent": 0}), "roles.web.canary: a canary with percent 0 and no allow sends no one to it"),
    ("canary over 100%", set_in("roles.web.canary", {"percent": 150}), "roles.web.canary.percent: Input should be less than or equal to 100"),
    ("canary value with a comma", set_in("roles.web.canary", {"allow": ["a,b"]}), "roles.web.canary.allow.0: must be a cookie value"),
    ("canary without the proxy", set_in("roles.web", {"image": "ghcr.io/acme/web:1", "proxy": False, "canary": {"percent": 5}}), "roles.web: canary needs proxy: true"),
]  # fmt: skip


@pytest.mark.parametrize(("mutation", "expected"), [(m, e) for _, m, e in MALFORMED], ids=[n for n, _, _ in MALFORMED])
def test_malformed_stack_fails_with_one_line_naming_the_key(mutation: Mutation, expected: str) -> None:
    stack = examples.saas()
    mutation(stack)
    secrets = SECRETS - {"registry_password"} if expected.startswith("registry_password") else SECRETS

    with pytest.raises(config.ConfigError) as raised:
        config.parse(stack, secrets_set=secrets)

    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"quayside config: {expected}"), message


def test_a_role_with_its_own_certificate_may_serve_names_lets_encrypt_would_not_certify() -> None:
    stack = examples.saas()
    stack["roles"]["web"]["hosts"] = ["203.0.113.7", "*.acme.com", "intranet"]
    stack["roles"]["web"]["ssl_certificate"] = OWN_CERTIFICATE

    parsed = config.parse(stack, secrets_set=SECRETS | {"WEB_PEM", "WEB_KEY_PEM"})

    assert parsed.secret_names() == SECRETS | {"WEB_PEM", "WEB_KEY_PEM"}
