# shellcheck shell=bash
# Helpers the quayside steps share; each step sources this file from its own directory.
# Nothing here runs on its own, and nothing here reads a secret except write_env_file (from stdin) and redact_env
# (from an env file, to hide its values).

readonly QUAYSIDE_ROOT=/var/lib/quayside
# Seconds a step waits for a lock another step holds (components/defaults.py LOCK_WAIT_SECONDS, which the steps'
# own timeouts allow for: tests/unit/test_steps.py holds the two equal).
readonly LOCK_WAIT_SECONDS=300
STEP=${0##*/}
STEP=${STEP%.sh}

# --- messages ---------------------------------------------------------------------------------------------

say() { printf '%s: %s\n' "$STEP" "$*"; }
die() { printf '%s: %s\n' "$STEP" "$*" >&2; exit 1; }

# --- options ----------------------------------------------------------------------------------------------
# Each step's options are declared in components/steps.py, which sends every one a step needs: a step has no
# defaults, and requires what it needs (tests/unit/test_steps.py holds each parser to its declaration).

# `--name value`: dies naming the option when its value is missing.
need_value() { (($# >= 2)) || die "option $1 needs a value"; }
required() { [[ -n $2 ]] || die "missing required option $1"; }
# A toggle (`--proxy` or `--no-proxy`): one of the two is required.
required_toggle() { [[ -n $2 ]] || die "missing required option $1 or --no-${1#--}"; }

# Service, role and accessory names (components/config/types.py NAME_PATTERN, which tests/unit/test_names.py
# holds equal): no '_' or '.', so those two can join them into names no two parts share (container_name).
readonly PART_NAME_PATTERN='^[a-z][a-z0-9]*(-[a-z0-9]+)*$'
check_part_name() {
  [[ $2 =~ $PART_NAME_PATTERN ]] ||
    die "$1 '$2' may hold only lowercase letters and digits, words joined by single dashes, starting with a letter"
}
# Other names end up in container names and paths: letters, digits, '.', '_' and '-', starting alphanumeric.
check_name() {
  [[ $2 =~ ^[A-Za-z0-9][A-Za-z0-9_.-]*$ ]] || die "$1 '$2' may hold only letters, digits, '.', '_' and '-'"
}
# A version name, or a tag and the first 12 hex of the digest it was pinned to (v1@093c6d79f8b3).
check_version() {
  [[ $2 =~ ^[A-Za-z0-9][A-Za-z0-9_.-]*(@[0-9a-f]{12})?$ ]] ||
    die "$1 '$2' may hold only letters, digits, '.', '_' and '-', and one '@' before 12 hex"
}
check_number() { [[ $2 =~ ^[0-9]+$ ]] || die "$1 '$2' is not a whole number"; }
check_duration() { [[ $2 =~ ^[0-9]+(ms|s|m)$ ]] || die "$1 '$2' is not a duration like 500ms, 30s or 2m"; }
# Memory sizes (components/config/types.py MEMORY_PATTERN, which tests/unit/test_memory.py holds equal).
readonly MEMORY_PATTERN='^[1-9][0-9]*[kmg]$'
check_memory() { [[ $2 =~ $MEMORY_PATTERN ]] || die "$1 '$2' is not a memory size like 512m or 1g"; }

# Whole seconds in a duration, rounded up: 500ms → 1, 30s → 30, 2m → 120.
seconds_of() {
  case $1 in
    *ms) echo $(((${1%ms} + 999) / 1000)) ;;
    *s) echo "${1%s}" ;;
    *m) echo $((${1%m} * 60)) ;;
  esac
}

# Milliseconds in a duration: 500ms → 500, 30s → 30000, 2m → 120000.
ms_of() {
  case $1 in
    *ms) echo "${1%ms}" ;;
    *s) echo $((${1%s} * 1000)) ;;
    *m) echo $((${1%m} * 60000)) ;;
  esac
}

# Bytes in a memory size, in Docker's units of 1024: 512m → 536870912.
bytes_of() {
  case $1 in
    *k) echo $((${1%k} * 1024)) ;;
    *m) echo $((${1%m} * 1024 * 1024)) ;;
    *g) echo $((${1%g} * 1024 * 1024 * 1024)) ;;
  esac
}

# Bytes for people: 1.5 GiB, 300 MiB.
size_words() {
  awk -v bytes="$1" 'BEGIN { if (bytes >= 2^30) printf "%.1f GiB\n", bytes / 2^30; else printf "%d MiB\n", bytes / 2^20 }'
}

# Bytes of memory the server has available for new processes (the kernel's MemAvailable).
memory_available() {
  local key kib _
  while read -r key kib _; do
    [[ $key == MemAvailable: ]] || continue
    echo $((kib * 1024))
    return 0
  done </proc/meminfo
}

