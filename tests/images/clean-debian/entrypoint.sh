#!/bin/bash
# Boots the clean Debian server as PID 1, in the order a systemd boot runs them: cloud-init's local and network
# stages (the ssh module writes the host key from the user data), then sshd, then cloud-init's config and final
# stages in the background, a few seconds late, so that the first SSH session finds cloud-init still running
# (CLOUD_INIT_LATE_SECONDS). Then it waits for its children until `docker stop`.
set -euo pipefail
log=/var/log/clean-debian-boot.log

# What --privileged would give (the machine running the tests may not grant it: it lacks CAP_SYS_RESOURCE), so
# that a dockerd inside can run: /sys and the cgroup hierarchies (of the container's own cgroup namespace)
# writable. Docker mounts them read-only.
writable_cgroups() {
  local hierarchies target options
  hierarchies=$(sed -n 's/^[0-9]* [0-9]* [^ ]* [^ ]* \([^ ]*\) .* - cgroup [^ ]* \(.*\)$/\1 \2/p' /proc/self/mountinfo)
  mount -o remount,rw /sys
  mount -t tmpfs -o mode=755 cgroup /sys/fs/cgroup
  while read -r target options; do
    options=${options#rw,}
    [[ $options != name=* ]] || options=none,$options
    mkdir -p "$target"
    mount -t cgroup -o "$options" cgroup "$target"
  done <<<"$hierarchies"
}

writable_cgroups
cloud-init init --local >>"$log" 2>&1
cloud-init init >>"$log" 2>&1
mkdir -p /run/sshd
/usr/sbin/sshd -E /var/log/sshd.log
(
  sleep "${CLOUD_INIT_LATE_SECONDS:-5}"
  cloud-init modules --mode config
  cloud-init modules --mode final
) >>"$log" 2>&1 &
trap 'exit 0' TERM INT
while :; do
  sleep 3600 &
  wait $! || true
done
