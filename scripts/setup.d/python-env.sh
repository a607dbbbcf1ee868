#!/usr/bin/env bash
# The project's virtualenv (.venv): the Pulumi program and the tests run from it, and the `quayside` command
# (the project installed editable: .venv/bin/quayside).
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"

venv=$QUAYSIDE_ROOT/.venv
stamp=$venv/.requirements.sha256
want=$(cat "$QUAYSIDE_ROOT/requirements.txt" "$QUAYSIDE_ROOT/requirements-dev.txt" "$QUAYSIDE_ROOT/pyproject.toml" |
  sha256sum | cut -d' ' -f1)

if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
  say "python env: up to date"
  exit 0
fi
command -v python3 >/dev/null || die "python3 is missing: install Python 3.11 or newer (apt-get install python3 python3-venv)"
python3 -m venv "$venv" || die "could not create $venv: install python3-venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$QUAYSIDE_ROOT/requirements-dev.txt" \
  || die "pip could not install requirements-dev.txt (see the lines above)"
# Editable: the command runs the code in this directory (pyproject.toml's [project.scripts]).
"$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps -e "$QUAYSIDE_ROOT" \
  || die "pip could not install the project (quayside command) into $venv (see the lines above)"
rm -rf "$QUAYSIDE_ROOT/quayside.egg-info"  # a by-product of the build; the install lives in $venv
echo "$want" >"$stamp"
say "python env: installed into $venv"
