#!/usr/bin/env bash
# A clean Debian server for the bootstrap tests (tests/e2e/test_clean_debian.py) and for `cloud-init schema`:
#   quayside-clean-debian/server:bookworm   debootstrap's minbase bookworm with openssh-server and sudo, and
#                                           Debian's cloud-init by apt (as a Hetzner debian-12 image has them), security
#                                           and updates sources, no Docker; tests/images/clean-debian/ boots it
# The rootfs is debootstrapped once per suite and package list (about a minute cold), kept as a tarball in
# $QUAYSIDE_CACHE/clean-debian, imported, then built with the entrypoint; an image whose inputs label matches is
# not rebuilt, so a second run takes a second. Needs a running dockerd and root (debootstrap). Nothing is pulled.
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"
source "$(dirname "$0")/../lib/images.sh"

DEBIAN_SUITE=bookworm
DEBIAN_MIRROR=${QUAYSIDE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# What a Debian cloud image has that the bootstrap relies on; Docker is left out on purpose (bootstrap installs it).
# cloud-init comes by apt in the image build: debootstrap fails to configure its Python dependencies.
PACKAGES=openssh-server,passwd,procps,iproute2,ca-certificates,init-system-helpers,netbase,sudo
ROOTFS_IMAGE=quayside-clean-debian/rootfs:$DEBIAN_SUITE
SERVER_IMAGE=quayside-clean-debian/server:$DEBIAN_SUITE

cache=$QUAYSIDE_CACHE/clean-debian
sources=$QUAYSIDE_ROOT/tests/images/clean-debian
started=$SECONDS

# build_rootfs: $rootfs_tar, a minbase Debian with PACKAGES, once per suite and package list.
build_rootfs() {
  local dir target log
  rootfs_key=$(inputs_hash "$DEBIAN_SUITE" minbase "$PACKAGES" prune-v1 | cut -c1-16)
  rootfs_tar=$cache/debian-$DEBIAN_SUITE-server-$rootfs_key.tar
  if [[ -f $rootfs_tar ]]; then
    say "clean debian: rootfs is cached ($rootfs_tar)"
    return
  fi
  ((EUID == 0)) || die "debootstrap needs root: run this step as root (sudo bash scripts/setup.d/clean-debian.sh)"
  command -v debootstrap >/dev/null || die "debootstrap is missing: apt-get install debootstrap"
  dir=$cache/build.$$
  target=$dir/root
  log=$dir/debootstrap.log
  mkdir -p "$dir"
  trap 'unmount_under "$dir"; rm -rf --one-file-system "$dir"' EXIT
  say "clean debian: debootstrap $DEBIAN_SUITE with $PACKAGES from $DEBIAN_MIRROR (about a minute)"
  if ! debootstrap --variant=minbase --include="$PACKAGES" "$DEBIAN_SUITE" "$target" "$DEBIAN_MIRROR" >"$log" 2>&1; then
    tail -n 15 "$log" >&2
    cp "$log" "$cache/debootstrap-failed.log"
    die "debootstrap from $DEBIAN_MIRROR failed (log: $cache/debootstrap-failed.log); check the mirror (another one: QUAYSIDE_DEBIAN_MIRROR=...)"
  fi
  unmount_under "$target"
  # Host keys come from cloud-init at boot (the test's user data), never from the build.
  rm -rf "$target"/var/cache/apt/* "$target"/var/lib/apt/lists/* "$target"/etc/ssh/ssh_host_*
  save_rootfs "$target" "$rootfs_tar" "$dir"
  say "clean debian: built the rootfs ($rootfs_tar)"
}

build_images() {
  local hash log
  import_rootfs "$ROOTFS_IMAGE" "$rootfs_tar" "$rootfs_key"
  hash=$(inputs_hash "$sources/Dockerfile" "$sources/entrypoint.sh" "$sources/cloud.cfg" "$rootfs_key")
  if image_is_current "$SERVER_IMAGE" "$hash"; then
    say "clean debian: $SERVER_IMAGE is up to date"
    return
  fi
  log=$cache/build-server.log
  # The host's network for apt: it does not depend on the engine's default bridge.
  if ! docker build --network host --label "$INPUTS_LABEL=$hash" --tag "$SERVER_IMAGE" "$sources" >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    die "docker build of $SERVER_IMAGE from $sources failed (full log: $log)"
  fi
  say "clean debian: built $SERVER_IMAGE"
}

docker info >/dev/null 2>&1 || die "cannot reach the Docker daemon: run scripts/setup.d/docker-engine.sh first"
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
build_rootfs
build_images
say "clean debian: ready in $((SECONDS - started)) s"
