#!/usr/bin/env bash
# migrate: run a role's migration as a one-off container of its new image, in the foreground, before the
# swap. Prints the migration's output; exits with its exit code.
#
#   migrate.sh --service S --role R --image IMG --version V [--env K=V]... --lock-wait SECONDS -- COMMAND [ARG]...
#   (components/steps.py MIGRATE)
#   stdin: the role's secret env file (KEY=VALUE lines, may be empty)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

service='' role='' image='' version='' lock_wait=''
envs=() command=()

parse_options() {
  while (($#)); do
    case $1 in
      --service) need_value "$@"; service=$2; shift ;;
      --role) need_value "$@"; role=$2; shift ;;
      --image) need_value "$@"; image=$2; shift ;;
      --version) need_value "$@"; version=$2; shift ;;
      --lock-wait) need_value "$@"; lock_wait=$2; shift ;;
      --env) need_value "$@"; envs+=("$2"); shift ;;
      --) shift; command=("$@"); break ;;
      *) die "unknown option $1" ;;
    esac
    shift
  done
  required --service "$service"; required --role "$role"; required --image "$image"
  required --version "$version"; required --lock-wait "$lock_wait"; check_number --lock-wait "$lock_wait"
  check_part_name --service "$service"; check_part_name --role "$role"; check_version --version "$version"
  ((${#command[@]})) || die "missing the migration command after --"
  local env
  for env in "${envs[@]}"; do [[ $env == [A-Za-z_]*=* ]] || die "--env '$env' is not KEY=VALUE"; done
}

run_migration() {
  local args=(--rm --name "$name" --network "$service" --log-opt max-size=10m --log-opt max-file=3
    --label "quayside.service=$service" --label "quayside.migration=$role" --label "quayside.version=$version"
    --env-file "$(env_file "$service" "$role")")
  local env
  for env in "${envs[@]}"; do args+=(--env "$env"); done
  docker run "${args[@]}" -- "$image" "${command[@]}"
}

main() {
  parse_options "$@"
  name=$(migration_container_name "$service" "$role" "$version")
  lock "$service" "$role" "$lock_wait"
  write_env_file "$service" "$role"
  pull_if_missing "$image"
  # A run killed by a timeout may have left its container behind: found by its labels, as the role's lock
  # keeps any other migration of the role from running now.
  local leftovers
  leftovers=$(docker ps --all --quiet --filter "label=quayside.service=$service" --filter "label=quayside.migration=$role")
  # shellcheck disable=SC2086 # one argument per ID
  [[ -z $leftovers ]] || docker rm --force $leftovers >/dev/null
  local code=0
  # What the migration prints may hold the env file's values (an app that logs its settings): shown redacted.
  run_migration 2>&1 | redact_env "$(env_file "$service" "$role")" || code=${PIPESTATUS[0]}
  if ((code == 0)); then
    audit "$service" "$role" "$version" migrate ok
    say "$role $version: migration succeeded"
  else
    audit "$service" "$role" "$version" migrate "failed (exit $code)"
    echo "migrate failed: role $role on $(uname -n): the migration exited with $code" >&2
  fi
  return "$code"
}

main "$@"
