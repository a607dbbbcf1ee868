"""quayside: load the stack config, wire the components, export the outputs."""

import pulumi
from pulumi.runtime import config as runtime_config

from components import config, stack

# Every key of the stack's config (the SDK has no public call for all of them).
raw_config = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
settings = config.load(raw_config)
secrets = pulumi.Config(config.NAMESPACE)
for key, value in stack.deploy(settings, secrets.require_secret).outputs().items():
    pulumi.export(key, value)
