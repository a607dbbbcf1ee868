#!/usr/bin/env bash
# proxy: the kamal-proxy container that every service on this server shares.
#
#   proxy.sh boot --image IMG --network S --name NAME --proxy-network NET --http-port N --https-port N
#     --bind ADDRESS --state-volume VOLUME --state-dir PATH [--heal N]
#       Same image and options as the running one: make sure it runs and is on network S. Otherwise (absent,
#       an upgrade, or new content under its tag when IMG is pinned by a digest) replace it; kamal-proxy reloads
#       its routes from the state volume, and the new container joins every network the old one was on. Waits
#       until `kamal-proxy list` answers. A running proxy whose image alone changes hands its published ports
#       over without refusing a connection (hand_over, below).
#       Options that differ from those another service on the proxy asked for are refused: nothing changes.
#       --heal N counts the times `pulumi up` found the proxy not running on network S as recorded
#       (components/drift.py): a new count makes Pulumi run the boot again. Not an option of the proxy's.
#   proxy.sh remove --network S --name NAME --proxy-network NET
#       Leave network S; remove the container once it routes no service (the state volume stays).
#
# The proxy's published ports live on its own network NET, which sorts before every service network: Docker
# gives a container's published ports to the first of its networks by name, and moves them (refusing
# connections for a second or more) whenever a network joined or left changes which one is first.
#   (components/steps.py PROXY)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

readonly READY_SECONDS=30
# How long a proxy that hands over may finish the requests it has (kamal-proxy's own shutdown waits up to 30 s).
readonly DRAIN_SECONDS=30
action='' image='' network='' name='' proxy_network='' http_port='' https_port='' bind='' state_volume='' state_dir=''
heal=''

