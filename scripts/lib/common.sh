# shellcheck shell=bash
# Shared by the setup steps: where things are cached, how steps report, how waits end.
# Sourced, never run. Every step script sets `set -euo pipefail` itself.

QUAYSIDE_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# The cache, as quayside_cli/local_stack.py has it for the command and the tests (tests/unit/test_local_stack.py).
QUAYSIDE_CACHE=${QUAYSIDE_CACHE:-$HOME/.cache/quayside}
# Built tools (pulumi, kamal-proxy), keyed by version below this, and put on PATH by `scripts/setup`.
QUAYSIDE_BIN=$QUAYSIDE_CACHE/bin
# The loopback test server, the registry and the files tests read (keys, ports).
QUAYSIDE_TESTBED=$QUAYSIDE_CACHE/testbed
export QUAYSIDE_ROOT QUAYSIDE_CACHE QUAYSIDE_BIN QUAYSIDE_TESTBED
mkdir -p "$QUAYSIDE_BIN" "$QUAYSIDE_TESTBED"
case ":$PATH:" in *":$QUAYSIDE_BIN:"*) ;; *) PATH=$QUAYSIDE_BIN:$PATH ;; esac
# Go's official tarball installs to /usr/local/go, which a login shell may not have on PATH.
if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then PATH=$PATH:/usr/local/go/bin; fi
export PATH

say() { printf '[setup] %s\n' "$*" >&2; }

# die MESSAGE: the one line a user reads; it says what to do.
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

# wait_until SECONDS DESCRIPTION COMMAND...: polls COMMAND every 0.2 s until it succeeds.
wait_until() {
  local seconds=$1 what=$2; shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

# start_daemon LOG COMMAND...: COMMAND in a session of its own (it outlives this script and the shell that ran
# it), output to LOG, holding no open file but its stdio: a lock the caller holds (`flock F scripts/up`) must not
# stay held for the daemon's lifetime.
start_daemon() {
  local log=$1; shift
  (
    for fd in /proc/self/fd/*; do
      fd=${fd##*/}
      ((fd <= 2)) || eval "exec $fd>&-" 2>/dev/null || true
    done
    exec setsid "$@"
  ) >"$log" 2>&1 </dev/null &
}

# port_taken PORT: true when something listens on 127.0.0.1:PORT (or on all addresses).
port_taken() {
  ss -Hltn "( sport = :$1 )" 2>/dev/null | grep -q .
}

# port_owner PORT: the process listening on PORT, for error messages.
port_owner() {
  ss -Hltnp "( sport = :$1 )" 2>/dev/null | sed -n 's/.*users:((\("[^"]*"\).*/\1/p' | head -n 1
}

# build_failed WHAT LOG: the end of a failed Go build's log, then one line: a module the proxy refused, or where
# to read more.
build_failed() {
  local what=$1 log=$2 refused
  tail -n 15 "$log" >&2
  refused=$(grep -m1 -E '40[34] (Forbidden|Not Found)|not available' "$log" || true)
  [[ -z $refused ]] || die "could not build $what: the Go module proxy refused a module ($refused); log: $log"
  die "could not build $what (see the lines above); log: $log"
}
