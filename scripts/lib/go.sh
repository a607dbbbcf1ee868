# shellcheck shell=bash
# Building a Go program from the module proxy, once per version. Sourced after common.sh, never run.

# go_build_module MODULE@VERSION PACKAGE BINARY: builds PACKAGE (./cmd/x) of the module into BINARY unless it is
# there. `go install module/cmd/x@version` also asks the proxy for the module's version list (its deprecation
# check) and fails where a proxy refuses listings; building the downloaded module with its own go.mod and go.sum
# (which `go build` verifies every dependency against) is the same build without that request. Sets go_module_dir
# to the module's sources in Go's module cache, or to nothing when BINARY was there already.
go_build_module() {
  local module=$1 package=$2 bin=$3 log reason
  go_module_dir=''
  [[ ! -x $bin ]] || return 0
  command -v go >/dev/null || die "go is missing: install Go 1.25 or newer (https://go.dev/dl/) to build $module"
  mkdir -p "${bin%/*}"
  log=$bin.log
  (cd "${bin%/*}" && go mod download -json "$module") >"$log" 2>&1 || true
  go_module_dir=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p' "$log")
  if [[ -z $go_module_dir || ! -d $go_module_dir ]]; then
    reason=$(sed -n 's/^[[:space:]]*"Error": "\(.*\)",*$/\1/p' "$log" | head -n 1)
    die "could not download $module (GOPROXY=$(go env GOPROXY)): ${reason:-see $log}; check the Go module proxy and retry"
  fi
  if ! (cd "$go_module_dir" && CGO_ENABLED=0 go build -trimpath -o "$bin.tmp" "$package") >>"$log" 2>&1; then
    build_failed "$module $package" "$log"
  fi
  mv "$bin.tmp" "$bin"
}
