#!/usr/bin/env bash
# accessory: one long-lived container beside the app roles (Postgres, the backup scheduler, Vector), named
# <service>-<name>. Kamal leaves accessories alone on deploy; quayside reconciles them: the same options,
# secret env and image as the running container is a no-op; anything else stops it and boots a new one on the
# same data directory. If the new one does not become ready, it is removed and the old one started again. With
# --hold-for, kamal-proxy holds the requests of each --hold-role's route (each request up to that long) from before
# the old container stops until the new one is ready, or the old one is back: the apps see a slow request, not an
# error.
# Data lives in /var/lib/quayside/<service>/<name>/data and is never deleted, except by `remove --delete-data`.
# A data directory that holds a Postgres cluster (its PG_VERSION) of an older major version than the new image runs is
# moved to the new major by a dump and restore (postgres-major.sh): a backup first when the service's backup
# accessory runs, requests held as for any restart, the old directory kept; a failure anywhere puts the old
# container back on its untouched data. A newer major than the image's is refused before anything stops.
# --heal N counts the times `pulumi up` found the accessory not running as recorded (components/drift.py): a new
# count makes Pulumi run the boot again, which starts it.
#
#   accessory.sh boot --service S --name N --image IMG --config-hash H --network NET [--env K=V]...
#     [--data CONTAINER_PATH] [--volume SPEC]... [--file CONTAINER_PATH=BASE64]...
#     [--publish ADDRESS:PORT:PORT]... [--health-cmd CMD --health-interval D] --ready-timeout N
#     --readiness-delay N --stop-timeout N [--memory 512m] [--hold-for D --proxy-name P [--hold-role R]...]
#     [--heal N] [--cmd ARG]...
#       stdin: the accessory's secret env file (KEY=VALUE lines, may be empty), kept 0600 in
#       /var/lib/quayside/<service>/env/accessory-<name>.env
#       --file writes a (non-secret) config file under /var/lib/quayside/<service>/<name>/files and mounts it
#       read-only at CONTAINER_PATH.
#   accessory.sh remove --service S --name N --stop-timeout N [--delete-data]
#       Stops and removes the container and its env file; its data directory stays unless --delete-data.
#   (components/steps.py ACCESSORY)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source-path=SCRIPTDIR source=postgres-major.sh
source "$(dirname "${BASH_SOURCE[0]}")/postgres-major.sh"

action='' service='' name='' image='' config_hash='' network='' data='' health_cmd='' health_interval=''
ready_timeout='' readiness_delay='' stop_timeout='' memory='' delete_data=no hold_for='' proxy_name=''
held_since='' heal='' old_major='' new_major='' kept_data='' envs=() volumes=() files=() publishes=() cmd=() hold_roles=() held=()

# 127.0.0.1, or an RFC 1918 address that an interface of this server holds.
private_address() {
  [[ $1 == 127.0.0.1 ]] && return 0
  [[ $1 =~ ^(10\.|192\.168\.|172\.(1[6-9]|2[0-9]|3[01])\.) ]] || return 1
  ip -o -4 addr show | awk '{ print $4 }' | cut -d/ -f1 | grep -qxF "$1"
}

