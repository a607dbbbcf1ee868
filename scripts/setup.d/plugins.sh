#!/usr/bin/env bash
# The Pulumi plugins the quayside program loads, each installed only when missing:
#
#   - the resource plugins command, docker and hcloud, at the versions requirements.txt pins (an SDK asks the
#     engine for its own version), into $PULUMI_HOME (default ~/.pulumi, where a user's `pulumi` looks);
#   - the Python language host pulumi-language-python at the CLI's version (the `pulumi==` pin), beside the
#     CLI the `pulumi` step linked into $QUAYSIDE_BIN, where the CLI looks first, next to pulumi-language-python-exec.
#
# Each comes from the first of: what is installed already; a binary built or downloaded earlier, cached by version
# in $QUAYSIDE_CACHE/plugins/<name>-<version>/; the internet (`pulumi plugin install`, or the CLI's release
# tarball for the language host); a build with Go from the pristine tarballs in $QUAYSIDE_VENDOR (default
# ../shared/vendor beside the repo; its README.md says how each was seen to build), unpacked under
# $QUAYSIDE_CACHE/src/. A cold build of all four takes several minutes; a re-run takes about a second.
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"

started=$SECONDS
requirements=$QUAYSIDE_ROOT/requirements.txt
pin() { sed -n "s/^$1==\([^ ;#]*\).*/\1/p" "$requirements" | head -n 1; }

PULUMI_HOME=${PULUMI_HOME:-$HOME/.pulumi}
export PULUMI_HOME PULUMI_SKIP_UPDATE_CHECK=1
vendor=${QUAYSIDE_VENDOR:-$QUAYSIDE_ROOT/../shared/vendor}
[[ -d $vendor ]] && vendor=$(cd "$vendor" && pwd)
cache=$QUAYSIDE_CACHE/plugins
scratch=$QUAYSIDE_CACHE/src

pulumi=$QUAYSIDE_BIN/pulumi
[[ -x $pulumi ]] || die "no Pulumi CLI at $pulumi: run scripts/setup.d/pulumi.sh first"
cli_dir=$(dirname "$(readlink -f "$pulumi")")
cli_version=$(pin pulumi)
[[ -n $cli_version ]] || die "no pulumi== pin in $requirements"

# The vendored sources each plugin builds from (all of them must match SHA256SUMS), and its version variable.
# The bridged providers build against the Terraform provider they wrap, vendored too (see its README.md).
docker_upstream=terraform-provider-docker-5074970c.tar.gz
hcloud_upstream=terraform-provider-hcloud-1.66.1.tar.gz
declare -A tarballs=(
  [command]="pulumi-command-%s.tar.gz"
  [docker]="pulumi-docker-%s.tar.gz $docker_upstream"
  [hcloud]="pulumi-hcloud-%s.tar.gz $hcloud_upstream"
  [python]="pulumi-language-python-%s.tar.gz"
)
declare -A version_var=(
  [command]=github.com/pulumi/pulumi-command/provider/pkg/version.Version
  [docker]=github.com/pulumi/pulumi-docker/provider/v5/pkg/version.Version
  [hcloud]=github.com/pulumi/pulumi-hcloud/provider/pkg/version.Version
  [python]=github.com/pulumi/pulumi/sdk/v3/go/common/version.Version
)

# run COMMAND...: runs it after a trace line on stderr, for the logs.
run() { printf '+ %s\n' "$*" >&2; "$@"; }

# go_build DIR PACKAGE VERSION_VAR VERSION OUT [GO FLAGS...]: the release build of a plugin's main package.
go_build() {
  local dir=$1 package=$2 var=$3 version=$4 out=$5; shift 5
  (cd "$dir" && run go build "$@" -trimpath -buildvcs=false -ldflags "-s -w -X $var=$version" -o "$out" "$package")
}

