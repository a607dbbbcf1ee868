#!/usr/bin/env bash
# maintenance: turns a role's maintenance mode on or off through kamal-proxy. On, the proxy stops the route
# (in-flight requests drain) and answers 503 with the message; off, it resumes it. The containers keep running.
#
#   maintenance.sh on|off --service S --role R [--message TEXT] --drain-timeout D --proxy-name P
#   (components/steps.py MAINTENANCE)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source-path=SCRIPTDIR source=ops-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/ops-lib.sh"

action='' service='' role='' message='' drain_timeout='' proxy_name=''

parse_options() {
  action=${1:-}
  [[ $action == on || $action == off ]] || die "first argument must be on or off, not '$action'"
  shift
  while (($#)); do
    case $1 in
      --service) need_value "$@"; service=$2; shift ;;
      --role) need_value "$@"; role=$2; shift ;;
      --message) need_value "$@"; message=$2; shift ;;
      --drain-timeout) need_value "$@"; drain_timeout=$2; shift ;;
      --proxy-name) need_value "$@"; proxy_name=$2; shift ;;
      *) die "unknown option $1" ;;
    esac
    shift
  done
  required --service "$service"; required --role "$role"; required --drain-timeout "$drain_timeout"
  required --proxy-name "$proxy_name"
  check_part_name --service "$service"; check_part_name --role "$role"; check_name --proxy-name "$proxy_name"
  check_duration --drain-timeout "$drain_timeout"
}

main() {
  parse_options "$@"
  local route live version
  route=$(route_name "$service" "$role")
  [[ -n $(proxy_target "$proxy_name" "$route" 2>/dev/null || true) ]] ||
    die "$proxy_name has no route $route: role $role does not use the proxy, or is not deployed"
  live=$(live_container "$service" "$role" "$proxy_name")
  version=$(label_of "$live" quayside.version)
  if [[ $action == on ]]; then
    local args=(--drain-timeout "$drain_timeout")
    [[ -z $message ]] || args+=(--message "$message")
    docker exec "$proxy_name" kamal-proxy stop "$route" "${args[@]}" >/dev/null
    audit "$service" "$role" "${version:--}" maintenance "on${message:+: $message}"
    say "$role: maintenance on, $proxy_name answers 503${message:+ with \"$message\"}"
  else
    docker exec "$proxy_name" kamal-proxy resume "$route" >/dev/null
    audit "$service" "$role" "${version:--}" maintenance off
    say "$role: maintenance off, $proxy_name serves $version again"
  fi
}

main "$@"
