# shellcheck shell=bash
# Shared by scripts/backup-now and scripts/restore: their SSH options, and running backup.sh on the server.
# Sourced, never run.

# shellcheck disable=SC2034 # passphrase_file and rest are read by the scripts that source this file
ssh_target='' key='' service='' user=root known_hosts='' passphrase_file='' rest=()

usage() {
  printf '%s: %s\n' "${0##*/}" "$1" >&2
  awk 'NR > 1 && !/^#/ { exit } /^# Usage:/ { on = 1 } on { sub(/^# ?/, ""); print }' "$0" >&2
  exit 2
}

parse_ssh_options() {
  while (($#)); do
    case $1 in
      --ssh | --key | --service | --user | --known-hosts | --passphrase-file)
        (($# >= 2)) || usage "option $1 needs a value" ;;&
      --ssh) ssh_target=$2; shift ;;
      --key) key=$2; shift ;;
      --service) service=$2; shift ;;
      --user) user=$2; shift ;;
      --known-hosts) known_hosts=$2; shift ;;
      --passphrase-file) passphrase_file=$2; shift ;;
      -h | --help) usage "help" ;;
      -*) usage "unknown option $1" ;;
      *) rest+=("$1") ;;
    esac
    shift
  done
  [[ -n $ssh_target ]] || usage "missing --ssh HOST[:PORT]"
  [[ -n $key ]] || usage "missing --key PRIVATE_KEY"
  [[ -r $key ]] || usage "--key $key is not a readable file"
  [[ $service =~ ^[a-z][a-z0-9]*(-[a-z0-9]+)*$ ]] || usage "--service '$service' is not a service name"
}

# run_backup_script ARG...: bash /var/lib/quayside/<service>/bin/backup.sh ARG... --service S, over SSH.
run_backup_script() {
  local host=${ssh_target%:*} port=22 command
  [[ $ssh_target != *:* ]] || port=${ssh_target##*:}
  local ssh=(ssh -i "$key" -p "$port" -o BatchMode=yes -o LogLevel=ERROR)
  [[ -z $known_hosts ]] || ssh+=(-o "UserKnownHostsFile=$known_hosts" -o StrictHostKeyChecking=yes)
  printf -v command '%q ' bash "/var/lib/quayside/$service/bin/backup.sh" "$@" --service "$service"
  "${ssh[@]}" "$user@$host" "$command"
}
