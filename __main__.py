"""quayside: load the stack config, wire the components, export the outputs."""

import signal
import sys

import pulumi
from pulumi.runtime import config as runtime_config

from components import config, drift, image_pin, stack

# Pulumi's language host interrupts the program (SIGINT) when an update ends early, as a failed deploy ends it: the
# engine has shown that error already, so the program ends quietly rather than add a KeyboardInterrupt traceback.
signal.signal(signal.SIGINT, lambda _number, _frame: sys.exit(1))

# Every key of the stack's config (the SDK has no public call for all of them), and those stored as secrets.
raw_config = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
secret_keys = {key for key in raw_config if runtime_config.is_config_secret(key)}
secret_keys |= set(runtime_config.get_config_secret_keys_env())
secrets = pulumi.Config(config.NAMESPACE)
try:
    settings = config.load(raw_config, secret_keys=secret_keys)
    # Tags are read from their registries as they stand now, with the stack's login (its password in memory only).
    login = image_pin.login_for(settings.pull_registry, raw_config.get(f"{config.NAMESPACE}:registry_password"))
    # What serves on each server is read, too, against what the stack's steps recorded there: drift shows in the plan.
    deployment = stack.deploy(settings, secrets.require_secret, image_pin.RegistryDigests(login), drift.read_server)
except (config.ConfigError, image_pin.PinError) as error:
    # The one line naming the key, without a traceback: nothing has been created yet.
    raise pulumi.RunError(str(error)) from None
for key, value in deployment.outputs().items():
    pulumi.export(key, value)
