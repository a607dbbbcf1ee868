# shellcheck shell=bash
# Helpers of the day-2 steps the `quayside` command runs (details, logs, exec, maintenance), sourced after lib.sh.
# Nothing here runs on its own, and nothing here reads a secret.

# live_container SERVICE ROLE PROXY: the ID of the container serving the role (the one kamal-proxy routes to, else
# the newest running one of a role without the proxy), or nothing.
live_container() {
  live_container_in "$(proxy_routes "$3" 2>/dev/null || true)" "$1" "$2"
}

# live_container_in ROUTES SERVICE ROLE: live_container, with the proxy's routes as proxy_routes listed them (one
# listing serves every role a step asks about).
live_container_in() {
  local routes=$1 service=$2 role=$3 target
  target=$(route_in "$(route_name "$service" "$role")" <<<"$routes")
  target=${target%% *}
  if [[ -n $target ]]; then
    inspect_container "${target%:*}" '{{.Id}}' | cut -c1-12
  else
    role_containers "$service" "$role" --filter status=running | head -n 1
  fi
}

# need_live SERVICE ROLE PROXY: live_container, or dies saying the role serves nothing.
need_live() {
  local id
  id=$(live_container "$@")
  [[ -n $id ]] || die "role $2 of $1 has no running container: pulumi up (or quayside rollback) starts one"
  echo "$id"
}
