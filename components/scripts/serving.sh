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

# The service's containers, newest first, a line each: ID STATE ROLE VERSION ACCESSORY NAME (- for a label it has
# not). One listing for every part: each docker call is on the way of every preview and up.
service_containers() {
  docker ps --all --no-trunc --filter "label=quayside.service=$service" --format \
    '{{.ID}} {{.State}} {{or (.Label "quayside.role") "-"}} {{or (.Label "quayside.version") "-"}} {{or (.Label "quayside.accessory") "-"}} {{.Names}}'
}

# serving_version ROLE ROUTES CONTAINERS: the version the role's last swap put live here, if its container runs: a
# canary's by its name, else the container the proxy's route targets (ROUTES: as proxy_routes listed them), else the
# role's newest running one (live.sh's choice). CONTAINERS: service_containers' lines.
serving_version() {
  local role=$1 routes=$2 containers=$3 canary target
  canary=$(cat "$(canary_file "$service" "$role")" 2>/dev/null || true)
  target=$(route_in "$(route_name "$service" "$role")" <<<"$routes")
  target=${target%% *}
  awk -v name="${canary:+$(container_name "$service" "$role" "${canary%% *}")}" -v id="${target%:*}" -v role="$role" '
    $2 != "running" { next }
    name != "" { if ($6 == name) { print $4; exit } next }
    id != "" { if (index($1, id) == 1) { print $4; exit } next }
    $3 == role { print $4; exit }
  ' <<<"$containers"
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

# accessory_runs NAME CONTAINERS: its container <service>-NAME runs.
accessory_runs() {
  awk -v name="$service-$1" '$6 == name && $2 == "running" { found = 1 } END { exit !found }' <<<"$2"
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
  local role accessory live routes containers proxy_here
  routes=$(proxy_routes "$proxy_name" 2>/dev/null || true)
  containers=$(service_containers)
  for role in $({
    awk '$3 != "-" { print $3 }' <<<"$containers"
    recorded | sed -n 's/^role-//p'
  } | sort -u); do
    live=$(serving_version "$role" "$routes" "$containers")
    echo "role $role ${live:--} $(record_of "role-$role" "- -")"
  done
  for accessory in $({
    awk '$5 != "-" && $2 == "running" { print $5 }' <<<"$containers"
    recorded | sed -n 's/^accessory-//p'
  } | sort -u); do
    echo "accessory $accessory $(yes_or_no accessory_runs "$accessory" "$containers") $(record_of "accessory-$accessory" -)"
  done
  proxy_here=$(yes_or_no proxy_serves)
  if [[ $proxy_here == yes || -f $(drift_record "$service" proxy) ]]; then
    echo "proxy $proxy_here $(record_of proxy -)"
  fi
}

main "$@"
