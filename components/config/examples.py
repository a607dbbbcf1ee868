"""Example stacks, as a stack file's `quayside:` keys hold them: the configuration reference shows them, and the
tests start from them. Each validates (tests/unit/test_reference.py checks), and together they set every key.

Each call makes a new one, for a test to change: `stack = examples.saas(); stack["proxy"]["ssl"] = False`.
"""

from __future__ import annotations

from typing import Any, Final

# A host key as ssh-keyscan prints it (made up).
HOST_KEY: Final = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHq9u5mVwK0p2Zr7xqQb3cJYtLk8dWn1sFv6gHe4aRz0"
# The backups' public key as `gpg --armor --export` writes it (a key made for this example; its private half is gone).
BACKUP_PUBLIC_KEY: Final = """\
-----BEGIN PGP PUBLIC KEY BLOCK-----

mDMEaxNhcBYJKwYBBAHaRw8BAQdAsYpYzbikzjPY5b4edugoVBZ3OEW1FxL5VIeZ
oMtmwUO0H0FjbWUgYmFja3VwcyA8YmFja3Vwc0BhY21lLmNvbT6IkAQTFggAOBYh
BNf2h5XxlLig8EFfXGmFtk/pYrHbBQJrE2FwAhsBBQsJCAcCBhUKCQgLAgQWAgMB
Ah4BAheAAAoJEGmFtk/pYrHb07kA/0HduC/q5Ae/rA9CvZZXlEyETOC8m6Nu1jRg
p/CyQcBHAP4lOALP/6yY1tiwMpGXVtWUZ/jAZzTpzfTWBiW0AEPIB7g4BGsTYXAS
CisGAQQBl1UBBQEBB0CHFxX3zvLren5DEfweBHHTl7Bb1tGxsRhjEIJNkjb7SgMB
CAeIeAQYFggAIBYhBNf2h5XxlLig8EFfXGmFtk/pYrHbBQJrE2FwAhsMAAoJEGmF
tk/pYrHbAfkBAMFNw9QMbOQGvtR6yb8vqMnhaMRJ3LbJyU+D73sFiuKaAQC8r7s0
ZFSSnAayJGKaLU2bTlL/P41jbcXlmXcTL4D4DQ==
=4PyW
-----END PGP PUBLIC KEY BLOCK-----
"""


def saas() -> dict[str, Any]:
    """The typical SaaS of Pulumi.prod.yaml: four roles (one built, one a worker), Postgres with backups, Vector.

    The reference shows each section of it as that section's example."""
    return {
        "service": "acme",
        "server": {"provider": "existing", "host": "203.0.113.7", "host_key": f"203.0.113.7 {HOST_KEY}"},
        "registry": {"server": "ghcr.io", "username": "acme"},
        "proxy": {"ssl": True},
        "roles": {
            "web": {"image": "ghcr.io/acme/web:2026.11.1", "port": 80, "hosts": ["acme.com"], "health": {"path": "/"}},
            "backend": {
                "image": {"context": "../backend", "dockerfile": "Dockerfile.prod", "target": "release"},
                "port": 3001,
                "hosts": ["app.acme.com"],
                "health": {"path": "/health"},
                "migrate": "node dist/migrate.js",
                "env": {"clear": {"NODE_ENV": "production"}, "secret": ["DATABASE_URL"]},
            },
            "api": {
                "image": "ghcr.io/acme/api:2026.11.1",
                "port": 3002,
                "hosts": ["api.acme.com"],
                "health": {"path": "/health", "interval": "2s", "timeout": "3s"},
                "depends_on": ["backend"],
            },
            "worker": {
                "image": {"ref": "ghcr.io/acme/api:2026.11.1"},
                "proxy": False,
                "cmd": ["node", "dist/worker.js"],
                "readiness_delay": 10,
                "env": {"secret": ["DATABASE_URL"]},
            },
        },
        "accessories": {
            "postgres": {"version": "16", "database": "acme", "settings": {"max_connections": 200}},
            "backup": {
                "schedule": "@hourly",
                "keep_days": 30,
                "s3": {"bucket": "acme-backups", "endpoint": "https://fsn1.your-objectstorage.com", "region": "fsn1"},
            },
            "vector": {"sink": "betterstack", "ingest_url": "https://s1234.eu-nbg-2.betterstackdata.com"},
        },
    }


