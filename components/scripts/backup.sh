#!/usr/bin/env bash
# backup: the service's Postgres backups, as an operator (or the setup) runs them over SSH. The work itself is
# done by backup-agent.sh inside the backup container (<service>-backup), which holds the S3 settings, the
# keys and the passphrase; the same container runs the schedule.
#
#   backup.sh image --from POSTGRES_IMAGE --tag TAG
#       Builds the backup image on this server: the Postgres image (so pg_dump matches the server's major
#       version) plus Debian's (or Alpine's) rclone and gpg. A no-op when TAG was built from the same inputs.
#   backup.sh now --service S                      back up now: dump, encrypt, upload, read back, prune
#   backup.sh restore --service S --backup NAME|latest [--s3-key-stdin] [--private-key-stdin] [--passphrase-stdin]
#       Replaces the database's contents with a backup. --private-key-stdin reads the private key of
#       backup.public_key from stdin (then its passphrase's line, with --passphrase-stdin); --passphrase-stdin
#       alone reads the passphrase instead of the configured one (a backup made before a passphrase change).
#       --s3-key-stdin reads an S3 key that reads first (its id's line, then its secret's), for a write-only one.
#   backup.sh list --service S [--s3-key-stdin]    the backups in the bucket, oldest first
#   backup.sh prune --service S                    delete backups older than keep_days (never the newest)
#   (components/steps.py BACKUP)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

readonly AGENT=/quayside/bin/backup-agent.sh
readonly INPUTS_LABEL=quayside.backup-image
action='' service='' container='' base='' tag='' backup='' passphrase_stdin=no private_key_stdin=no s3_key_stdin=no

parse_options() {
  action=${1:-}
  case $action in
    image | now | restore | list | prune) ;;
    *) die "first argument must be image, now, restore, list or prune, not '$action'" ;;
  esac
  shift
  while (($#)); do
    case $1 in
      --service) need_value "$@"; service=$2; shift ;;
      --from) need_value "$@"; base=$2; shift ;;
      --tag) need_value "$@"; tag=$2; shift ;;
      --backup) need_value "$@"; backup=$2; shift ;;
      --passphrase-stdin) passphrase_stdin=yes ;;
      --private-key-stdin) private_key_stdin=yes ;;
      --s3-key-stdin) s3_key_stdin=yes ;;
      *) die "unknown option $1" ;;
    esac
    shift
  done
  if [[ $action == image ]]; then
    required --from "$base"; required --tag "$tag"
    return 0
  fi
  required --service "$service"; check_part_name --service "$service"
  container=$service-backup
  [[ $action != restore ]] || required --backup "$backup"
  [[ -z $backup || $backup == latest || $backup =~ ^[A-Za-z0-9][A-Za-z0-9_.-]*$ ]] ||
    die "--backup '$backup' is not a backup name"
}

# --- the image --------------------------------------------------------------------------------------------

dockerfile() {
  cat <<EOF
FROM $base
RUN set -eux; \\
    if command -v apk >/dev/null; then \\
      apk add --no-cache bash rclone gnupg ca-certificates; \\
    else \\
      apt-get update; \\
      DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends rclone gpg gpg-agent ca-certificates; \\
      rm -rf /var/lib/apt/lists/*; \\
    fi; \\
    pg_dump --version; rclone version | head -n 1; gpg --version | head -n 1
ENTRYPOINT []
CMD ["bash"]
EOF
}

image() {
  local inputs
  pull_if_missing "$base"
  inputs=$( (dockerfile; docker image inspect --format '{{.Id}}' "$base") | sha256sum | cut -c1-16)
  if [[ $(docker image inspect --format "{{index .Config.Labels \"$INPUTS_LABEL\"}}" "$tag" 2>/dev/null) == "$inputs" ]]
  then
    say "$tag is up to date"
    return 0
  fi
  say "building $tag from $base"
  local log
  log=$(mktemp)
  if ! dockerfile | docker build --label "$INPUTS_LABEL=$inputs" --tag "$tag" - >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    rm -f "$log"
    die "could not build $tag from $base (could apt or apk install rclone and gpg?)"
  fi
  rm -f "$log"
  say "built $tag"
}

# --- the agent in the backup container --------------------------------------------------------------------

agent() {
  [[ $(inspect_container "$container" '{{.State.Running}}') == true ]] ||
    die "the backup container $container is not running: pulumi up boots it (or docker start $container)"
  local from_stdin=()
  [[ $s3_key_stdin == no ]] || from_stdin+=(--s3-key-stdin)
  [[ $private_key_stdin == no ]] || from_stdin+=(--private-key-stdin)
  [[ $passphrase_stdin == no ]] || from_stdin+=(--passphrase-stdin)
  if ((${#from_stdin[@]})); then
    docker exec -i "$container" bash "$AGENT" "$@" "${from_stdin[@]}"
  else
    docker exec "$container" bash "$AGENT" "$@"
  fi
}

main() {
  parse_options "$@"
  case $action in
    image) image ;;
    restore) agent restore "$backup" ;;
    *) agent "$action" ;;
  esac
}

main "$@"
