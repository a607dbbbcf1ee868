#!/usr/bin/env bash
# serving: what of the service serves on this server (each role's version, the accessories and kamal-proxy that
# run), for the drift check of `pulumi preview`/`up` (components/drift.py compares it with what the stack recorded).
# Reads only: no lock, so it never waits behind a swap.
#
#   serving.sh --service S --proxy-name P   (components/steps.py SERVING)
#   stdout, a line for each part of the service that serves here (one that does not, or is not here, has none):
#     role ROLE VERSION   a canary's version while its canary runs, else the version of the role's live container
#                         (live.sh's) when that container is running
#     accessory NAME      its container <service>-<name> is running
#     proxy               the server's kamal-proxy is running and on the service's network
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

# The version the role's last swap put live here, if its container runs.
serving_version() {
  local role=$1 canary id running version
  canary=$(cat "$(canary_file "$service" "$role")" 2>/dev/null || true)
  if [[ -n $canary ]]; then
    id=$(container_name "$service" "$role" "${canary%% *}")
  else
    id=$(live_container "$service" "$role" "$proxy_name")
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

main() {
  parse_options "$@"
  local role version accessory
  for role in $(docker ps --all --filter "label=quayside.service=$service" --filter "label=quayside.role" \
    --format '{{.Label "quayside.role"}}' | sort -u); do
    version=$(serving_version "$role")
    [[ -z $version ]] || echo "role $role $version"
  done
  for accessory in $(docker ps --filter "label=quayside.service=$service" --filter "label=quayside.accessory" \
    --format '{{.Label "quayside.accessory"}}' | sort -u); do
    echo "accessory $accessory"
  done
  if proxy_serves; then echo proxy; fi
}

main "$@"
