# shellcheck shell=bash
# Helpers the quayside steps share; each step sources this file from its own directory.
# Nothing here runs on its own, and nothing here reads a secret except write_env_file (from stdin).

readonly QUAYSIDE_ROOT=/var/lib/quayside
STEP=${0##*/}
STEP=${STEP%.sh}

# --- messages ---------------------------------------------------------------------------------------------

say() { printf '%s: %s\n' "$STEP" "$*"; }
die() { printf '%s: %s\n' "$STEP" "$*" >&2; exit 1; }

# --- options ----------------------------------------------------------------------------------------------

# `--name value`: dies naming the option when its value is missing.
need_value() { (($# >= 2)) || die "option $1 needs a value"; }
required() { [[ -n $2 ]] || die "missing required option $1"; }

# Names end up in container names and paths: letters, digits, '.', '_' and '-', starting alphanumeric.
check_name() {
  [[ $2 =~ ^[A-Za-z0-9][A-Za-z0-9_.-]*$ ]] || die "$1 '$2' may hold only letters, digits, '.', '_' and '-'"
}
check_number() { [[ $2 =~ ^[0-9]+$ ]] || die "$1 '$2' is not a whole number"; }
check_duration() { [[ $2 =~ ^[0-9]+(ms|s|m)$ ]] || die "$1 '$2' is not a duration like 500ms, 30s or 2m"; }

# Whole seconds in a duration, rounded up: 500ms → 1, 30s → 30, 2m → 120.
seconds_of() {
  case $1 in
    *ms) echo $(((${1%ms} + 999) / 1000)) ;;
    *s) echo "${1%s}" ;;
    *m) echo $((${1%m} * 60)) ;;
  esac
}

# Milliseconds since the epoch, for timings.
now_ms() {
  local micros=${EPOCHREALTIME//[!0-9]/}
  echo $((micros / 1000))
}

# --- the service's directory: lock, env files, audit log --------------------------------------------------

service_dir() { echo "$QUAYSIDE_ROOT/$1"; }
env_file() { echo "$QUAYSIDE_ROOT/$1/env/$2.env"; }

# lock SERVICE NAME SECONDS [UNLESS]: holds the lock of one part of the service (a role, an accessory, the host) on
# fd 9 until the script exits, and whatever it hands fd 9 to. Two steps of the same part never interleave; steps of
# different parts do not wait for each other. A wait says who holds the lock and since when. UNLESS, a function
# given the holder's line, may decline the wait: lock then returns 1 at once, holding nothing.
lock() {
  local service=$1 part=$2 seconds=$3 unless=${4:-} dir holder
  dir=$(service_dir "$service")/locks
  mkdir -p "$dir"
  LOCK_FILE=$dir/$part.lock
  exec 9<>"$LOCK_FILE"
  if ! flock -n 9; then
    holder=$(head -n 1 "$LOCK_FILE" 2>/dev/null || true)
    if [[ -n $unless ]] && "$unless" "$holder"; then
      exec 9>&-
      return 1
    fi
    say "waiting for the lock of $service $part: ${holder:-held}"
    flock -w "$seconds" 9 || die "$service $part is still locked after ${seconds}s by ${holder:-another step} (--lock-timeout)"
  fi
  lock_note ''
}

# lock_note [WHAT]: the holder's line in the lock file, which a waiting step prints: this step, its pid, since
# when, and what it does now.
lock_note() {
  printf '%s (pid %s) since %s%s\n' "$STEP" "$$" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${1:+: $1}" >"$LOCK_FILE"
}

# A swap's lock note while the containers a version replaced stop in the background (`<note> VERSION`); retire.sh
# reads it so as not to wait for a stop already under way.
# shellcheck disable=SC2034 # read by swap.sh and retire.sh
readonly STOPPING_NOTE='stopping the containers replaced by'

# hold_images SERVICE SECONDS: the service's images lock, shared, on fd 8, from pulling an image until a container
# of it exists: pruning (exclusive) must not remove it in between. release_images lets go.
hold_images() {
  local dir
  dir=$(service_dir "$1")/locks
  mkdir -p "$dir"
  exec 8<>"$dir/images.lock"
  flock -s -w "$2" 8 || die "the images of $1 are still locked after ${2}s (--lock-timeout)"
}
release_images() { exec 8>&-; }

# Replaces the role's env file with stdin (KEY=VALUE lines, possibly none): mode 600, swapped in atomically.
write_env_file() {
  local dir target tmp
  [[ ! -t 0 ]] || die "the secret env file is read from stdin: pipe it in (or </dev/null for none)"
  target=$(env_file "$1" "$2")
  dir=${target%/*}
  mkdir -p "$dir"
  chmod 700 "$dir"
  tmp=$(mktemp "$dir/.$2.env.XXXXXX")
  cat >"$tmp" || { rm -f "$tmp"; die "could not read the env file from stdin"; }
  chmod 600 "$tmp"
  mv -f "$tmp" "$target"
}

# One line per event: ISO time, role, version, event, detail.
audit() {
  local service=$1 role=$2 version=$3 event=$4 detail=$5
  mkdir -p "$(service_dir "$service")"
  printf '%s %s %s %s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$role" "$version" "$event" "$detail" \
    >>"$(service_dir "$service")/audit.log"
}

# --- docker -----------------------------------------------------------------------------------------------

pull_if_missing() {
  docker image inspect "$1" >/dev/null 2>&1 && return 0
  say "pulling $1"
  docker pull --quiet "$1" >/dev/null
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

# --- kamal-proxy ------------------------------------------------------------------------------------------

# The target kamal-proxy routes SERVICE to (e.g. "3f2a9c1d2e4b:80"), or nothing. `kamal-proxy list` prints
# ANSI-coloured columns: Service Host Path Target State TLS; the target is the first cell ending in :PORT.
proxy_target() {
  local proxy=$1 service=$2
  docker exec "$proxy" kamal-proxy list | sed 's/\x1b\[[0-9;]*m//g' |
    awk -v service="$service" '$1 == service { for (i = 2; i <= NF; i++) if ($i ~ /:[0-9]+$/) { print $i; exit } }'
}

# How many services kamal-proxy routes (the lines of `kamal-proxy list` after its header); fails when the
# proxy does not answer.
proxy_service_count() {
  local listing
  listing=$(docker exec "$1" kamal-proxy list) || return 1
  sed 1d <<<"$listing" | grep -c . || true
}
