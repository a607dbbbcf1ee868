#!/usr/bin/env bash
# serving: what of the service serves on this server (each role's version, the accessories and kamal-proxy that
# run) beside what the last successful step of each put here, for the drift check of `pulumi preview`/`up`
# (components/drift.py compares the two). Reads only: no lock, so it never waits behind a swap.
#
#   serving.sh --service S --proxy-name P   (components/steps.py SERVING)
#   stdout, a line for each part of the service that has a drift record here (lib.sh drift_record: what its last
#   successful step put here) or runs here:
#     role ROLE LIVE DEPLOYED HEALS   LIVE: a canary's version while its canary runs, else the version of the role's
#                                     live container (live.sh's) when it is running, else -; DEPLOYED and HEALS:
#                                     the record's version and count (- - without a record)
#     accessory NAME RUNNING HEALS    RUNNING: yes when its container <service>-<name> runs, else no; HEALS: the
#                                     record's count (- without a record)
#     proxy RUNNING HEALS             RUNNING: yes when the server's kamal-proxy runs on the service's network
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source-path=SCRIPTDIR source=ops-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/ops-lib.sh"

service='' proxy_name=''

parse_options() {
  while (($#)); do
    case $1 in
      --service) need_value "$@"; service=$2; shift ;;
      --proxy-name) need_value "$@"; proxy_name=$2; shift ;;
      *) die "unknown option $1" ;;
    esac
    shift
  done
  required --service "$service"; required --proxy-name "$proxy_name"
  check_part_name --service "$service"; check_name --proxy-name "$proxy_name"
}

# serving_version ROLE ROUTES: the version the role's last swap put live here, if its container runs (ROUTES: the
# proxy's, as proxy_routes listed them).
serving_version() {
  local role=$1 routes=$2 canary id running version
  canary=$(cat "$(canary_file "$service" "$role")" 2>/dev/null || true)
  if [[ -n $canary ]]; then
    id=$(container_name "$service" "$role" "${canary%% *}")
  else
    id=$(live_container_in "$routes" "$service" "$role")
  fi
  [[ -n $id ]] || return 0
  read -r running version <<<"$(inspect_container "$id" '{{.State.Running}} {{index .Config.Labels "quayside.version"}}')"
  [[ $running != true ]] || echo "$version"
}

# The proxy runs, and is on the service's network (whose name is the service's).
proxy_serves() {
  local running networks
  # shellcheck disable=SC2016 # a Go template, not shell
  read -r running networks <<<"$(inspect_container "$proxy_name" \
    '{{.State.Running}} {{range $net, $_ := .NetworkSettings.Networks}}{{$net}} {{end}}')"
  [[ $running == true && " $networks " == *" $service "* ]]
}

# The record's words of PART, or the default given when it has none.
record_of() {
  cat "$(drift_record "$service" "$1")" 2>/dev/null || echo "$2"
}

yes_or_no() { if "$@"; then echo yes; else echo no; fi; }

accessory_runs() {
  [[ $(inspect_container "$service-$1" '{{.State.Running}}') == true ]]
}

# The parts with a record here, by the record file's name (role-web, accessory-postgres, proxy).
recorded() {
  local file
  for file in "$(drift_dir "$service")"/*; do
    [[ -f $file && $file != *.* ]] && echo "${file##*/}"
  done
  return 0
}

main() {
  parse_options "$@"
  local role accessory live routes proxy_here
  # One listing for every role: each `kamal-proxy list` is a docker exec, on the way of every preview and up.
  routes=$(proxy_routes "$proxy_name" 2>/dev/null || true)
  for role in $({
    docker ps --all --filter "label=quayside.service=$service" --filter "label=quayside.role" \
      --format '{{.Label "quayside.role"}}'
    recorded | sed -n 's/^role-//p'
  } | sort -u); do
    live=$(serving_version "$role" "$routes")
    echo "role $role ${live:--} $(record_of "role-$role" "- -")"
  done
  for accessory in $({
    docker ps --filter "label=quayside.service=$service" --filter "label=quayside.accessory" \
      --format '{{.Label "quayside.accessory"}}'
    recorded | sed -n 's/^accessory-//p'
  } | sort -u); do
    echo "accessory $accessory $(yes_or_no accessory_runs "$accessory") $(record_of "accessory-$accessory" -)"
  done
  proxy_here=$(yes_or_no proxy_serves)
  if [[ $proxy_here == yes || -f $(drift_record "$service" proxy) ]]; then
    echo "proxy $proxy_here $(record_of proxy -)"
  fi
}

main "$@"