# unpack TARBALL DIR: the tarball's top directory becomes DIR (checked against SHA256SUMS before, by vendor_ready).
unpack() { mkdir -p "$2" && run tar -xzf "$vendor/$1" -C "$2" --strip-components=1; }

# build_NAME SRC VERSION OUT: the steps of the vendor README.md, in a fresh scratch directory SRC.
build_command() {
  unpack "pulumi-command-$2.tar.gz" "$1/pulumi-command" \
    && go_build "$1/pulumi-command/provider" ./cmd/pulumi-resource-command "${version_var[command]}" "$2" "$3"
}
build_docker() {
  local src=$1/pulumi-docker patch_file
  unpack "pulumi-docker-$2.tar.gz" "$src" || return 1
  # provider/go.mod replaces the bridged Terraform provider with ../upstream (a git submodule upstream).
  unpack "$docker_upstream" "$src/upstream" || return 1
  for patch_file in "$src"/patches/*.patch; do
    (cd "$src/upstream" && run patch -p1 --batch -i "$patch_file") || return 1
  done
  (cd "$src/provider" && run env VERSION="$2" go generate cmd/pulumi-resource-docker/main.go) || return 1
  go_build "$src/provider" ./cmd/pulumi-resource-docker "${version_var[docker]}" "$2" "$3"
}
build_hcloud() {
  local src=$1/pulumi-hcloud
  unpack "pulumi-hcloud-$2.tar.gz" "$src" || return 1
  unpack "$hcloud_upstream" "$1/terraform-provider-hcloud" || return 1
  (cd "$src/provider" \
    && run go mod edit -replace "github.com/hetznercloud/terraform-provider-hcloud=$1/terraform-provider-hcloud" \
    && run env VERSION="$2" go generate ./cmd/pulumi-resource-hcloud/) || return 1
  go_build "$src/provider" ./cmd/pulumi-resource-hcloud "${version_var[hcloud]}" "$2" "$3"
}
build_python() {
  local src=$1/pulumi-language-python/sdk/python/cmd/pulumi-language-python
  unpack "pulumi-language-python-$2.tar.gz" "$1/pulumi-language-python" || return 1
  # Its go.mod points pkg/v3 and sdk/v3 at paths inside the pulumi repository: point them at the module versions.
  (cd "$src" && run go mod edit -replace "github.com/pulumi/pulumi/pkg/v3=github.com/pulumi/pulumi/pkg/v3@v$2" \
                                -replace "github.com/pulumi/pulumi/sdk/v3=github.com/pulumi/pulumi/sdk/v3@v$2") \
    || return 1
  go_build "$src" . "${version_var[python]}" "v$2" "$3" -mod=mod
}

# vendor_ready NAME VERSION: true when the vendored sources and Go are there to build NAME; dies when a tarball
# differs from SHA256SUMS. Sets `missing` to what is lacking otherwise.
missing=""
vendor_ready() {
  local file want got
  if [[ ! -f $vendor/SHA256SUMS ]]; then missing="no vendored sources at $vendor"; return 1; fi
  for file in ${tarballs[$1]}; do
    # shellcheck disable=SC2059 # the table's entries are formats with the version as their one %s
    file=$(printf "$file" "$2")
    if [[ ! -f $vendor/$file ]]; then missing="no $file in $vendor"; return 1; fi
    want=$(awk -v f="$file" '$2 == f || $2 == "*" f { print $1; exit }' "$vendor/SHA256SUMS")
    [[ -n $want ]] || die "$file has no entry in $vendor/SHA256SUMS: restore the pristine vendor directory"
    got=$(sha256sum "$vendor/$file" | cut -d' ' -f1)
    [[ $got == "$want" ]] || die "$vendor/$file does not match $vendor/SHA256SUMS (sha256 $got, want $want): restore the pristine tarball"
  done
  if ! command -v go >/dev/null; then missing="Go is missing (install Go 1.26+ from https://go.dev/dl)"; return 1; fi
  if [[ $1 == docker ]] && ! command -v patch >/dev/null; then missing="patch is missing (apt-get install patch)"; return 1; fi
}

# build_from_vendor NAME VERSION BINARY: builds BINARY into $cache/NAME-VERSION/, saying how long it took.
build_from_vendor() {
  local name=$1 version=$2 binary=$3 dir=$cache/$1-$2 src=$scratch/$1-$2 log build_started
  log=$dir/build.log
  mkdir -p "$dir" "$scratch"
  rm -rf "$src"
  say "plugins: $name $version: building $binary from $vendor with $(go version | cut -d' ' -f3) (log: $log)"
  build_started=$SECONDS
  if ! ("build_$name" "$src" "$version" "$dir/$binary.new") >"$log" 2>&1; then
    rm -f "$dir/$binary.new"
    build_failed "$binary $version (sources kept in $src)" "$log"
  fi
  mv -f "$dir/$binary.new" "$dir/$binary"
  rm -rf "$src"
  say "plugins: $name $version: built in $((SECONDS - build_started)) s ($(du -h "$dir/$binary" | cut -f1))"
}

# install_resource NAME VERSION BINARY: `pulumi plugin install` of a binary into $PULUMI_HOME.
install_resource() {
  local name=$1 version=$2 binary=$3 log=$cache/$1-$2/install.log
  mkdir -p "$(dirname "$log")"
  "$pulumi" plugin install resource "$name" "$version" --file "$binary" >"$log" 2>&1 || {
    tail -n 5 "$log" >&2
    die "pulumi plugin install resource $name $version --file $binary failed (see above; log: $log)"
  }
}

resource_plugin() {
  local name=$1 version binary installed candidate log
  version=$(pin "pulumi-$name")
  [[ -n $version ]] || die "no pulumi-$name== pin in $requirements"
  binary=pulumi-resource-$name
  installed=$PULUMI_HOME/plugins/resource-$name-v$version
  # 1. Installed (a `.partial` marker beside the directory means an install was interrupted).
  if [[ -x $installed/$binary && ! -e $installed.partial ]]; then
    say "plugins: $name $version already installed in $PULUMI_HOME"
    return
  fi
  # 2. Cached (also where an earlier set-up asked for a hand-provided binary).
  for candidate in "$cache/$name-$version/$binary" "$cache/$binary-v$version"; do
    if [[ -x $candidate ]]; then
      install_resource "$name" "$version" "$candidate"
      say "plugins: $name $version installed from the cache ($candidate) into $PULUMI_HOME"
      return
    fi
  done
  # 3. Downloaded, the ordinary way.
  log=$cache/$name-$version/download.log
  mkdir -p "$(dirname "$log")"
  if timeout 120 "$pulumi" plugin install resource "$name" "$version" >"$log" 2>&1 && [[ -x $installed/$binary ]]; then
    say "plugins: $name $version downloaded by pulumi plugin install into $PULUMI_HOME"
    return
  fi
  say "plugins: $name $version: no download (pulumi plugin install failed, log: $log)"
  # 4. Built from the vendored sources; 5. or nothing possible.
  vendor_ready "$name" "$version" \
    || die "pulumi-resource-$name $version is missing and cannot be built ($missing): run \`pulumi plugin install resource $name $version\` on a machine with internet, install a binary with \`pulumi plugin install resource $name $version --file <binary>\`, or set QUAYSIDE_VENDOR to the vendored sources"
  build_from_vendor "$name" "$version" "$binary"
  install_resource "$name" "$version" "$cache/$name-$version/$binary"
  say "plugins: $name $version installed from the build into $PULUMI_HOME"
}

# with_exec DIR: true when pulumi-language-python-exec (which the language host runs from its own directory)
# is in DIR, copying it there from beside the CLI or from the sdk/v3 module when DIR lacks it and is writable.
with_exec() {
  local dir=$1 candidate modcache=""
  [[ -e $dir/pulumi-language-python-exec ]] && return 0
  [[ -w $dir ]] || return 1
  if command -v go >/dev/null; then modcache=$(go env GOMODCACHE 2>/dev/null || true); fi
  for candidate in "$cli_dir/pulumi-language-python-exec" "$cache/python-$cli_version/pulumi-language-python-exec" \
                   "${modcache:-$HOME/go/pkg/mod}/github.com/pulumi/pulumi/sdk/v3@v$cli_version/python/cmd/pulumi-language-python-exec"; do
    if [[ -f $candidate ]]; then install -m 0755 "$candidate" "$dir/pulumi-language-python-exec"; return 0; fi
  done
  return 1
}

host_version() { "$1" -version 2>/dev/null | tr -d '[:space:]' || true; }

# download_python DIR: the language host and its exec script out of the CLI's release tarball.
download_python() {
  local os arch
  os=$(uname -s | tr '[:upper:]' '[:lower:]')
  case $(uname -m) in x86_64 | amd64) arch=x64 ;; aarch64 | arm64) arch=arm64 ;; *) return 1 ;; esac
  command -v curl >/dev/null || { echo "curl is missing"; return 1; }
  mkdir -p "$1.tmp"
  run timeout 300 curl -fsSL "https://get.pulumi.com/releases/sdk/pulumi-v$cli_version-$os-$arch.tar.gz" \
    | tar -xz -C "$1.tmp" --strip-components=1 pulumi/pulumi-language-python pulumi/pulumi-language-python-exec \
    || { rm -rf "$1.tmp"; return 1; }
  mv -f "$1.tmp"/* "$1/" && rmdir "$1.tmp"
}

language_host() {
  local name=pulumi-language-python version=$cli_version candidate real dest dir=$cache/python-$cli_version log how
  # 1. There: beside the CLI (a CLI from PATH comes with its own), or on PATH, with its exec script beside it.
  for candidate in "$cli_dir/$name" "$(command -v "$name" || true)"; do
    [[ -n $candidate && -x $candidate ]] || continue
    real=$(readlink -f "$candidate")
    if with_exec "$(dirname "$real")"; then
      say "plugins: python language host already at $candidate ($(host_version "$real"))"
      return
    fi
  done
  # It goes where the CLI looks first, unless that directory is not ours to write (then $QUAYSIDE_BIN, on PATH).
  dest=$cli_dir
  [[ -w $dest ]] || dest=$QUAYSIDE_BIN
  mkdir -p "$dir"
  if [[ -x $dir/$name ]]; then
    how="from the cache ($dir/$name)"   # 2.
  else
    log=$dir/download.log                # 3.
    if download_python "$dir" >"$log" 2>&1 && [[ -x $dir/$name ]]; then
      how="downloaded with the Pulumi CLI $cli_version release"
    else
      say "plugins: python language host $version: no download (get.pulumi.com failed, log: $log)"
      vendor_ready python "$version" \
        || die "$name $version is missing and cannot be built ($missing): install the Pulumi CLI $version release (its tarball has $name), or set QUAYSIDE_VENDOR to the vendored sources"
      build_from_vendor python "$version" "$name"   # 4.
      how="from the build"
    fi
  fi
  with_exec "$dest" || die "pulumi-language-python-exec is missing beside $dest/$name: run scripts/setup.d/pulumi.sh (it puts it beside the CLI)"
  install -m 0755 "$dir/$name" "$dest/$name.new"
  mv -f "$dest/$name.new" "$dest/$name"
  [[ $(host_version "$dest/$name") == "v$version" ]] \
    || die "$dest/$name does not report v$version (it says '$(host_version "$dest/$name")'): remove $dir and re-run"
  say "plugins: python language host v$version installed $how into $dest"
}

resource_plugin command
resource_plugin docker
resource_plugin hcloud
language_host
say "plugins: ready in $((SECONDS - started)) s (PULUMI_HOME=$PULUMI_HOME)"
