#!/usr/bin/env bash
# The Pulumi CLI (pinned to the Python SDK's version); scripts/setup.d/plugins.sh installs the plugins it loads.
#
#   - a `pulumi` already on PATH at exactly $version is used as is (linked into $QUAYSIDE_BIN);
#   - otherwise the CLI is built from the wrapper module scripts/go/pulumi-cli (go.mod + go.sum committed)
#     into $QUAYSIDE_CACHE/go/pulumi-$version/bin, once per version (a re-run takes about a second);
#   - the Python helper scripts from the sdk/v3 module go beside it (the `plugins` step puts the language host there).
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"

module=github.com/pulumi/pulumi/pkg/v3
package=$module/cmd/pulumi
wrapper=$QUAYSIDE_ROOT/scripts/go/pulumi-cli
# The CLI version is the wrapper module's; the Python SDK (requirements.txt) must be the same version.
version=$(awk -v m="$module" '$1 == m || ($1 == "require" && $2 == m) { print $NF; exit }' "$wrapper/go.mod")
sdk_version=v$(sed -n 's/^pulumi==\([^ ;#]*\).*/\1/p' "$QUAYSIDE_ROOT/requirements.txt")
[[ $version == v* ]] || die "no $module version in $wrapper/go.mod"
[[ $version == "$sdk_version" ]] \
  || die "the Pulumi CLI ($version, $wrapper/go.mod) and SDK ($sdk_version, requirements.txt) differ: pin both to one version"
ldflags="-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$version"

# The directory a user's `pulumi` reads by default; scripts/setup.d/plugins.sh installs the plugins there.
PULUMI_HOME=${PULUMI_HOME:-$HOME/.pulumi}
export PULUMI_HOME PULUMI_SKIP_UPDATE_CHECK=1
mkdir -p "$PULUMI_HOME"

started=$SECONDS
prefix=$QUAYSIDE_CACHE/go/pulumi-$version     # PulumiCommand(root=$prefix) runs $prefix/bin/pulumi
bin_dir=$prefix/bin
log=$prefix/build.log
stamp=$prefix/.inputs.sha256
want=$(cat "$wrapper/go.mod" "$wrapper/go.sum" | sha256sum | cut -d' ' -f1)
want="$want $ldflags"

version_of() { PULUMI_SKIP_UPDATE_CHECK=1 "$1" version 2>/dev/null | tr -d '[:space:]' || true; }

find_go() { command -v go; }   # common.sh has put /usr/local/go/bin on PATH when Go is there

# 1. A pulumi on PATH at the pinned version (not our own link) wins; nothing is built.
ambient=""
while IFS= read -r candidate; do
  [[ $(dirname "$candidate") -ef $QUAYSIDE_BIN ]] && continue   # our own link from an earlier run
  if [[ $(version_of "$candidate") == "$version" ]]; then ambient=$candidate; break; fi
done < <(type -ap pulumi | awk '!seen[$0]++')

if [[ -n $ambient ]]; then
  cli=$(readlink -f "$ambient")
  say "pulumi: using $ambient ($version) from PATH"
else
  cli=$bin_dir/pulumi
  if [[ -x $cli && -f $stamp && $(cat "$stamp") == "$want" && $(version_of "$cli") == "$version" ]]; then
    say "pulumi: $version already built in $bin_dir"
  else
    go=$(find_go) || die "pulumi $version is not on PATH and Go is missing to build it: install Go 1.25+ (https://go.dev/dl) or put pulumi $version on PATH"
    mkdir -p "$bin_dir"
    say "pulumi: building $module@$version with $("$go" version | cut -d' ' -f3) (first build takes 5-10 min; log: $log)"
    build_started=$SECONDS
    if ! (cd "$wrapper" && "$go" build -mod=readonly -buildvcs=false -ldflags "$ldflags" -o "$cli.new" "$package") >"$log" 2>&1; then
      rm -f "$cli.new"
      build_failed "$module@$version" "$log"
    fi
    mv -f "$cli.new" "$cli"
    echo "$want" >"$stamp"
    say "pulumi: built $version in $((SECONDS - build_started)) s ($(du -h "$cli" | cut -f1))"
  fi
fi
ln -sfn "$cli" "$QUAYSIDE_BIN/pulumi"

# 2. The Python helper scripts the CLI looks for beside itself (a pulumi from PATH came with its own). They live in
#    the sdk/v3 module; module cache files are read-only and not executable, so they are copied and made executable.
if [[ -z $ambient ]]; then
  cli_dir=$bin_dir
  sdk_dir=""
  if go=$(find_go); then
    sdk_dir=$("$go" -C "$wrapper" list -mod=readonly -m -f '{{.Dir}}' github.com/pulumi/pulumi/sdk/v3 2>/dev/null) || sdk_dir=""
  fi
  [[ -n $sdk_dir ]] || sdk_dir=$HOME/go/pkg/mod/github.com/pulumi/pulumi/sdk/v3@$version
  placed=()
  for helper in python/cmd/pulumi-language-python-exec python/dist/pulumi-resource-pulumi-python \
                python/dist/pulumi-analyzer-policy-python python/cmd/pulumi-analyzer-policy-python; do
    [[ -f $sdk_dir/$helper ]] || continue
    name=$(basename "$helper")
    if ! cmp -s "$sdk_dir/$helper" "$cli_dir/$name"; then
      install -m 0755 "$sdk_dir/$helper" "$cli_dir/$name"
    fi
    placed+=("$name")
  done
  if ((${#placed[@]})); then
    say "pulumi: beside the CLI: ${placed[*]}"
  else
    say "pulumi: WARNING: no Python helper scripts found in $sdk_dir (only needed by Pulumi.yaml programs)"
  fi
fi

say "pulumi: $version ready at $QUAYSIDE_BIN/pulumi, PULUMI_HOME=$PULUMI_HOME ($((SECONDS - started)) s)"
