#!/usr/bin/env bash
# container-firewall: what the server's containers may reach, and who may reach them, where Debian's Docker
# (20.10) leaves it open: containers reach the cloud's metadata service (on Hetzner it serves the user data), and a
# host on the server's network that routes to a container's address reaches every port the container publishes,
# even one published on 127.0.0.1 only (Docker 28 closed both for its own engine). As root: bootstrap.sh installs
# it root-owned outside the service's directory and runs it, and systemd runs it after every start of the engine
# (its iptables rules do not outlive a reboot). Each run builds its chain anew and prints only what it added.
#
#   container-firewall.sh
set -euo pipefail

readonly CHAIN=QUAYSIDE-CONTAINERS
readonly METADATA=169.254.169.254/32
readonly BRIDGES=(docker0 br-+)

say() { printf 'container-firewall: %s\n' "$*"; }

ipt() { iptables -w 30 "$@"; }

# once TABLE CHAIN RULE...: the rule at the top of CHAIN unless it is there.
once() {
  local table=$1 chain=$2
  shift 2
  ipt -t "$table" -C "$chain" "$@" 2>/dev/null && return 1
  ipt -t "$table" -I "$chain" 1 "$@"
}

build_chain() {
  local bridge
  ipt -N "$CHAIN" 2>/dev/null || true
  ipt -F "$CHAIN"
  # Forwarded to the metadata address: only a container sends there through the server.
  ipt -A "$CHAIN" -d "$METADATA" -j DROP
  for bridge in "${BRIDGES[@]}"; do ipt -A "$CHAIN" -i "$bridge" -j RETURN; done
  # From outside, a new connection reaches a container only through a published port (which Docker DNATs).
  ipt -A "$CHAIN" -m conntrack --ctstate DNAT -j RETURN
  for bridge in "${BRIDGES[@]}"; do ipt -A "$CHAIN" -o "$bridge" -m conntrack --ctstate NEW -j DROP; done
}

main() {
  (($# == 0)) || { printf 'container-firewall: takes no arguments\n' >&2; exit 1; }
  ipt -t filter -L DOCKER-USER -n >/dev/null 2>&1 ||
    { printf 'container-firewall: no DOCKER-USER chain in iptables: is the docker engine running, with its iptables backend?\n' >&2; exit 1; }
  build_chain
  if once filter DOCKER-USER -j "$CHAIN"; then
    say "containers reach no metadata service, and no neighbour reaches them but through a published port"
  fi
  # A packet for 127.0.0.0/8 from another interface is one a neighbour sent to a loopback-published port.
  if once raw PREROUTING ! -i lo -d 127.0.0.0/8 -j DROP; then
    say "no neighbour reaches a port published on 127.0.0.1"
  fi
}

main "$@"
