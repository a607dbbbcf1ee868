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

# remove_network NETWORK: removed, unless a container is still on it (then it fails).
remove_network() {
  local subnet left
  read -r subnet left < <(network_state "$1")
  [[ -n $subnet ]] || return 0
  if [[ -n $left ]]; then
    say "network $1 kept: still attached: ${left//,/ }"
    return 1
  fi
  docker network rm "$1" >/dev/null
}

main() {
  parse_options "$@"
  lock "$service" host
  remove_network "$service" || true
  # The accessories' addresses are the fixed network's: a new one has another subnet.
  if remove_network "$(fixed_network "$service")"; then rm -rf "$(accessory_addresses_dir "$service")"; fi
  rm -rf "$(service_dir "$service")/env" "$(service_dir "$service")/stack-id" "$(drift_dir "$service")"
  # Ours is held until this script exits; nothing else of the service is left to deploy.
  rm -rf "$(service_dir "$service")/locks" "$(service_dir "$service")/logs"
  audit "$service" - - destroy "service removed; data and this log kept"
  say "service $service removed from $(uname -n)"
}

main "$@"