# cgroup_of PID: the directory of PID's memory cgroup (v1's memory controller, else v2's unified one), or nothing.
# A container's processes share it: Docker makes one per container.
cgroup_of() {
  local line v2=''
  [[ -n $1 && $1 != 0 ]] || return 0
  while IFS= read -r line; do
    if [[ $line =~ ^[0-9]+:([^:]*,)?memory(,[^:]*)?:(.*)$ ]]; then
      echo "/sys/fs/cgroup/memory${BASH_REMATCH[3]}"
      return 0
    fi
    [[ $line != 0::* ]] || v2=/sys/fs/cgroup${line#0::}
  done 2>/dev/null <"/proc/$1/cgroup"
  [[ -z $v2 ]] || echo "$v2"
}

# Bytes of memory a running container uses now, by its main process (its .State.Pid; 0 or nothing when it is not
# running), read from its cgroup, or nothing when it has none: `docker stats` would take a second and more.
pid_memory_use() {
  local dir file bytes
  dir=$(cgroup_of "$1")
  [[ -n $dir ]] || return 0
  for file in "$dir/memory.usage_in_bytes" "$dir/memory.current"; do
    read -r bytes 2>/dev/null <"$file" || continue
    echo "$bytes"
    return 0
  done
}

# utc_now VAR: sets VAR to the time now in UTC, as 2026-12-05T23:07:26Z (the shell's own clock: no process).
utc_now() { TZ=UTC0 printf -v "$1" '%(%Y-%m-%dT%H:%M:%SZ)T' -1; }

# ensure_dir DIR: DIR exists (made with its parents when it does not).
ensure_dir() { [[ -d $1 ]] || mkdir -p "$1"; }

# add_sorted ARRAY WORD: WORD into the sorted ARRAY, unless there already.
add_sorted() {
  local -n into=$1
  local i=${#into[@]}
  [[ " ${into[*]} " != *" $2 "* ]] || return 0
  while ((i > 0)) && [[ ${into[i - 1]} > $2 ]]; do
    into[i]=${into[i - 1]}
    i=$((i - 1))
  done
  into[i]=$2
}

# Milliseconds since the epoch, for timings.
now_ms() {
  local micros=${EPOCHREALTIME//[!0-9]/}
  echo $((micros / 1000))
}

# --- the service's directory: lock, env files, audit log --------------------------------------------------

service_dir() { echo "$QUAYSIDE_ROOT/$1"; }
env_file() { echo "$QUAYSIDE_ROOT/$1/env/$2.env"; }
# Eight hex digits of chance: a name beside another container's that no earlier one took (name_replaced_1a2b3c4d).
random_suffix() { od -An -N4 -tx1 /dev/urandom | tr -d ' \n'; }

# An accessory's data directory (its container's --data mount), which only `remove --delete-data` deletes.
accessory_data_dir() { echo "$QUAYSIDE_ROOT/$1/$2/data"; }
canary_file() { echo "$QUAYSIDE_ROOT/$1/$2.canary"; }

# What the last successful step of a part put on this server, for the drift check (serving.sh reads it): PART is
# role-<role> (its file holds `VERSION HEALS`), accessory-<name> or proxy (`HEALS`). HEALS is the step's --heal
# count, 0 without one. A rollback's fast switch writes none: what it puts live is not what the stack recorded.
drift_dir() { echo "$QUAYSIDE_ROOT/$1/drift"; }
drift_record() { echo "$(drift_dir "$1")/$2"; }

# record_drift SERVICE PART WORDS...: the record, replaced atomically (a reader never sees half of it). Written once
# the step has done its work, so a record that cannot be written (a full disk) is said, and fails nothing.
record_drift() {
  local file tmp
  file=$(drift_record "$1" "$2")
  tmp=$file.$BASHPID
  shift 2
  if ensure_dir "${file%/*}" && echo "$*" >"$tmp" && mv -f "$tmp" "$file"; then
    return 0
  fi
  rm -f "$tmp"
  echo "$STEP: the drift record ${file##*/} was not written: the next preview cannot judge it" >&2
}

# lock SERVICE PART [SECONDS]: holds the lock of one part of the service (a role, an accessory, the host) on fd 9
# until the script exits, and whatever it hands fd 9 to. Two steps of the same part never interleave; steps of
# different parts do not wait for each other. A wait (SECONDS, a role's --lock-wait, else LOCK_WAIT_SECONDS) says
# who holds the lock and since when.
lock() {
  local service=$1 part=$2 wait=${3:-$LOCK_WAIT_SECONDS} dir holder
  dir=$(service_dir "$service")/locks
  ensure_dir "$dir"
  LOCK_FILE=$dir/$part.lock
  exec 9<>"$LOCK_FILE"
  if ! flock -n 9; then
    holder=$(head -n 1 "$LOCK_FILE" 2>/dev/null || true)
    say "waiting for the lock of $service $part: ${holder:-held}"
    flock -w "$wait" 9 || die "$service $part is still locked after ${wait}s by ${holder:-another step}"
  fi
  lock_note ''
}

# lock_note [WHAT]: the holder's line in the lock file, which a waiting step prints: this step, its pid (a
# background part's own), since when, and what it does now.
lock_note() {
  local since
  utc_now since
  printf '%s (pid %s) since %s%s\n' "$STEP" "$BASHPID" "$since" "${1:+: $1}" >"$LOCK_FILE"
}

# The server's images lock: held shared by whoever is between pulling an image and running a container of it, of
# any service (services may run the same image), and exclusive while pruning, which must not remove it in between.
images_lock_file() { echo "$QUAYSIDE_ROOT/images.lock"; }

# hold_images: the images lock, shared, on fd 8; release_images lets go.
hold_images() {
  ensure_dir "$QUAYSIDE_ROOT"
  exec 8<>"$(images_lock_file)"
  flock -s -w "$LOCK_WAIT_SECONDS" 8 || die "the server's images are still locked after ${LOCK_WAIT_SECONDS}s"
}
release_images() { exec 8>&-; }

# Replaces the role's env file with stdin (KEY=VALUE lines, possibly none): in a directory of mode 700, made 600
# from its first byte, swapped in atomically.
write_env_file() {
  local dir target tmp
  [[ ! -t 0 ]] || die "the secret env file is read from stdin: pipe it in (or </dev/null for none)"
  target=$(env_file "$1" "$2")
  dir=${target%/*}
  ensure_dir "$dir"
  chmod 700 "$dir"
  tmp=$dir/.$2.env.$BASHPID
  (umask 077 && cat >"$tmp") || { rm -f "$tmp"; die "could not read the env file from stdin"; }
  mv -f "$tmp" "$target"
}

# redact_env ENV_FILE: copies stdin to stdout with each value of ENV_FILE (KEY=VALUE lines) replaced by
# `[redacted KEY]`, longest first, so that what an app prints (a crash log, a migration's output) shows no secret.
# Values under 4 characters stay: they would mangle ordinary words and numbers (`1`, `yes`, `on`). The values never
# leave this shell: no argv (as sed's or awk's would be), only bash's own literal replacement.
redact_env() {
  local line key value i keys=() values=()
  if [[ -r $1 ]]; then
    while IFS= read -r line || [[ -n $line ]]; do
      [[ $line == *=* ]] || continue
      key=${line%%=*} value=${line#*=}
      ((${#value} >= 4)) || continue
      i=${#values[@]}
      while ((i > 0)) && ((${#values[i - 1]} < ${#value})); do
        keys[i]=${keys[i - 1]} values[i]=${values[i - 1]}
        i=$((i - 1))
      done
      keys[i]=$key values[i]=$value
    done <"$1"
  fi
  while IFS= read -r line || [[ -n $line ]]; do
    for i in "${!values[@]}"; do line=${line//"${values[i]}"/"[redacted ${keys[i]}]"}; done
    printf '%s\n' "$line"
  done
}

# One line per event: ISO time, role, version, event, detail.
audit() {
  local service=$1 role=$2 version=$3 event=$4 detail=$5 now
  ensure_dir "$(service_dir "$service")"
  utc_now now
  printf '%s %s %s %s %s\n' "$now" "$role" "$version" "$event" "$detail" \
    >>"$(service_dir "$service")/audit.log"
}

# --- docker -----------------------------------------------------------------------------------------------

# Names on the server. Service and role names hold dashes but never '_' or '.', so a container named
# SERVICE_ROLE_VERSION is no other role's or service's; the version comes last, and Docker names take no '@', so a
# pinned version's becomes '_' (demo_web_v1_093c6d79f8b3). A migration's role part holds a '.', which no role's
# does. Accessories keep SERVICE-ACCESSORY (apps reach them by that name): the accessory is one of a few dashless
# words, and no role's container name is dashes only.
container_name() { echo "$1_$2_${3//@/_}"; }
migration_container_name() { echo "$1_$2.migrate_${3//@/_}"; }

# The image ID a reference names locally, or nothing.
image_id() { docker image inspect --format '{{.Id}}' "$1" 2>/dev/null || true; }

# Pinned references (repo:tag@sha256:...) are there only when that very digest is: a re-pushed tag is pulled.
pull_if_missing() {
  docker image inspect "$1" >/dev/null 2>&1 && return 0
  ensure_room_for "$1" || return 1
  say "pulling $1"
  local said
  # `--` before every positional argument of docker: an image is never read as an option.
  said=$(docker pull --quiet -- "$1" 2>&1 >/dev/null) && return 0
  echo "could not pull $1 from the registry $(registry_of "$1"): ${said##*$'\n'}" >&2
  return 1
}

# How many times its download an image takes on disk while it is pulled: the compressed layers, then the layers
# unpacked beside them (commonly two to three times their compressed size).
readonly PULL_ROOM_FACTOR=3

# ensure_room_for IMAGE: fails in one line when the disk under Docker's data root has less free than
# PULL_ROOM_FACTOR times IMAGE's download. Docker finds a full disk only halfway through the layers, and a full disk
# stops the live containers' writes too (Postgres, the logs). When the registry does not give the size (down, or
# no manifest API), the pull goes ahead and says what the registry did.
ensure_room_for() {
  local download_kb
  download_kb=$(image_download_kb "$1") || return 0
  ensure_room pull "$1" $((download_kb * PULL_ROOM_FACTOR)) "$PULL_ROOM_FACTOR x its $(mib "$download_kb") download"
}

# ensure_room VERB IMAGE NEED_KB WHY: fails in one line when less than NEED_KB is free under Docker's data root.
ensure_room() {
  local verb=$1 image=$2 need_kb=$3 why=$4 root free_kb
  root=$(docker info --format '{{.DockerRootDir}}')
  free_kb=$(df -Pk -- "$root" 2>/dev/null | awk 'NR == 2 { print $4 }') || true
  # A data root this user cannot see is left to Docker: it says when the disk is full.
  [[ $free_kb =~ ^[0-9]+$ ]] || return 0
  ((free_kb >= need_kb)) && return 0
  echo "the server's disk is too full to $verb $image: $(mib "$free_kb") free under $root, and ${verb}ing it takes" \
    "about $(mib "$need_kb") ($why): free space on the server (docker system df shows what Docker holds) and deploy" \
    "again" >&2
  return 1
}

mib() { awk -v kb="$1" 'BEGIN { printf "%.1f MiB", kb / 1024 }'; }

# image_download_kb IMAGE: IMAGE's config and layers, compressed, as its registry lists them for this server's
# platform, in KiB; fails when the registry does not say. Two manifest reads at most, as a pull makes (Docker Hub
# counts a pull by them).
image_download_kb() {
  local arch manifest repository
  arch=$(docker version --format '{{.Server.Arch}}') || return 1
  manifest=$(read_manifest "$1") || return 1
  if [[ $manifest == *'"manifests"'* ]]; then
    repository=${1%%@*}
    [[ ${repository##*/} != *:* ]] || repository=${repository%:*}
    manifest=$(read_manifest "$repository@$(platform_manifest "$arch" <<<"$manifest")") || return 1
  fi
  manifest_download_kb <<<"$manifest"
}

# read_manifest IMAGE: its manifest (or list of them) as the registry serves it, within 10 s (the CLI takes another
# 10 s to end after a TERM: it is killed 1 s after). --insecure because only sizes are read (the pull verifies every
# digest), and a registry the engine reaches over plain HTTP then answers too.
read_manifest() { timeout --kill-after 1 10 docker manifest inspect --insecure -- "$1" 2>/dev/null; }

# platform_manifest ARCH: of a manifest list on stdin, the digest of ARCH's manifest for Linux.
platform_manifest() {
  awk -v want="$1" '
    /"digest":/ { digest = $0; sub(/.*"digest": *"/, "", digest); sub(/".*/, "", digest) }
    /"architecture":/ { arch = $0; sub(/.*"architecture": *"/, "", arch); sub(/".*/, "", arch) }
    /"os":/ && arch == want && /"linux"/ { print digest; found = 1; exit }
    END { if (!found) exit 1 }
  '
}

# manifest_download_kb: of one manifest on stdin, the sizes of its config and layers, in KiB.
manifest_download_kb() {
  awk '
    /"size":/ { size = $0; sub(/.*"size": */, "", size); sub(/[^0-9].*/, "", size); total += size; sized = 1 }
    END { if (!sized) exit 1; printf "%.0f\n", int((total + 1023) / 1024) }
  '
}

# The registry an image reference names: its first part when that holds '.' or ':' or is localhost (Docker's
# rule), else Docker Hub.
registry_of() {
  local first=${1%%/*}
  if [[ $1 == */* && ($first == *[.:]* || $first == localhost) ]]; then echo "$first"; else echo docker.io; fi
}

