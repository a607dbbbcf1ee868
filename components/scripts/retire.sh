#!/usr/bin/env bash
# retire: a version's deploy command is being deleted. While another container of the role is live, only
# stop this version (it stays as a rollback candidate, pruned by swap's retention); when none is, the role
# was removed: drop its kamal-proxy route, all its containers and its env file. Never touches another role.
# When the swap that replaced this version is still stopping it in the background (an app that ignores SIGTERM
# takes its whole stop timeout), there is nothing left to do: retire says so and does not wait for the stop.
#
#   retire.sh --service S --role R --version V [--proxy | --no-proxy] [--proxy-name quayside-proxy]
#     [--lock-timeout 300]
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

service='' role='' version='' proxy=yes proxy_name=quayside-proxy lock_timeout=300

parse_options() {
  while (($#)); do
    case $1 in
      --service) need_value "$@"; service=$2; shift ;;
      --role) need_value "$@"; role=$2; shift ;;
      --version) need_value "$@"; version=$2; shift ;;
      --proxy) proxy=yes ;;
      --no-proxy) proxy=no ;;
      --proxy-name) need_value "$@"; proxy_name=$2; shift ;;
      --lock-timeout) need_value "$@"; lock_timeout=$2; shift ;;
      *) die "unknown option $1" ;;
    esac
    shift
  done
  required --service "$service"; required --role "$role"; required --version "$version"
  check_name --service "$service"; check_name --role "$role"; check_version --version "$version"
  check_name --proxy-name "$proxy_name"; check_number --lock-timeout "$lock_timeout"
}

# The container of the role that serves instead of this version, or nothing. Proxied: the one kamal-proxy
# targets, whatever its state (Docker may be restarting it); without a route (or without the proxy) any
# other running or restarting container of the role.
live_elsewhere() {
  local target other
  if [[ $proxy == yes ]]; then
    target=$(proxy_target "$proxy_name" "$service-$role" 2>/dev/null || true)
    if [[ -n $target ]]; then
      other=$(role_containers "$service" "$role" --filter "id=${target%:*}")
      [[ -z $other || $other == "$this_id" ]] || echo "$other"
      return 0
    fi
  fi
  for other in $(role_containers "$service" "$role" --filter status=running --filter status=restarting); do
    [[ $other == "$this_id" ]] || { echo "$other"; return 0; }
  done
}

keep_for_rollback() {
  local live=$1
  [[ -z $this_id ]] || docker stop "$this_id" >/dev/null
  audit "$service" "$role" "$version" retire "stopped, kept for rollback; live: $(label_of "$live" quayside.version)"
  say "$role $version stopped and kept for rollback ($(label_of "$live" quayside.version) is live)"
}

remove_role() {
  local route=no containers
  if [[ $proxy == yes ]] && docker exec "$proxy_name" kamal-proxy remove "$service-$role" >/dev/null 2>&1; then
    route=yes
  fi
  containers=$(role_containers "$service" "$role")
  # shellcheck disable=SC2086 # one argument per ID
  [[ -z $containers ]] || docker rm --force $containers >/dev/null
  rm -f "$(env_file "$service" "$role")"
  local count
  count=$(wc -w <<<"$containers")
  audit "$service" "$role" "$version" retire "role removed: route removed: $route, containers removed: $count"
  say "role $role removed (route removed: $route, containers removed: $count)"
}

# Given the role lock's holder line: true when a swap of another version holds it to stop what that version
# replaced, this one included.
stopped_by_swap() {
  [[ $1 == *": $STOPPING_NOTE "* && ${1##* } != "$version" ]]
}

main() {
  parse_options "$@"
  if ! lock "$service" "$role" "$lock_timeout" stopped_by_swap; then
    audit "$service" "$role" "$version" retire "stopping in the background, kept for rollback"
    say "$role $version is being stopped in the background and kept for rollback"
    return 0
  fi
  this_id=$(inspect_container "$(container_name "$service" "$role" "$version")" '{{.Id}}')
  this_id=${this_id:0:12}
  local live
  live=$(live_elsewhere)
  if [[ -n $live ]]; then
    keep_for_rollback "$live"
  else
    remove_role
  fi
}

main "$@"
