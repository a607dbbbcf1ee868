#!/usr/bin/env bash
# logs: the Docker logs of a role's live container, or of an accessory's, for `quayside logs`.
#
#   logs.sh --service S (--role R | --accessory A) [--follow] [--since 10m] [--lines N] [--grep TEXT]
#     --proxy-name P   (components/steps.py LOGS)
#   --grep keeps the lines holding TEXT (a fixed string); no line found is no error.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source-path=SCRIPTDIR source=ops-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/ops-lib.sh"

service='' role='' accessory='' follow=no since='' lines='' pattern='' proxy_name=''

parse_options() {
  while (($#)); do
    case $1 in
      --service) need_value "$@"; service=$2; shift ;;
      --role) need_value "$@"; role=$2; shift ;;
      --accessory) need_value "$@"; accessory=$2; shift ;;
      --follow) follow=yes ;;
      --since) need_value "$@"; since=$2; shift ;;
      --lines) need_value "$@"; lines=$2; shift ;;
      --grep) need_value "$@"; pattern=$2; shift ;;
      --proxy-name) need_value "$@"; proxy_name=$2; shift ;;
      *) die "unknown option $1" ;;
    esac
    shift
  done
  required --service "$service"; required --proxy-name "$proxy_name"
  check_part_name --service "$service"; check_name --proxy-name "$proxy_name"
  [[ -n $role || -n $accessory ]] || die "give --role or --accessory"
  [[ -z $role ]] || check_part_name --role "$role"
  [[ -z $accessory ]] || check_part_name --accessory "$accessory"
  [[ -z $lines ]] || check_number --lines "$lines"
  [[ -z $since || $since =~ ^[0-9]+[smhd]?$ || $since =~ ^[0-9T:.Z+-]+$ ]] ||
    die "--since '$since' is not a duration like 10m or a time like 2026-11-25T10:00:00Z"
}

container() {
  if [[ -n $role ]]; then
    need_live "$service" "$role" "$proxy_name"
  else
    [[ -n $(inspect_container "$service-$accessory" '{{.Id}}') ]] ||
      die "accessory $accessory of $service has no container $service-$accessory: pulumi up boots it"
    echo "$service-$accessory"
  fi
}

main() {
  parse_options "$@"
  local id args=()
  id=$(container)
  [[ $follow == no ]] || args+=(--follow)
  [[ -z $since ]] || args+=(--since "$since")
  [[ -z $lines ]] || args+=(--tail "$lines")
  if [[ -z $pattern ]]; then
    docker logs "${args[@]}" "$id" 2>&1
  else
    docker logs "${args[@]}" "$id" 2>&1 | { grep --line-buffered -F -e "$pattern" || (($? == 1)); }
  fi
}

main "$@"
