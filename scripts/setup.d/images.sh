#!/usr/bin/env bash
# The local test images (tests/images/), built without Docker Hub:
#   quayside-test/app:{v1,v2,v3,never-healthy,slow-start}  busybox httpd FROM scratch
#   quayside-test/app:{noterm-v1,noterm-v2}                 the same, ignoring SIGTERM (bench/run's variant)
#   quayside-test/kamal-proxy:$KAMAL_PROXY_VERSION          the Go-built kamal-proxy FROM scratch
#   quayside-test/kamal-proxy:$KAMAL_PROXY_VERSION-next     another build of it, what a proxy upgrade moves to
#   quayside-test/postgres:{15,17}                          Debian's postgresql-<major>, official-image contract
#   quayside-test/db-app:v1                                 the app on the Postgres image, asking it per request
#   quayside-test/pyapp:{py-v1,py-v2,py-v3}                 a Python http.server app, PID 1 ignoring SIGTERM
# Each image carries the label quayside.inputs = the hash of its build inputs; an image whose label
# matches is not rebuilt, so a second run takes seconds. Needs a running dockerd and root (debootstrap). Postgres and
# pyapp are built FROM Debian rootfs images debootstrapped here (debian-{postgres,python}-rootfs:<suite>): Postgres 15
# from bookworm, 17 from trixie (a major upgrade's two ends), pyapp from bookworm.
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"
source "$(dirname "$0")/../lib/images.sh"
source "$(dirname "$0")/../lib/go.sh"

KAMAL_PROXY_MODULE=github.com/basecamp/kamal-proxy
KAMAL_PROXY_VERSION=v0.9.2
DEBIAN_SUITE=bookworm
DEBIAN_MIRROR=${QUAYSIDE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# Each Postgres major the tests run, and the Debian suite whose postgresql-<major> it is.
POSTGRES_SUITES=(15:bookworm 17:trixie)
# The full python3: http.server is not in python3-minimal.
PYTHON_PACKAGES=python3
BUSYBOX=${QUAYSIDE_BUSYBOX:-/bin/busybox}

sources=$QUAYSIDE_ROOT/tests/images
contexts=$QUAYSIDE_CACHE/images
step_started=$EPOCHREALTIME

# since START: seconds elapsed since the $EPOCHREALTIME value START, to a tenth.
since() {
  local now=${EPOCHREALTIME/[.,]/} start=${1/[.,]/}
  local tenths=$(((now - start) / 100000))
  printf '%d.%ds' $((tenths / 10)) $((tenths % 10))
}

# build_image IMAGE CONTEXT HASH [DOCKER-BUILD-ARG...]
build_image() {
  local image=$1 context=$2 hash=$3 started=$EPOCHREALTIME log
  shift 3
  log=$contexts/build-${image//[\/:]/-}.log
  if ! docker build --label "$INPUTS_LABEL=$hash" --tag "$image" "$@" "$context" >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    die "docker build of $image from $context failed (full log: $log)"
  fi
  say "images: built $image in $(since "$started")"
}

# build_unless_current IMAGE CONTEXT HASH [DOCKER-BUILD-ARG...]: build_image, unless IMAGE was built from HASH.
build_unless_current() {
  if image_is_current "$1" "$3"; then
    say "images: $1 is up to date"
  else
    build_image "$@"
  fi
}

check_docker() {
  command -v docker >/dev/null || die "docker is missing: apt-get install docker.io"
  docker info >/dev/null 2>&1 \
    || die "cannot reach the Docker daemon: start dockerd (systemctl start docker, or run dockerd &) and retry"
}

# --- quayside-test/app --------------------------------------------------------------------------

# app_tag_args TAG: the build arguments that make TAG.
app_tag_args() {
  case $1 in
    v1 | v2 | v3) echo "--build-arg VERSION=$1" ;;
    never-healthy) echo "--build-arg VERSION=$1 --build-arg HEALTHY=no" ;;
    slow-start) echo "--build-arg VERSION=$1 --build-arg START_DELAY=5" ;;
    noterm-v1 | noterm-v2) echo "--build-arg VERSION=$1 --build-arg IGNORE_TERM=yes" ;;
  esac
}

