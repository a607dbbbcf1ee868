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
#     data NAME MAJOR                 the accessory's data directory holds a Postgres cluster of this major version
#     proxy RUNNING HEALS             RUNNING: yes when the server's kamal-proxy runs on the service's network (and
#                                     on its fixed network, where containers are at their fixed addresses)
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

# serving_version ROLE ROUTES CONTAINERS ADDRESSES: the version the role's last swap put live here, if its container
# runs: a canary's by its name, else the container the proxy's route targets (ROUTES: as proxy_routes listed them;
# ADDRESSES: as fixed_addresses did), else the role's newest running one (live.sh's choice). CONTAINERS:
# service_containers' lines. Every look is the shell's own: a process here would be on the way of every preview and
# up, once per role.
serving_version() {
  local role=$1 canary='' name='' target id='' _ cid state container_role container_version container
  read -r canary _ 2>/dev/null <"$(canary_file "$service" "$role")" || true
  [[ -z $canary ]] || name=$(container_name "$service" "$role" "$canary")
  target=$(route_in "$(route_name "$service" "$role")" <<<"$2")
  [[ -z $target ]] || id=$(target_id "${target%% *}" "$4")
  while read -r cid state container_role container_version _ container; do
    [[ $state == running ]] || continue
    if [[ -n $name ]]; then
      [[ $container == "$name" ]] || continue
    elif [[ -n $id ]]; then
      [[ $cid == "$id"* ]] || continue
    else
      [[ $container_role == "$role" ]] || continue
    fi
    echo "$container_version"
    return 0
  done <<<"$3"
}

# proxy_serves ADDRESSES: the proxy runs, and is on the service's network (whose name is the service's) and, when
# containers are at their fixed addresses (ADDRESSES: as fixed_addresses listed them), on the fixed network too.
proxy_serves() {
  local running networks
  # shellcheck disable=SC2016 # a Go template, not shell
  read -r running networks <<<"$(inspect_container "$proxy_name" \
    '{{.State.Running}} {{range $net, $_ := .NetworkSettings.Networks}}{{$net}} {{end}}')"
  [[ $running == true && " $networks " == *" $service "* ]] || return 1
  [[ -z $1 || " $networks " == *" $(fixed_network "$service") "* ]]
}

# The record's words of PART, or the default given when it has none.
record_of() {
  local words
  if read -r words 2>/dev/null <"$(drift_record "$service" "$1")"; then echo "$words"; else echo "$2"; fi
}

yes_or_no() { if "$@"; then echo yes; else echo no; fi; }

# accessory_runs NAME CONTAINERS: its container <service>-NAME runs.
accessory_runs() {
  local _ state container
  while read -r _ state _ _ _ container; do
    [[ $container != "$service-$1" || $state != running ]] || return 0
  done <<<"$2"
  return 1
}

# list_parts CONTAINERS ROLES ACCESSORIES: into the arrays named ROLES and ACCESSORIES, sorted, the service's roles
# and accessories here: those with a container (an accessory's running), and those with a record (role-web,
# accessory-postgres: the record file's name).
list_parts() {
  local _ state role accessory file part
  while read -r _ state role _ accessory _; do
    [[ -z $role || $role == - ]] || add_sorted "$2" "$role"
    [[ $accessory == - || $state != running ]] || add_sorted "$3" "$accessory"
  done <<<"$1"
  for file in "$(drift_dir "$service")"/*; do
    [[ -f $file && $file != *.* ]] || continue
    part=${file##*/}
    case $part in
      role-*) add_sorted "$2" "${part#role-}" ;;
      accessory-*) add_sorted "$3" "${part#accessory-}" ;;
    esac
  done
}

main() {
  parse_options "$@"
  local role accessory routes containers addresses proxy_here live major roles=() accessories=()
  routes=$(proxy_routes "$proxy_name" 2>/dev/null || true)
  containers=$(service_containers)
  addresses=$(fixed_addresses "$service")
  list_parts "$containers" roles accessories
  for role in "${roles[@]}"; do
    live=$(serving_version "$role" "$routes" "$containers" "$addresses")
    echo "role $role ${live:--} $(record_of "role-$role" "- -")"
  done
  for accessory in "${accessories[@]}"; do
    echo "accessory $accessory $(yes_or_no accessory_runs "$accessory" "$containers") $(record_of "accessory-$accessory" -)"
    if read -r major 2>/dev/null <"$(accessory_data_dir "$service" "$accessory")/PG_VERSION"; then
      echo "data $accessory $major"
    fi
  done
  proxy_here=$(yes_or_no proxy_serves "$addresses")
  if [[ $proxy_here == yes || -f $(drift_record "$service" proxy) ]]; then
    echo "proxy $proxy_here $(record_of proxy -)"
  fi
}

main "$@"
