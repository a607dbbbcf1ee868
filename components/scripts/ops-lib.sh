# shellcheck shell=bash
# Helpers of the day-2 steps the `quayside` command runs (details, logs, exec, maintenance), sourced after lib.sh.
# Nothing here runs on its own, and nothing here reads a secret.

# live_container SERVICE ROLE PROXY: the ID of the container serving the role (the one kamal-proxy routes to, else
# the newest running one of a role without the proxy), or nothing.
live_container() {
  local service=$1 role=$2 proxy=$3 target
  target=$(proxy_target "$proxy" "$(route_name "$service" "$role")" 2>/dev/null || true)
  if [[ -n $target ]]; then
    inspect_container "$(target_container "$service" "$target")" '{{.Id}}' | cut -c1-12
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
