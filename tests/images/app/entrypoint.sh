#!/bin/sh
# PID 1 of quayside-test/app. PID 1 gets no default signal handlers, so TERM and INT are trapped here:
# `docker stop` ends httpd and the container at once instead of waiting for the kill timeout.
# IGNORE_TERM=yes ignores TERM instead (httpd inherits that), as an app without a handler does: every
# `docker stop` then waits its whole grace period and ends in a KILL. INT still stops it at once.
set -eu

# `docker run IMAGE CMD...`: a one-off command (a migration, `quayside exec`), not the server. Arguments that
# start with a dash are options for the server, which it ignores (tests run the app as a stand-in that way).
if [ "$#" -gt 0 ] && [ "${1#-}" = "$1" ]; then
  exec "$@"
fi

docroot=/www
child=

# shellcheck disable=SC2317 # run by the traps below
stop() {
  trap - TERM INT
  if [ -n "$child" ]; then kill "$child" 2>/dev/null || true; fi
  echo "app $VERSION: stopped"
  exit 0
}
case ${IGNORE_TERM:-no} in
  yes | true | 1) trap '' TERM; trap stop INT ;;
  *) trap stop TERM INT ;;
esac

# The wait runs in the background so a signal during the delay is handled at once.
if [ "${START_DELAY:-0}" != 0 ]; then
  echo "app $VERSION: starting in ${START_DELAY}s"
  sleep "$START_DELAY" &
  child=$!
  wait "$child"
  child=
fi

mkdir -p "$docroot"
printf '%s %s\n' "$VERSION" "$(hostname)" >"$docroot/index.html"
case ${HEALTHY:-yes} in
  yes | true | 1) printf 'ok\n' >"$docroot/up" ;;
  *) rm -f "$docroot/up" ;;
esac

echo "app $VERSION: listening on :${PORT:-80} (healthy: ${HEALTHY:-yes}, ignore TERM: ${IGNORE_TERM:-no})"
httpd -f -p "${PORT:-80}" -h "$docroot" &
child=$!
status=0
wait "$child" || status=$?
echo "app $VERSION: httpd exited with status $status" >&2
exit "$status"
