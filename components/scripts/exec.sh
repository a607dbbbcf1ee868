#!/usr/bin/env bash
# exec: a command in a role's live version, for `quayside exec`. By default a one-off container of the live
# container's image, on the service's network, with its environment and volumes; with --reuse, inside the live
# container itself. Exits with the command's exit code.
#
#   exec.sh --service S --role R --proxy-name P [--reuse] [--interactive] [--tty] -- CMD...
#   (components/steps.py EXEC)
#   The live container's environment (secrets included) reaches the one-off container through a 0600 file
#   beside the role's env file, removed when it ends: never a command line.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source-path=SCRIPTDIR source=ops-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/ops-lib.sh"

service='' role='' reuse=no proxy_name='' env_copy=''
terminal=() cmd=()

parse_options() {
  while (($#)); do
    case $1 in
      --service) need_value "$@"; service=$2; shift ;;
      --role) need_value "$@"; role=$2; shift ;;
      --reuse) reuse=yes ;;
      --interactive) terminal+=(--interactive) ;;
      --tty) terminal+=(--tty) ;;
      --proxy-name) need_value "$@"; proxy_name=$2; shift ;;
      --) shift; cmd=("$@"); break ;;
      *) die "unknown option $1" ;;
    esac
    shift
  done
  required --service "$service"; required --role "$role"; required --proxy-name "$proxy_name"
  check_part_name --service "$service"; check_part_name --role "$role"; check_name --proxy-name "$proxy_name"
  ((${#cmd[@]})) || die "give the command after --"
}

# The live container's environment, one KEY=VALUE a line, in a 0600 file only root reads.
copy_env() {
  local dir
  dir=$(dirname "$(env_file "$service" "$role")")
  mkdir -p "$dir"
  chmod 700 "$dir"
  env_copy=$(mktemp "$dir/.exec-$role.env.XXXXXX")
  chmod 600 "$env_copy"
  inspect_container "$1" '{{range .Config.Env}}{{println .}}{{end}}' >"$env_copy"
}

# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() { [[ -z $env_copy ]] || rm -f "$env_copy"; }

one_off() {
  local live=$1 image volume args=(--rm --network "$service")
  image=$(inspect_container "$live" '{{.Config.Image}}')
  copy_env "$live"
  args+=(--env-file "$env_copy")
  while IFS= read -r volume; do
    [[ -z $volume ]] || args+=(--volume "$volume")
  done <<<"$(inspect_container "$live" '{{range .HostConfig.Binds}}{{println .}}{{end}}')"
  docker run "${args[@]}" "${terminal[@]}" -- "$image" "${cmd[@]}"
}

main() {
  parse_options "$@"
  local live status=0
  live=$(need_live "$service" "$role" "$proxy_name")
  trap cleanup EXIT
  if [[ $reuse == yes ]]; then
    docker exec "${terminal[@]}" "$live" "${cmd[@]}" || status=$?
  else
    one_off "$live" || status=$?
  fi
  exit "$status"
}

main "$@"