# A Go template over a container, or nothing when there is no such container.
inspect_container() { docker inspect --type container --format "$2" "$1" 2>/dev/null || true; }

# IDs (12 hex) of the role's containers; extra arguments are more `docker ps` filters.
role_containers() {
  local service=$1 role=$2
  shift 2
  docker ps --all --quiet --filter "label=quayside.service=$service" --filter "label=quayside.role=$role" "$@"
}

label_of() { inspect_container "$1" "{{index .Config.Labels \"$2\"}}"; }

# own_volumes SERVICE VOLUME_SPEC...: Docker volumes are the server's, so two services mounting one by name
# (data:/app/data) would share its files. The first service to mount a named volume makes it, labelled as its
# own; another service's is refused. One made before volumes were labelled is left shared, with a warning.
own_volumes() {
  local service=$1 spec volume owner others
  shift
  for spec in "$@"; do
    volume=${spec%%:*}
    [[ $volume != /* ]] || continue
    if ! owner=$(docker volume inspect --format '{{index .Labels "quayside.service"}}' -- "$volume" 2>/dev/null); then
      docker volume create --label "quayside.service=$service" -- "$volume" >/dev/null
    elif [[ -z $owner ]]; then
      others=$(docker ps --all --filter "volume=$volume" --format '{{.Label "quayside.service"}}' |
        grep -vx -e "$service" -e '' | sort -u | paste -sd, - || true)
      [[ -z $others ]] || say "WARNING: volume '$volume' is shared with service ${others//,/, } (it was made before quayside labelled volumes)"
    elif [[ $owner != "$service" ]]; then
      die "volume '$volume' on $(uname -n) belongs to service '$owner': Docker volumes are the server's, so name" \
        "this one for service '$service' ($service-$spec)"
    fi
  done
}

# --- kamal-proxy ------------------------------------------------------------------------------------------

# kamal-proxy routes each proxied role as one of its services, named SERVICE-ROLE: a name kamal-proxy keeps across
# deploys, so it cannot change under a live route (a new name for the same host is refused until the old one goes).
route_name() { echo "$1-$2"; }

# Two services on one server can ask for one route name (service a-b's role web, service a's role b-web), and so
# can a role and a load balancer's route of another service's role on a server both use: the first to deploy a
# route claims it in a file under routes.d (a name no service can have), "SERVICE ROLE" for a role's own route,
# "SERVICE ROLE balancer" for its route on the load balancer, and another that asks for it is refused rather than
# taking it over. A claim is stale once what made it is gone: the role's containers, or the balancer's route.
route_claim_file() { echo "$QUAYSIDE_ROOT/routes.d/$(route_name "$1" "$2")"; }

# claim_route PROXY SERVICE ROLE [balancer]: claims the role's route (with balancer: its route on the load
# balancer), or dies naming whose it is.
claim_route() {
  local proxy=$1 service=$2 role=$3 claimant="$2 $3${4:+ $4}" file owner target
  file=$(route_claim_file "$service" "$role")
  if [[ ! -s $file ]]; then
    mkdir -p "${file%/*}"
    # A route deployed before claims were kept: its owner is whose labels its live container carries.
    target=$(proxy_target "$proxy" "$(route_name "$service" "$role")" 2>/dev/null || true)
    [[ -z $target ]] || owner=$(inspect_container "$(target_container "$service" "$target")" \
      '{{index .Config.Labels "quayside.service"}} {{index .Config.Labels "quayside.role"}}')
    [[ ${owner:-} == [a-z]*' '[a-z]* ]] || owner=$claimant
    (set -o noclobber && echo "$owner" >"$file") 2>/dev/null || true
  fi
  owner=$(<"$file")
  [[ $owner != "$claimant" ]] || return 0
  if claim_is_stale "$proxy" "$owner"; then
    echo "$claimant" >"$file"
    return 0
  fi
  local owner_service owner_role owner_kind
  read -r owner_service owner_role owner_kind <<<"$owner"
  die "kamal-proxy's route $(route_name "$service" "$role") on $(uname -n) belongs to service '$owner_service'" \
    "role '$owner_role'${owner_kind:+ (its route on the load balancer)}: rename service '$service' or its role" \
    "'$role' so SERVICE-ROLE differs"
}

# claim_is_stale PROXY "SERVICE ROLE [balancer]": true once the claim's maker is gone from this server.
claim_is_stale() {
  local proxy=$1 service role kind
  read -r service role kind <<<"$2"
  if [[ $kind == balancer ]]; then
    [[ -z $(proxy_target "$proxy" "$(route_name "$service" "$role")" 2>/dev/null || true) ]]
  else
    [[ -z $(role_containers "$service" "$role") ]]
  fi
}

# release_route SERVICE ROLE [balancer]: drops the claim, if it is this one.
release_route() {
  local file
  file=$(route_claim_file "$1" "$2")
  [[ ! -f $file || $(<"$file") != "$1 $2${3:+ $3}" ]] || rm -f "$file"
}

# hold_route PROXY ROUTE DRAIN MAX: kamal-proxy holds the route's new requests (up to MAX each) once those in
# flight are done (up to DRAIN); let_route_on PROXY ROUTE lets them on.
hold_route() { docker exec "$1" kamal-proxy pause "$2" --drain-timeout "$3" --max-pause "$4" >/dev/null; }
let_route_on() { docker exec "$1" kamal-proxy resume "$2" >/dev/null || echo "could not resume $2" >&2; }

# proxy_routes PROXY: kamal-proxy's routes, `kamal-proxy list` without its ANSI colours; fails when it does not answer.
proxy_routes() { docker exec "$1" kamal-proxy list | sed 's/\x1b\[[0-9;]*m//g'; }

# route_in SERVICE: in proxy_routes' listing on stdin, the target kamal-proxy routes SERVICE to and the route's state
# ("3f2a9c1d2e4b:80 running"), or nothing. The columns are Service Host Path Target State TLS; the target is the
# first cell ending in :PORT (a route without a host has no Host cell).
route_in() {
  local name rest cells i
  while read -r name rest; do
    [[ $name == "$1" ]] || continue
    read -ra cells <<<"$rest"
    for i in "${!cells[@]}"; do
      [[ ${cells[i]} =~ :[0-9]+$ ]] || continue
      echo "${cells[i]} ${cells[i + 1]:-}"
      return 0
    done
  done
}

# proxy_route PROXY SERVICE: route_in of the proxy's listing now.
proxy_route() {
  local routes
  routes=$(proxy_routes "$1") || return 1
  route_in "$2" <<<"$routes"
}

# The target alone (e.g. "3f2a9c1d2e4b:80"), or nothing.
proxy_target() {
  local route
  route=$(proxy_route "$@") || return 1
  [[ -z $route ]] || echo "${route%% *}"
}

# The route's state (running, paused, stopped), or nothing.
proxy_route_state() {
  local route
  route=$(proxy_route "$@") || return 1
  [[ -z $route ]] || echo "${route#* }"
}

# --- fixed addresses -------------------------------------------------------------------------------------

# Each container of a service's roles and accessories has an address of its own on a second network of the
# service's, given once (--ip) and given back by Docker at its every start; kamal-proxy is on it too. So nothing on
# a request's way asks Docker's embedded DNS, which does not answer while the engine restarts (live-restore keeps
# the containers running meanwhile): kamal-proxy's targets are these addresses, and a role's container finds each
# accessory by the address its hosts file gives (--add-host). Only a network created with a subnet takes --ip; the
# subnet is one Docker's address pools find free. A service name holds no '.', so no service network takes the name.
fixed_network() { echo "$1.fixed"; }

# Each accessory's address, in a file named as its container (the name the roles know it by), so its next container
# takes the same one and the roles' hosts files stay true.
accessory_addresses_dir() { echo "$(service_dir "$1")/addresses"; }

# add_accessory_hosts ARRAY SERVICE: adds to the array named ARRAY an --add-host option for each accessory's fixed
# address, so the container finds them by name in its hosts file.
add_accessory_hosts() {
  local -n options=$1
  local file
  for file in "$(accessory_addresses_dir "$2")"/*; do
    [[ ! -f $file ]] || options+=(--add-host "${file##*/}:$(<"$file")")
  done
}

# fixed_address_template SERVICE: a Go template over a container: the address it was given on the service's fixed
# network, or nothing (not on it).
fixed_address_template() {
  echo "{{with index .NetworkSettings.Networks \"$(fixed_network "$1")\"}}{{with .IPAMConfig}}{{.IPv4Address}}{{end}}{{end}}"
}

# ensure_fixed_network SERVICE [PROXY]: the network there, with its subnet, and PROXY on it; prints the subnet.
# The server's services and swaps take turns on a lock of their own while they make it.
ensure_fixed_network() {
  local network subnet joined
  network=$(fixed_network "$1")
  read -r subnet joined < <(network_state "$network")
  if [[ -z $subnet ]]; then
    ensure_dir "$QUAYSIDE_ROOT"
    exec 5<>"$QUAYSIDE_ROOT/networks.lock"
    flock -w "$LOCK_WAIT_SECONDS" 5 || die "the server's networks are still locked after ${LOCK_WAIT_SECONDS}s"
    read -r subnet joined < <(network_state "$network")
    # Another network (of a step not on this lock) may take the subnet found free before this one does: once more.
    local output _
    for _ in 1 2 3; do
      [[ -z $subnet ]] || break
      subnet=$(free_subnet "$network.probe") ||
        die "network $network: Docker has no address pool free (each service takes two; default-address-pools" \
          "in $DAEMON_JSON gives more)"
      output=$(docker network create --subnet "$subnet" --label "quayside.service=$1" "$network" 2>&1) || subnet=''
    done
    [[ -n $subnet ]] || die "network $network could not be made: ${output%%$'\n'*}"
    exec 5>&-
  fi
  [[ -z ${2:-} || ,$joined == *",$2,"* ]] || docker network connect "$network" "$2"
  echo "$subnet"
}

# connect_fixed SERVICE CONTAINER SUBNET [ADDRESS]: CONTAINER on the fixed network at ADDRESS, else at a new one
# (picked again when another container holds it: rare, the subnet has thousands); prints the address, or the error
# on stderr.
connect_fixed() {
  local network address output _
  network=$(fixed_network "$1")
  for _ in 1 2 3; do
    address=${4:-$(new_address "$1" "$3")}
    output=$(docker network connect --ip "$address" "$network" "$2" 2>&1) && { echo "$address"; return 0; }
    [[ -z ${4:-} && $output == *"Address already in use"* ]] || break
  done
  echo "${output%%$'\n'*}" >&2
  return 1
}

# new_address SERVICE SUBNET: a host address of SUBNET that no accessory of SERVICE keeps.
new_address() {
  local address file
  while :; do
    address=$(random_address "$2")
    for file in "$(accessory_addresses_dir "$1")"/*; do
      [[ ! -f $file || $(<"$file") != "$address" ]] || continue 2
    done
    echo "$address"
    return 0
  done
}

# network_state NETWORK: "SUBNET NAME,NAME,": the subnet it was created with and the containers on it, or nothing.
network_state() {
  docker network inspect --format '{{range .IPAM.Config}}{{.Subnet}}{{end}} {{range .Containers}}{{.Name}},{{end}}' \
    "$1" 2>/dev/null || true
}

# free_subnet NAME: a subnet Docker's address pools have free (a network NAME made and removed to find it).
free_subnet() {
  local subnet _
  docker network rm "$1" >/dev/null 2>&1 || true
  docker network create "$1" >/dev/null
  read -r subnet _ < <(network_state "$1")
  docker network rm "$1" >/dev/null
  echo "$subnet"
}

# random_address SUBNET: a host address of SUBNET (a.b.c.d/bits), neither its first two (the network's own and
# Docker's gateway) nor its last (broadcast).
random_address() {
  local a b c d bits=${1#*/} n
  IFS=. read -r a b c d <<<"${1%/*}"
  n=$(((a << 24 | b << 16 | c << 8 | d) + 2 + (RANDOM << 15 | RANDOM) % ((1 << (32 - bits)) - 3)))
  echo "$((n >> 24 & 255)).$((n >> 16 & 255)).$((n >> 8 & 255)).$((n & 255))"
}

