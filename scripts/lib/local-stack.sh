# shellcheck shell=bash
# The `local` stack's Pulumi settings: its state in a file backend under the cache, its secrets under a
# fixed passphrase (the stack's only secret is the loopback server's key). Sourced after common.sh by
# scripts/up and scripts/down; a user typing `pulumi` sets the same three (README, "pulumi by hand"). The
# `quayside` command reads them from quayside_cli/local_stack.py: tests/unit/test_local_stack.py pins that they agree.
QUAYSIDE_STATE=$QUAYSIDE_CACHE/state
mkdir -p "$QUAYSIDE_STATE"
export PULUMI_BACKEND_URL=file://$QUAYSIDE_STATE
export PULUMI_CONFIG_PASSPHRASE=quayside-local-stack
export PULUMI_SKIP_UPDATE_CHECK=1
export LOCAL_STACK=local
