#!/usr/bin/env bash
# live: which version of a role serves on this server, for the rollout across servers (components/rollout.py reads
# every server's before it touches any, and sends a server that fails back to it). Reads only: no lock, so it never
# waits behind a swap.
#
#   live.sh --service S --role R --proxy-name P   (components/steps.py LIVE)
#   stdout: `VERSION IMAGE` of the role's live container (the one kamal-proxy routes to, else the newest running
#   one of a role without the proxy); nothing when the role has none here
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source-path=SCRIPTDIR source=ops-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/ops-lib.sh"

service='' role='' proxy_name=''

parse_options() {
  while (($#)); do
    case $1 in
      --service) need_value "$@"; service=$2; shift ;;
      --role) need_value "$@"; role=$2; shift ;;
      --proxy-name) need_value "$@"; proxy_name=$2; shift ;;
      *) die "unknown option $1" ;;
    esac
    shift
  done
  required --service "$service"; required --role "$role"; required --proxy-name "$proxy_name"
  check_part_name --service "$service"; check_part_name --role "$role"; check_name --proxy-name "$proxy_name"
}

main() {
  parse_options "$@"
  local id
  id=$(live_container "$service" "$role" "$proxy_name")
  [[ -n $id ]] || return 0
  inspect_container "$id" '{{index .Config.Labels "quayside.version"}} {{.Config.Image}}'
}

main "$@"
