#!/usr/bin/env bash
# actionlint, the GitHub Actions workflow linter tests/unit/test_workflows.py runs on .github/workflows/.
# Built from its Go module once per version into $QUAYSIDE_CACHE/go/actionlint-<version>/ and linked
# into $QUAYSIDE_BIN. If shellcheck is on PATH, actionlint also checks the workflows' `run:` scripts.
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"

ACTIONLINT_MODULE=github.com/rhysd/actionlint
ACTIONLINT_VERSION=v1.7.12

dir=$QUAYSIDE_CACHE/go/actionlint-$ACTIONLINT_VERSION
bin=$dir/actionlint
module=$ACTIONLINT_MODULE@$ACTIONLINT_VERSION
# The release builds set the version the same way; a source build would otherwise print none.
ldflags="-s -w -X $ACTIONLINT_MODULE.version=${ACTIONLINT_VERSION#v}"

# install_with_go_install: the ordinary way; it also asks the proxy for the module's version list.
install_with_go_install() {
  GOBIN=$dir CGO_ENABLED=0 go install -trimpath -ldflags "$ldflags" "$ACTIONLINT_MODULE/cmd/actionlint@$ACTIONLINT_VERSION"
}

# install_from_module_cache: where a proxy refuses listings (403), download just this version and build
# it inside the module with its own go.mod and go.sum: the same build without that request.
install_from_module_cache() {
  local src reason
  (cd "$dir" && go mod download -json "$module") >"$dir/download.json" 2>&1 || true
  src=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p' "$dir/download.json")
  if [[ -z $src || ! -d $src ]]; then
    reason=$(sed -n 's/^[[:space:]]*"Error": "\(.*\)",*$/\1/p' "$dir/download.json" | head -n 1)
    echo "go mod download $module: ${reason:-see $dir/download.json}"
    return 1
  fi
  (cd "$src" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$bin.tmp" ./cmd/actionlint) && mv "$bin.tmp" "$bin"
}

if [[ -x $bin ]]; then
  say "actionlint: $ACTIONLINT_VERSION is cached ($bin)"
else
  command -v go >/dev/null || die "go is missing: install Go 1.25 or newer (https://go.dev/dl/) to build $module"
  mkdir -p "$dir"
  log=$dir/build.log
  started=$SECONDS
  if install_with_go_install >"$log" 2>&1; then
    say "actionlint: built $ACTIONLINT_VERSION with go install in $((SECONDS - started)) s"
  elif install_from_module_cache >>"$log" 2>&1; then
    say "actionlint: built $ACTIONLINT_VERSION from the module cache in $((SECONDS - started)) s (go install failed; see $log)"
  else
    tail -n 15 "$log" >&2
    die "could not build $module (GOPROXY=$(go env GOPROXY)); full log: $log; check the Go module proxy and retry"
  fi
  [[ -x $bin ]] || die "the build of $module left no binary at $bin (log: $log)"
fi
"$bin" -version >/dev/null 2>&1 || die "$bin does not run: remove $dir and rerun scripts/setup.d/actionlint.sh"
ln -sfn "$bin" "$QUAYSIDE_BIN/actionlint"
