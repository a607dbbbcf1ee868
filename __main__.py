"""quayside: load the stack config, wire the components, export the outputs."""

import pulumi
from pulumi.runtime import config as runtime_config

from components import config, stack

# Every key of the stack's config (the SDK has no public call for all of them).
raw_config = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
secrets = pulumi.Config(config.NAMESPACE)
try:
    deployment = stack.deploy(config.load(raw_config), secrets.require_secret)
except config.ConfigError as error:
    # The one line naming the key, without a traceback: nothing has been created yet.
    raise pulumi.RunError(str(error)) from None
for key, value in deployment.outputs().items():
    pulumi.export(key, value)
