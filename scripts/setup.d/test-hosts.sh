#!/usr/bin/env bash
# The multi-host test bed: QUAYSIDE_TEST_HOSTS (3) hosts qs-host-1.., each a server as quayside meets one: its own
# network namespace at an address on a private bridge (10.97.0.11, .12, ...), its own sshd on port 22 (root, by the
# bed's generated key only) and its own Docker engine, all in a mount namespace of its own where the paths a
# server's scripts use (/run with docker.sock, /var/lib/docker, /var/lib/quayside, /etc/docker, /var/log, /tmp, ...)
# are the host's directories under $QUAYSIDE_CACHE/hosts/<name>/fs. The hosts pull from the loopback registry at
# the bridge's root-side address (10.97.0.1:<registry port>, forwarded to 127.0.0.1), and have no route beyond the
# bridge. Tests read the bed from $QUAYSIDE_TESTBED/test-hosts.env.
# Usage: scripts/setup.d/test-hosts.sh            makes what is missing, starts what stopped; a stopped engine too
#        scripts/setup.d/test-hosts.sh --remove   stops every host's processes; deletes its namespaces, the bridge,
#                                                 the hosts' data (their keys stay, so a new bed has the same ones)
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"
source "$(dirname "$0")/../lib/test-sshd.sh"

count=${QUAYSIDE_TEST_HOSTS:-3}
# The bridge's /24: the root namespace's side is .1, host i is .(10+i).
net=${QUAYSIDE_TEST_HOSTS_NET:-10.97.0}
gateway=$net.1
# The namespace that holds the bridge, the bridge, and the root namespace's end of the veth into it.
readonly SWITCH=qs-hosts
# The hosts' mount and UTS namespaces, each kept by a bind mount of its file as `ip netns` keeps /run/netns/<name>.
readonly NS_DIR=/run/quayside-hosts
readonly BED=$QUAYSIDE_CACHE/hosts
readonly ENV_FILE=$QUAYSIDE_TESTBED/test-hosts.env
# The paths a host has of its own: each is bound from $BED/<name>/fs<path> in the host's mount namespace. /run
# holds docker.sock, docker.pid, the engine's exec root (/run/docker, with its containerd's state) and sshd.pid;
# a /run of its own also hides the root namespace's containerd socket, so each dockerd starts a containerd of its
# own. /root/.docker holds a `docker login`, /root/.ssh the authorized keys.
readonly HOST_PATHS=(/run /tmp /var/log /var/lib/docker /var/lib/quayside /etc/docker /root/.docker /root/.ssh)
readonly ENGINE_SECONDS=60

host_name() { echo "qs-host-$1"; }
host_address() { echo "$net.$((10 + $1))"; }

# is_ns_file PATH: PATH is a bind mount that keeps a namespace alive.
is_ns_file() { [[ $(findmnt -rno FSTYPE --mountpoint "$1" 2>/dev/null) == nsfs ]]; }

# enter_host NAME: sets ENTER to the command that runs what follows it as the host's own processes run: in its
# network, mount and UTS namespaces.
ENTER=()
enter_host() {
  ENTER=(nsenter --net="/run/netns/$1" --mount="$NS_DIR/$1.mnt" --uts="$NS_DIR/$1.uts" --wd=/ --)
}

# in_host NAME COMMAND...
in_host() {
  enter_host "$1"
  shift
  "${ENTER[@]}" "$@"
}

# pid_in_host NAME PIDFILE: the pid PIDFILE names, when that process lives in the host's network namespace (a pid
# file left from before a restart of the machine may name another process).
pid_in_host() {
  local pid
  pid=$(cat "$2" 2>/dev/null) || return 1
  [[ -n $pid && $(ip netns identify "$pid" 2>/dev/null) == "$1" ]] && echo "$pid"
}

# --- the bridge ---------------------------------------------------------------------------------------------