build_app_images() {
  local src=$sources/app context=$contexts/app tag args hash
  [[ -x $BUSYBOX ]] || die "$BUSYBOX is missing: apt-get install busybox-static (or set QUAYSIDE_BUSYBOX)"
  if ldd "$BUSYBOX" >/dev/null 2>&1; then
    die "$BUSYBOX is dynamically linked and cannot run FROM scratch: apt-get install busybox-static"
  fi
  rm -rf "$context"
  mkdir -p "$context"
  cp "$src/Dockerfile" "$src/entrypoint.sh" "$context/"
  cp "$BUSYBOX" "$context/busybox"
  for tag in v1 v2 v3 never-healthy slow-start noterm-v1 noterm-v2; do
    args=$(app_tag_args "$tag")
    hash=$(inputs_hash "$context/Dockerfile" "$context/entrypoint.sh" "$context/busybox" "$args")
    # shellcheck disable=SC2086 # args holds separate words
    build_unless_current "quayside-test/app:$tag" "$context" "$hash" $args
  done
}

# --- quayside-test/kamal-proxy ------------------------------------------------------------------

# build_kamal_proxy_binary: $QUAYSIDE_CACHE/go/kamal-proxy-<version>/kamal-proxy, once per version.
build_kamal_proxy_binary() {
  local bin=$QUAYSIDE_CACHE/go/kamal-proxy-$KAMAL_PROXY_VERSION/kamal-proxy started=$EPOCHREALTIME
  if [[ -x $bin ]]; then
    say "images: kamal-proxy $KAMAL_PROXY_VERSION binary is cached ($bin)"
  else
    go_build_module "$KAMAL_PROXY_MODULE@$KAMAL_PROXY_VERSION" ./cmd/kamal-proxy "$bin"
    say "images: built kamal-proxy $KAMAL_PROXY_VERSION in $(since "$started")"
  fi
  ln -sfn "$bin" "$QUAYSIDE_BIN/kamal-proxy"
  kamal_proxy_bin=$bin
}

