#!/usr/bin/env bash
# bootstrap: make a Debian server ready for deploys by a non-root user, as root, before anything else runs on it:
# cloud-init finished, a swap file, Docker (Debian's docker.io) with log rotation, the deploy user in the docker
# group with root's SSH keys and iptables by sudo (a kamal-proxy upgrade's handover), password SSH off, unattended
# security upgrades, the containers' firewall (container-firewall.sh), and the service's directory owned by the
# deploy user. Every step checks first and says what it changed; a second run changes nothing and says so.
#
#   bootstrap.sh --service S --deploy-user U --swap-mb N [--no-unattended-upgrades] [--no-install-docker]
#   (components/steps.py BOOTSTRAP)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

readonly SWAP_FILE=/swapfile
readonly SSHD_DROP_IN=/etc/ssh/sshd_config.d/10-quayside.conf
readonly AUTO_UPGRADES=/etc/apt/apt.conf.d/20auto-upgrades
readonly SUDOERS_DROP_IN=/etc/sudoers.d/quayside
# Root's own copy: the service's scripts belong to the deploy user, and systemd runs this as root.
readonly FIREWALL=/usr/local/lib/quayside/container-firewall.sh
readonly FIREWALL_DROP_IN=/etc/systemd/system/docker.service.d/quayside-container-firewall.conf
service='' deploy_user='' swap_mb='' upgrades=yes install=yes

parse_options() {
  while (($#)); do
    case $1 in
      --service) need_value "$@"; service=$2; shift ;;
      --deploy-user) need_value "$@"; deploy_user=$2; shift ;;
      --swap-mb) need_value "$@"; swap_mb=$2; shift ;;
      --no-unattended-upgrades) upgrades=no ;;
      --no-install-docker) install=no ;;
      *) die "unknown option $1" ;;
    esac
    shift
  done
  required --service "$service"; check_part_name --service "$service"
  required --deploy-user "$deploy_user"; required --swap-mb "$swap_mb"
  [[ $deploy_user =~ ^[a-z_][a-z0-9_-]*$ ]] || die "--deploy-user '$deploy_user' is not a user name"
  check_number --swap-mb "$swap_mb"
  ((EUID == 0)) || die "bootstrap runs as root (it connects as root with the deploy key)"
}

# A swap file, unless the server has swap already. Where the kernel refuses it (a swap file on overlayfs, in a
# container) the file and its fstab line stay for the next boot, and the step says why.
ensure_swap() {
  ((swap_mb > 0)) || return 0
  if [[ ! -e $SWAP_FILE ]]; then
    if [[ -n $(swapon --show --noheadings) ]]; then return 0; fi
    fallocate -l "${swap_mb}M" "$SWAP_FILE"
    chmod 600 "$SWAP_FILE"
    mkswap "$SWAP_FILE" >/dev/null
    changed "made $SWAP_FILE (${swap_mb} MiB)"
  fi
  if ! grep -q "^${SWAP_FILE}[[:space:]]" /etc/fstab 2>/dev/null; then
    printf '%s none swap sw 0 0\n' "$SWAP_FILE" >>/etc/fstab
    changed "added $SWAP_FILE to /etc/fstab"
  fi
  if ! grep -qx "$SWAP_FILE" <<<"$(swapon --show=NAME --noheadings)"; then
    local refused
    if refused=$(swapon "$SWAP_FILE" 2>&1); then
      changed "enabled swap on $SWAP_FILE"
    else
      say "the kernel refused swap on $SWAP_FILE now (${refused##*: }); /etc/fstab enables it at boot"
    fi
  fi
}

# Root's keys (without the options cloud-init may prefix them with) are the deploy user's.
authorized_keys_of_root() {
  grep -oE '(ssh-(ed25519|rsa)|ecdsa-sha2-nistp[0-9]+|sk-[a-z0-9@.-]+) [A-Za-z0-9+/=]+.*' /root/.ssh/authorized_keys
}