# The bridge lives in a namespace of its own because the root namespace's Docker turned on br_netfilter (bridged
# frames pass iptables' FORWARD chain) and set that chain's policy to DROP: a bridge in the root namespace would
# drop host-to-host traffic unless rules were added to the root's firewall. Here its frames meet an empty chain,
# and the root namespace keeps the firewall its Docker made. The root namespace reaches the bridge through a veth
# that holds the gateway address.
switch_up() {
  is_ns_file "/run/netns/$SWITCH" && ip -4 -o addr show dev "$SWITCH" 2>/dev/null | grep -q " $gateway/24 "
}

# The range must be free: an address or route of this machine inside it would take the hosts' traffic elsewhere.
check_range_free() {
  local addresses routes
  addresses=$(ip -4 -o addr show to "$net.0/24")
  routes=$(ip -4 route show match "$net.0/24" | grep -v '^default' || true)
  [[ -z $addresses && -z $routes ]] || die "$net.0/24 is in use on this machine (${addresses:-$routes}); choose another range: QUAYSIDE_TEST_HOSTS_NET=10.98.0 scripts/setup"
}

make_switch() {
  remove_switch
  check_range_free
  ip netns add "$SWITCH"
  ip -n "$SWITCH" link set lo up
  ip -n "$SWITCH" link add "$SWITCH" type bridge
  ip -n "$SWITCH" link set "$SWITCH" up
  ip link add "$SWITCH" type veth peer name uplink netns "$SWITCH"
  ip -n "$SWITCH" link set uplink master "$SWITCH" up
  ip addr add "$gateway/24" dev "$SWITCH"
  ip link set "$SWITCH" up
  rm -f "$BED/root-engine.env"
}

remove_switch() {
  ip netns delete "$SWITCH" 2>/dev/null || true
  ip link delete "$SWITCH" 2>/dev/null || true
}

# What the root namespace's engine and docker0 are when the bed is made, for the bench to prove them untouched.
record_root_engine() {
  local engine index address
  engine=$(docker info --format '{{.ID}}' 2>/dev/null) || die "the root namespace's Docker engine does not answer: run scripts/setup.d/docker-engine.sh"
  index=$(cat /sys/class/net/docker0/ifindex 2>/dev/null) || die "the root namespace has no docker0: run scripts/setup.d/docker-engine.sh"
  address=$(ip -4 -o addr show dev docker0 | awk '{ print $4; exit }')
  printf 'QUAYSIDE_HOSTS_ROOT_ENGINE=%s\nQUAYSIDE_HOSTS_ROOT_DOCKER0_INDEX=%s\nQUAYSIDE_HOSTS_ROOT_DOCKER0_ADDRESS=%s\n' \
    "$engine" "$index" "$address" >"$BED/root-engine.env"
}

# --- the registry, at the gateway address -------------------------------------------------------------------

