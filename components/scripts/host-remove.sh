#!/usr/bin/env bash
# host-remove: the service is being destroyed, after its roles, its proxy route and its accessories: remove
# its network, env files, drift records, locks and logs. Accessory data and the audit log stay; so does a network that still
# holds containers quayside did not make.
#
#   host-remove.sh --service S   (components/steps.py HOST_REMOVE)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

service=''

parse_options() {
  while (($#)); do
    case $1 in
      --service) need_value "$@"; service=$2; shift ;;
      *) die "unknown option $1" ;;
    esac
    shift
  done
  required --service "$service"; check_part_name --service "$service"
}

# Names of the containers still attached to the network.
attached() { docker network inspect --format '{{range .Containers}}{{.Name}} {{end}}' "$service" 2>/dev/null; }

remove_network() {
  docker network inspect "$service" >/dev/null 2>&1 || return 0
  local left
  left=$(attached)
  if [[ -n ${left// /} ]]; then
    say "network $service kept: still attached: $left"
  else
    docker network rm "$service" >/dev/null
  fi
}

main() {
  parse_options "$@"
  lock "$service" host
  remove_network
  rm -rf "$(service_dir "$service")/env" "$(service_dir "$service")/stack-id" "$(drift_dir "$service")"
  # Ours is held until this script exits; nothing else of the service is left to deploy.
  rm -rf "$(service_dir "$service")/locks" "$(service_dir "$service")/logs"
  audit "$service" - - destroy "service removed; data and this log kept"
  say "service $service removed from $(uname -n)"
}

main "$@"
