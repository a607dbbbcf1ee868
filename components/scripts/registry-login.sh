#!/usr/bin/env bash
# registry-login: log Docker in to a registry so pulls of private images work. The password comes on stdin.
#
#   registry-login.sh --server HOST --username U    (stdin: the password)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

server='' username=''

parse_options() {
  while (($#)); do
    case $1 in
      --server) need_value "$@"; server=$2; shift ;;
      --username) need_value "$@"; username=$2; shift ;;
      *) die "unknown option $1" ;;
    esac
    shift
  done
  required --server "$server"; required --username "$username"
}

main() {
  parse_options "$@"
  [[ ! -t 0 ]] || die "the password is read from stdin: pipe it in"
  local password
  password=$(cat)
  [[ -n $password ]] || die "no password on stdin"
  local output
  output=$(printf '%s' "$password" | docker login --username "$username" --password-stdin -- "$server" 2>&1) ||
    die "docker login to $server as $username failed: ${output##*$'\n'}"
  say "logged in to $server as $username"
}

main "$@"
