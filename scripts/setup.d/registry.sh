#!/usr/bin/env bash
# A container registry on loopback (Debian's docker-registry), so deploys push and pull as in production.
# Docker trusts 127.0.0.0/8 registries over plain HTTP by default.
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"

port=${QUAYSIDE_REGISTRY_PORT:-5000}
dir=$QUAYSIDE_TESTBED/registry
mkdir -p "$dir/data"

answers() { curl -fsS -m 2 "http://127.0.0.1:$port/v2/" >/dev/null 2>&1; }

write_config() {
  cat >"$dir/config.yml" <<CONF
version: 0.1
log: {level: warn}
storage:
  filesystem: {rootdirectory: $dir/data}
  delete: {enabled: true}
http:
  addr: 127.0.0.1:$port
CONF
}

running_pid=$(cat "$dir/registry.pid" 2>/dev/null || true)
if [[ -n $running_pid ]] && kill -0 "$running_pid" 2>/dev/null && answers; then
  say "registry: running on 127.0.0.1:$port"
else
  port_taken "$port" && die "port 127.0.0.1:$port is taken by $(port_owner "$port"); stop it or choose another port: QUAYSIDE_REGISTRY_PORT=5001 scripts/setup"
  command -v docker-registry >/dev/null || die "no docker-registry: run scripts/setup.d/packages.sh"
  write_config
  start_daemon "$dir/registry.log" docker-registry serve "$dir/config.yml"
  echo $! >"$dir/registry.pid"
  wait_until 15 "registry" answers || die "the registry did not answer on 127.0.0.1:$port; read $dir/registry.log"
  say "registry: started on 127.0.0.1:$port"
fi
echo "QUAYSIDE_REGISTRY=127.0.0.1:$port" >"$QUAYSIDE_TESTBED/registry.env"
