# shellcheck shell=bash disable=SC2154 # accessory.sh's globals, named below
# postgres-major: a Postgres data directory moved to a newer major version, for accessory.sh (which sources this):
# a new major cannot start on the old one's files. A dump of the whole cluster (pg_dumpall, by the old major, over
# its local socket in a container with no network: nothing writes meanwhile) is restored into a fresh directory
# that the new major initialised (its entrypoint, with the accessory's env: the same user and database). The old
# directory is kept beside it, named for its major and the time, with the dump; quayside never deletes either.
#
# It runs in accessory.sh's boot and reads its globals (service, name, container, image, data, envs, stop_timeout,
# ready_timeout, and old_major and new_major as decide_major set them); it sets kept_data, which put_back reads.

# The major version of the cluster in a data directory (its PG_VERSION), or nothing: not a Postgres one.
data_major() { cat "$1/PG_VERSION" 2>/dev/null || true; }

# The major version of the server in IMAGE: `postgres --version` says "postgres (PostgreSQL) 17.6 (Debian ...)".
image_major() {
  local said
  said=$(docker run --rm --network none --entrypoint postgres "$1" --version 2>&1) ||
    { echo "$1 cannot run postgres --version: $said" >&2; return 1; }
  [[ $said =~ \(PostgreSQL\)\ ([0-9]+) ]] || { echo "$1 says '$said', not a PostgreSQL version" >&2; return 1; }
  echo "${BASH_REMATCH[1]}"
}

# start_offline IMAGE PURPOSE: a container of IMAGE on the data directory with the accessory's env and no network,
# started; prints its name.
start_offline() {
  local image=$1 offline args item
  offline="${container}_$2_$(random_suffix)"
  args=(--detach --name "$offline" --network none --label "quayside.service=$service"
    --env-file "$(env_file "$service" "$(secrets_name)")" --volume "$(data_dir):$data")
  for item in "${envs[@]}"; do args+=(--env "$item"); done
  docker run "${args[@]}" -- "$image" >/dev/null || return 1
  echo "$offline"
}

# Ready once the entrypoint has handed PID 1 to the server (an entrypoint's own first-run server answers on the
# socket too) and the server answers on its socket.
wait_offline() {
  local offline=$1 deadline=$((SECONDS + ready_timeout))
  until [[ $(docker exec "$offline" cat /proc/1/comm 2>/dev/null) == postgres ]] &&
    docker exec "$offline" sh -c 'pg_isready -q -U "$POSTGRES_USER"' 2>/dev/null; do
    [[ $(inspect_container "$offline" '{{.State.Running}}') == true ]] ||
      { echo "$offline stopped: $(docker logs --tail 5 "$offline" 2>&1 | tr '\n' ' ')" >&2; return 1; }
    ((SECONDS < deadline)) || { echo "$offline did not answer within ${ready_timeout}s" >&2; return 1; }
    sleep 1
  done
}

stop_offline() {
  docker stop --time "$stop_timeout" "$1" >/dev/null 2>&1 || true
  docker rm --force "$1" >/dev/null 2>&1 || true
}

# The database user, as the accessory's env names it for the entrypoint.
postgres_user() {
  local item user=postgres
  for item in "${envs[@]}"; do [[ $item != POSTGRES_USER=* ]] || user=${item#*=}; done
  echo "$user"
}

# restore_errors USER < psql's stderr: its errors, but the two a whole-cluster dump always meets in a cluster its own
# entrypoint made: the user cannot drop itself, nor be created again (the dump's ALTER ROLE still sets it as it was).
restore_errors() {
  grep -F 'ERROR:' | grep -vF -e 'ERROR:  current user cannot be dropped' -e "ERROR:  role \"$1\" already exists" ||
    true
}

# put_back_data: the old major's directory back in the data directory's place, the new one's removed (it holds
# nothing the dump and the old directory do not).
put_back_data() {
  [[ -n $kept_data ]] || return 0
  rm -rf --one-file-system "$(data_dir)"
  mv "$kept_data" "$(data_dir)"
  echo "accessory $name: Postgres $old_major's data directory is back in place" >&2
  kept_data=''
}

# upgrade_data OLD_IMAGE: the cluster dumped by OLD_IMAGE (old_major), restored into a new data directory by $image
# (new_major); the old directory kept as kept_data, the dump and psql's log beside it. On failure it says why on
# stderr, and the data directory is the old one again.
upgrade_data() {
  local old_image=$1 stamp offline dump log errors
  stamp=$(TZ=UTC0 printf '%(%Y%m%dT%H%M%SZ)T' -1)
  dump=$(accessory_dir)/dump-$old_major-$stamp.sql
  log=$(accessory_dir)/restore-$new_major-$stamp.log
  offline=$(start_offline "$old_image" dump) || return 1
  if ! wait_offline "$offline" || ! (umask 077 && docker exec "$offline" \
    sh -c 'exec pg_dumpall -U "$POSTGRES_USER" --clean --if-exists' >"$dump"); then
    echo "the dump of Postgres $old_major failed" >&2
    stop_offline "$offline"
    return 1
  fi
  stop_offline "$offline"
  say "dumped Postgres $old_major's cluster ($(du -h "$dump" | cut -f1)) to $dump"

  mv "$(data_dir)" "$(accessory_dir)/data-$old_major-$stamp" || return 1
  kept_data=$(accessory_dir)/data-$old_major-$stamp
  mkdir -m 700 "$(data_dir)" || { put_back_data; return 1; }
  offline=$(start_offline "$image" restore) || { put_back_data; return 1; }
  if wait_offline "$offline"; then
    if docker exec -i "$offline" sh -c 'exec psql -X -q -U "$POSTGRES_USER" -d postgres' <"$dump" >/dev/null \
      2>"$log"; then
      errors=$(restore_errors "$(postgres_user)" <"$log")
    else
      errors=$(tail -n 1 "$log")
    fi
  else
    errors="Postgres $new_major did not start on a new data directory"
  fi
  stop_offline "$offline"
  if [[ -n $errors ]]; then
    echo "the restore into Postgres $new_major failed (log: $log): ${errors%%$'\n'*}" >&2
    put_back_data
    return 1
  fi
  say "restored it into Postgres $new_major; Postgres $old_major's data directory stays in $kept_data"
}
