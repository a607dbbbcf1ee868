#!/bin/bash
# PID 1 of quayside-test/postgres: prepares PGDATA, initialises it once, then execs the server as the
# postgres user so it receives the stop signal itself. The contract is in the Dockerfile's header.
set -euo pipefail

say() { printf 'postgres-entrypoint: %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

# file_env NAME [DEFAULT]: exports NAME from $NAME, or from the file $NAME_FILE names, or DEFAULT.
file_env() {
  local name=$1 default=${2:-} file_var="$1_FILE"
  local value=${!name:-} file=${!file_var:-}
  if [[ -n $value && -n $file ]]; then die "both $name and $file_var are set: set only one of them"; fi
  if [[ -n $file ]]; then
    [[ -r $file ]] || die "$file_var=$file is not a readable file: mount it into the container"
    value=$(<"$file")
  fi
  export "$name=${value:-$default}"
  unset "$file_var"
}

is_root() { [[ $(id -u) == 0 ]]; }

# as_postgres COMMAND...: runs COMMAND as the postgres user (directly when not root: `docker run --user`).
as_postgres() {
  if is_root; then
    setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"
  else
    "$@"
  fi
}

prepare_dirs() {
  mkdir -p "$PGDATA" /var/run/postgresql
  if is_root; then
    find "$PGDATA" /var/run/postgresql \! -user postgres -exec chown postgres:postgres '{}' +
  fi
  chmod 700 "$PGDATA"
  chmod 2775 /var/run/postgresql 2>/dev/null || true
}

run_initdb() {
  local pwfile args
  pwfile=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
  if is_root; then chown postgres "$pwfile"; fi
  read -ra args <<<"${POSTGRES_INITDB_ARGS:-}"
  args+=(--username="$POSTGRES_USER" --encoding=UTF8 --locale=C.UTF-8 --auth-local=trust
    --auth-host="$POSTGRES_HOST_AUTH_METHOD")
  if [[ -n $POSTGRES_PASSWORD ]]; then args+=(--pwfile="$pwfile"); fi
  as_postgres initdb "${args[@]}" || { rm -f "$pwfile"; die "initdb failed for $PGDATA (see above)"; }
  rm -f "$pwfile"
  printf "\nlisten_addresses = '*'\n" >>"$PGDATA/postgresql.conf"
  printf 'host all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD" >>"$PGDATA/pg_hba.conf"
}

# setup_database: a server on a private socket only (so pg_isready stays false until the real start)
# creates POSTGRES_DB and runs the init scripts.
setup_database() {
  local sockdir f
  sockdir=$(mktemp -d)
  if is_root; then chown postgres "$sockdir"; fi
  as_postgres pg_ctl -D "$PGDATA" -w -o "-c listen_addresses='' -c unix_socket_directories=$sockdir" start \
    || die "the initialisation server did not start (see above)"
  export PGHOST=$sockdir PGUSER=$POSTGRES_USER
  if [[ $POSTGRES_DB != postgres ]]; then
    psql -v ON_ERROR_STOP=1 --no-psqlrc --dbname=postgres --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
  fi
  for f in /docker-entrypoint-initdb.d/*; do
    case $f in
      *.sh) say "running $f"; bash "$f" ;;
      *.sql) say "running $f"; psql -v ON_ERROR_STOP=1 --no-psqlrc --dbname="$POSTGRES_DB" -f "$f" ;;
      *) if [[ -e $f ]]; then say "ignoring $f (only *.sh and *.sql run)"; fi ;;
    esac
  done
  as_postgres pg_ctl -D "$PGDATA" -m fast -w stop
  unset PGHOST PGUSER
  rm -rf "$sockdir"
}

main() {
  if [[ ${1:-} == -* ]]; then set -- postgres "$@"; fi
  if [[ ${1:-} != postgres ]]; then exec "$@"; fi

  file_env POSTGRES_USER postgres
  file_env POSTGRES_PASSWORD
  file_env POSTGRES_DB "$POSTGRES_USER"
  export POSTGRES_HOST_AUTH_METHOD=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}
  export PGDATA=${PGDATA:-/var/lib/postgresql/data}

  prepare_dirs
  if [[ -s $PGDATA/PG_VERSION ]]; then
    say "$PGDATA holds a PostgreSQL $(<"$PGDATA/PG_VERSION") database: skipping initialisation"
  else
    [[ -z $(ls -A "$PGDATA") ]] \
      || die "$PGDATA is not empty but holds no database (no PG_VERSION): mount an empty directory, or set PGDATA to a subdirectory of the mount"
    [[ -n $POSTGRES_PASSWORD || $POSTGRES_HOST_AUTH_METHOD == trust ]] \
      || die "POSTGRES_PASSWORD is not set: set it (or POSTGRES_PASSWORD_FILE), or POSTGRES_HOST_AUTH_METHOD=trust to allow connections without a password"
    run_initdb
    setup_database
    say "initialised $PGDATA: user $POSTGRES_USER, database $POSTGRES_DB"
  fi

  if is_root; then
    exec setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"
  fi
  exec "$@"
}

main "$@"