ensure_deploy_user() {
  [[ $deploy_user != root ]] || return 0
  local home keys
  if ! id "$deploy_user" >/dev/null 2>&1; then
    useradd --create-home --shell /bin/bash --user-group --groups docker "$deploy_user"
    changed "created user $deploy_user (group docker, no password)"
  elif [[ " $(id -nG "$deploy_user") " != *" docker "* ]]; then
    usermod --append --groups docker "$deploy_user"
    changed "added $deploy_user to the docker group"
  fi
  home=$(getent passwd "$deploy_user" | cut -d: -f6)
  keys=$(authorized_keys_of_root) || die "root has no SSH key in /root/.ssh/authorized_keys to give $deploy_user"
  if [[ $(cat "$home/.ssh/authorized_keys" 2>/dev/null) != "$keys" ]]; then
    install -d -m 700 -o "$deploy_user" -g "$deploy_user" "$home/.ssh"
    printf '%s\n' "$keys" | install -m 600 -o "$deploy_user" -g "$deploy_user" /dev/stdin "$home/.ssh/authorized_keys"
    changed "gave $deploy_user root's SSH keys"
  fi
}

sudoers_drop_in() {
  printf '%s\n' \
    '# quayside (bootstrap.sh): a new kamal-proxy takes over its ports by a DNAT rule (proxy.sh hand_over).' \
    "$deploy_user ALL=(root) NOPASSWD: $(command -v iptables)"
}

# The deploy user may run iptables as root, by sudo (Debian's cloud images have it): a kamal-proxy upgrade hands its
# ports over with it, without an outage. It is in the docker group, which is as much as root already.
ensure_proxy_handover() {
  [[ $deploy_user != root ]] || return 0
  if ! command -v sudo >/dev/null; then
    say "no sudo here: $deploy_user cannot hand kamal-proxy's ports over, so a proxy upgrade restarts it"
    return 0
  fi
  if [[ $(cat "$SUDOERS_DROP_IN" 2>/dev/null) != "$(sudoers_drop_in)" ]]; then
    sudoers_drop_in | install -o root -g root -m 0440 /dev/stdin "$SUDOERS_DROP_IN"
    visudo -cf "$SUDOERS_DROP_IN" >/dev/null || { rm -f "$SUDOERS_DROP_IN"; die "visudo rejected $SUDOERS_DROP_IN"; }
    changed "$deploy_user may run iptables as root, for a kamal-proxy upgrade's handover ($SUDOERS_DROP_IN)"
  fi
}

sshd_drop_in() {
  printf '%s\n' \
    '# quayside (bootstrap.sh): SSH by key only.' \
    'PasswordAuthentication no' \
    'KbdInteractiveAuthentication no' \
    'PermitRootLogin prohibit-password'
}

reload_sshd() {
  if has_systemd; then
    systemctl reload ssh
  elif [[ -x /etc/init.d/ssh ]]; then
    /etc/init.d/ssh reload >/dev/null
  else
    kill -HUP "$(cat /run/sshd.pid)"
  fi
}

# Password logins off, by a drop-in read before any other (sshd takes the first value it reads of a setting).
ensure_sshd_keys_only() {
  grep -qiE '^[[:space:]]*Include[[:space:]]+/etc/ssh/sshd_config\.d/\*\.conf' /etc/ssh/sshd_config ||
    die "/etc/ssh/sshd_config does not include /etc/ssh/sshd_config.d/*.conf: cannot turn password SSH off"
  if [[ $(cat "$SSHD_DROP_IN" 2>/dev/null) != "$(sshd_drop_in)" ]]; then
    sshd_drop_in >"$SSHD_DROP_IN"
    /usr/sbin/sshd -t || { rm -f "$SSHD_DROP_IN"; die "sshd rejected $SSHD_DROP_IN (above); removed it"; }
    reload_sshd
    changed "password SSH off ($SSHD_DROP_IN)"
  fi
  # Read whole first: grep -q ending the pipe early would fail it (pipefail).
  grep -qx 'passwordauthentication no' <<<"$(/usr/sbin/sshd -T 2>/dev/null)" ||
    die "sshd still allows passwords: a setting before $SSHD_DROP_IN turns them on (sshd -T)"
}

