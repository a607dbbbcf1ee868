#!/usr/bin/env bash
# The accessories' test image: the backup image FROM quayside-test/postgres:15, built exactly as `pulumi up`
# builds it on a server (components/scripts/backup.sh image: the Postgres image plus Debian's rclone, gpg and
# gpg-agent, fetched by apt inside the build), tagged as components.accessories.backup.image_tag() names it: once
# for the local name the integration tests run, once for the loopback registry's name the e2e stacks pull (the
# same image, so the second build is Docker's cache). A second run finds the images current (by their inputs label)
# and takes a second. Runs after `images`, `registry-images` and `python-env`.
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"

registry=$(sed -n 's/^QUAYSIDE_REGISTRY=//p' "$QUAYSIDE_TESTBED/registry.env" 2>/dev/null) \
  || die "no registry.env: run scripts/setup.d/registry.sh first"
started=$SECONDS
python=$QUAYSIDE_ROOT/.venv/bin/python
[[ -x $python ]] || die "$python is missing: run scripts/setup.d/python-env.sh first"
for base in quayside-test/postgres:15 "$registry/quayside-test/postgres:15"; do
  # The tag the components name (it hashes backup.sh, so a new recipe is a new image).
  tag=$(cd "$QUAYSIDE_ROOT" && "$python" -c 'import sys; from components.accessories import backup
print(backup.image_tag(sys.argv[1]))' "$base") || die "could not compute the backup image's tag (see above)"
  docker image inspect "$base" >/dev/null 2>&1 ||
    die "image $base is missing: run scripts/setup.d/images.sh and registry-images.sh first"
  if ! output=$(bash "$QUAYSIDE_ROOT/components/scripts/backup.sh" image --from "$base" --tag "$tag" 2>&1); then
    printf '%s\n' "$output" >&2
    die "could not build $tag: apt inside docker build needs Debian's mirror (QUAYSIDE_DEBIAN_MIRROR is not used here)"
  fi
  say "accessory images: ${output##*$'\n'}"
done
say "accessory images: $((SECONDS - started)) s"
