#!/usr/bin/env bash
# Pebble, Let's Encrypt's ACME test server, and its DNS test server (pebble-challtestsrv), built from the Go module
# proxy once per version, for the TLS tests (tests/support/acme.py starts them): the certificate files Pebble
# serves its own API with come from the module too. Writes $QUAYSIDE_TESTBED/acme.env with their paths.
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"
source "$(dirname "$0")/../lib/go.sh"

PEBBLE_MODULE=github.com/letsencrypt/pebble/v2
# Not v2.9 or later: their finalize answer has no Location header (letsencrypt/pebble#508), which Let's Encrypt's
# own server sends and the ACME client in kamal-proxy v0.9.2 (golang.org/x/crypto/acme) needs to find the order it
# waits for (golang/go#77704): with them the certificate is never fetched ('Post "": unsupported protocol scheme').
PEBBLE_VERSION=v2.8.0

dir=$QUAYSIDE_CACHE/go/pebble-$PEBBLE_VERSION
started=$SECONDS
if [[ -x $dir/pebble && -x $dir/pebble-challtestsrv && -f $dir/certs/pebble.minica.pem ]]; then
  say "acme: Pebble $PEBBLE_VERSION is cached ($dir)"
else
  for program in pebble pebble-challtestsrv; do
    go_build_module "$PEBBLE_MODULE@$PEBBLE_VERSION" "./cmd/$program" "$dir/$program"
  done
  # Copied out of Go's module cache, which `go clean -modcache` may empty.
  mkdir -p "$dir/certs"
  cp "$go_module_dir/test/certs/pebble.minica.pem" "$go_module_dir/test/certs/localhost/cert.pem" \
    "$go_module_dir/test/certs/localhost/key.pem" "$dir/certs/"
  say "acme: built Pebble $PEBBLE_VERSION in $((SECONDS - started)) s"
fi
cat >"$QUAYSIDE_TESTBED/acme.env" <<ENV
QUAYSIDE_PEBBLE=$dir/pebble
QUAYSIDE_PEBBLE_CHALLTESTSRV=$dir/pebble-challtestsrv
QUAYSIDE_PEBBLE_CERTS=$dir/certs
QUAYSIDE_PEBBLE_VERSION=$PEBBLE_VERSION
ENV