parse_options() {
  action=${1:-}
  [[ $action == boot || $action == remove ]] || die "first argument must be boot or remove, not '$action'"
  shift
  while (($#)); do
    case $1 in
      --image) need_value "$@"; image=$2; shift ;;
      --network) need_value "$@"; network=$2; shift ;;
      --name) need_value "$@"; name=$2; shift ;;
      --proxy-network) need_value "$@"; proxy_network=$2; shift ;;
      --http-port) need_value "$@"; http_port=$2; shift ;;
      --https-port) need_value "$@"; https_port=$2; shift ;;
      --bind) need_value "$@"; bind=$2; shift ;;
      --state-volume) need_value "$@"; state_volume=$2; shift ;;
      --state-dir) need_value "$@"; state_dir=$2; shift ;;
      --heal) need_value "$@"; heal=$2; shift ;;
      *) die "unknown option $1" ;;
    esac
    shift
  done
  required --network "$network"; required --name "$name"
  required --proxy-network "$proxy_network"
  check_name --network "$network"; check_name --name "$name"; check_name --proxy-network "$proxy_network"
  [[ $proxy_network == [0-9]* ]] ||
    die "--proxy-network '$proxy_network' must start with a digit, to sort before every service network"
  [[ $action == remove ]] && return 0
  required --image "$image"; required --http-port "$http_port"; required --https-port "$https_port"
  required --bind "$bind"; required --state-volume "$state_volume"; required --state-dir "$state_dir"
  check_name --state-volume "$state_volume"
  check_number --http-port "$http_port"; check_number --https-port "$https_port"
  [[ -z $heal ]] || check_number --heal "$heal"
  [[ $state_dir == /* ]] || die "--state-dir '$state_dir' must be an absolute path"
}

# Everything that shapes the container; stored in a label, so a change is seen and means a reboot. The image is
# named as the config words it, without the digest it is pinned to: the services sharing the proxy agree on the
# words, and the content is compared apart (runs_image).
options_label() {
  echo "image=${image%@*} http=$bind:$http_port https=$bind:$https_port state=$state_volume:$state_dir"
}

# True unless --image is pinned by a digest and the proxy runs other content: its tag was pushed again since.
runs_image() {
  [[ $image == *@* ]] || return 0
  [[ $(inspect_container "$name" '{{.Image}}') == "$(docker image inspect --format '{{.Id}}' "$image")" ]]
}

# only_image_changed CURRENT: the running proxy's options label differs from this boot's in the image alone.
only_image_changed() { [[ -n $1 && ${1#* } == "$(options_label | cut -d' ' -f2-)" ]]; }

# shellcheck disable=SC2016 # a Go template, not a shell expansion
networks_of() { inspect_container "$name" '{{range $net, $_ := .NetworkSettings.Networks}}{{$net}} {{end}}'; }

join_network() {
  local joined
  for joined in $(networks_of); do [[ $joined != "$1" ]] || return 0; done
  docker network connect "$1" "$name"
}

# The service's fixed network, where its containers are the proxy's targets, once a swap has made it.
join_fixed_network() {
  local fixed
  fixed=$(fixed_network "$network")
  [[ -z $(network_state "$fixed") ]] || join_network "$fixed"
}

# start_proxy NETWORK...: the proxy run, on NETWORK... and the service's fixed network, answering.
start_proxy() {
  local joined
  run_proxy || return 1
  for joined; do docker network connect "$joined" "$name" || return 1; done
  join_fixed_network || return 1
  wait_until_answering
}

# run_proxy_as CONTAINER RESTART [OPTION...]: the image as CONTAINER, on the proxy network with the state volume.
run_proxy_as() {
  local container=$1 restart=$2
  shift 2
  docker run --detach --name "$container" --network "$proxy_network" --restart "$restart" \
    --log-opt max-size=10m --log-opt max-file=3 --volume "$state_volume:$state_dir" "$@" -- "$image" >/dev/null
}

run_proxy() {
  run_proxy_as "$name" unless-stopped --publish "$bind:$http_port:80" --publish "$bind:$https_port:443" \
    --label "quayside.proxy-options=$(options_label)"
}

# answers CONTAINER: it answers `kamal-proxy list` within READY_SECONDS.
answers() {
  local deadline=$((SECONDS + READY_SECONDS))
  until docker exec "$1" kamal-proxy list >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

wait_until_answering() { answers "$name" || die "$name did not answer 'kamal-proxy list' within ${READY_SECONDS}s"; }

# One proxy serves every service of the server, so its boots and removals take turns on a server-wide lock.
lock_proxy() {
  mkdir -p "$QUAYSIDE_ROOT"
  exec 8>>"$QUAYSIDE_ROOT/$name.lock"
  flock -w "$LOCK_WAIT_SECONDS" 8 ||
    die "another service still holds $QUAYSIDE_ROOT/$name.lock after ${LOCK_WAIT_SECONDS}s"
}

# What a service asked for at its last boot, kept beside its own files: the proxy changes only when every service
# on it asks for the same options.
asked_file() { echo "$(service_dir "$1")/proxy-options"; }

# The other services the proxy serves: the networks it is on, this service's, its own and fixed networks aside.
other_services() {
  local joined
  for joined in $(networks_of); do
    [[ $joined == "$network" || $joined == "$proxy_network" || $joined == "$(fixed_network "${joined%.*}")" ]] ||
      echo "$joined"
  done
}

# The config keys behind each word of options_label, for the message that names what differs.
declare -rA OPTION_KEYS=(
  [image]="proxy.image and proxy.version" [http]="proxy.bind and proxy.http_port"
  [https]="proxy.bind and proxy.https_port" [state]="proxy.state_dir"
)

# refuse_unless_all_ask CURRENT: new options would reboot the proxy under the other services it serves; that is
# done only once each of them asks for the same (a service that never said runs with CURRENT).
refuse_unless_all_ask() {
  local current=$1 other asked ours theirs i
  for other in $(other_services); do
    asked=$(cat "$(asked_file "$other")" 2>/dev/null || echo "$current")
    [[ $asked != "$wanted" ]] || continue
    read -ra ours <<<"$wanted"
    read -ra theirs <<<"$asked"
    for i in "${!ours[@]}"; do
      [[ ${ours[i]} != "${theirs[i]:-}" ]] || continue
      die "service '$other' shares this server's kamal-proxy and asked for ${theirs[i]:-other options}," \
        "this one for ${ours[i]}: set ${OPTION_KEYS[${ours[i]%%=*}]} alike in both stacks" \
        "(the proxy changes once every service on it asks for the same)"
    done
  done
}

# --- a handover: a new image takes over without refusing a connection ---------------------------------------
# kamal-proxy v0.9.2 cannot share a port with another process (no SO_REUSEPORT), and Docker gives a host port to one
# container. So for the moment the old proxy stops and the new one starts, new connections go to a standby proxy of
# the new image, by a DNAT rule of quayside's own ahead of Docker's; connections already open stay where they are
# (conntrack), and each proxy drains its own on SIGTERM. The standby has the same state volume (kamal-proxy reads it
# at start and writes it only on a route change, which the server-wide lock keeps out) and the same networks.

# iptables as root: this step's user is root, or one sudo lets run it (bootstrap.sh allows the deploy user).
as_root() { if ((EUID == 0)); then "$@"; else sudo -n "$@"; fi; }

# can_switch: iptables can be run here as root.
can_switch() { as_root iptables -w -t nat -S OUTPUT >/dev/null 2>&1; }

# This proxy's DNAT rules, a line each (CHAIN and the rule's words), so they are deleted as they were made, whoever
# else changes the chains meanwhile (another proxy of a test bed hands over too), and after a killed run.
switch_rules() { echo "$QUAYSIDE_ROOT/$name.handover"; }

# switch_to ADDRESS: new connections to the published ports go to ADDRESS's 80 and 443, from outside and from here.
switch_to() {
  local chain port rule match=()
  [[ $bind == 0.0.0.0 ]] || match=(-d "$bind")
  for chain in PREROUTING OUTPUT; do
    for port in "$http_port:80" "$https_port:443"; do
      rule=(-p tcp "${match[@]}" --dport "${port%:*}" -m addrtype --dst-type LOCAL
        -m comment --comment "quayside-proxy-handover:$name" -j DNAT --to-destination "$1:${port#*:}")
      echo "$chain ${rule[*]}" >>"$(switch_rules)"
      as_root iptables -w -t nat -I "$chain" 1 "${rule[@]}"
    done
  done
}

# switch_back: this proxy's DNAT rules gone (also those a killed handover left): Docker's serve again.
switch_back() {
  local chain words rule
  [[ -f $(switch_rules) ]] || return 0
  while read -r chain words; do
    read -ra rule <<<"$words"
    as_root iptables -w -t nat -D "$chain" "${rule[@]}" 2>/dev/null || true
  done <"$(switch_rules)"
  rm -f "$(switch_rules)"
}

# The proxy's address on its own network, where the DNAT rules send connections.
proxy_address() { inspect_container "$1" "{{(index .NetworkSettings.Networks \"$proxy_network\").IPAddress}}"; }

# run_standby NAME NETWORK...: the new image as NAME, on the proxy network and NETWORK..., its ports published on
# loopback ports Docker picks (so Docker's filter rules let forwarded connections reach it), answering.
run_standby() {
  local standby=$1 joined
  shift
  run_proxy_as "$standby" no --publish "127.0.0.1::80" --publish "127.0.0.1::443" \
    --label "quayside.proxy-standby=$name" || return 1
  for joined; do docker network connect "$joined" "$standby" || return 1; done
  answers "$standby"
}

# retire_standby: quayside's DNAT rules removed (Docker's serve the proxy again), then a standby drained and removed.
retire_standby() {
  local standby=${name}_standby
  [[ -n $(inspect_container "$standby" '{{.Id}}') ]] || return 0
  switch_back
  docker stop --time "$DRAIN_SECONDS" "$standby" >/dev/null
  docker rm --force "$standby" >/dev/null
}

# hand_over NETWORK...: the running proxy replaced by one of the new image, on the same NETWORKs, while a standby of
# the new image takes the new connections. Should the new proxy not start, the standby goes on serving through the
# DNAT rules, and the next boot (the proxy is absent then) replaces it.
hand_over() {
  local standby=${name}_standby
  docker rm --force "$standby" >/dev/null 2>&1 || true
  switch_back
  if ! run_standby "$standby" "$@" || [[ $(proxy_routes "$standby") != "$(proxy_routes "$name")" ]]; then
    echo "the standby's last log lines:" >&2
    docker logs --tail 10 "$standby" 2>&1 | sed 's/^/  | /' >&2
    docker rm --force "$standby" >/dev/null 2>&1 || true
    die "a standby of $image did not answer with the routes $name serves: $name serves on, nothing was changed"
  fi
  switch_to "$(proxy_address "$standby")"
  docker stop --time "$DRAIN_SECONDS" "$name" >/dev/null
  docker rm "$name" >/dev/null
  start_proxy "$@" || die "$name did not start ($image): the standby $standby serves meanwhile; run the step again"
  retire_standby
}

ensure_proxy_network() {
  docker network inspect "$proxy_network" >/dev/null 2>&1 || docker network create "$proxy_network" >/dev/null
}

boot() {
  lock_proxy
  local current wanted
  current=$(label_of "$name" quayside.proxy-options)
  wanted=$(options_label)
  mkdir -p "$(service_dir "$network")"
  # Said before any refusal: the other services' next boot may then agree and make the change.
  echo "$wanted" >"$(asked_file "$network")"
  [[ -z $current || $current == "$wanted" ]] || refuse_unless_all_ask "$current"
  ensure_proxy_network
  pull_if_missing "$image"
  if [[ $current == "$wanted" ]] && runs_image; then
    [[ $(inspect_container "$name" '{{.State.Running}}') == true ]] || docker start "$name" >/dev/null
    join_network "$proxy_network"
    join_network "$network"
    join_fixed_network
    wait_until_answering
    retire_standby
    record_drift "$network" proxy "${heal:-0}"
    say "$name up ($image), on network $network"
    return 0
  fi
  local joined rejoin=()
  # Every network the old one was on: the services' and their fixed networks.
  for joined in $(networks_of); do
    [[ $joined == "$proxy_network" || $joined == "$network" ]] || rejoin+=("$joined")
  done
  if only_image_changed "$current" && [[ $(inspect_container "$name" '{{.State.Running}}') == true ]]; then
    if can_switch; then
      hand_over "${rejoin[@]}" "$network"
      record_drift "$network" proxy "${heal:-0}"
      say "$name handed over to $image on $bind:$http_port and $bind:$https_port, no connection refused"
      return 0
    fi
    say "$(id -un) may not run iptables as root here (bootstrap.sh allows the deploy user): $name restarts instead"
  fi
  [[ -z $(inspect_container "$name" '{{.Id}}') ]] || docker rm --force "$name" >/dev/null
  start_proxy "${rejoin[@]}" "$network"
  retire_standby
  record_drift "$network" proxy "${heal:-0}"
  say "$name booted ($image) on $bind:$http_port and $bind:$https_port, on network $network"
}

remove() {
  lock_proxy
  rm -f "$(asked_file "$network")" "$(drift_record "$network" proxy)"
  if [[ -z $(inspect_container "$name" '{{.Id}}') ]]; then
    say "$name is not here; nothing to do"
    return 0
  fi
  # A proxy booted before it had a network of its own gets it now, so leaving this one moves no published port.
  ensure_proxy_network
  join_network "$proxy_network"
  local joined
  for joined in $(networks_of); do
    [[ $joined != "$network" && $joined != "$(fixed_network "$network")" ]] ||
      docker network disconnect "$joined" "$name"
  done
  local services
  if ! services=$(proxy_service_count "$name"); then
    say "$name left network $network; it does not answer, so it stays"
  elif ((services > 0)); then
    say "$name left network $network; it still routes $services service(s), so it stays"
  else
    docker rm --force "$name" >/dev/null
    docker network rm "$proxy_network" >/dev/null 2>&1 || say "network $proxy_network kept: something else is on it"
    say "$name removed (it routed no service); its state volume is kept"
  fi
}

main() {
  parse_options "$@"
  "$action"
}

main "$@"