parse_options() {
  action=${1:-}
  [[ $action == boot || $action == remove ]] || die "first argument must be boot or remove, not '$action'"
  shift
  while (($#)); do
    case $1 in
      --service) need_value "$@"; service=$2; shift ;;
      --name) need_value "$@"; name=$2; shift ;;
      --image) need_value "$@"; image=$2; shift ;;
      --config-hash) need_value "$@"; config_hash=$2; shift ;;
      --network) need_value "$@"; network=$2; shift ;;
      --env) need_value "$@"; envs+=("$2"); shift ;;
      --data) need_value "$@"; data=$2; shift ;;
      --volume) need_value "$@"; volumes+=("$2"); shift ;;
      --file) need_value "$@"; files+=("$2"); shift ;;
      --publish) need_value "$@"; publishes+=("$2"); shift ;;
      --health-cmd) need_value "$@"; health_cmd=$2; shift ;;
      --health-interval) need_value "$@"; health_interval=$2; shift ;;
      --ready-timeout) need_value "$@"; ready_timeout=$2; shift ;;
      --readiness-delay) need_value "$@"; readiness_delay=$2; shift ;;
      --stop-timeout) need_value "$@"; stop_timeout=$2; shift ;;
      --memory) need_value "$@"; memory=$2; shift ;;
      --delete-data) delete_data=yes ;;
      --hold-for) need_value "$@"; hold_for=$2; shift ;;
      --hold-role) need_value "$@"; hold_roles+=("$2"); shift ;;
      --heal) need_value "$@"; heal=$2; shift ;;
      --proxy-name) need_value "$@"; proxy_name=$2; shift ;;
      --cmd) need_value "$@"; cmd+=("$2"); shift ;;
      *) die "unknown option $1" ;;
    esac
    shift
  done
  required --service "$service"; required --name "$name"; required --stop-timeout "$stop_timeout"
  check_part_name --service "$service"; check_part_name --name "$name"; check_number --stop-timeout "$stop_timeout"
  [[ $action == remove ]] && return 0
  required --image "$image"; required --config-hash "$config_hash"; required --network "$network"
  required --ready-timeout "$ready_timeout"; required --readiness-delay "$readiness_delay"
  [[ -z $health_cmd ]] || required --health-interval "$health_interval"
  check_name --config-hash "$config_hash"; check_name --network "$network"
  check_number --ready-timeout "$ready_timeout"; check_number --readiness-delay "$readiness_delay"
  [[ -z $heal ]] || check_number --heal "$heal"
  [[ -z $health_cmd ]] || check_duration --health-interval "$health_interval"
  if [[ -n $hold_for ]]; then
    check_duration --hold-for "$hold_for"; required --proxy-name "$proxy_name"; check_name --proxy-name "$proxy_name"
  fi
  for item in "${hold_roles[@]}"; do check_part_name --hold-role "$item"; done
  [[ -z $data || $data == /* ]] || die "--data '$data' must be an absolute path in the container"
  local item
  for item in "${envs[@]}"; do [[ $item == [A-Za-z_]*=* ]] || die "--env '$item' is not KEY=VALUE"; done
  # Never on a public interface: the server's loopback (reach it over an SSH tunnel), or its address on a private
  # network (the service's other servers).
  for item in "${publishes[@]}"; do
    if ! [[ $item =~ ^([0-9.]+):[0-9]+:[0-9]+$ ]] || ! private_address "${BASH_REMATCH[1]}"; then
      die "--publish '$item' must be ADDRESS:HOST_PORT:CONTAINER_PORT, ADDRESS 127.0.0.1 or a private address here"
    fi
  done
  for item in "${files[@]}"; do
    [[ $item =~ ^/[^=]*[^/=]=[A-Za-z0-9+/]*=*$ ]] || die "--file '${item%%=*}=...' must be /container/path=BASE64"
  done
}

# --- where things live ------------------------------------------------------------------------------------

accessory_dir() { echo "$(service_dir "$service")/$name"; }
data_dir() { accessory_data_dir "$service" "$name"; }
files_dir() { echo "$(accessory_dir)/files"; }
secrets_name() { echo "accessory-$name"; }

# Writes each --file (base64 on the command line: it is config, not a secret) for a read-only mount.
write_files() {
  local item path target seen=' '
  ((${#files[@]})) || return 0
  mkdir -p "$(files_dir)"
  for item in "${files[@]}"; do
    path=${item%%=*}
    target=$(files_dir)/${path##*/}
    [[ $seen != *" $target "* ]] || die "two --file options share the name ${path##*/}"
    seen+="$target "
    base64 -d <<<"${item#*=}" >"$target.tmp" || die "--file $path: the content is not valid base64"
    chmod 644 "$target.tmp"
    mv -f "$target.tmp" "$target"
  done
}

# --- the container ----------------------------------------------------------------------------------------

run_container() {
  local args=(--detach --name "$container" --network "$network" --restart unless-stopped
    --log-opt max-size=10m --log-opt max-file=3 --stop-timeout "$stop_timeout"
    --label "quayside.service=$service" --label "quayside.accessory=$name"
    --label "quayside.config=$config_hash" --label "quayside.env-hash=$env_hash"
    --label "quayside.image-id=$image_id"
    --env-file "$(env_file "$service" "$(secrets_name)")")
  local item
  for item in "${envs[@]}"; do args+=(--env "$item"); done
  [[ -z $data ]] || args+=(--volume "$(data_dir):$data")
  for item in "${volumes[@]}"; do args+=(--volume "$item"); done
  for item in "${files[@]}"; do
    item=${item%%=*}
    args+=(--volume "$(files_dir)/${item##*/}:$item:ro")
  done
  for item in "${publishes[@]}"; do args+=(--publish "$item"); done
  [[ -z $health_cmd ]] || args+=(--health-cmd "$health_cmd" --health-interval "$health_interval"
    --health-timeout 5s --health-retries 3)
  [[ -z $memory ]] || args+=(--memory "$memory")
  [[ $network != "$service" ]] || add_accessory_hosts args "$service"
  docker run "${args[@]}" -- "$image" "${cmd[@]}"
}

