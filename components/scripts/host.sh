#!/usr/bin/env bash
# host: make the server ready for a service: Docker answering (Debian's docker.io installed when missing),
# log rotation by default, the service's network and its private directories. Runs as the deploy user: on a
# bootstrapped server (bootstrap.sh) Docker and its config are there already, and this only checks them.
# It records which Pulumi stack deployed the service (--stack-id, made once per stack): a service whose stack
# already runs another service here is that service renamed (`service:` changed), which would start on empty data
# beside it, and is refused before anything is made for it.
#
#   host.sh --service S --stack-id ID [--no-install-docker]
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

service='' install=yes stack_id=''

parse_options() {
  while (($#)); do
    case $1 in
      --service) need_value "$@"; service=$2; shift ;;
      --no-install-docker) install=no ;;
      --stack-id) need_value "$@"; stack_id=$2; shift ;;
      *) die "unknown option $1" ;;
    esac
    shift
  done
  required --service "$service"; check_part_name --service "$service"
  required --stack-id "$stack_id"; check_name --stack-id "$stack_id"
}

stack_id_file() { echo "$(service_dir "$1")/stack-id"; }

# Another service here that this stack deployed: the one this service was renamed from.
refuse_a_rename() {
  local file other
  for file in "$QUAYSIDE_ROOT"/*/stack-id; do
    [[ -f $file && $(<"$file") == "$stack_id" ]] || continue
    other=${file%/stack-id}
    other=${other##*/}
    [[ $other != "$service" ]] || continue
    die "this stack runs service '$other' on $(uname -n): as '$service' it would start on empty data beside it." \
      "Set service: $other back; a new name takes a new stack (or pulumi destroy first; data is kept under the old name)"
  done
}

main() {
  parse_options "$@"
  refuse_a_rename
  ensure_docker "$install"
  docker network inspect "$service" >/dev/null 2>&1 || docker network create "$service" >/dev/null
  mkdir -p "$(service_dir "$service")/env"
  chmod 700 "$(service_dir "$service")" "$(service_dir "$service")/env"
  echo "$stack_id" >"$(stack_id_file "$service")"
  say "docker $(docker version --format '{{.Server.Version}}'), network $service ready"
}

main "$@"