auto_upgrades() {
  printf '%s\n' 'APT::Periodic::Update-Package-Lists "1";' 'APT::Periodic::Unattended-Upgrade "1";'
}

# Debian's unattended-upgrades installs what Debian-Security publishes (its default origins), daily by apt's timer.
ensure_unattended_upgrades() {
  [[ $upgrades == yes ]] || return 0
  if [[ $(dpkg-query -W -f='${Status}' unattended-upgrades 2>/dev/null) != "install ok installed" ]]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends unattended-upgrades >/dev/null
    changed "installed unattended-upgrades $(dpkg-query -W -f='${Version}' unattended-upgrades)"
  fi
  if [[ $(cat "$AUTO_UPGRADES" 2>/dev/null) != "$(auto_upgrades)" ]]; then
    auto_upgrades >"$AUTO_UPGRADES"
    changed "daily unattended security upgrades on ($AUTO_UPGRADES)"
  fi
}

# The deploy user runs every later step: /var/lib/quayside (where the shared proxy's lock is), the service's
# directory and what is in them so far are theirs. Other services' directories and accessory data stay as they are.
ensure_service_dir() {
  local dir part
  dir=$(service_dir "$service")
  mkdir -p "$dir"
  for part in "$QUAYSIDE_ROOT" "$dir"; do
    if [[ $(stat -c %U "$part") != "$deploy_user" ]]; then
      chown "$deploy_user:" "$part"
      changed "$part belongs to $deploy_user"
    fi
  done
  chmod 700 "$dir"
  for part in "$QUAYSIDE_ROOT"/*.lock "$QUAYSIDE_ROOT/routes.d" "$dir"/{bin,env,locks,logs,audit.log}; do
    [[ ! -e $part ]] || chown -R "$deploy_user:" "$part"
  done
}

firewall_drop_in() {
  printf '%s\n' \
    '# quayside (bootstrap.sh): the containers'"'"' firewall, after every start of the engine.' \
    '[Service]' \
    "ExecStartPost=$FIREWALL"
}

ensure_container_firewall() {
  local shipped added line
  shipped="$(dirname "${BASH_SOURCE[0]}")/container-firewall.sh"
  if ! cmp -s "$shipped" "$FIREWALL"; then
    install -D -o root -g root -m 0755 "$shipped" "$FIREWALL"
    changed "installed $FIREWALL"
  fi
  if has_systemd && [[ $(cat "$FIREWALL_DROP_IN" 2>/dev/null) != "$(firewall_drop_in)" ]]; then
    mkdir -p "${FIREWALL_DROP_IN%/*}"
    firewall_drop_in >"$FIREWALL_DROP_IN"
    systemctl daemon-reload
    changed "the engine runs $FIREWALL at every start ($FIREWALL_DROP_IN)"
  fi
  added=$("$FIREWALL") || die "$FIREWALL failed (above)"
  while IFS= read -r line; do
    [[ -z $line ]] || changed "${line#container-firewall: }"
  done <<<"$added"
}

main() {
  parse_options "$@"
  wait_for_cloud_init
  ensure_swap
  ensure_docker "$install"
  ensure_unattended_upgrades
  ensure_container_firewall
  ensure_deploy_user
  ensure_proxy_handover
  ensure_sshd_keys_only
  ensure_service_dir
  if ((${#CHANGES[@]} == 1)); then
    say "1 change; deploys connect as $deploy_user"
  elif ((${#CHANGES[@]})); then
    say "${#CHANGES[@]} changes; deploys connect as $deploy_user"
  else
    say "nothing changed; deploys connect as $deploy_user"
  fi
}

main "$@"
