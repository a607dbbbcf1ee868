#!/usr/bin/env bash
# volume: mounts a Hetzner volume where the service keeps its data, and keeps it mounted across reboots.
# Runs before anything else of the service is on the server (it arrives on stdin, as the scripts directory it
# would be shipped to is on the volume): a new server, or one that replaced a server the volume came from.
#
#   volume.sh --device /dev/disk/by-id/scsi-0HC_Volume_N --mount-point /var/lib/quayside/SERVICE --wait SECONDS
#       --fstab /etc/fstab   (another file only where the machine's own must stay untouched: the tests)
#   (components/steps.py VOLUME)
#
# Hetzner formats the volume (ext4) once, when it is made; this never formats it, and never mounts it over a
# directory that holds files already (they would vanish under it). Growing the volume grows its file system.
# Docker starts only once the volume is mounted: containers never start on an empty directory in its place.
set -euo pipefail

# It comes before lib.sh is on the server: its own few helpers, worded as lib.sh's.
say() { printf 'volume: %s\n' "$*"; }
die() { printf 'volume: %s\n' "$*" >&2; exit 1; }
required() { [[ -n $2 ]] || die "missing required option $1"; }

device='' mount_point='' wait_seconds='' fstab=''

parse_options() {
  while (($#)); do
    case $1 in
      --device) (($# >= 2)) || die "option $1 needs a value"; device=$2; shift ;;
      --mount-point) (($# >= 2)) || die "option $1 needs a value"; mount_point=$2; shift ;;
      --wait) (($# >= 2)) || die "option $1 needs a value"; wait_seconds=$2; shift ;;
      --fstab) (($# >= 2)) || die "option $1 needs a value"; fstab=$2; shift ;;
      *) die "unknown option $1" ;;
    esac
    shift
  done
  required --device "$device"; required --mount-point "$mount_point"; required --wait "$wait_seconds"
  required --fstab "$fstab"
  [[ $device == /dev/* ]] || die "--device must be a device path under /dev (got '$device')"
  [[ $mount_point == /* && $mount_point != / ]] || die "--mount-point must be an absolute directory (got '$mount_point')"
  [[ $wait_seconds =~ ^[0-9]+$ ]] || die "--wait '$wait_seconds' is not a whole number"
  [[ $fstab == /* ]] || die "--fstab must be an absolute path (got '$fstab')"
}

# Hetzner attaches the volume shortly after it is made; udev then adds the by-id link.
wait_for_device() {
  local waited=0
  until [[ -b $device ]]; do
    ((waited < wait_seconds)) || die "$device did not appear within ${wait_seconds}s: is the volume attached to this server?"
    sleep 1
    waited=$((waited + 1))
  done
}

# Mounted already: fine when it is this volume, an error when it is anything else.
mounted_here() {
  mountpoint -q "$mount_point" || return 1
  local source
  source=$(findmnt -n -o SOURCE --mountpoint "$mount_point")
  [[ $(realpath "$source") == $(realpath "$device") ]] ||
    die "$mount_point is a mount of $source already, not of $device"
}

remember_in_fstab() {
  local uuid=$1 type=$2 line
  # nofail: a server whose volume is missing still boots (and is reachable); Docker waits for the mount instead.
  line="UUID=$uuid $mount_point $type discard,nofail,defaults 0 0"
  grep -qxF "$line" "$fstab" && return 0
  local kept
  kept=$(awk -v dir="$mount_point" '$2 != dir' "$fstab")
  # Written beside it and renamed: a cut-off write never leaves a half fstab (a server that will not boot).
  { [[ -z $kept ]] || printf '%s\n' "$kept"; printf '%s\n' "$line"; } >"$fstab.quayside"
  mv "$fstab.quayside" "$fstab"
  say "added $mount_point to $fstab"
}

docker_waits_for_it() {
  [[ -d /run/systemd/system ]] || return 0 # no systemd running: nothing starts Docker at boot to hold back
  local dropin=/etc/systemd/system/docker.service.d
  local file name
  name=$(systemd-escape --path "$mount_point")
  file=$dropin/quayside-volume-$name.conf
  local want="[Unit]"$'\n'"RequiresMountsFor=$mount_point"
  [[ -f $file && $(<"$file") == "$want" ]] && return 0
  mkdir -p "$dropin"
  printf '%s\n' "$want" >"$file"
  systemctl daemon-reload
  say "docker.service starts only with $mount_point mounted"
}

main() {
  parse_options "$@"
  wait_for_device
  local type uuid
  type=$(blkid -o value -s TYPE "$device") ||
    die "$device has no file system: Hetzner formats a volume only when it is made, and quayside never does"
  uuid=$(blkid -o value -s UUID "$device")
  if ! mounted_here; then
    mkdir -p "$mount_point"
    [[ -z $(ls -A "$mount_point") ]] ||
      die "$mount_point holds files already, which the volume would hide: mount a volume on a new server, or move them onto it by hand first"
    mount -t "$type" -o discard,defaults "$device" "$mount_point"
    say "mounted $device ($type) at $mount_point"
  fi
  remember_in_fstab "$uuid" "$type"
  docker_waits_for_it
  # A volume made bigger at Hetzner: the file system takes the new room (online, a no-op when it fits). Not
  # growing is no reason to stop a deploy: the data is whole, only the new room is unused.
  local output reason
  if [[ $type == ext4 ]] && ! output=$(resize2fs "$device" 2>&1); then
    reason=$(grep -m1 '^resize2fs: ' <<<"$output" || printf '%s' "${output##*$'\n'}")
    printf 'volume: WARNING: the file system on %s keeps its size (%s): run resize2fs %s\n' \
      "$device" "${reason#resize2fs: }" "$device" >&2
  fi
  say "$mount_point is on the volume ($(df -h --output=size "$mount_point" | tail -1 | tr -d ' '))"
}

main "$@"
