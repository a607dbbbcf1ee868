"""The stack config: pydantic models that document every key and validate it, in one package.

types.py        the value types (Name, Port, Duration, ImageRef, ...), each pattern with what it allows in words
errors.py       ConfigError, and pydantic's errors as one line naming the key a user wrote
roles.py        the `roles` section: image, health check, environment, its servers and how many swap at once
servers.py      the `server` and `servers` sections (an existing SSH host, or a Hetzner Cloud server), and `network`
accessories.py  the `accessories` section: Postgres, its backups, Vector
stack.py        StackConfig (every top-level key), load() from Pulumi's config, parse()
examples.py     example stacks: the reference's examples, and the tests'
reference.py    docs/configuration.md, rendered from StackConfig's JSON schema and the examples

Each module imports only those above it, so none depends on import order. Elsewhere: `from components import
config`, then `config.Role`, `config.parse`.
"""

from components.config.accessories import ACCESSORIES, S3, Accessories, Backup, Postgres, Publish, Vector
from components.config.errors import ConfigError
from components.config.roles import Boot, Canary, Env, Health, ImageSpec, Role, SslCertificate
from components.config.servers import Bootstrap, ExistingServer, HetznerServer, HetznerVolume, Network, Server
from components.config.stack import (
    DATABASE_URL,
    NAMESPACE,
    ONE_SERVER,
    TOP_LEVEL_KEYS,
    LoadBalancer,
    Proxy,
    Registry,
    StackConfig,
    load,
    parse,
)
from components.config.types import (
    HOST_KEY_PATTERN,
    MEMORY_PATTERN,
    PATTERN_HELP,
    VERSION_PATTERN,
    Model,
    Port,
    milliseconds,
    public_key,
)

__all__ = [
    "ACCESSORIES",
    "DATABASE_URL",
    "HOST_KEY_PATTERN",
    "MEMORY_PATTERN",
    "NAMESPACE",
    "ONE_SERVER",
    "PATTERN_HELP",
    "S3",
    "TOP_LEVEL_KEYS",
    "VERSION_PATTERN",
    "Accessories",
    "Backup",
    "Boot",
    "Bootstrap",
    "Canary",
    "ConfigError",
    "Env",
    "ExistingServer",
    "Health",
    "HetznerServer",
    "HetznerVolume",
    "ImageSpec",
    "LoadBalancer",
    "Model",
    "Network",
    "Port",
    "Postgres",
    "Proxy",
    "Publish",
    "Registry",
    "Role",
    "Server",
    "SslCertificate",
    "StackConfig",
    "Vector",
    "load",
    "milliseconds",
    "parse",
    "public_key",
]
