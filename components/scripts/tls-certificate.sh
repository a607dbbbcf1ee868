#!/usr/bin/env bash
# tls-certificate: a role's own certificate where the proxy reads it. Nothing else changes: the role's swap serves
# what the file holds.
#
#   tls-certificate.sh write --service S --role R --proxy-name P --state-dir DIR --path DIR/tls/FILE.pem
#       Stdin holds the certificate, any intermediates and the private key, in PEM; they land in one file at PATH
#       inside the proxy container, on its state volume (a proxy reboot keeps it), readable only by the user the
#       proxy runs as.
#   tls-certificate.sh remove (the same options)
#       Empties the file, so no key stays behind once the role serves no certificate of its own. (The proxy image
#       has no shell to remove it with.)
#   (components/steps.py TLS_CERTIFICATE)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

action='' service='' role='' proxy_name='' state_dir='' path=''

parse_options() {
  action=${1:-}
  [[ $action == write || $action == remove ]] || die "first argument must be write or remove, not '$action'"
  shift
  while (($#)); do
    case $1 in
      --service) need_value "$@"; service=$2; shift ;;
      --role) need_value "$@"; role=$2; shift ;;
      --proxy-name) need_value "$@"; proxy_name=$2; shift ;;
      --state-dir) need_value "$@"; state_dir=$2; shift ;;
      --path) need_value "$@"; path=$2; shift ;;
      *) die "unknown option $1" ;;
    esac
    shift
  done
  required --service "$service"; required --role "$role"; required --proxy-name "$proxy_name"
  required --state-dir "$state_dir"; required --path "$path"
  check_part_name --service "$service"; check_part_name --role "$role"; check_name --proxy-name "$proxy_name"
  [[ $state_dir == /* ]] || die "--state-dir '$state_dir' must be an absolute path"
  [[ $path =~ ^${state_dir%/}/tls/[A-Za-z0-9_.-]+\.pem$ ]] || die "--path '$path' must be a file in $state_dir/tls"
}

# The uid:gid that owns the proxy's state directory: the user kamal-proxy runs as (the image has no shell to ask).
state_owner() {
  docker cp "$proxy_name:$state_dir/." - | tar --list --verbose --numeric-owner --file - |
    awk 'NR == 1 { print $2 }'
}

# Copies $staging/tls/FILE into the proxy, owned by the user the proxy runs as.
copy_in() {
  local owner
  owner=$(state_owner)
  [[ $owner =~ ^[0-9]+/[0-9]+$ ]] || die "could not tell who owns $state_dir in $proxy_name"
  tar --create --file - --directory "$staging" --no-recursion --numeric-owner \
    --owner "+${owner%/*}" --group "+${owner#*/}" tls "tls/${path##*/}" | docker cp --archive - "$proxy_name:$state_dir"
}

write() {
  [[ ! -t 0 ]] || die "the certificate and key are read from stdin: pipe them in"
  (umask 077; cat >"$staging/tls/${path##*/}")
  grep -q -- '-----BEGIN CERTIFICATE-----' "$staging/tls/${path##*/}" || die "stdin holds no PEM certificate"
  grep -q -- 'PRIVATE KEY-----' "$staging/tls/${path##*/}" || die "stdin holds no PEM private key"
  copy_in
  say "$role: certificate in $proxy_name at $path"
}

remove() {
  (umask 077; : >"$staging/tls/${path##*/}")
  copy_in
  say "$role: certificate at $path emptied in $proxy_name"
}

main() {
  parse_options "$@"
  if [[ -z $(inspect_container "$proxy_name" '{{.Id}}') ]]; then
    [[ $action == remove ]] || die "$proxy_name is not on $(uname -n): boot it first"
    say "$proxy_name is not on $(uname -n); nothing to empty"
    return 0
  fi
  staging=$(mktemp -d)
  trap 'rm -rf "$staging"' EXIT
  mkdir -m 700 "$staging/tls"
  "$action"
}

main "$@"
