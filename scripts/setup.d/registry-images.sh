#!/usr/bin/env bash
# Pushes the locally built images the `local` stack and the e2e tests deploy into the loopback registry, so
# their deploys pull as production ones do (a role's tag is read from its registry). Skips an image the
# registry already holds with the same digest.
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"

registry=$(sed -n 's/^QUAYSIDE_REGISTRY=//p' "$QUAYSIDE_TESTBED/registry.env" 2>/dev/null) \
  || die "no registry.env: run scripts/setup.d/registry.sh first"
[[ -n $registry ]] || die "registry.env names no registry: run scripts/setup.d/registry.sh"

pushed=0
for image in quayside-test/app:v1 quayside-test/app:v2 quayside-test/app:v3 quayside-test/app:never-healthy \
  quayside-test/app:slow-start quayside-test/kamal-proxy:v0.9.2 \
  quayside-test/kamal-proxy:v0.9.2-next quayside-test/postgres:15 quayside-test/postgres:17 \
  quayside-test/db-app:v1; do
  target=$registry/$image
  local_id=$(docker image inspect --format '{{.Id}}' "$image" 2>/dev/null) \
    || die "image $image is missing: run scripts/setup.d/images.sh"
  stamp=$QUAYSIDE_TESTBED/registry/pushed-$(echo "$image" | tr '/:' '__')
  if [[ -f $stamp && $(cat "$stamp") == "$local_id" ]] && curl -fsS -m 5 -o /dev/null \
    -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
    "http://$registry/v2/${image%%:*}/manifests/${image##*:}" 2>/dev/null; then
    continue
  fi
  docker tag "$image" "$target"
  docker push --quiet "$target" >/dev/null || die "docker push $target failed: is the registry at $registry up?"
  echo "$local_id" >"$stamp"
  pushed=$((pushed + 1))
done
say "registry images: $pushed pushed to $registry"