# "<config hash> <env hash> <image id>" the container was booted with, or nothing.
booted_with() {
  inspect_container "$1" \
    '{{index .Config.Labels "quayside.config"}} {{index .Config.Labels "quayside.env-hash"}} {{index .Config.Labels "quayside.image-id"}}'
}

# Ready: healthy by its --health-cmd within --ready-timeout; without one, still running (and not restarted
# meanwhile) after --readiness-delay seconds. Prints why not and fails.
wait_ready() {
  local deadline=$((SECONDS + ready_timeout)) restarts state
  restarts=$(inspect_container "$container" '{{.RestartCount}}')
  if [[ -z $health_cmd ]]; then
    sleep "$readiness_delay"
    state=$(inspect_container "$container" '{{.State.Status}} {{.RestartCount}}')
    [[ $state == "running $restarts" ]] || { echo "not running ${readiness_delay}s after start ($state)"; return 1; }
    return 0
  fi
  while true; do
    state=$(inspect_container "$container" '{{.State.Status}} {{.State.Health.Status}}')
    case $state in
      "running healthy") return 0 ;;
      "running "*) ;;
      *) echo "stopped before it became healthy ($state)"; return 1 ;;
    esac
    ((SECONDS < deadline)) || { echo "not healthy within ${ready_timeout}s ($state)"; return 1; }
    sleep 1
  done
}

report_failure() {
  {
    echo "accessory failed: $name of $service on $(uname -n): $1"
    echo "last log lines of $container:"
    docker logs --tail 30 "$container" 2>&1 | redact_env "$(env_file "$service" "$(secrets_name)")" | sed 's/^/  | /'
  } >&2
}

# --- requests held through a restart ---------------------------------------------------------------------

