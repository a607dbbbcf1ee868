#!/usr/bin/env bash
# host: make the server ready for a service: Docker answering (Debian's docker.io installed when missing),
# log rotation by default, the service's network and its private directories.
#
#   host.sh --service S [--no-install-docker]
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

readonly DAEMON_JSON=/etc/docker/daemon.json
readonly ENGINE_SECONDS=60
readonly CLOUD_INIT_SECONDS=300
service='' install=yes

parse_options() {
  while (($#)); do
    case $1 in
      --service) need_value "$@"; service=$2; shift ;;
      --no-install-docker) install=no ;;
      *) die "unknown option $1" ;;
    esac
    shift
  done
  required --service "$service"; check_name --service "$service"
}

install_docker() {
  [[ $install == yes ]] || die "docker is not installed and --no-install-docker forbids installing it"
  say "installing docker.io"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
}

# A new cloud server may still be in cloud-init (which installs Docker there): apt and dockerd wait for it.
wait_for_cloud_init() {
  command -v cloud-init >/dev/null || return 0
  timeout "$CLOUD_INIT_SECONDS" cloud-init status --wait >/dev/null ||
    say "cloud-init not done cleanly within ${CLOUD_INIT_SECONDS}s ($(cloud-init status 2>&1 | head -n 1)); going on"
}

has_systemd() { command -v systemctl >/dev/null && [[ -d /run/systemd/system ]]; }

engine() {
  if has_systemd; then
    systemctl "$1" docker
  else
    service docker "$1"
  fi
}

wait_for_engine() {
  local deadline=$((SECONDS + ENGINE_SECONDS))
  until docker info >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "the docker engine did not answer within ${ENGINE_SECONDS}s"
    sleep 1
  done
}

# Log rotation, and published ports served by the kernel rather than by docker-proxy processes. Not
# live-restore: on Debian's docker.io 20.10 it kept containers through a restart of dockerd but left their
# DNS failing for most lookups for a minute or more, and kamal-proxy finds its targets by name (see
# docs/design.md); without it, the containers restart with the engine and answer again within seconds.
daemon_json() {
  cat <<'JSON'
{
  "log-driver": "json-file",
  "log-opts": {"max-size": "10m", "max-file": "3"},
  "userland-proxy": false
}
JSON
}

# Only when absent: an operator's own daemon.json wins.
write_daemon_json() {
  [[ ! -e $DAEMON_JSON ]] || return 0
  mkdir -p "${DAEMON_JSON%/*}"
  daemon_json >"$DAEMON_JSON"
  say "wrote $DAEMON_JSON (log rotation, no userland proxy)"
  # An engine with containers is never restarted: the config applies at its next restart. One with no
  # container at all (a new server, under systemd) restarts to take it now.
  if [[ -z $(docker ps --all --quiet) ]] && has_systemd; then
    systemctl restart docker
    wait_for_engine
  fi
}

main() {
  parse_options "$@"
  wait_for_cloud_init
  command -v docker >/dev/null || install_docker
  docker info >/dev/null 2>&1 || engine start
  wait_for_engine
  write_daemon_json
  docker network inspect "$service" >/dev/null 2>&1 || docker network create "$service" >/dev/null
  mkdir -p "$(service_dir "$service")/env"
  chmod 700 "$(service_dir "$service")" "$(service_dir "$service")/env"
  say "docker $(docker version --format '{{.Server.Version}}'), network $service ready"
}

main "$@"
