#!/usr/bin/env bash
# push-check: before a role's image is built, whether its registry takes pushes with the stack's credentials.
# A refusal names the registry and the config key to set. Runs on the deploying machine, where the build runs;
# logs in with a throwaway Docker config, so nothing of the login stays there. The password comes on stdin.
#
#   push-check.sh ROLE SERVER [USERNAME]    (stdin, with USERNAME: the registry_password secret)
set -euo pipefail

role=$1 server=$2 username=${3:-} config=""
credentials="the registry_password secret (pulumi config set --secret registry_password)"

refuse() {
  echo "quayside: role $role: registry $server $1" >&2
  exit 1
}

# The scheme Docker uses: plain HTTP only for the registries it trusts without TLS by default (loopback).
scheme() {
  case $server in
    127.* | localhost | localhost:*) echo http ;;
    *) echo https ;;
  esac
}

main() {
  local output reply
  if [[ -n $username ]]; then
    config=$(mktemp -d)
    trap 'rm -rf "$config"' EXIT
    output=$(DOCKER_CONFIG=$config timeout 60 docker login --username "$username" --password-stdin -- "$server" 2>&1) ||
      refuse "refused the login of $username (${output##*$'\n'}): set $credentials to a password or token that may push"
  else
    reply=$(timeout 60 curl -s -o /dev/null -w '%{http_code} %{errormsg}' "$(scheme)://$server/v2/") ||
      refuse "does not answer (${reply#* }): check registry.server"
    [[ ${reply%% *} != 401 ]] ||
      refuse "refused a push without credentials (HTTP 401): set registry.username in the stack and $credentials"
  fi
  echo "registry $server takes the pushes of role $role"
}

main
