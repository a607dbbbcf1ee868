#!/usr/bin/env bash
# host: make the server ready for a service: Docker answering (Debian's docker.io installed when missing),
# log rotation by default, the service's network and its private directories. Runs as the deploy user: on a
# bootstrapped server (bootstrap.sh) Docker and its config are there already, and this only checks them.
#
#   host.sh --service S [--no-install-docker]
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

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
  required --service "$service"; check_part_name --service "$service"
}

main() {
  parse_options "$@"
  ensure_docker "$install"
  docker network inspect "$service" >/dev/null 2>&1 || docker network create "$service" >/dev/null
  mkdir -p "$(service_dir "$service")/env"
  chmod 700 "$(service_dir "$service")" "$(service_dir "$service")/env"
  say "docker $(docker version --format '{{.Server.Version}}'), network $service ready"
}

main "$@"
