#!/usr/bin/env bash
# retire: the role left the stack (Pulumi deletes its swap command): drop its kamal-proxy route, all its
# containers and its env file. Never touches another role. Waits for a swap of the role still stopping the
# containers it replaced in the background, then removes them too.
#
#   retire.sh --service S --role R --version V (--proxy | --no-proxy) --proxy-name P --lock-wait SECONDS
#   (components/steps.py RETIRE; V is the version that was live, for the audit log)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

service='' role='' version='' proxy='' proxy_name='' lock_wait=''

parse_options() {
  while (($#)); do
    case $1 in
      --service) need_value "$@"; service=$2; shift ;;
      --role) need_value "$@"; role=$2; shift ;;
      --version) need_value "$@"; version=$2; shift ;;
      --lock-wait) need_value "$@"; lock_wait=$2; shift ;;
      --proxy) proxy=yes ;;
      --no-proxy) proxy=no ;;
      --proxy-name) need_value "$@"; proxy_name=$2; shift ;;
      *) die "unknown option $1" ;;
    esac
    shift
  done
  required --service "$service"; required --role "$role"; required --version "$version"
  required --lock-wait "$lock_wait"; check_number --lock-wait "$lock_wait"
  required_toggle --proxy "$proxy"; required --proxy-name "$proxy_name"
  check_part_name --service "$service"; check_part_name --role "$role"; check_version --version "$version"
  check_name --proxy-name "$proxy_name"
}

main() {
  parse_options "$@"
  lock "$service" "$role" "$lock_wait"
  local route=no containers count
  # Only a route this role holds: one claimed by another service's role stays.
  if [[ $proxy == yes ]] && (claim_route "$proxy_name" "$service" "$role") 2>/dev/null &&
    docker exec "$proxy_name" kamal-proxy remove "$(route_name "$service" "$role")" >/dev/null 2>&1; then
    route=yes
  fi
  release_route "$service" "$role"
  containers=$(role_containers "$service" "$role")
  # shellcheck disable=SC2086 # one argument per ID
  [[ -z $containers ]] || docker rm --force $containers >/dev/null
  rm -f "$(env_file "$service" "$role")" "$(canary_file "$service" "$role")" "$(drift_record "$service" "role-$role")"
  count=$(wc -w <<<"$containers")
  audit "$service" "$role" "$version" retire "role removed: route removed: $route, containers removed: $count"
  say "role $role removed (route removed: $route, containers removed: $count)"
}

main "$@"
