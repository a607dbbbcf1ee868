#!/usr/bin/env bash
# audit: the service's audit log, newest first, for `quayside audit`.
#
#   audit.sh --service S --lines N   (components/steps.py AUDIT)
#   Each line: <UTC time> <role> <version> <event> <detail>. A service with no log yet prints nothing.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

service='' lines=''

parse_options() {
  while (($#)); do
    case $1 in
      --service) need_value "$@"; service=$2; shift ;;
      --lines) need_value "$@"; lines=$2; shift ;;
      *) die "unknown option $1" ;;
    esac
    shift
  done
  required --service "$service"; required --lines "$lines"
  check_part_name --service "$service"; check_number --lines "$lines"
}

main() {
  parse_options "$@"
  local log
  log=$(service_dir "$service")/audit.log
  [[ -f $log ]] || return 0
  tac "$log" | head -n "$lines"
}

main "$@"
