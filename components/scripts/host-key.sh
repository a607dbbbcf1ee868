#!/usr/bin/env bash
# host-key: replaces the SSH host key a new Hetzner server got from cloud-init's user data. Hetzner keeps the user
# data (its API and the metadata service serve it to the server's own processes), so the key quayside made for the
# first, verified connection is not kept secret for long: once that connection is up, the server makes a key of
# its own, which never leaves it, and quayside pins its public half. Runs as root before the scripts are shipped
# (it arrives on stdin).
#
#   host-key.sh --was 'ssh-ed25519 AAAA...'
#       When the server's ed25519 host key is still WAS, makes a new one and has sshd serve it to new
#       connections; prints the key then served (`<type> <base64>`), and only that, on stdout. Again on a server
#       whose key is no longer WAS, it prints that key and changes nothing.
#   (components/steps.py HOST_KEY)
set -euo pipefail

# It comes before lib.sh is on the server: its own few helpers, worded as lib.sh's.
say() { printf 'host-key: %s\n' "$*" >&2; }
die() { printf 'host-key: %s\n' "$*" >&2; exit 1; }
required() { [[ -n $2 ]] || die "missing required option $1"; }

readonly KEY=/etc/ssh/ssh_host_ed25519_key
was='' made=''

parse_options() {
  while (($#)); do
    case $1 in
      --was) (($# >= 2)) || die "option $1 needs a value"; was=$2; shift ;;
      *) die "unknown option $1" ;;
    esac
    shift
  done
  required --was "$was"
  [[ $was =~ ^ssh-ed25519\ [A-Za-z0-9+/=]+$ ]] || die "--was must be an ed25519 public key, 'ssh-ed25519 AAAA...'"
}

served_key() { cut -d ' ' -f 1,2 "$KEY.pub"; }

# sshd reads its host keys when it starts and when it is told to reload; sessions already open stay as they are.
reload_sshd() {
  if [[ -d /run/systemd/system ]]; then
    systemctl reload ssh
  elif [[ -s /run/sshd.pid ]]; then
    kill -HUP "$(cat /run/sshd.pid)"
  else
    die "no sshd to reload: neither systemd nor /run/sshd.pid"
  fi
}

rotate() {
  # Made beside the key (one file system), then moved over it: sshd never reads half a key.
  made=$(mktemp -d /etc/ssh/quayside-host-key.XXXXXX)
  trap 'rm -rf -- "$made"' EXIT
  ssh-keygen -q -t ed25519 -N '' -C "quayside-host $(hostname)" -f "$made/key" </dev/null
  chmod 600 "$made/key"
  chmod 644 "$made/key.pub"
  mv -f "$made/key" "$KEY"
  mv -f "$made/key.pub" "$KEY.pub"
  reload_sshd
  say "replaced the host key from the user data"
}

main() {
  parse_options "$@"
  [[ -s $KEY.pub ]] || die "$KEY.pub is missing: this server's sshd has no ed25519 host key"
  if [[ $(served_key) == "$was" ]]; then
    rotate
  else
    say "the host key is no longer the one from the user data: kept"
  fi
  served_key
}

main "$@"