# Pauses the routes of --hold-role that serve now (a route in maintenance or not deployed yet is left alone):
# kamal-proxy lets the requests in flight finish, then queues new ones. Whatever ends this run resumes them.
hold_requests() {
  [[ -n $hold_for && ${#hold_roles[@]} -gt 0 ]] || return 0
  [[ $(inspect_container "$proxy_name" '{{.State.Running}}') == true ]] || return 0
  local role route
  trap release_requests EXIT
  for role in "${hold_roles[@]}"; do
    route=$(route_name "$service" "$role")
    [[ $(proxy_route_state "$proxy_name" "$route") == running ]] || continue
    hold_route "$proxy_name" "$route" "$hold_for" "$hold_for"
    held+=("$route")
  done
  held_since=$(now_ms)
  ((${#held[@]} == 0)) || say "holding the requests of ${held[*]} (each up to $hold_for) while $container restarts"
}

release_requests() {
  local route
  ((${#held[@]})) || return 0
  for route in "${held[@]}"; do
    let_route_on "$proxy_name" "$route"
  done
  say "requests of ${held[*]} let on after $(($(now_ms) - held_since)) ms"
  held=()
}

# Puts the previous container back after a failed replacement; the data directory is the same.
put_back() {
  local joined
  docker rm --force "$container" >/dev/null 2>&1 || true
  # A container removed while it restarts can leave its endpoint behind under the name the old one takes back.
  for joined in "$network" "$(fixed_network "$service")"; do
    docker network disconnect --force "$joined" "$container" >/dev/null 2>&1 || true
  done
  put_back_data
  [[ -n $aside ]] || return 0
  docker rename "$aside" "$container"
  docker start "$container" >/dev/null
  echo "accessory $name: the previous container is running again" >&2
}

# The container at the accessory's fixed address (lib.sh fixed_network): the one kept for its name, else a new one,
# kept for its next containers, since the roles' hosts files name it. One in another's network namespace (the
# backup, in Postgres's) has that one's.
take_fixed_address() {
  local file subnet result
  [[ $network == "$service" ]] || return 0
  [[ -z $(inspect_container "$container" "$(fixed_address_template "$service")") ]] || return 0
  file=$(accessory_addresses_dir "$service")/$container
  subnet=$(ensure_fixed_network "$service")
  result=$(connect_fixed "$service" "$container" "$subnet" "$(cat "$file" 2>/dev/null || true)" 2>&1) ||
    { echo "its fixed address: $result"; return 1; }
  ensure_dir "${file%/*}"
  echo "$result" >"$file"
}

# decide_major CURRENT: old_major and new_major set when the data directory holds an older major's cluster than
# $image runs (CURRENT: the running container's booted_with, empty when there is none); dies, touching nothing,
# when the move cannot be made.
decide_major() {
  [[ -n $data ]] || return 0
  local found wanted
  found=$(data_major "$(data_dir)")
  [[ -n $found ]] || return 0
  # The same image as the running container's runs the same major (a settings change): no need to ask it.
  [[ ${1##* } != "$image_id" ]] || return 0
  wanted=$(image_major "$image") || die "cannot tell which Postgres $image runs (above)"
  ((wanted != found)) || return 0
  ((wanted > found)) ||
    die "$(data_dir) holds Postgres $found's data and $image runs $wanted: a major version cannot go back (set the version to $found)"
  [[ -n $1 ]] ||
    die "$(data_dir) holds Postgres $found's data and no container of it is here to dump it: deploy Postgres $found first, then $wanted"
  old_major=$found new_major=$wanted
  say "Postgres $old_major to $new_major: a dump of the cluster is restored into a new data directory"
}

# Before a major upgrade, a backup to S3 when the service's backup accessory runs (the upgrade's own dump stays here).
back_up_first() {
  [[ $(inspect_container "$service-backup" '{{.State.Running}}') == true ]] || return 0
  say "backing up to S3 before the upgrade"
  bash "$(dirname "${BASH_SOURCE[0]}")/backup.sh" now --service "$service" ||
    die "the backup before the upgrade from Postgres $old_major failed: nothing was changed"
}

boot() {
  lock "$service" "accessory-$name"
  write_env_file "$service" "$(secrets_name)"
  env_hash=$(sha256sum "$(env_file "$service" "$(secrets_name)")" | cut -c1-16)
  write_files
  [[ -z $data ]] || mkdir -p "$(data_dir)"
  pull_if_missing "$image"
  image_id=$(docker image inspect --format '{{.Id}}' "$image")
  container=$service-$name aside=''

  local current reason output
  current=$(booted_with "$container")
  if [[ $current == "$config_hash $env_hash $image_id" ]]; then
    [[ $(inspect_container "$container" '{{.State.Running}}') == true ]] || docker start "$container" >/dev/null
    reason=$(take_fixed_address) || { report_failure "$reason"; exit 1; }
    reason=$(wait_ready) || { report_failure "$reason"; exit 1; }
    record_drift "$service" "accessory-$name" "${heal:-0}"
    say "$container is up to date ($image)"
    return 0
  fi
  decide_major "$current"
  [[ -z $new_major ]] || back_up_first
  if [[ -n $current ]]; then
    hold_requests
    # Stopped first: two servers must never share a data directory.
    docker stop --time "$stop_timeout" "$container" >/dev/null
    aside="${container}_replaced_$(random_suffix)"
    docker rename "$container" "$aside"
  fi
  if [[ -n $new_major ]]; then
    upgrade_data "${current##* }" ||
      { report_failure "the upgrade from Postgres $old_major to $new_major failed (above)"; put_back; exit 1; }
  fi
  output=$(run_container 2>&1) || {
    # Docker says why on a line of its own ("docker: Error response ..."), before its usage hint.
    report_failure "$(grep -m1 '^docker: ' <<<"$output" || echo "docker run: ${output##*$'\n'}")"
    put_back
    exit 1
  }
  reason=$(take_fixed_address) || { report_failure "$reason"; put_back; exit 1; }
  reason=$(wait_ready) || { report_failure "$reason"; put_back; exit 1; }
  release_requests
  [[ -z $aside ]] || docker rm "$aside" >/dev/null
  record_drift "$service" "accessory-$name" "${heal:-0}"
  say "$container ${current:+re}booted ($image)${data:+, data in $(data_dir)}"
  [[ -z $kept_data ]] || say "Postgres $old_major's data directory is kept in $kept_data: remove it when you no longer need it"
}

remove() {
  lock "$service" "accessory-$name"
  local container=$service-$name
  if [[ -n $(inspect_container "$container" '{{.Id}}') ]]; then
    docker stop --time "$stop_timeout" "$container" >/dev/null
    docker rm "$container" >/dev/null
    say "$container removed"
  else
    say "$container is not here"
  fi
  rm -f "$(env_file "$service" "$(secrets_name)")" "$(drift_record "$service" "accessory-$name")"
  if [[ $delete_data == yes ]]; then
    rm -rf --one-file-system "$(accessory_dir)"
    say "deleted $(accessory_dir) (--delete-data)"
  elif [[ -d $(accessory_dir) ]]; then
    say "kept its data in $(accessory_dir)"
  fi
}

main() {
  parse_options "$@"
  "$action"
}

main "$@"