def hetzner_staging() -> dict[str, Any]:
    """Staging on a Hetzner Cloud server: every key of the server, the proxy and a build."""
    return {
        "service": "acme-staging",
        "server": {
            "provider": "hetzner",
            "type": "cx32",
            "location": "fsn1",
            "image": "debian-12",
            "ssh_public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBexample deploy@acme",
            "delete_protection": False,
            "ssh_from": ["203.0.113.0/24", "2001:db8::/32"],
            "user": "deploy",
            "bootstrap": {"swap_mb": 4096, "unattended_upgrades": True},
            "primary_ipv4": True,
            "volume": {"size_gb": 20, "delete_protection": True},
        },
        "registry": {"server": "registry.acme.com:5000", "username": "deploy"},
        "proxy": {
            "image": "registry.acme.com:5000/kamal-proxy",
            "version": "v0.9.2",
            "digest": "sha256:5f1a0c2e9b7d4c3a8e6f0b1d2c3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e",
            "ssl": True,
            "ssl_redirect": False,
            "http_port": 8080,
            "https_port": 8443,
            "bind": "127.0.0.1",
            "state_dir": "/home/kamal-proxy/.config/kamal-proxy",
        },
        "roles": {
            "app": {
                "image": {
                    "context": "../app", "args": {"NODE_VERSION": "22"}, "platform": "linux/arm64",
                    "repository": "acme/app",
                },
                "version": "v1.4.2",
                "port": 3000,
                "hosts": ["staging.acme.com"],
                "path_prefix": "/app",
                "health": {"path": "/up"},
                "deploy_timeout": "2m",
                "drain_timeout": "10s",
                "volumes": ["uploads:/app/uploads", "/srv/acme/config:/app/config:ro"],
                "memory": "512m",
                "memory_short": "stop_first",
                "cpus": 0.5,
                "retain_containers": 3,
                "stop_timeout": 30,
                "ssl_certificate": {"certificate_pem": "STAGING_CERTIFICATE_PEM", "private_key_pem": "STAGING_KEY_PEM"},
                "canary": {"percent": 10, "allow": ["staff-1"]},
            },
        },
    }  # fmt: skip


def key_files_and_own_images() -> dict[str, Any]:
    """An existing server reached with key files and bootstrapped; accessories from images of its own registry."""
    return {
        "service": "acme",
        "server": {"provider": "existing", "host": "deploy.acme.com", "port": 2222, "user": "deploy",
                   "install_docker": False, "bootstrap": {"swap_mb": 0, "unattended_upgrades": False},
                   "private_key_file": "~/.ssh/deploy_ed25519",
                   "host_key_file": "~/.ssh/acme_host_ed25519.pub", "private_ip": "10.0.0.2"},
        "roles": {"web": {"image": "ghcr.io/acme/web:1.0", "health": {"path": "/up"}}},
        "accessories": {
            "postgres": {"image": "registry.acme.com:5000/postgres:16.6", "user": "acme_app",
                         "env": {"POSTGRES_INITDB_ARGS": "--data-checksums"}, "publish": {"port": 15432},
                         "memory": "1g", "ready_timeout": 300, "delete_data": True, "hold_requests": "30s"},
            "backup": {"schedule": "30 3 * * *", "image": "registry.acme.com:5000/pg-backup:16", "host_network": True,
                       "s3": {"bucket": "acme-backups", "prefix": "acme/db"}},
            "vector": {"image": "registry.acme.com:5000/vector:0.57.0-debian", "memory": "256m",
                       "delete_data": True},
        },
    }  # fmt: skip


def smallest() -> dict[str, Any]:
    """One role on an existing server whose host key is pinned at the first deploy."""
    return {
        "service": "acme",
        "server": {"provider": "existing", "host": "203.0.113.9", "trust_first_use": True},
        "roles": {"web": {"image": "ghcr.io/acme/web:1.0", "health": {"path": "/up"}}},
    }


def hetzner_servers() -> dict[str, Any]:
    """Pulumi.multi.yaml: three Hetzner servers on their private network, web and backend on two (one at a time),
    api on one, Postgres and its backups on a server of their own."""
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBexample deploy@acme"
    return {
        "service": "acme",
        "servers": {
            "app-1": {"provider": "hetzner", "type": "cx32", "location": "nbg1", "ssh_public_key": key},
            "app-2": {"provider": "hetzner", "type": "cx32", "location": "fsn1", "ssh_public_key": key},
            "db": {"provider": "hetzner", "type": "cx22", "location": "nbg1", "image": "debian-12",
                   "ssh_public_key": key, "delete_protection": True, "ssh_from": ["203.0.113.0/24"],
                   "user": "deploy", "bootstrap": {"swap_mb": 2048, "unattended_upgrades": True},
                   "primary_ipv4": False, "volume": {"size_gb": 40, "delete_protection": True}},
        },
        "network": {"ip_range": "10.0.0.0/16", "subnet": "10.0.1.0/24", "zone": "eu-central"},
        "registry": {"server": "ghcr.io", "username": "acme"},
        "roles": {
            "web": {"image": "ghcr.io/acme/web:2026.11.1", "port": 80, "health": {"path": "/"}, "boot": {"limit": 1}},
            "backend": {"image": "ghcr.io/acme/backend:2026.11.1", "port": 3001, "hosts": ["app.acme.com"],
                        "health": {"path": "/health"}, "migrate": "node dist/migrate.js",
                        "env": {"secret": ["DATABASE_URL"]}, "servers": ["app-1", "app-2"],
                        "boot": {"limit": "50%"}},
            "api": {"image": "ghcr.io/acme/api:2026.11.1", "port": 3002, "hosts": ["api.acme.com"],
                    "health": {"path": "/health"}, "servers": ["app-2"]},
        },
        "accessories": {
            "postgres": {"version": "16", "database": "acme", "server": "db"},
            "backup": {"server": "db", "public_key": BACKUP_PUBLIC_KEY,
                       "s3": {"bucket": "acme-backups", "endpoint": "https://fsn1.your-objectstorage.com",
                              "region": "fsn1", "write_only": True}},
            "vector": {"server": "app-1"},
        },
    }  # fmt: skip