# fixed_addresses SERVICE: "ID ADDRESS/BITS" of each container running on the service's fixed network, a line
# each; nothing when there is no such network.
fixed_addresses() {
  # shellcheck disable=SC2016 # a Go template, not a shell expansion
  docker network inspect --format '{{range $id, $c := .Containers}}{{$id}} {{$c.IPv4Address}}{{"\n"}}{{end}}' \
    "$(fixed_network "$1")" 2>/dev/null || true
}

# target_id TARGET ADDRESSES: the ID (12 hex) of the container a kamal-proxy target ("ADDRESS:PORT") names, by
# ADDRESSES (fixed_addresses' lines), or - when none runs there. A route set before containers had fixed addresses
# names its container by ID ("3f2a9c1d2e4b:80"): that ID.
target_id() {
  local host=${1%:*} id address
  [[ $host == *.*.*.* ]] || { echo "$host"; return 0; }
  while read -r id address; do
    [[ ${address%/*} != "$host" ]] || { echo "${id:0:12}"; return 0; }
  done <<<"$2"
  echo -
}

# target_container SERVICE TARGET: target_id, the network read now.
target_container() { target_id "$2" "$(fixed_addresses "$1")"; }

# How many services kamal-proxy routes (the lines of `kamal-proxy list` after its header); fails when the
# proxy does not answer.
proxy_service_count() {
  local listing
  listing=$(docker exec "$1" kamal-proxy list) || return 1
  sed 1d <<<"$listing" | grep -c . || true
}

# --- the server's Docker engine (host.sh, and bootstrap.sh as root) ---------------------------------------

readonly DAEMON_JSON=/etc/docker/daemon.json
readonly ENGINE_PIDFILE=/var/run/docker.pid
readonly ENGINE_SECONDS=60
readonly CLOUD_INIT_SECONDS=300

# changed WHAT: says what a step changed on the server and counts it (bootstrap.sh reports the count).
CHANGES=()
changed() {
  CHANGES+=("$1")
  say "$1"
}

# A new cloud server may still be in cloud-init when the first SSH session comes: apt and dockerd wait for it.
CLOUD_INIT_WAITED=no
wait_for_cloud_init() {
  [[ $CLOUD_INIT_WAITED == no ]] || return 0
  CLOUD_INIT_WAITED=yes
  command -v cloud-init >/dev/null || return 0
  local status
  status=$(cloud-init status 2>&1 | head -n 1) || true
  [[ $status != "status: done" ]] || return 0
  say "waiting for cloud-init (${status:-no status})"
  timeout "$CLOUD_INIT_SECONDS" cloud-init status --wait >/dev/null ||
    say "cloud-init not done cleanly within ${CLOUD_INIT_SECONDS}s ($(cloud-init status 2>&1 | head -n 1)); going on"
}

has_systemd() { command -v systemctl >/dev/null && [[ -d /run/systemd/system ]]; }

# Through systemd; where there is none (a container), dockerd started detached, logging to /var/log/dockerd.log.
# Not Debian's init script there: it raises the open-files limit to 1048576, which a container without
# CAP_SYS_RESOURCE may not.
start_engine() {
  if has_systemd; then
    systemctl start docker
  else
    setsid dockerd </dev/null >>/var/log/dockerd.log 2>&1 &
  fi
}

wait_for_engine() {
  local deadline=$((SECONDS + ENGINE_SECONDS))
  until docker info >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "the docker engine did not answer within ${ENGINE_SECONDS}s"
    sleep 1
  done
}

# Containers that live through a restart of the engine (an unattended upgrade of docker.io), log rotation, and
# published ports served by the kernel rather than by docker-proxy processes, which die with the engine. With
# live-restore, Docker's embedded DNS may fail lookups after a restart, so kamal-proxy targets addresses
# (fixed_network) and never names (docs/design.md, "The server's Docker daemon").
readonly DAEMON_CONFIG='{
  "live-restore": true,
  "log-driver": "json-file",
  "log-opts": {"max-size": "10m", "max-file": "3"},
  "userland-proxy": false
}'
readonly LIVE_RESTORE_LINE=$'\n  "live-restore": true,'

# When absent, or as quayside wrote it before it asked for live-restore (that line aside, the same): an operator's
# own daemon.json wins. Written before docker.io is installed, the engine starts with it. A running engine reloads
# it, which turns live-restore on at once; the rest applies at its next restart: an engine with containers is never
# restarted for it, one with no container at all (a new server, under systemd) restarts to take it now.
write_daemon_json() {
  if [[ -e $DAEMON_JSON ]]; then
    [[ $(<"$DAEMON_JSON") == "${DAEMON_CONFIG/"$LIVE_RESTORE_LINE"/}" ]] || return 0
  fi
  if ((EUID != 0)); then
    say "$DAEMON_JSON is due to be written, and only root may: the engine keeps its config (bootstrap.sh writes it)"
    return 0
  fi
  mkdir -p "${DAEMON_JSON%/*}"
  echo "$DAEMON_CONFIG" >"$DAEMON_JSON"
  changed "wrote $DAEMON_JSON (live-restore, log rotation, no userland proxy)"
  command -v docker >/dev/null && docker info >/dev/null 2>&1 || return 0
  if [[ -z $(docker ps --all --quiet 2>/dev/null) ]] && has_systemd; then
    systemctl restart docker
  else
    reload_engine
  fi
  wait_for_engine
}

# The running engine reads daemon.json again (SIGHUP, as `systemctl reload docker` sends it).
reload_engine() {
  if has_systemd; then systemctl reload docker; else kill -HUP "$(<"$ENGINE_PIDFILE")"; fi
}

install_docker() {
  [[ $1 == yes ]] || die "docker is not installed and --no-install-docker forbids installing it"
  ((EUID == 0)) || die "docker is not installed, and only root may install it: bootstrap the server (server.bootstrap)"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
  changed "installed docker.io $(dpkg-query -W -f='${Version}' docker.io)"
}

# ensure_docker yes|no: Docker installed (when allowed), its config written, the engine answering.
ensure_docker() {
  wait_for_cloud_init
  if ! command -v docker >/dev/null; then
    write_daemon_json
    install_docker "$1"
  fi
  if ! docker info >/dev/null 2>&1; then
    ((EUID == 0)) || die "the docker engine does not answer $(id -un) (not in the docker group, or not running)"
    start_engine
    changed "started the docker engine"
  fi
  wait_for_engine
  write_daemon_json
}
