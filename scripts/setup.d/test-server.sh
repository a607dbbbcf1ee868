#!/usr/bin/env bash
# The loopback test server: Debian's sshd on 127.0.0.1:$QUAYSIDE_SSH_PORT, root by a generated ed25519 key
# only, using this machine's Docker engine. Tests and the local stack read its address from testbed.env.
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"
source "$(dirname "$0")/../lib/test-sshd.sh"

port=${QUAYSIDE_SSH_PORT:-2222}
dir=$QUAYSIDE_TESTBED/sshd
mkdir -p "$dir" /run/sshd
chmod 700 "$dir"

[[ -f $dir/client_ed25519 ]] || ssh-keygen -q -t ed25519 -N '' -C quayside-test -f "$dir/client_ed25519"
[[ -f $dir/host_ed25519 ]] || ssh-keygen -q -t ed25519 -N '' -f "$dir/host_ed25519"
cp "$dir/client_ed25519.pub" "$dir/authorized_keys"
chmod 600 "$dir/authorized_keys"

test_sshd_config "127.0.0.1:$port" "$dir/host_ed25519" "$dir/sshd.pid" "$dir/authorized_keys" >"$dir/sshd_config"

probe() {
  ssh -i "$dir/client_ed25519" -p "$port" -o BatchMode=yes -o StrictHostKeyChecking=no \
    -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o ConnectTimeout=3 root@127.0.0.1 true
}

running_pid=$(cat "$dir/sshd.pid" 2>/dev/null || true)
if [[ -n $running_pid ]] && kill -0 "$running_pid" 2>/dev/null; then
  # Config may have changed (new port or key): reload it in place.
  kill -HUP "$running_pid"
elif port_taken "$port"; then
  die "port 127.0.0.1:$port is taken by $(port_owner "$port"); stop it or choose another port: QUAYSIDE_SSH_PORT=2223 scripts/setup"
else
  /usr/sbin/sshd -t -f "$dir/sshd_config" || die "sshd rejected $dir/sshd_config (see above)"
  /usr/sbin/sshd -f "$dir/sshd_config" -E "$dir/sshd.log" || die "sshd did not start; read $dir/sshd.log"
fi
wait_until 10 "ssh" probe || die "ssh root@127.0.0.1:$port with $dir/client_ed25519 failed; read $dir/sshd.log"
ssh-keyscan -p "$port" -t ed25519 127.0.0.1 2>/dev/null >"$dir/known_hosts"

cat >"$QUAYSIDE_TESTBED/test-server.env" <<ENV
QUAYSIDE_SSH_HOST=127.0.0.1
QUAYSIDE_SSH_PORT=$port
QUAYSIDE_SSH_USER=root
QUAYSIDE_SSH_KEY=$dir/client_ed25519
QUAYSIDE_SSH_KNOWN_HOSTS=$dir/known_hosts
ENV
say "test server: ssh root@127.0.0.1 -p $port -i $dir/client_ed25519"
