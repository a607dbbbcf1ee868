#!/usr/bin/env bash
# swap: make VERSION the live container of a role. Boots it beside the running one; kamal-proxy health-checks
# it and switches traffic (a role without the proxy waits for Docker health, or for it to keep running);
# then stops the old one and keeps the newest --retain stopped containers for rollback. A stopped container
# of the same version and config is started again instead (a rollback). Re-running converges. The swap is
# done once the new version serves: the old one stops (within its --stop-timeout) and retention prunes in
# the background, still holding the role's lock, logged to <service dir>/logs/<role>.log. IMG comes pinned by
# digest (repo:tag@sha256:...): it is pulled whenever that digest is missing, a container counts as the same
# only when it runs that image, and retention removes the images of the versions it removes.
# The new container runs at an address of its own on the service's fixed network (lib.sh fixed_network), which is
# kamal-proxy's target for it, with a hosts-file entry for each accessory's fixed address.
# --retained-only is a rollback's fast switch: only a kept container of this version and config goes live
# (started again if stopped); the env file stays as it is (stdin is not read); nothing is pulled or booted. When
# there is none it fails, touching nothing.
# --tls-certificate-path is a file in the proxy holding the role's own certificate and key (tls-certificate.sh wrote
# it); --tls-certificate-id names the certificate in it, and a new one is served by redeploying the live container's
# route, without a new container.
# --canary-percent runs VERSION as a canary: it goes live in kamal-proxy's rollout slot, for that share of
# kamal-rollout cookie values and for each --canary-allow value, beside the version serving everyone else (which
# keeps running). Without it, any canary ends: VERSION serves everyone (a canary of VERSION is promoted where it
# runs), and the canary's container stops with the others.
# --heal N counts the times `pulumi up` found the role not serving the version the stack recorded (components/drift.py):
# a new count makes Pulumi run the swap again, which puts that version back live as any swap does.
#
#   swap.sh --service S --role R --image IMG --version V --config-hash H --port N (--proxy | --no-proxy)
#     [--tls [--no-tls-redirect] [--tls-certificate-path FILE [--tls-certificate-id ID]]] [--host H]...
#     [--canary-percent N [--canary-allow VALUE]...] [--path-prefix P]...
#     [--health-path P --health-interval D --health-timeout D] (with --proxy)
#     --deploy-timeout D --drain-timeout D --readiness-delay N --retain N --stop-timeout N --lock-wait SECONDS
#     [--env K=V]... [--volume SPEC]... [--memory 512m] [--memory-short stop-first] [--cpus 0.5] --proxy-name P
#     [--retained-only] [--heal N] [--cmd ARG]...
#   (components/steps.py SWAP; components/swap_command.py sends each option)
#   stdin: the role's secret env file (KEY=VALUE lines, may be empty); not read with --retained-only
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

service='' role='' image='' version='' config_hash='' port='' proxy='' tls=no tls_redirect=yes certificate_path='' certificate_id=''
health_path='' health_interval='' health_timeout='' deploy_timeout='' drain_timeout=''
readiness_delay='' retain='' stop_timeout='' memory='' cpus='' proxy_name='' retained_only=no lock_wait=''
canary_percent='' memory_short='' heal='' hosts=() prefixes=() envs=() volumes=() cmd=() canary_allow=()