def existing_servers() -> dict[str, Any]:
    """Three existing servers on a private network of their own (each gives its private_ip): a role on two, a
    worker on the third, beside Postgres."""
    return {
        "service": "acme",
        "servers": {
            "app-1": {"provider": "existing", "host": "203.0.113.11", "private_ip": "10.0.0.11",
                      "host_key": f"203.0.113.11 {HOST_KEY}"},
            "app-2": {"provider": "existing", "host": "app-2.acme.com", "port": 2222, "user": "deploy",
                      "install_docker": False, "bootstrap": {"swap_mb": 0, "unattended_upgrades": False},
                      "private_key_file": "~/.ssh/deploy_ed25519", "host_key_file": "~/.ssh/app-2_ed25519.pub",
                      "private_ip": "10.0.0.12"},
            "db": {"provider": "existing", "host": "203.0.113.13", "private_ip": "10.0.0.13", "trust_first_use": True},
        },
        "roles": {
            "web": {"image": "ghcr.io/acme/web:1.0", "health": {"path": "/up"}, "servers": ["app-1", "app-2"],
                    "boot": {"limit": "50%"}},
            "worker": {"image": "ghcr.io/acme/web:1.0", "proxy": False, "cmd": "bin/jobs", "servers": ["db"]},
        },
        "accessories": {"postgres": {"server": "db"}},
    }  # fmt: skip


def behind_a_load_balancer() -> dict[str, Any]:
    """Two app servers behind a kamal-proxy load balancer on a third, which ends TLS for both roles."""
    return {
        "service": "acme",
        "servers": {
            "lb": {"provider": "existing", "host": "203.0.113.20", "private_ip": "10.0.0.20", "trust_first_use": True},
            "app-1": {"provider": "existing", "host": "203.0.113.21", "private_ip": "10.0.0.21",
                      "trust_first_use": True},
            "app-2": {"provider": "existing", "host": "203.0.113.22", "private_ip": "10.0.0.22",
                      "trust_first_use": True},
        },
        "load_balancer": {"provider": "kamal-proxy", "server": "lb"},
        "proxy": {"ssl": True},
        "roles": {
            "web": {"image": "ghcr.io/acme/web:1.0", "hosts": ["acme.com"], "health": {"path": "/up"},
                    "boot": {"limit": 1}},
            "api": {"image": "ghcr.io/acme/api:1.0", "hosts": ["api.acme.com"], "health": {"path": "/up"},
                    "servers": ["app-2"]},
        },
    }  # fmt: skip


def behind_a_hetzner_load_balancer() -> dict[str, Any]:
    """Two Hetzner servers behind a Hetzner Load Balancer with a managed certificate; both run both roles (it sends
    every hostname to every server)."""
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHq9u5mVwK0p2Zr7xqQb3cJYtLk8dWn1sFv6gHe4aRz0 deploy@acme"
    return {
        "service": "acme",
        "servers": {
            "app-1": {"provider": "hetzner", "type": "cx32", "location": "nbg1", "ssh_public_key": key},
            "app-2": {"provider": "hetzner", "type": "cx32", "location": "fsn1", "ssh_public_key": key},
        },
        "load_balancer": {"provider": "hetzner", "type": "lb11", "location": "nbg1"},
        "proxy": {"ssl": True},
        "roles": {
            "web": {"image": "ghcr.io/acme/web:1.0", "hosts": ["acme.com"], "health": {"path": "/up"},
                    "boot": {"limit": 1}},
            "api": {"image": "ghcr.io/acme/api:1.0", "hosts": ["api.acme.com"], "health": {"path": "/up"}},
        },
    }  # fmt: skip


def reference() -> tuple[dict[str, Any], ...]:
    """The reference's examples, in the order it looks for a key's example."""
    return (
        saas(), hetzner_staging(), key_files_and_own_images(), smallest(), hetzner_servers(), existing_servers(),
        behind_a_load_balancer(), behind_a_hetzner_load_balancer(),
    )  # fmt: skip
