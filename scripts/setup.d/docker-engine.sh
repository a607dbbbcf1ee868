#!/usr/bin/env bash
# A Docker engine that answers: the one already running, or dockerd started here.
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"

if docker info >/dev/null 2>&1; then
  say "docker engine: running ($(docker version --format '{{.Server.Version}}'))"
  exit 0
fi
command -v dockerd >/dev/null || die "no dockerd: run scripts/setup.d/packages.sh (installs Debian's docker.io)"

log=$QUAYSIDE_CACHE/dockerd.log
say "docker engine: starting dockerd (log: $log)"
start_daemon "$log" dockerd
if ! wait_until 60 "docker info" docker info; then
  tail -n 15 "$log" >&2 || true
  die "dockerd did not answer within 60 s; read $log (above: its last lines). A stale /var/run/docker.pid or another engine holding /var/run/docker.sock are the usual causes"
fi
say "docker engine: started ($(docker version --format '{{.Server.Version}}'))"