parse_options() {
  while (($#)); do
    case $1 in
      --service) need_value "$@"; service=$2; shift ;;
      --role) need_value "$@"; role=$2; shift ;;
      --image) need_value "$@"; image=$2; shift ;;
      --version) need_value "$@"; version=$2; shift ;;
      --config-hash) need_value "$@"; config_hash=$2; shift ;;
      --port) need_value "$@"; port=$2; shift ;;
      --proxy) proxy=yes ;;
      --no-proxy) proxy=no ;;
      --tls) tls=yes ;;
      --no-tls-redirect) tls_redirect=no ;;
      --tls-certificate-path) need_value "$@"; certificate_path=$2; shift ;;
      --tls-certificate-id) need_value "$@"; certificate_id=$2; shift ;;
      --canary-percent) need_value "$@"; canary_percent=$2; shift ;;
      --canary-allow) need_value "$@"; canary_allow+=("$2"); shift ;;
      --memory-short) need_value "$@"; memory_short=$2; shift ;;
      --host) need_value "$@"; hosts+=("$2"); shift ;;
      --path-prefix) need_value "$@"; prefixes+=("$2"); shift ;;
      --health-path) need_value "$@"; health_path=$2; shift ;;
      --health-interval) need_value "$@"; health_interval=$2; shift ;;
      --health-timeout) need_value "$@"; health_timeout=$2; shift ;;
      --deploy-timeout) need_value "$@"; deploy_timeout=$2; shift ;;
      --drain-timeout) need_value "$@"; drain_timeout=$2; shift ;;
      --readiness-delay) need_value "$@"; readiness_delay=$2; shift ;;
      --retain) need_value "$@"; retain=$2; shift ;;
      --stop-timeout) need_value "$@"; stop_timeout=$2; shift ;;
      --env) need_value "$@"; envs+=("$2"); shift ;;
      --volume) need_value "$@"; volumes+=("$2"); shift ;;
      --memory) need_value "$@"; memory=$2; shift ;;
      --cpus) need_value "$@"; cpus=$2; shift ;;
      --proxy-name) need_value "$@"; proxy_name=$2; shift ;;
      --retained-only) retained_only=yes ;;
      --heal) need_value "$@"; heal=$2; shift ;;
      --lock-wait) need_value "$@"; lock_wait=$2; shift ;;
      --cmd) need_value "$@"; cmd+=("$2"); shift ;;
      *) die "unknown option $1" ;;
    esac
    shift
  done
  required --service "$service"; required --role "$role"; required --image "$image"
  required --version "$version"; required --config-hash "$config_hash"; required --port "$port"
  required_toggle --proxy "$proxy"; required --deploy-timeout "$deploy_timeout"
  required --drain-timeout "$drain_timeout"; required --readiness-delay "$readiness_delay"
  required --retain "$retain"; required --stop-timeout "$stop_timeout"; required --proxy-name "$proxy_name"
  required --lock-wait "$lock_wait"
  if [[ $proxy == yes ]]; then
    required --health-path "$health_path"; required --health-interval "$health_interval"
    required --health-timeout "$health_timeout"
    check_duration --health-interval "$health_interval"; check_duration --health-timeout "$health_timeout"
  fi
  check_part_name --service "$service"; check_part_name --role "$role"; check_version --version "$version"
  check_name --proxy-name "$proxy_name"; check_name --config-hash "$config_hash"
  [[ -z $certificate_id ]] || check_name --tls-certificate-id "$certificate_id"
  [[ -z $memory ]] || check_memory --memory "$memory"
  [[ -z $memory_short || $memory_short == stop-first ]] || die "--memory-short must be stop-first, not '$memory_short'"
  [[ -z $certificate_path || $certificate_path == /*.pem ]] ||
    die "--tls-certificate-path '$certificate_path' must be an absolute path to a .pem file"
  if [[ -n $canary_percent ]]; then
    [[ $proxy == yes ]] || die "--canary-percent needs --proxy"
    check_number --canary-percent "$canary_percent"
    ((canary_percent <= 100)) || die "--canary-percent '$canary_percent' is more than 100"
  fi
  local value
  for value in "${canary_allow[@]}"; do check_name --canary-allow "$value"; done
  check_number --port "$port"; check_number --readiness-delay "$readiness_delay"
  [[ -z $heal ]] || check_number --heal "$heal"
  check_number --retain "$retain"; check_number --stop-timeout "$stop_timeout"; check_number --lock-wait "$lock_wait"
  check_duration --deploy-timeout "$deploy_timeout"; check_duration --drain-timeout "$drain_timeout"
  local env
  for env in "${envs[@]}"; do [[ $env == [A-Za-z_]*=* ]] || die "--env '$env' is not KEY=VALUE"; done
}

# --- the container ----------------------------------------------------------------------------------------

# A new version boots as the kernel's first choice when memory runs out, so its boot never costs the version
# serving; once it serves everyone it is an ordinary process again (as_ordinary_process).
readonly BOOT_OOM_SCORE_ADJ=500

run_container() {
  local args=(--detach --cidfile "$1" --name "$name" --network "$fixed" --ip "$address" --restart unless-stopped
    --stop-timeout "$stop_timeout"
    --oom-score-adj "$BOOT_OOM_SCORE_ADJ"
    --log-opt max-size=10m --log-opt max-file=3
    --label "quayside.service=$service" --label "quayside.role=$role" --label "quayside.version=$version"
    --label "quayside.config=$config_hash" --label "quayside.env-hash=$env_hash"
    --env-file "$(env_file "$service" "$role")")
  local env volume
  for env in "${envs[@]}"; do args+=(--env "$env"); done
  for volume in "${volumes[@]}"; do args+=(--volume "$volume"); done
  [[ -z $memory ]] || args+=(--memory "$memory")
  [[ -z $cpus ]] || args+=(--cpus "$cpus")
  add_accessory_hosts args "$service"
  docker run --pull never "${args[@]}" -- "$image" "${cmd[@]}"
}

# The wanted image, pulled when Docker has no image of its digest; a failed pull fails the swap.
pull_wanted() {
  local said
  said=$(pull_if_missing "$image" 2>&1) || fail "${said##*$'\n'}"
  echo "$said"
}

# Boots the new container at a new address on the fixed network, then joins it to the service's network, and sets
# $id and $address. Most often its image is here already: `docker run` goes first, and a pull (then a second run)
# happens only when Docker has no image of that digest. A run that fails after making its container (a port taken)
# leaves the ID in the cidfile, so a failure removes only what this run made, never a container that merely had the
# name. One whose address another container took meanwhile (rare) goes, and the run is tried at another.
boot() {
  local output cidfile subnet tries=0
  cidfile=$(service_dir "$service")/locks/$role.cid
  subnet=$(ensure_fixed_network "$service" "$(proxy_on_fixed)")
  while :; do
    address=$(new_address "$service" "$subnet")
    [[ ! -e $cidfile ]] || rm -f "$cidfile"
    output=$(run_container "$cidfile" 2>&1) && break
    if [[ $output == *"No such image"* ]]; then
      pull_wanted
      rm -f "$cidfile"
      output=$(run_container "$cidfile" 2>&1) && break
    fi
    id=$(cat "$cidfile" 2>/dev/null || true)
    if [[ -z $id || $output != *"Address already in use"* ]] || ((++tries == 3)); then fail "${output%%$'\n'*}"; fi
    docker rm --force "$id" >/dev/null
  done
  id=${output##*$'\n'}
  output=$(docker network connect "$service" "$id" 2>&1) || fail "${output%%$'\n'*}"
}

# The proxy joins the fixed network of a service whose role it routes.
proxy_on_fixed() { [[ $proxy == no ]] || echo "$proxy_name"; }

# "<status> <config hash> <env hash> <id> <image id> <address>" of the container named $name, or nothing; the
# address is the one it was given on the fixed network (none before containers had one).
read_existing() {
  local hashes='{{index .Config.Labels "quayside.config"}} {{index .Config.Labels "quayside.env-hash"}}'
  read -r status old_config old_env id old_image address <<<"$(inspect_container "$name" \
    "{{.State.Status}} $hashes {{.Id}} {{.Image}} $(fixed_address_template "$service")")" || true
}

# The same options, secrets and image: a container of a pinned `version:` whose tag moved is not the same.
same_config() { [[ $old_config == "$config_hash" && $old_env == "$env_hash" && $old_image == "$image_id_wanted" ]]; }

is_live() {
  [[ $status == running ]] && same_config || return 1
  [[ $proxy == no || $(live_target) == "$(target)" ]]
}

# kamal-proxy's target for this container: its fixed address; its ID for one booted before containers had one,
# until the role's next new version.
target() { echo "${address:-${id:0:12}}:$port"; }

# A container booted before containers had fixed addresses gets one when it goes live again.
give_address() {
  [[ -z $address ]] || return 0
  local subnet result
  subnet=$(ensure_fixed_network "$service" "$(proxy_on_fixed)")
  result=$(connect_fixed "$service" "$id" "$subnet" 2>&1) || fail "$result"
  address=$result
}

live_target() { proxy_target "$proxy_name" "$(route_name "$service" "$role")" 2>/dev/null || true; }

# The one read of a new version's hot path, a `docker ps` of the role's containers, read by the shell itself: the
# versions running now, for the audit line ("" on a first deploy; two only after an interrupted swap); the status
# of a container of this version, if there is one; and the IDs the stop and the retention after the switch act on
# (while this step holds the role's lock, no other starts or stops its containers). Asking kamal-proxy would cost a
# `docker exec`.
read_role() {
  local containers container state role_version short_id versions=() found='' found_state=''
  containers=$(docker ps --all --filter "label=quayside.service=$service" --filter "label=quayside.role=$role" \
    --format '{{.Names}} {{.State}} {{.Label "quayside.version"}} {{.ID}}')
  while read -r container state role_version short_id; do
    case $state in
      running | restarting) role_running+=("$short_id") ;;
      exited | created) role_stopped+=("$short_id") ;;
    esac
    if [[ $state == running ]]; then
      [[ $container == "$name" ]] || running_ids+="${running_ids:+ }$short_id"
      add_sorted versions "$role_version"
    fi
    [[ $container != "$name" ]] || status=$state
    [[ -n $found || $role_version != "$version" || $container == *_replaced_* ]] || found=$container found_state=$state
  done <<<"$containers"
  previous=${versions[*]}
  previous=${previous// /, }
  [[ -n $status || -z $found ]] || adopt "$found" "$found_state"
}

# A container of this version under another name (one named by an earlier scheme) takes the name it has now,
# so a redeploy or rollback finds it as before.
adopt() {
  docker rename "$1" "$name"
  status=$2
}

# A container of this version exists: the full comparison, with the image of the wanted digest at hand.
read_existing_in_full() {
  image_id_wanted=$(image_id "$image")
  if [[ -z $image_id_wanted && $retained_only == no ]]; then
    pull_wanted
    image_id_wanted=$(image_id "$image")
  fi
  read_existing
}

# Moves a container of this version with another config out of the way, so the new one can take its name.
set_aside() {
  aside="${name}_replaced_$(random_suffix)"
  docker rename "$name" "$aside"
}

# --- memory -------------------------------------------------------------------------------------------------

# A new version boots beside the one serving, and both hold memory until the switch. One that may take more than
# the server has available is refused before it boots, rather than leaving the kernel's OOM killer to choose what
# to kill. What it may take: its memory limit, else what the role's running containers use now.
check_memory_room() {
  local need source advice available pid use short
  if [[ -n $memory ]]; then
    need=$(bytes_of "$memory") source="its memory limit, roles.$role.memory"
    advice="lower roles.$role.memory or free memory on $HOSTNAME"
  else
    need=0 source="what $previous uses now"
    advice="free memory on $HOSTNAME, or give roles.$role.memory what $version needs"
    # shellcheck disable=SC2086 # one argument per ID; one `docker inspect` for them all
    for pid in $([[ -z $running_ids ]] || docker inspect --format '{{.State.Pid}}' $running_ids); do
      use=$(pid_memory_use "$pid")
      ((${use:-0} <= need)) || need=$use
    done
  fi
  available=$(memory_available)
  ((need > 0 && ${available:-0} > 0 && need > available)) || return 0
  short="$version may take $(size_words "$need") ($source)${previous:+ beside $previous}, and $HOSTNAME has"
  short+=" $(size_words "$available") available"
  # A canary keeps the version serving by design: it is never stopped for one.
  if [[ $memory_short == stop-first && -n $running_ids && -z $canary_percent ]]; then
    stop_first "$short"
  else
    refuse "$short: $advice${previous:+; $previous serves on}"
  fi
}

# roles.ROLE.memory_short: stop_first. The route's requests are held (kamal-proxy pause) and the role's running
# containers stopped, so the new version has their memory; a failure starts them again (put_back), and an EXIT trap
# lets the requests on whatever happens. They wait at most as long as a stop and a deploy may take.
stop_first() {
  local route hold
  route=$(route_name "$service" "$role")
  hold=$(($(seconds_of "$deploy_timeout") + stop_timeout + 30))s
  if [[ $proxy == yes && $(proxy_route_state "$proxy_name" "$route" 2>/dev/null || true) == running ]]; then
    trap let_requests_on EXIT
    hold_route "$proxy_name" "$route" "$drain_timeout" "$hold"
    held_route=$route
  fi
  # shellcheck disable=SC2086 # one argument per ID
  docker stop $running_ids >/dev/null
  stopped_first=$running_ids
  say "$role: $1: $previous stopped first (memory_short: stop_first)${held_route:+, its requests held up to $hold}"
}

let_requests_on() {
  [[ -n $held_route ]] || return 0
  let_route_on "$proxy_name" "$held_route"
  held_route=''
}

# Times the kernel killed a process of the new container for want of memory since main's $started.
oom_kills() {
  [[ -n $id ]] || { echo 0; return 0; }
  docker events --since "$((started / 1000 - 1))" --until "$(date +%s)" --filter "container=$id" \
    --filter event=oom --format '{{.Action}}' 2>/dev/null | grep -c . || true
}

# --- switching traffic ------------------------------------------------------------------------------------

proxy_deploy() {
  local args=(--target "$(target)" --health-check-path "$health_path"
    --health-check-interval "$health_interval" --health-check-timeout "$health_timeout"
    --deploy-timeout "$deploy_timeout" --drain-timeout "$drain_timeout")
  local host prefix
  for host in "${hosts[@]}"; do args+=(--host "$host"); done
  for prefix in "${prefixes[@]}"; do args+=(--path-prefix "$prefix"); done
  [[ $tls == no ]] || args+=(--tls)
  [[ $tls_redirect == yes ]] || args+=(--tls-redirect=false)
  [[ -z $certificate_path ]] || args+=(--tls-certificate-path "$certificate_path" --tls-private-key-path "$certificate_path")
  docker exec "$proxy_name" kamal-proxy deploy "$(route_name "$service" "$role")" "${args[@]}" 2>&1
}

# kamal-proxy checks health as the deploy starts and then every --health-interval, so a first check that comes
# before the app listens costs a whole interval. The deploy starts once the new container listens on --port, or
# after one interval without: never later than kamal-proxy's own second check would have come. Each look is the
# shell's own (the clock, the kernel's socket tables): ten swaps at once look many times, and a process started for
# each look would take the CPU the new containers boot on.
wait_listening() {
  local network deadline_us
  read -r new_pid network <<<"$(inspect_container "$id" "{{.State.Pid}} {{with index .NetworkSettings.Networks \"$service\"}}yes{{end}}")"
  [[ $network == yes && ${new_pid:-0} != 0 ]] || return 0
  deadline_us=$((${EPOCHREALTIME//[!0-9]/} + $(ms_of "$health_interval") * 1000))
  until listening_in "$new_pid" "$port"; do
    ((${EPOCHREALTIME//[!0-9]/} < deadline_us)) || return 0
    sleep 0.02
  done
}

# listening_in PID PORT: a socket of PID's network namespace listens on PORT, by the kernel's tables
# (/proc/PID/net/tcp and tcp6: field 2 is the local address, hex port last; field 4 the state, 0A for LISTEN).
# Tables that cannot be read (the process has ended) listen on nothing.
listening_in() {
  local port_hex table local_address state
  printf -v port_hex '%04X' "$2"
  for table in "/proc/$1/net/tcp" "/proc/$1/net/tcp6"; do
    while read -r _ local_address _ state _; do
      [[ $state == 0A && ${local_address##*:} == "$port_hex" ]] && return 0
    done 2>/dev/null <"$table"
  done
  return 1
}

# Without the proxy: healthy by its Docker healthcheck within --deploy-timeout, else still running
# (and never restarted) after --readiness-delay seconds.
wait_ready() {
  if [[ -n $(inspect_container "$id" '{{if .State.Health}}yes{{end}}') ]]; then
    local deadline=$((SECONDS + $(seconds_of "$deploy_timeout")))
    until [[ $(inspect_container "$id" '{{.State.Health.Status}}') == healthy ]]; do
      ((SECONDS < deadline)) || { echo "not healthy within $deploy_timeout"; return 1; }
      sleep 1
    done
  else
    sleep "$readiness_delay"
    [[ $(inspect_container "$id" '{{.State.Status}} {{.RestartCount}}') == "running 0" ]] ||
      { echo "not running ${readiness_delay}s after start"; return 1; }
  fi
}

readiness() {
  if [[ $proxy == yes ]]; then echo "health path $health_path"
  elif [[ -n $(inspect_container "$id" '{{if .State.Health}}yes{{end}}') ]]; then echo "docker healthcheck"
  else echo "readiness delay ${readiness_delay}s"
  fi
}

# --- failure: one line why, the container's state and logs; then put things back -------------------------

fail() {
  local reason=$1 kills
  kills=$(oom_kills)
  if ((kills > 0)); then
    reason+="; it ran out of memory: the kernel killed it $kills time(s)"
    reason+=${memory:+ at its limit of $memory (roles.$role.memory: raise it, or make the app use less)}
  fi
  {
    echo "swap failed: role $role on $HOSTNAME: $reason ($(readiness))"
    if [[ -n $(inspect_container "$id" '{{.Id}}') ]]; then
      echo "container $name: $(inspect_container "$id" \
        '{{.State.Status}}{{if .State.Health}}, health {{.State.Health.Status}}{{end}}, exit code {{.State.ExitCode}}, restarts {{.RestartCount}}')"
      echo "last log lines of $name:"
      docker logs --tail 30 "$id" 2>&1 | redact_env "$(env_file "$service" "$role")" | sed 's/^/  | /' || true
    fi
  } >&2
  put_back
  audit "$service" "$role" "$version" failed "$reason"
  exit 1
}

# Refuses before anything is made: one line why, in the audit log too.
refuse() {
  echo "swap failed: role $role on $HOSTNAME: $*" >&2
  audit "$service" "$role" "$version" failed "$*"
  exit 1
}

put_back() {
  # shellcheck disable=SC2086 # one argument per ID
  [[ -z $stopped_first ]] || docker start $stopped_first >/dev/null || true
  if [[ $event == rollback ]]; then
    docker stop "$id" >/dev/null 2>&1 || true
  else
    docker rm --force "$id" >/dev/null 2>&1 || true
  fi
  [[ -z $aside ]] || docker rename "$aside" "$name"
}

# Killed by the caller's timeout: the proxy may still switch to the new container, so leave everything
# running; the next run finds this container and converges.
interrupted() {
  echo "swap failed: role $role on $HOSTNAME: interrupted; $name left running beside the old one" >&2
  audit "$service" "$role" "$version" failed "interrupted"
  exit 1
}

# --- the role's own certificate ---------------------------------------------------------------------------

# kamal-proxy reads a certificate file when a route is deployed: a new one in the same file is served once the
# route is deployed again.
certificate_mark() { echo "$(service_dir "$service")/$role.certificate"; }

certificate_is_new() {
  [[ -n $certificate_id && $(cat "$(certificate_mark)" 2>/dev/null || true) != "$certificate_id" ]]
}

mark_certificate() {
  [[ -z $certificate_id ]] || echo "$certificate_id" >"$(certificate_mark)"
}

serve_new_certificate() {
  local reason
  reason=$(proxy_deploy) || die "$role: the new certificate is not served: ${reason##*Error: }"
  mark_certificate
  say "$role: the proxy serves the new certificate ($certificate_id)"
}

# --- a canary ------------------------------------------------------------------------------------------------

# "VERSION PERCENT VALUE,VALUE" of the role's canary, kept beside the service while kamal-proxy splits its route:
# a swap without a canary ends the split only when there is one (no `docker exec` on the usual path).
canary_mark() { canary_file "$service" "$role"; }

# The container serving everyone while a canary runs: kamal-proxy's active target; sets $stable_id.
read_stable() { stable_id=$(target_container "$service" "$(live_target)"); }

# The new container goes into the route's rollout slot (kamal-proxy health-checks it first, as a deploy does),
# then the split is set. A canary running already (a new share) keeps its slot: only the split changes, so a failure
# here never removes a container that serves.
canary_deploy() {
  local route allow mark
  route=$(route_name "$service" "$role")
  mark=$(cat "$(canary_mark)" 2>/dev/null || true)
  if [[ $status != running || ${mark%% *} != "$version" ]]; then
    docker exec "$proxy_name" kamal-proxy rollout deploy "$route" --target "$(target)" \
      --deploy-timeout "$deploy_timeout" --drain-timeout "$drain_timeout" 2>&1 || return 1
  fi
  allow=$(IFS=,; echo "${canary_allow[*]}")
  docker exec "$proxy_name" kamal-proxy rollout set "$route" --percent "$canary_percent" ${allow:+--list "$allow"} 2>&1 ||
    return 1
  echo "$version $canary_percent $allow" >"$(canary_mark)"
}

# The route's split ends: every request goes to the active target. The rollout slot keeps its (stopping) target
# until the next canary replaces it; no request reaches it without the split.
end_canary() {
  [[ -f $(canary_mark) ]] || return 0
  local was
  was=$(<"$(canary_mark)")
  docker exec "$proxy_name" kamal-proxy rollout stop "$(route_name "$service" "$role")" >/dev/null
  rm -f "$(canary_mark)"
  say "$role: the canary of ${was%% *} ended; $version serves everyone"
}

canary_words() {
  local allow=${canary_allow[*]}
  echo "$canary_percent% of kamal-rollout cookie values${allow:+ and ${allow// /, }}"
}

# --- after the switch -------------------------------------------------------------------------------------

# The drift check's record: this version is what the stack deployed here. Not for a rollback's fast switch.
record_deployed() {
  [[ $retained_only == yes ]] || record_drift "$service" "role-$role" "$version" "${heal:-0}"
}

# What the lock file says while the containers the switch drained are stopping, before their IDs: a rollback
# reads it (preempt_stopping).
readonly STOPPING_NOTE="stopping, drained already:"

# The live container's processes back to the kernel's ordinary score, unless it is a canary (the version serving
# everyone else stays the one kept). Only root may lower a score: as another user the container keeps it until it
# next starts, and a restart after a crash gets it again. Its processes are those of its main process's cgroup.
as_ordinary_process() {
  ((EUID == 0)) && [[ -z $stable_id ]] || return 0
  local cgroup pid pids
  [[ ${new_pid:-0} != 0 ]] || new_pid=$(inspect_container "$id" '{{.State.Pid}}')
  cgroup=$(cgroup_of "$new_pid")
  if [[ -n $cgroup && -r $cgroup/cgroup.procs ]]; then
    pids=$(<"$cgroup/cgroup.procs")
  else
    pids=$(docker top "$id" -eo pid 2>/dev/null | tail -n +2)
  fi
  for pid in $pids; do
    echo 0 >"/proc/$pid/oom_score_adj" 2>/dev/null || true
  done
}

# The role's containers that ran when the swap began, but the live one and a canary's stable one, stop.
stop_others() {
  local other others=()
  for other in "${role_running[@]}"; do
    [[ $other == "${id:0:12}" || $other == "$stable_id" ]] || others+=("$other")
  done
  ((${#others[@]})) || return 0
  lock_note "$STOPPING_NOTE ${others[*]}"
  # All at once: the lock is held for one stop_timeout at most (role_work in components/swap_command.py).
  docker stop "${others[@]}" >/dev/null
  role_stopped+=("${others[@]}")
}

# A rollback does not wait out the last swap's stop of what it replaced (an app that ignores SIGTERM stops only at
# its stop_timeout): those containers were drained at the switch, so it ends the stopper (its pruning waits for
# the next swap) and kills them, which ends their stop at once; the lock is free as soon as `docker stop` returns.
# Any other holder (a deploy, a migration) is waited for.
preempt_stopping() {
  local file holder pid ids
  file=$(service_dir "$service")/locks/$role.lock
  [[ -f $file ]] || return 0
  exec 6<>"$file"
  if flock -n 6; then
    exec 6>&-
    return 0
  fi
  exec 6>&-
  holder=$(head -n 1 "$file" 2>/dev/null || true)
  [[ $holder == *": $STOPPING_NOTE "* ]] || return 0
  ids=${holder##*"$STOPPING_NOTE "}
  [[ $ids =~ ^[0-9a-f]{12}( [0-9a-f]{12})*$ ]] || return 0
  pid=${holder#*"(pid "}
  pid=${pid%%)*}
  if [[ $pid =~ ^[0-9]+$ ]] && grep -qa swap.sh "/proc/$pid/cmdline" 2>/dev/null; then kill "$pid" 2>/dev/null || true; fi
  # shellcheck disable=SC2086 # one argument per ID
  docker kill $ids >/dev/null 2>&1 || true
  say "$role: the stop of $ids (drained already) ended for this rollback"
}

# Keeps the newest $retain stopped containers of the role (by when they stopped); removes the rest and
# their images when no container uses them any more.
prune_stopped() {
  local candidate stopped=() kept=0 _ old image_id image_ref
  for candidate in "${role_stopped[@]}"; do
    [[ $candidate == "${id:0:12}" ]] || stopped+=("$candidate")
  done
  ((${#stopped[@]} > retain)) || return 0
  while read -r _ old image_id image_ref; do
    ((++kept > retain)) || continue
    docker rm "$old" >/dev/null
    [[ -n $(docker ps --all --quiet --filter "ancestor=$image_id") ]] || remove_image_unless_in_use "$image_ref"
  done < <(docker inspect --format '{{.State.FinishedAt}} {{.Id}} {{.Image}} {{.Config.Image}}' "${stopped[@]}" | sort -r)
}

# Not while another role, of this service or another, is between pulling an image and running it (it holds
# the images lock shared): the image would go from under it. Pruning waits for no one; the next swap prunes again.
remove_image_unless_in_use() {
  exec 7<>"$(images_lock_file)"
  if flock -x -n 7; then docker image rm "$1" >/dev/null 2>&1 || true; fi
  exec 7>&-
}

# A role moved off the proxy (proxy: false) keeps no route; dropped before the old container stops.
drop_route() {
  [[ -n $(live_target) ]] || return 0
  docker exec "$proxy_name" kamal-proxy remove "$(route_name "$service" "$role")" >/dev/null
  release_route "$service" "$role"
  say "$role: route removed from $proxy_name (the role no longer uses the proxy)"
}

finish() {
  [[ $proxy == yes ]] || drop_route
  local log now
  log=$(service_dir "$service")/logs/$role.log
  ensure_dir "${log%/*}"
  lock_note "stopping the containers $version replaced"
  # fd 9 (the role's lock) goes along; the images lock and the SSH session's streams do not.
  (
    trap '' HUP
    utc_now now
    echo "$now $version: stopping the others, pruning"
    as_ordinary_process
    stop_others
    prune_stopped
  ) </dev/null >>"$log" 2>&1 8>&- &
  # A job with nothing to stop may have ended already: then there is none to disown.
  disown 2>/dev/null || true
}

main() {
  local started
  started=$(now_ms)
  parse_options "$@"
  name=$(container_name "$service" "$role" "$version")
  fixed=$(fixed_network "$service")
  [[ $retained_only == no ]] || preempt_stopping
  lock "$service" "$role" "$lock_wait"
  [[ $proxy == no ]] || claim_route "$proxy_name" "$service" "$role"
  [[ $retained_only == yes ]] || own_volumes "$service" "${volumes[@]}"
  if [[ $retained_only == no ]]; then write_env_file "$service" "$role"; fi
  [[ -f $(env_file "$service" "$role") ]] || die "$role has no env file on $HOSTNAME: deploy it first"
  env_hash=$(sha256sum "$(env_file "$service" "$role")")
  env_hash=${env_hash:0:16}
  status='' old_config='' old_env='' id='' old_image='' address='' image_id_wanted='' aside='' event=deploy previous=''
  stable_id='' running_ids='' stopped_first='' held_route='' new_pid='' role_running=() role_stopped=()
  [[ $retained_only == yes ]] || hold_images
  read_role
  [[ -z $status ]] || read_existing_in_full
  if is_live; then
    if certificate_is_new; then serve_new_certificate; fi
    [[ -z $canary_percent ]] || say "$role: $version serves everyone already: no canary of it"
    end_canary
    finish
    record_deployed
    say "$role already live at $version"
    return 0
  fi
  if [[ $retained_only == yes ]] && ! { [[ -n $status ]] && same_config; }; then
    die "no container of $role $version with the role's current config is kept on $HOSTNAME"
  fi
  local output
  if [[ -n $status ]] && same_config; then
    if [[ $status != running ]]; then
      event=rollback
      output=$(docker start "$name" 2>&1) || fail "${output%%$'\n'*}"
    fi
    give_address
  else
    check_memory_room
    [[ -z $status ]] || set_aside
    boot
  fi
  release_images
  trap interrupted TERM INT
  say "$role $version: $event to $name (${id:0:12})${previous:+, replacing $previous}"

  local reason
  [[ -z $canary_percent ]] || read_stable
  if [[ -n $stable_id ]]; then
    wait_listening
    reason=$(canary_deploy) || fail "${reason##*Error: }"
    trap - TERM INT
    finish
    record_deployed
    audit "$service" "$role" "$version" canary "$name ${id:0:12} for $(canary_words)"
    say "$role $version: a canary for $(canary_words); ${stable_id} serves the rest"
    return 0
  elif [[ $proxy == yes ]]; then
    [[ -z $canary_percent ]] || say "$role: no version serves yet, so $version goes live for everyone (no canary)"
    wait_listening
    reason=$(proxy_deploy) || fail "${reason##*Error: }"
    let_requests_on
    end_canary
  else
    reason=$(wait_ready) || fail "$reason"
  fi
  local switched
  switched=$(now_ms)
  trap - TERM INT
  say "$role $version: switched $((switched - started)) ms after start"

  mark_certificate
  finish
  record_deployed
  audit "$service" "$role" "$version" "$event" "$name ${id:0:12}${previous:+ replaced $previous}"
  say "$role now $version"
}

main "$@"