registry=''
registry_port=''
read_registry() {
  registry=$(sed -n 's/^QUAYSIDE_REGISTRY=//p' "$QUAYSIDE_TESTBED/registry.env" 2>/dev/null) || true
  [[ -n $registry ]] || die "no registry.env: run scripts/setup.d/registry.sh first"
  registry_port=${registry##*:}
}

forward_answers() { curl -fsS -m 2 "http://$gateway:$registry_port/v2/" >/dev/null 2>&1; }

# The registry listens on loopback only; socat forwards the gateway address's port to it, so the hosts pull over
# the bridge and nothing else on the machine can reach the registry.
ensure_registry_forward() {
  local pidfile=$BED/registry-forward.pid pid
  pid=$(cat "$pidfile" 2>/dev/null || true)
  if [[ -n $pid && $(ps -o comm= -p "$pid" 2>/dev/null) == socat ]] && forward_answers; then return 0; fi
  stop_registry_forward
  command -v socat >/dev/null || die "no socat: run scripts/setup.d/packages.sh"
  start_daemon "$BED/registry-forward.log" \
    socat "TCP-LISTEN:$registry_port,bind=$gateway,reuseaddr,fork" "TCP:$registry"
  echo $! >"$pidfile"
  wait_until 10 "registry forward" forward_answers || die "the registry did not answer at $gateway:$registry_port; read $BED/registry-forward.log"
  done_here+=("forwarded $gateway:$registry_port to $registry")
}

stop_registry_forward() {
  local pidfile=$BED/registry-forward.pid pid
  pid=$(cat "$pidfile" 2>/dev/null || true)
  if [[ -n $pid && $(ps -o comm= -p "$pid" 2>/dev/null) == socat ]]; then kill "$pid"; fi
  rm -f "$pidfile"
}

# --- one host's namespaces ----------------------------------------------------------------------------------

host_up() {
  local name=$1 address=$2
  is_ns_file "/run/netns/$name" && is_ns_file "$NS_DIR/$name.mnt" && is_ns_file "$NS_DIR/$name.uts" &&
    ip -n "$name" -4 -o addr show dev eth0 2>/dev/null | grep -q " $address/24 " && host_paths_bound "$name"
}

# A host path's bind mount goes with its mount point: a directory removed outside the host (/root/.ssh, when the
# machine's /root is made anew) takes the host's own copy out of its namespace too.
host_paths_bound() {
  local name=$1 path
  for path in "${HOST_PATHS[@]}"; do
    nsenter --mount="$NS_DIR/$name.mnt" -- mountpoint -q "$path" || return 1
  done
}

make_host_network() {
  local name=$1 address=$2
  ip netns add "$name"
  ip -n "$SWITCH" link add "$name" type veth peer name eth0 netns "$name"
  ip -n "$SWITCH" link set "$name" master "$SWITCH" up
  ip -n "$name" link set lo up
  ip -n "$name" addr add "$address/24" dev eth0
  ip -n "$name" link set eth0 up
  forget_neighbour "$address"
}

# A host made again has a new MAC address behind its old IP address; the gateway and the other hosts forget the
# old one, which they would otherwise keep sending to (a stale entry is probed at the old address first).
forget_neighbour() {
  local address=$1 other
  ip neigh flush to "$address" dev "$SWITCH" 2>/dev/null || true
  for other in $(existing_hosts); do ip -n "$other" neigh flush to "$address" 2>/dev/null || true; done
}

# The mount namespace is made from inside the host's network namespace, so that the /sys mounted in it shows the
# host's own interfaces (sysfs shows the network namespace of whoever mounts it).
make_host_namespaces() {
  local name=$1 path
  for path in "${HOST_PATHS[@]}"; do mkdir -p "$BED/$name/fs$path"; done
  chmod 1777 "$BED/$name/fs/tmp"
  chmod 700 "$BED/$name/fs/root/.ssh"
  mkdir -p "$BED/$name/fs/run/sshd" # sshd's privilege separation directory
  prepare_ns_dir
  touch "$NS_DIR/$name.mnt" "$NS_DIR/$name.uts"
  nsenter --net="/run/netns/$name" unshare --mount="$NS_DIR/$name.mnt" --uts="$NS_DIR/$name.uts" \
    --propagation private bash "$0" --mount-host-paths "$name"
}

# A mount namespace's file can only be kept on a mount that does not propagate (else it could end up inside the
# namespace it keeps): a private bind mount of the directory on itself.
prepare_ns_dir() {
  mkdir -p "$NS_DIR"
  mountpoint -q "$NS_DIR" || mount --bind "$NS_DIR" "$NS_DIR"
  mount --make-private "$NS_DIR"
}

# Run inside the host's new mount and UTS namespaces (the internal verb --mount-host-paths).
mount_host_paths() {
  local name=$1 path stage=$BED/$1/cgroup-stage
  hostname "$name"
  # This namespace's own /sys, as `ip netns exec` mounts it, with the cgroup hierarchies Docker needs kept under it.
  mkdir -p "$stage"
  mount --rbind /sys/fs/cgroup "$stage"
  umount --recursive --lazy /sys
  mount -t sysfs sysfs /sys
  mount --move "$stage" /sys/fs/cgroup
  rmdir "$stage"
  for path in "${HOST_PATHS[@]}"; do
    # What the root namespace had mounted there was copied into this namespace: the root's container layers under
    # /var/lib/docker, and under /run the files that keep network namespaces alive (the hosts' own among them,
    # which `ip netns delete` could then not free).
    detach_mounts_under "$path"
    mkdir -p "$path"
    mount --bind "$BED/$name/fs$path" "$path"
  done
}

detach_mounts_under() {
  local path=$1 target
  findmnt -rno TARGET | awk -v path="$path" '$0 == path || index($0, path "/") == 1' | sort -r |
    while read -r target; do umount --lazy "$target" 2>/dev/null || true; done
}

# --- one host's daemons -------------------------------------------------------------------------------------

engine_answers() { in_host "$1" docker info >/dev/null 2>&1; }

# What the hosts' dockerd runs with beside its defaults: the registry at the gateway is plain HTTP.
engine_args() { echo "dockerd --insecure-registry $gateway:$registry_port"; }

# engine_current NAME: the host's dockerd runs with today's engine_args (the registry's port may have changed).
engine_current() {
  local pid
  pid=$(pid_in_host "$1" "$BED/$1/fs/run/docker.pid") || return 1
  [[ $(tr '\0' ' ' <"/proc/$pid/cmdline") == "$(engine_args) " ]]
}

# dockerd with its default paths, which the host's mount namespace makes its own (data root /var/lib/docker, exec
# root /run/docker, /run/docker.pid, /run/docker.sock): a plain `dockerd` started in the host, as quayside's
# lib.sh starts one, is the same engine. It makes its docker0 inside the host's network namespace, and its iptables
# rules there (Debian's iptables-nft, as the root namespace's engine: nftables tables are per network namespace).
start_engine() {
  local name=$1 args
  [[ -z $(pid_in_host "$name" "$BED/$name/fs/run/docker.pid") ]] || return 0 # started, not answering yet
  rm -f "$BED/$name/fs/run/docker.pid"
  enter_host "$name"
  read -ra args <<<"$(engine_args)"
  start_daemon "$BED/$name/fs/var/log/dockerd.log" "${ENTER[@]}" "${args[@]}"
}

# stop_engine NAME: its containers stop with it (and those with a restart policy start again with the next one);
# false when it did not end within 30 s.
stop_engine() {
  local pid
  pid=$(pid_in_host "$1" "$BED/$1/fs/run/docker.pid") || return 0
  kill "$pid"
  wait_until 30 "dockerd to stop" no_process "$pid"
}

wait_for_engine() {
  local name=$1 log=$BED/$1/fs/var/log/dockerd.log
  if ! wait_until "$ENGINE_SECONDS" "docker info" engine_answers "$name"; then
    tail -n 15 "$log" >&2 || true
    die "the Docker engine of $name did not answer within $ENGINE_SECONDS s; read $log (above: its last lines)"
  fi
}

# write_sshd_config ADDRESS NAME: a changed config is listed in sshd_configs_changed (a running sshd is told to
# read it again). The host's own /run keeps sshd.pid where a server's is (bootstrap.sh signals the sshd it names).
sshd_configs_changed=()
write_sshd_config() {
  local address=$1 name=$2 file=$BED/$2/ssh/sshd_config config
  config=$(test_sshd_config "$address:22" "$BED/$name/ssh/host_ed25519" /run/sshd.pid .ssh/authorized_keys)
  if [[ -f $file && $(<"$file") == "$config" ]]; then return 0; fi
  printf '%s\n' "$config" >"$file"
  sshd_configs_changed+=("$name")
}

# The host's keys and the files tests pass on: host_ed25519.pub (pulumi's server.host_key_file), known_hosts.
write_host_keys() {
  local name=$1 address=$2 dir=$BED/$1/ssh
  mkdir -p "$dir"
  chmod 700 "$dir"
  [[ -f $dir/host_ed25519 ]] || ssh-keygen -q -t ed25519 -N '' -C "$name" -f "$dir/host_ed25519"
  echo "$address $(cut -d' ' -f1,2 "$dir/host_ed25519.pub")" >"$dir/known_hosts"
  install -m 600 "$BED/client_ed25519.pub" "$BED/$name/fs/root/.ssh/authorized_keys"
}

ssh_answers() {
  local name=$1 address=$2
  ssh -i "$BED/client_ed25519" -o BatchMode=yes -o StrictHostKeyChecking=yes \
    -o UserKnownHostsFile="$BED/$name/ssh/known_hosts" -o GlobalKnownHostsFile=/dev/null -o LogLevel=ERROR \
    -o ConnectTimeout=3 "root@$address" true
}

start_sshd() {
  local name=$1 dir=$BED/$1/ssh pid
  pid=$(pid_in_host "$name" "$BED/$name/fs/run/sshd.pid") || true
  [[ -z $pid ]] || kill "$pid"
  /usr/sbin/sshd -t -f "$dir/sshd_config" || die "sshd rejected $dir/sshd_config (see above)"
  enter_host "$name"
  start_daemon "$BED/$name/fs/var/log/sshd.out" "${ENTER[@]}" /usr/sbin/sshd -f "$dir/sshd_config" -E /var/log/sshd.log
}

# --- removal ------------------------------------------------------------------------------------------------

# stop_host NAME: ends every process in the host (its containers first, through its engine), then frees its
# namespaces; its data under $BED/NAME/fs stays.
stop_host() {
  local name=$1 running=()
  if is_ns_file "$NS_DIR/$name.mnt" && engine_answers "$name"; then
    # Stopped, not killed: a killed container with a restart policy would be started again.
    mapfile -t running < <(in_host "$name" docker ps --quiet)
    ((${#running[@]} == 0)) || in_host "$name" docker stop --time 1 "${running[@]}" >/dev/null 2>&1 || true
  fi
  stop_engine "$name" || true # what is left of it ends below, with the host's other processes
  if is_ns_file "/run/netns/$name"; then
    end_processes "$name" TERM
    wait_until 10 "processes of $name to end" no_processes_in "$name" || end_processes "$name" KILL
  fi
  local file
  for file in "$NS_DIR/$name.mnt" "$NS_DIR/$name.uts"; do
    umount "$file" 2>/dev/null || true
    rm -f "$file"
  done
  ip netns delete "$name" 2>/dev/null || true
  # Its link goes with its namespace, unless something else still holds that namespace.
  ip -n "$SWITCH" link delete "$name" 2>/dev/null || true
}

# no_process PID: PID has ended (a zombie has: this machine's init may reap it late).
no_process() { [[ $(ps -o stat= -p "$1" 2>/dev/null) == Z* ]] || ! kill -0 "$1" 2>/dev/null; }
no_processes_in() { [[ -z $(ip netns pids "$1" 2>/dev/null) ]]; }

end_processes() {
  local pid
  for pid in $(ip netns pids "$1" 2>/dev/null); do kill "-$2" "$pid" 2>/dev/null || true; done
}

# The hosts there are, made by any earlier run (whatever QUAYSIDE_TEST_HOSTS was then).
existing_hosts() {
  {
    ip netns list 2>/dev/null | awk '{ print $1 }'
    find "$NS_DIR" -maxdepth 1 -name 'qs-host-*.mnt' -printf '%f\n' 2>/dev/null | sed 's/\.mnt$//'
  } | grep -E '^qs-host-[0-9]+$' | sort -u
}

remove_bed() {
  local name removed=()
  for name in $(existing_hosts); do
    stop_host "$name"
    removed+=("$name")
  done
  stop_registry_forward
  local had_switch=no
  ! is_ns_file "/run/netns/$SWITCH" || had_switch=yes
  remove_switch
  if mountpoint -q "$NS_DIR"; then umount "$NS_DIR"; fi
  rmdir "$NS_DIR" 2>/dev/null || true
  rm -rf "$BED"/qs-host-*/fs "$BED/root-engine.env" "$BED/registry-forward.log" "$ENV_FILE"
  if ((${#removed[@]} == 0)) && [[ $had_switch == no ]]; then
    say "test hosts: nothing to remove"
  else
    say "test hosts: removed ${removed[*]:-no host} and the bridge $SWITCH (keys kept in $BED)"
  fi
}

# --- the bed ------------------------------------------------------------------------------------------------

write_env_file() {
  local i name
  {
    echo "QUAYSIDE_HOSTS_COUNT=$count"
    echo "QUAYSIDE_HOSTS_USER=root"
    echo "QUAYSIDE_HOSTS_PORT=22"
    echo "QUAYSIDE_HOSTS_KEY=$BED/client_ed25519"
    echo "QUAYSIDE_HOSTS_GATEWAY=$gateway"
    echo "QUAYSIDE_HOSTS_REGISTRY=$gateway:$registry_port"
    cat "$BED/root-engine.env"
    for ((i = 1; i <= count; i++)); do
      name=$(host_name "$i")
      echo "QUAYSIDE_HOST_${i}_NAME=$name"
      echo "QUAYSIDE_HOST_${i}_ADDRESS=$(host_address "$i")"
      echo "QUAYSIDE_HOST_${i}_HOST_KEY=$BED/$name/ssh/host_ed25519.pub"
      echo "QUAYSIDE_HOST_${i}_KNOWN_HOSTS=$BED/$name/ssh/known_hosts"
      echo "QUAYSIDE_HOST_${i}_DIR=$BED/$name"
    done
  } >"$ENV_FILE"
}

# Hosts past QUAYSIDE_TEST_HOSTS, left by a run that made more.
remove_extra_hosts() {
  local name
  for name in $(existing_hosts); do
    if ((${name##*-} > count)); then
      stop_host "$name"
      rm -rf "${BED:?}/$name/fs"
      done_here+=("removed $name")
    fi
  done
}

# ensure_host NAME ADDRESS: the host's namespaces and files, made again whole when any part is missing.
ensure_host() {
  local name=$1 address=$2
  if ! host_up "$name" "$address"; then
    stop_host "$name"
    make_host_network "$name" "$address"
    make_host_namespaces "$name"
    done_here+=("made $name at $address")
  fi
  write_host_keys "$name" "$address"
}

# ensure_engine_started NAME: the engine started unless it answers with today's options (one with others is
# stopped first); a started one is listed in engines_started, to be waited for.
engines_started=()
ensure_engine_started() {
  local name=$1
  if engine_answers "$name"; then
    if engine_current "$name"; then return 0; fi
    stop_engine "$name" || die "the Docker engine of $name did not stop within 30 s; read $BED/$name/fs/var/log/dockerd.log"
    done_here+=("stopped the engine of $name (its options changed)")
  fi
  start_engine "$name"
  engines_started+=("$name")
}

# ensure_loopback_registry NAME: the registry at the host's own 127.0.0.1:<registry port> too, forwarded over the
# bridge, so an image has one name (127.0.0.1:5000/...) on this machine and on every host, and Docker pulls it there
# without configuration (loopback registries are plain HTTP to Docker, and to quayside's digest look-ups).
ensure_loopback_registry() {
  local name=$1 pidfile=$BED/$1/fs/run/registry-forward.pid pid
  pid=$(pid_in_host "$name" "$pidfile") || true
  if [[ -n $pid ]] && loopback_registry_answers "$name"; then return 0; fi
  [[ -z $pid ]] || kill "$pid"
  enter_host "$name"
  start_daemon "$BED/$name/fs/var/log/registry-forward.log" "${ENTER[@]}" \
    socat "TCP-LISTEN:$registry_port,bind=127.0.0.1,reuseaddr,fork" "TCP:$gateway:$registry_port"
  echo "$!" >"$pidfile"
  wait_until 10 "$name's registry forward" loopback_registry_answers "$name" ||
    die "the registry did not answer at $name's 127.0.0.1:$registry_port; read $BED/$name/fs/var/log/registry-forward.log"
  done_here+=("forwarded $name's 127.0.0.1:$registry_port to the registry")
}
loopback_registry_answers() { in_host "$1" curl -fsS -m 2 "http://127.0.0.1:$registry_port/v2/" >/dev/null 2>&1; }

# ensure_sshd NAME ADDRESS: sshd answering as the host; told to read its config again when that changed.
ensure_sshd() {
  local name=$1 address=$2 pid
  if ssh_answers "$name" "$address" 2>/dev/null; then
    [[ " ${sshd_configs_changed[*]} " == *" $name "* ]] || return 0
    pid=$(pid_in_host "$name" "$BED/$name/fs/run/sshd.pid") && kill -HUP "$pid"
    done_here+=("reloaded the sshd config of $name")
  else
    start_sshd "$name"
    done_here+=("started sshd of $name")
  fi
  wait_until 10 "ssh" ssh_answers "$name" "$address" || die "ssh root@$address failed; read $BED/$name/fs/var/log/sshd.log"
}

done_here=()
make_bed() {
  local name
  [[ $count =~ ^[1-9][0-9]?$ ]] || die "QUAYSIDE_TEST_HOSTS=$count: give a number of hosts from 1 to 99"
  ((EUID == 0)) || die "the test hosts need root (network and mount namespaces)"
  read_registry
  mkdir -p "$BED"
  [[ -f $BED/client_ed25519 ]] || ssh-keygen -q -t ed25519 -N '' -C quayside-test-hosts -f "$BED/client_ed25519"
  if ! switch_up; then
    # A new bridge: hosts on the old one (if any) lost their link, and are made again on this one.
    for name in $(existing_hosts); do stop_host "$name"; done
    make_switch
    done_here+=("made the bridge $gateway/24")
  fi
  [[ -f $BED/root-engine.env ]] || record_root_engine
  ensure_registry_forward
  remove_extra_hosts

  local i address
  for ((i = 1; i <= count; i++)); do
    name=$(host_name "$i") address=$(host_address "$i")
    ensure_host "$name" "$address"
    write_sshd_config "$address" "$name"
    ensure_engine_started "$name"
  done
  # The engines start side by side; each is waited for once all are on their way.
  for name in "${engines_started[@]}"; do
    wait_for_engine "$name"
    done_here+=("started the engine of $name")
  done
  for ((i = 1; i <= count; i++)); do
    ensure_sshd "$(host_name "$i")" "$(host_address "$i")"
    ensure_loopback_registry "$(host_name "$i")"
  done
  write_env_file
  if ((${#done_here[@]} == 0)); then
    say "test hosts: $count running on $gateway/24 (registry at $gateway:$registry_port)"
  else
    say "test hosts: $(printf '%s; ' "${done_here[@]}" | sed 's/; $//')"
  fi
  say "test hosts: ssh -i $BED/client_ed25519 -o UserKnownHostsFile=$BED/qs-host-1/ssh/known_hosts root@$(host_address 1)"
}

case ${1:-} in
  '') make_bed ;;
  --remove) remove_bed ;;
  --mount-host-paths) mount_host_paths "$2" ;;
  *) die "usage: scripts/setup.d/test-hosts.sh [--remove]" ;;
esac
