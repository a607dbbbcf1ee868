#!/usr/bin/env bash
# Debian packages the bench and the linters need; installs only what is missing (a user's own Docker is kept).
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"

wanted=(openssh-server openssh-client docker-registry debootstrap busybox-static iproute2 curl util-linux)
# scripts/lint checks every shell script with it (and actionlint the workflows' `run:` scripts).
wanted+=(shellcheck)
# A machine with its own Docker engine (docker-ce, Docker Desktop) keeps it.
command -v dockerd >/dev/null || wanted+=(docker.io)
# scripts/setup.d/test-hosts.sh forwards the loopback registry to the test hosts' bridge with it.
wanted+=(socat)
# The backup tests make their OpenPGP key pairs with it.
wanted+=(gpg)

missing=()
for pkg in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]} == 0)); then
  say "packages: all present"
  exit 0
fi
command -v apt-get >/dev/null || die "missing packages ${missing[*]}, and no apt-get: install them with your package manager"
((EUID == 0)) || die "missing packages ${missing[*]}: run as root, or install them with sudo apt-get install"
say "packages: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq || die "apt-get update failed: check /etc/apt/sources.list and the network"
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
  || die "apt-get install ${missing[*]} failed (run it by hand to see why)"
