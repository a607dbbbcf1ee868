#!/usr/bin/env bash
# details: what the server runs for a service, as tab-separated facts the `quayside details` command lays out.
#
#   details.sh --service S --proxy-name P   (components/steps.py DETAILS)
#   stdout, one line each:
#     container<TAB>ROLE<TAB>ACCESSORY<TAB>VERSION<TAB>STATE<TAB>HEALTH<TAB>ID<TAB>NAME<TAB>STARTED<TAB>FINISHED<TAB>IMAGE
#       <TAB>MEMORY LIMIT<TAB>MEMORY USED (bytes; the limit 0 when there is none, the use - when not running)
#     route<TAB>CELL... (a row of `kamal-proxy list` for one of the service's routes)
#     address<TAB>ID<TAB>ADDRESS (a running container's fixed address, which a route's target names)
#     canary<TAB>ROLE<TAB>VERSION<TAB>PERCENT<TAB>VALUE,VALUE (a role's canary, as swap.sh recorded it)
#     memory<TAB>AVAILABLE (bytes the server has available for new processes)
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

# .ID, not .Id: a newer docker CLI falls back to the raw JSON (where a missing .State.Health fails) on .Id.
readonly FORMAT='container	{{index .Config.Labels "quayside.role"}}	{{index .Config.Labels "quayside.accessory"}}	{{index .Config.Labels "quayside.version"}}	{{.State.Status}}	{{if .State.Health}}{{.State.Health.Status}}{{else}}-{{end}}	{{.ID}}	{{.Name}}	{{.State.StartedAt}}	{{.State.FinishedAt}}	{{.Config.Image}}	{{.HostConfig.Memory}}	{{.State.Pid}}'

containers() {
  local ids
  ids=$(docker ps --all --quiet --filter "label=quayside.service=$service")
  [[ -z $ids ]] && return 0
  local line pid use
  # shellcheck disable=SC2086 # one argument per ID
  docker inspect --format "$FORMAT" $ids | while IFS= read -r line; do
    pid=${line##*$'\t'}
    use=$(pid_memory_use "$pid")
    printf '%s\t%s\n' "${line%$'\t'*}" "${use:--}"
  done
}

routes() {
  [[ $(inspect_container "$proxy_name" '{{.State.Running}}') == true ]] || return 0
  docker exec "$proxy_name" kamal-proxy list | sed 's/\x1b\[[0-9;]*m//g' |
    awk -v prefix="$service-" 'NR > 1 && index($1, prefix) == 1 { $1 = $1; gsub(/ /, "\t"); print "route\t" $0 }'
}

# `address<TAB>ID<TAB>ADDRESS` of each container at its fixed address, which kamal-proxy's targets name.
addresses() {
  local id address
  while read -r id address; do
    [[ -z $id ]] || printf 'address\t%s\t%s\n' "${id:0:12}" "${address%/*}"
  done < <(fixed_addresses "$service")
}

canaries() {
  local pattern file version percent allow role
  pattern=$(canary_file "$service" '*')
  # shellcheck disable=SC2086 # the pattern is globbed: one file per role with a canary
  for file in $pattern; do
    [[ -f $file ]] || continue
    read -r version percent allow <"$file" || true
    role=${file#"${pattern%%\**}"}
    printf 'canary\t%s\t%s\t%s\t%s\n' "${role%"${pattern##*\*}"}" "$version" "$percent" "$allow"
  done
}

main() {
  parse_options "$@"
  containers
  routes
  addresses
  canaries
  printf 'memory\t%s\n' "$(memory_available)"
}

main "$@"
