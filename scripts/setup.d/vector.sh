#!/usr/bin/env bash
# Vector for the tests: no registry reachable here ships a Vector binary or image, so the binary is built once per
# version from the checksummed sources in $QUAYSIDE_VENDOR/vector (their README: the git dependencies, the lock
# file and patch config, the build's flags), with only what the accessory uses (the docker_logs source, the http
# sink). The image quayside-test/vector:<version> packs it into the Debian bookworm rootfs images.sh made, with the
# official image's entrypoint, and goes to the loopback registry for the bed hosts. A user's server pulls the
# official image. Only scripts/test runs this step: the local stack has no Vector, so scripts/up never waits for it.
#   vector.sh [binary]     (binary: build or find the binary only)
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"
source "$(dirname "$0")/../lib/images.sh"

VECTOR_VERSION=0.57.0
RUST_TOOLCHAIN=1.95.0
FEATURES=sources-docker_logs,sinks-http
SOURCES=(vector-0.57.0-8832452f vrl-33fec9bd tracing-e0642d94 heim-4925b530 ntapi-24fc1e47)
# The Debian rootfs image images.sh imports (Vector links only glibc 2.36 and libgcc_s, both in it).
ROOTFS_IMAGE=quayside-test/debian-postgres-rootfs:bookworm
IMAGE=quayside-test/vector:$VECTOR_VERSION

vendor=${QUAYSIDE_VENDOR:-$QUAYSIDE_ROOT/../shared/vendor}/vector
dir=$QUAYSIDE_CACHE/vector-$VECTOR_VERSION
binary=$dir/vector
started=$SECONDS

check_sources() {
  [[ -f $vendor/SHA256SUMS ]] || die "no Vector sources in $vendor: set QUAYSIDE_VENDOR to the vendored sources"
  (cd "$vendor" && sha256sum --check --quiet SHA256SUMS) >&2 ||
    die "the Vector sources in $vendor do not match their SHA256SUMS: fetch them again"
}

check_tools() {
  command -v cargo >/dev/null || die "cargo is missing: install Rust with rustup (https://rustup.rs)"
  rustup run "$RUST_TOOLCHAIN" rustc --version >/dev/null 2>&1 ||
    die "Rust $RUST_TOOLCHAIN is missing: rustup toolchain install $RUST_TOOLCHAIN"
  command -v protoc >/dev/null || {
    say "vector: installing protobuf-compiler (protoc, which Vector's build needs)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq protobuf-compiler >/dev/null ||
      die "could not install protobuf-compiler: apt-get install protobuf-compiler"
  }
}

# The sources unpacked side by side, as the vendored README says: the patch config at the top, the patched lock in
# vector/. Built with thin LTO: about 21 minutes on 2 cores instead of Vector's own profile's 32.
build_binary() {
  local build=$dir/build log=$dir/build.log name
  rm -rf "$build"
  mkdir -p "$build/.cargo"
  for name in "${SOURCES[@]}"; do tar -xzf "$vendor/$name.tar.gz" -C "$build"; done
  cp "$vendor/cargo-config.toml" "$build/.cargo/config.toml"
  cp "$vendor/Cargo.lock.patched" "$build/vector/Cargo.lock"
  say "vector: building Vector $VECTOR_VERSION from $vendor (about 21 min on 2 cores; log: $log)"
  if ! (cd "$build/vector" && RUSTUP_TOOLCHAIN=$RUST_TOOLCHAIN \
    RUSTFLAGS="-C link-args=-rdynamic --cap-lints=warn" \
    CARGO_PROFILE_RELEASE_LTO=thin CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
    nice cargo build --release --locked --no-default-features --features "$FEATURES") >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    die "could not build Vector $VECTOR_VERSION (see the lines above); log: $log"
  fi
  cp "$build/vector/target/release/vector" "$binary.tmp"
  mv "$binary.tmp" "$binary"
  # About 2 GB of sources and build output; the binary is what is kept.
  rm -rf "$build"
  say "vector: built Vector $VECTOR_VERSION in $((SECONDS - started)) s ($(du -h "$binary" | cut -f1))"
}

build_image() {
  local context=$QUAYSIDE_CACHE/images/vector hash log
  docker image inspect "$ROOTFS_IMAGE" >/dev/null 2>&1 ||
    die "image $ROOTFS_IMAGE is missing: run scripts/setup.d/images.sh"
  rm -rf "$context"
  mkdir -p "$context"
  cp "$QUAYSIDE_ROOT/tests/images/vector/Dockerfile" "$context/"
  cp "$binary" "$context/vector"
  hash=$(inputs_hash "$context/Dockerfile" "$binary" "$(docker image inspect --format '{{.Id}}' "$ROOTFS_IMAGE")")
  if image_is_current "$IMAGE" "$hash"; then
    say "vector: $IMAGE is up to date"
    return
  fi
  log=$context/build.log
  docker build --label "$INPUTS_LABEL=$hash" --tag "$IMAGE" "$context" >"$log" 2>&1 ||
    { tail -n 20 "$log" >&2; die "docker build of $IMAGE failed (full log: $log)"; }
  say "vector: built $IMAGE"
}

push_image() {
  local registry
  registry=$(sed -n 's/^QUAYSIDE_REGISTRY=//p' "$QUAYSIDE_TESTBED/registry.env" 2>/dev/null) ||
    die "no registry.env: run scripts/setup.d/registry.sh first"
  docker tag "$IMAGE" "$registry/$IMAGE"
  docker push --quiet "$registry/$IMAGE" >/dev/null || die "docker push $registry/$IMAGE failed: is the registry up?"
}

if [[ -x $binary ]]; then
  say "vector: Vector $VECTOR_VERSION is cached ($binary)"
else
  check_sources
  check_tools
  mkdir -p "$dir"
  build_binary
fi
# `vector.sh binary`: the build alone, which scripts/setup starts early, beside its other steps.
[[ ${1:-} != binary ]] || exit 0
build_image
push_image
cat >"$QUAYSIDE_TESTBED/vector.env" <<ENV
QUAYSIDE_VECTOR=$binary
QUAYSIDE_VECTOR_IMAGE=$IMAGE
QUAYSIDE_VECTOR_VERSION=$VECTOR_VERSION
ENV
