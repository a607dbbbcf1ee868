#!/usr/bin/env bash
# balancer: one role's route on the load balancer's kamal-proxy. It sends the role's hostnames to every server of
# the role: a --target each, the server's own kamal-proxy on its private address, health-checked on the role's
# health path with the role's first hostname (so that proxy routes the check to the role, as it routes requests;
# kamal-proxy passes the Host header on). kamal-proxy sends each request to the next healthy target and leaves a
# target out while its checks fail. A deploy waits until every target answers, then switches; the old set drains,
# so a target added, removed or a hostname changed drops no request. TLS, with --tls, ends here. The route is
# claimed as a role's own route is (lib.sh claim_route), so another service on this server cannot take it.
#
#   balancer.sh deploy --service S --role R --proxy-name P --target ADDRESS:PORT... [--host H]... [--path-prefix P]
#     --health-path P --health-interval D --health-timeout D [--tls [--no-tls-redirect]] --deploy-timeout D
#     --drain-timeout D
#   balancer.sh remove --service S --role R --proxy-name P
#   balancer.sh check --service S --role R --proxy-name P --health-path P [--host H]...
#       stdout: target<TAB>ROLE<TAB>ADDRESS:PORT<TAB>STATUS per target of the route: what a health check from here
#       gets now (the HTTP status, or "no answer"), as kamal-proxy's own checks would
#   (components/steps.py BALANCER)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

action='' service='' role='' proxy_name='' health_path='' health_interval='' health_timeout='' tls=no
tls_redirect=yes deploy_timeout='' drain_timeout=''
targets=() hosts=() prefixes=()

parse_options() {
  action=${1:-}
  [[ $action == deploy || $action == remove || $action == check ]] ||
    die "first argument must be deploy, remove or check, not '$action'"
  shift
  while (($#)); do
    case $1 in
      --service) need_value "$@"; service=$2; shift ;;
      --role) need_value "$@"; role=$2; shift ;;
      --proxy-name) need_value "$@"; proxy_name=$2; shift ;;
      --target) need_value "$@"; targets+=("$2"); shift ;;
      --host) need_value "$@"; hosts+=("$2"); shift ;;
      --path-prefix) need_value "$@"; prefixes+=("$2"); shift ;;
      --health-path) need_value "$@"; health_path=$2; shift ;;
      --health-interval) need_value "$@"; health_interval=$2; shift ;;
      --health-timeout) need_value "$@"; health_timeout=$2; shift ;;
      --tls) tls=yes ;;
      --no-tls-redirect) tls_redirect=no ;;
      --deploy-timeout) need_value "$@"; deploy_timeout=$2; shift ;;
      --drain-timeout) need_value "$@"; drain_timeout=$2; shift ;;
      *) die "unknown option $1" ;;
    esac
    shift
  done
  required --service "$service"; required --role "$role"; required --proxy-name "$proxy_name"
  check_part_name --service "$service"; check_part_name --role "$role"; check_name --proxy-name "$proxy_name"
  [[ $action != remove ]] || return 0
  required --health-path "$health_path"
  [[ $action == deploy ]] || return 0
  required --target "${targets[*]}"
  required --health-interval "$health_interval"
  required --health-timeout "$health_timeout"; required --deploy-timeout "$deploy_timeout"
  required --drain-timeout "$drain_timeout"
  check_duration --health-interval "$health_interval"; check_duration --health-timeout "$health_timeout"
  check_duration --deploy-timeout "$deploy_timeout"; check_duration --drain-timeout "$drain_timeout"
  local target
  for target in "${targets[@]}"; do
    [[ $target =~ ^[0-9a-f.:]+:[0-9]+$ ]] || die "--target '$target' must be ADDRESS:PORT"
  done
}

deploy() {
  local args=(--health-check-path "$health_path" --health-check-interval "$health_interval"
    --health-check-timeout "$health_timeout" --deploy-timeout "$deploy_timeout" --drain-timeout "$drain_timeout")
  local item output
  for item in "${targets[@]}"; do args+=(--target "$item"); done
  for item in "${hosts[@]}"; do args+=(--host "$item"); done
  for item in "${prefixes[@]}"; do args+=(--path-prefix "$item"); done
  ((${#hosts[@]} == 0)) || args+=(--health-check-host "${hosts[0]}")
  [[ $tls == no ]] || args+=(--tls)
  [[ $tls_redirect == yes ]] || args+=(--tls-redirect=false)
  claim_route "$proxy_name" "$service" "$role" balancer
  output=$(docker exec "$proxy_name" kamal-proxy deploy "$(route_name "$service" "$role")" "${args[@]}" 2>&1) ||
    die "$role: the balancer did not switch to ${targets[*]}: ${output##*Error: } (each target must answer" \
      "$health_path for ${hosts[0]:-any host} within $deploy_timeout)"
  say "$role: the balancer sends ${hosts[*]:-every host}${prefixes[*]:+ under ${prefixes[*]}} to ${targets[*]}"
}

remove() {
  # Only a route this role's balancer holds: one another service claimed stays.
  if (claim_route "$proxy_name" "$service" "$role" balancer) 2>/dev/null &&
    docker exec "$proxy_name" kamal-proxy remove "$(route_name "$service" "$role")" >/dev/null 2>&1; then
    say "$role: route removed from the balancer"
  else
    say "$role: the balancer has no route for it"
  fi
  release_route "$service" "$role" balancer
}

# One GET of the health path at ADDRESS:PORT with the route's first hostname, over bash's /dev/tcp (a server may
# have no curl): its HTTP status, or "no answer" within 3 s.
probe() {
  local address=${1%:*} port=${1##*:} status
  # shellcheck disable=SC2016 # $0.. are the inner shell's
  status=$(timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1" && printf "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n" "$2" "$3" >&3 &&
    head -n 1 <&3' "$address" "$port" "$health_path" "${hosts[0]:-$address}" 2>/dev/null) || true
  status=${status#HTTP/* }
  echo "${status%% *}" | grep -E '^[0-9]{3}$' || echo "no answer"
}

check() {
  local target
  for target in $(proxy_target "$proxy_name" "$(route_name "$service" "$role")" 2>/dev/null | tr ',' ' '); do
    printf 'target\t%s\t%s\t%s\n' "$role" "$target" "$(probe "$target")"
  done
}

main() {
  parse_options "$@"
  [[ $action == check ]] || lock "$service" "balancer-$role"
  "$action"
}

main "$@"
