#!/usr/bin/env bash
# The accessories' test image: the backup image FROM quayside-test/postgres:15, built exactly as `pulumi up`
# builds it on a server (components/scripts/backup.sh image: the Postgres image plus Debian's rclone, gpg and
# gpg-agent, fetched by apt inside the build), tagged as components.accessories.backup.image_tag() names it.
# A second run finds the image current (by its inputs label) and takes a second. Runs after `images` and
# `python-env`.
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"

base=quayside-test/postgres:15
started=$SECONDS
python=$QUAYSIDE_ROOT/.venv/bin/python
[[ -x $python ]] || die "$python is missing: run scripts/setup.d/python-env.sh first"
# The tag the components name (it hashes backup.sh, so a new recipe is a new image).
tag=$(cd "$QUAYSIDE_ROOT" && "$python" -c 'import sys; from components.accessories import backup
print(backup.image_tag(sys.argv[1]))' "$base") || die "could not compute the backup image's tag (see above)"

docker image inspect "$base" >/dev/null 2>&1 || die "image $base is missing: run scripts/setup.d/images.sh first"
if ! output=$(bash "$QUAYSIDE_ROOT/components/scripts/backup.sh" image --from "$base" --tag "$tag" 2>&1); then
  printf '%s\n' "$output" >&2
  die "could not build $tag: apt inside docker build needs Debian's mirror (QUAYSIDE_DEBIAN_MIRROR is not used here)"
fi
say "accessory images: ${output##*$'\n'} ($((SECONDS - started)) s)"