build_kamal_proxy_image() {
  local image=quayside-test/kamal-proxy:$KAMAL_PROXY_VERSION context=$contexts/kamal-proxy hash certs=()
  build_kamal_proxy_binary
  if [[ -f /etc/ssl/certs/ca-certificates.crt ]]; then certs=(/etc/ssl/certs/ca-certificates.crt); fi
  hash=$(inputs_hash "$sources/kamal-proxy/Dockerfile" "$kamal_proxy_bin" "${certs[@]}")
  if image_is_current "$image" "$hash"; then
    say "images: $image is up to date"
    return
  fi
  rm -rf "$context"
  mkdir -p "$context/rootfs/tmp" "$context/rootfs/home/kamal-proxy/.config/kamal-proxy"
  chmod 1777 "$context/rootfs/tmp"
  if ((${#certs[@]})); then
    mkdir -p "$context/rootfs/etc/ssl/certs"
    cp "${certs[0]}" "$context/rootfs/etc/ssl/certs/"
  fi
  cp "$sources/kamal-proxy/Dockerfile" "$context/"
  cp "$kamal_proxy_bin" "$context/kamal-proxy"
  build_image "$image" "$context" "$hash"
}

build_kamal_proxy_next_image() {
  local base=quayside-test/kamal-proxy:$KAMAL_PROXY_VERSION hash
  hash=$(inputs_hash "$sources/kamal-proxy-next/Dockerfile" "$(docker image inspect --format '{{.Id}}' "$base")")
  build_unless_current "$base-next" "$sources/kamal-proxy-next" "$hash" --build-arg "BASE=$base"
}

# --- Debian rootfs images ----------------------------------------------------------------------

# build_debian_rootfs SUITE NAME PACKAGES [PRUNE...]: a tarball of a minbase Debian SUITE with PACKAGES (a comma-
# separated list, as debootstrap --include takes it), once per suite+packages, in
# $QUAYSIDE_CACHE/rootfs/debian-SUITE-NAME-<key>.tar. Package caches and lists, docs and translations are pruned,
# and the PRUNE paths (inside the rootfs, globs allowed) too. Sets rootfs_key (the hash that names the tarball,
# which the images built on it take as an input) and rootfs_tar.
build_debian_rootfs() {
  local suite=$1 name=$2 packages=$3 key dir target started=$EPOCHREALTIME log path
  shift 3
  # The key's inputs are those the Postgres rootfs always had, so its tarball keeps its name.
  key=$(inputs_hash "$suite" minbase "$packages" prune-v1 | cut -c1-16)
  rootfs_key=$key
  rootfs_tar=$QUAYSIDE_CACHE/rootfs/debian-$suite-$name-$key.tar
  if [[ -f $rootfs_tar ]]; then
    say "images: Debian $suite rootfs with $packages is cached ($rootfs_tar)"
    return
  fi
  ((EUID == 0)) || die "debootstrap needs root: run this step as root (sudo bash scripts/setup.d/images.sh)"
  command -v debootstrap >/dev/null || die "debootstrap is missing: apt-get install debootstrap"
  dir=$QUAYSIDE_CACHE/rootfs/build.$$
  target=$dir/root
  log=$dir/debootstrap.log
  mkdir -p "$dir"
  trap 'unmount_under "$dir"; rm -rf --one-file-system "$dir"' EXIT
  say "images: debootstrap $suite with $packages from $DEBIAN_MIRROR (about a minute)"
  if ! debootstrap --variant=minbase --include="$packages" "$suite" "$target" "$DEBIAN_MIRROR" \
    >"$log" 2>&1; then
    tail -n 15 "$log" >&2
    cp "$log" "$QUAYSIDE_CACHE/rootfs/debootstrap-failed.log"
    die "debootstrap from $DEBIAN_MIRROR failed (log: $QUAYSIDE_CACHE/rootfs/debootstrap-failed.log); check the mirror, or try by hand: debootstrap --variant=minbase --include=$packages $suite /tmp/rootfs $DEBIAN_MIRROR (another mirror: QUAYSIDE_DEBIAN_MIRROR=...)"
  fi
  unmount_under "$target"
  # What an image does not need: package caches and lists, docs, translations, and the caller's PRUNE paths.
  rm -rf "$target"/var/cache/apt/* "$target"/var/lib/apt/lists/* "$target"/usr/share/{doc,man,info,locale}/*
  for path; do
    # shellcheck disable=SC2086 # the path is a glob, expanded inside the rootfs
    rm -rf "${target:?}"/${path:?}
  done
  save_rootfs "$target" "$rootfs_tar" "$dir"
  say "images: built the Debian $suite rootfs with $packages in $(since "$started") ($rootfs_tar)"
}

# --- quayside-test/postgres ---------------------------------------------------------------------

# build_postgres_image MAJOR SUITE: quayside-test/postgres:MAJOR, Debian SUITE's postgresql-MAJOR.
build_postgres_image() {
  local major=$1 suite=$2 image=quayside-test/postgres:$1 hash
  # The cluster postgresql-common creates on install goes: the entrypoint runs initdb itself.
  build_debian_rootfs "$suite" postgres "postgresql-$major" 'var/lib/postgresql/*' 'etc/postgresql/*'
  import_rootfs "quayside-test/debian-postgres-rootfs:$suite" "$rootfs_tar" "$rootfs_key"
  hash=$(inputs_hash "$sources/postgres/Dockerfile" "$sources/postgres/docker-entrypoint.sh" "$rootfs_key")
  build_unless_current "$image" "$sources/postgres" "$hash" --build-arg "SUITE=$suite" --build-arg "PG_MAJOR=$major"
}

# --- quayside-test/db-app -----------------------------------------------------------------------

build_db_app_image() {
  local context=$contexts/db-app image=quayside-test/db-app:v1 hash
  rm -rf "$context"
  mkdir -p "$context"
  cp "$sources/db-app/Dockerfile" "$sources/db-app/db.cgi" "$sources/app/entrypoint.sh" "$context/"
  cp "$BUSYBOX" "$context/busybox"
  hash=$(inputs_hash "$context/Dockerfile" "$context/db.cgi" "$context/entrypoint.sh" "$context/busybox" \
    "$(docker image inspect --format '{{.Id}}' quayside-test/postgres:15)")
  build_unless_current "$image" "$context" "$hash"
}

# --- quayside-test/pyapp ------------------------------------------------------------------------

build_pyapp_images() {
  local src=$sources/pyapp tag hash
  build_debian_rootfs "$DEBIAN_SUITE" python "$PYTHON_PACKAGES"
  import_rootfs "quayside-test/debian-python-rootfs:$DEBIAN_SUITE" "$rootfs_tar" "$rootfs_key"
  for tag in py-v1 py-v2 py-v3; do
    hash=$(inputs_hash "$src/Dockerfile" "$src/app.py" "$rootfs_key" "--build-arg VERSION=$tag")
    build_unless_current "quayside-test/pyapp:$tag" "$src" "$hash" --build-arg "VERSION=$tag"
  done
}

check_docker
mkdir -p "$contexts" "$QUAYSIDE_CACHE/rootfs"
# One run at a time: concurrent runs would share the build contexts and the rootfs build.
exec 9>"$contexts/.lock"
flock 9
build_app_images
build_kamal_proxy_image
build_kamal_proxy_next_image
for postgres in "${POSTGRES_SUITES[@]}"; do build_postgres_image "${postgres%%:*}" "${postgres#*:}"; done
build_db_app_image
build_pyapp_images
say "images: done in $(since "$step_started")"
