#!/usr/bin/env bash
# backup-agent: runs INSIDE the backup container (<service>-backup), where the service's scripts are mounted
# read-only at /quayside/bin. It dumps the database with pg_dump (custom format, compressed), checks the dump
# reads back, encrypts it with gpg (to the public key in BACKUP_PUBLIC_KEY_FILE, whose private key never comes
# here but for a restore; else AES-256 with the passphrase on a file descriptor, never in argv), uploads it with
# rclone to an S3-compatible bucket, reads it back, and prunes old backups. With a write-only key
# (BACKUP_S3_WRITE_ONLY) it only uploads: the bucket keeps and expires the backups. The container's command is
# `schedule`; backup.sh runs the others through `docker exec`.
#
#   backup-agent.sh schedule                 every minute matching BACKUP_SCHEDULE (UTC): now
#   backup-agent.sh now                      back up, verify, prune
#   backup-agent.sh restore NAME|latest [--s3-key-stdin] [--private-key-stdin] [--passphrase-stdin]
#       stdin, in this order: an S3 key that reads (its id's line, then its secret's) instead of the configured
#       one; the armored private key the backup was encrypted to, then the line of its passphrase if it has one;
#       or only the passphrase the backup was made with, when it is not the configured one
#   backup-agent.sh list [--s3-key-stdin]      the backups in the bucket, oldest first
#   backup-agent.sh prune
#   backup-agent.sh verify NAME|latest       download, decrypt and list the dump's contents
#   backup-agent.sh due SPEC "MIN HOUR DAY MONTH WEEKDAY"   exit 0 when SPEC (cron or @hourly/@daily) matches
#
# Environment (the accessory's clear --env and its 0600 secret env file):
#   PGHOST PGPORT PGUSER PGDATABASE, PGPASSWORD (secret)
#   BACKUP_S3_BUCKET BACKUP_S3_PREFIX BACKUP_S3_REGION [BACKUP_S3_ENDPOINT], AWS_ACCESS_KEY_ID and
#   AWS_SECRET_ACCESS_KEY (secret), BACKUP_PASSPHRASE (secret) or BACKUP_PUBLIC_KEY_FILE, BACKUP_SCHEDULE,
#   BACKUP_KEEP_DAYS, [BACKUP_S3_WRITE_ONLY]
# Backups are named <database>-<YYYYMMDDTHHMMSSZ>.dump.gpg under s3://<bucket>/<prefix>/.
set -euo pipefail
shopt -s inherit_errexit
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

readonly LOCK=/tmp/quayside-backup.lock
readonly NAME_PATTERN='-[0-9]{8}T[0-9]{6}Z\.dump\.gpg$'
work='' private_key='' reading_key=no

# --- settings ---------------------------------------------------------------------------------------------

need_env() {
  local var
  for var; do [[ -n ${!var:-} ]] || die "$var is not set in the backup container's environment"; done
}

configure_rclone() {
  need_env BACKUP_S3_BUCKET BACKUP_S3_REGION PGDATABASE
  # One remote, "s3", configured by environment; the keys come from AWS_* (env_auth), never from argv.
  export RCLONE_CONFIG_S3_TYPE=s3 RCLONE_CONFIG_S3_ENV_AUTH=true RCLONE_CONFIG_S3_NO_CHECK_BUCKET=true
  export RCLONE_CONFIG_S3_REGION=$BACKUP_S3_REGION
  if [[ -n ${BACKUP_S3_ENDPOINT:-} ]]; then
    export RCLONE_CONFIG_S3_PROVIDER=Other RCLONE_CONFIG_S3_ENDPOINT=$BACKUP_S3_ENDPOINT
  else
    export RCLONE_CONFIG_S3_PROVIDER=AWS
  fi
  prefix=${BACKUP_S3_PREFIX:-}
  prefix=${prefix%/}
  folder="s3:$BACKUP_S3_BUCKET${prefix:+/$prefix}"
  at=" at ${BACKUP_S3_ENDPOINT:-AWS S3}"
  where="$(url '')$at"
}

# url NAME: where backup NAME is (or the folder, for an empty NAME).
url() { echo "s3://$BACKUP_S3_BUCKET${prefix:+/$prefix}/$1"; }

# rclone fails fast: a wrong endpoint should be an error in seconds, not after minutes of retries.
s3() { rclone --config /dev/null --retries 2 --low-level-retries 2 --contimeout 10s --timeout 60s "$@"; }

# The last line rclone (or another tool) wrote, without its timestamp: the reason to print.
last_error() { { grep -v '^\s*$' "$1" || true; } | tail -n 1 | sed -E 's#^[0-9/]+ [0-9:]+ (ERROR|NOTICE|Failed)[^:]*: ?##; s#^caused by: ##'; }

make_work_dir() {
  work=$(mktemp -d /tmp/quayside-backup.XXXXXX)
  mkdir -m 700 "$work/gnupg"
  trap cleanup EXIT
}

cleanup() {
  [[ -z $work ]] || { gpgconf --homedir "$work/gnupg" --kill gpg-agent 2>/dev/null || true; rm -rf "$work"; }
}

# --- the backups in the bucket ----------------------------------------------------------------------------

# Names of this database's backups, oldest first (the name's UTC timestamp sorts as text).
list_names() {
  local names
  names=$(s3 lsf --files-only "$folder/" 2>"$work/lsf.err") ||
    fail "cannot list $where: $(last_error "$work/lsf.err")"
  grep -E "^$PGDATABASE$NAME_PATTERN" <<<"$names" | sort || true
}

resolve() {
  local wanted=$1 names
  names=$(list_names)
  if [[ $wanted == latest ]]; then
    [[ -n $names ]] || fail "there is no backup of $PGDATABASE in $where"
    tail -n 1 <<<"$names"
  else
    grep -qxF "$wanted" <<<"$names" || fail "there is no backup $wanted in $where"
    echo "$wanted"
  fi
}

# --- encryption: passphrases reach gpg on fd 3, from a pipe -----------------------------------------------

to_public_key() { [[ -n ${BACKUP_PUBLIC_KEY_FILE:-} ]]; }

# The fingerprint of the public key the backups are encrypted to; dies when it cannot encrypt.
public_key_fingerprint() {
  local home listing
  home=$(mktemp -d /tmp/quayside-key.XXXXXX)
  listing=$(gpg --batch --homedir "$home" --with-colons --show-keys "$BACKUP_PUBLIC_KEY_FILE" 2>&1) || true
  rm -rf "$home"
  # Field 12 of the primary key's line holds the capabilities of the whole key: E when one of its keys encrypts.
  awk -F: '$1 == "pub" && $12 ~ /E/ { found = 1 } END { exit !found }' <<<"$listing" ||
    die "backup.public_key holds no OpenPGP key that can encrypt: give one with an encryption subkey ($(tail -n 1 <<<"$listing"))"
  awk -F: '$1 == "fpr" { print $10; exit }' <<<"$listing"
}

encrypt() {
  if to_public_key; then
    gpg --batch --quiet --homedir "$work/gnupg" --trust-model always --recipient-file "$BACKUP_PUBLIC_KEY_FILE" \
      --compress-algo none --encrypt --output "$2" "$1"
    return
  fi
  gpg --batch --quiet --homedir "$work/gnupg" --pinentry-mode loopback --passphrase-fd 3 --no-symkey-cache \
    --symmetric --cipher-algo AES256 --s2k-digest-algo SHA512 --compress-algo none --output "$2" "$1" \
    3< <(printf '%s\n' "$passphrase")
}

# With a private key given, its passphrase (if any) is $passphrase too.
decrypt() {
  gpg --batch --quiet --homedir "$work/gnupg" --pinentry-mode loopback --passphrase-fd 3 --no-symkey-cache \
    --decrypt --output "$2" "$1" 3< <(printf '%s\n' "$passphrase")
}

# The private key from stdin into this job's own keyring, which cleanup() removes.
import_private_key() {
  [[ -n $private_key ]] || return 0
  printf '%s\n' "$private_key" | gpg --batch --quiet --homedir "$work/gnupg" --import 2>"$work/import.err" ||
    fail "the private key from stdin does not import: $(last_error "$work/import.err")"
}

# Downloads and decrypts backup $1 into $work/restore.dump.
fetch() {
  s3 copyto "$folder/$1" "$work/download.gpg" 2>"$work/fetch.err" ||
    fail "cannot download $1 from $where: $(last_error "$work/fetch.err")"
  decrypt "$work/download.gpg" "$work/restore.dump" 2>"$work/gpg.err" && return 0
  if grep -q 'No secret key' "$work/gpg.err"; then
    [[ -z $private_key ]] ||
      fail "cannot decrypt $1 with the private key given: a wrong passphrase for it (--passphrase-file), or not the key it was encrypted to"
    fail "cannot decrypt $1: it is encrypted to a public key: give its private key (quayside restore --private-key-file FILE)"
  fi
  fail "cannot decrypt $1: wrong passphrase or private key, or not a quayside backup ($(last_error "$work/gpg.err"))"
}

fail() {
  printf '%s failed: %s\n' "$verb" "$1" >&2
  exit 1
}

# --- the subcommands --------------------------------------------------------------------------------------

now() {
  local name size how checked
  need_env PGHOST PGUSER
  if to_public_key; then
    how="encrypted to public key $(public_key_fingerprint)"
  else
    need_env BACKUP_PASSPHRASE
    how=encrypted
  fi
  name="$PGDATABASE-$(date -u +%Y%m%dT%H%M%SZ).dump.gpg"
  pg_dump --format=custom --compress=6 --no-owner --file "$work/db.dump" 2>"$work/pg_dump.err" ||
    fail "pg_dump of $PGDATABASE at ${PGHOST}:${PGPORT:-5432}: $(last_error "$work/pg_dump.err")"
  pg_restore --list "$work/db.dump" >/dev/null 2>"$work/check.err" ||
    fail "the dump of $PGDATABASE does not read back: $(last_error "$work/check.err")"
  encrypt "$work/db.dump" "$work/$name" 2>"$work/gpg.err" || fail "cannot encrypt the dump: $(last_error "$work/gpg.err")"
  size=$(stat -c %s "$work/$name")
  if write_only; then
    # Nothing but the upload: no look for the object before (--no-check-dest) or after it (--s3-no-head).
    s3 copyto --no-check-dest --s3-no-head "$work/$name" "$folder/$name" 2>"$work/upload.err" ||
      fail "cannot upload $name to $where: $(last_error "$work/upload.err")"
    say "backed up $PGDATABASE to $(url "$name")$at ($size bytes, $how; write-only key: checked before the upload, kept by the bucket)"
    return 0
  fi
  s3 copyto "$work/$name" "$folder/$name" 2>"$work/upload.err" ||
    fail "cannot upload $name to $where: $(last_error "$work/upload.err")"
  if to_public_key; then
    read_back_unchanged "$name"
    checked="read back unchanged"
  else
    verify_one "$name"
    checked="verified by reading it back"
  fi
  say "backed up $PGDATABASE to $(url "$name")$at ($size bytes, $how, $checked)"
  prune
}

write_only() { [[ ${BACKUP_S3_WRITE_ONLY:-} == true ]]; }

# Only the private key decrypts a backup made to a public key: the copy in the bucket must be the bytes uploaded.
read_back_unchanged() {
  s3 copyto "$folder/$1" "$work/download.gpg" 2>"$work/fetch.err" ||
    fail "cannot read $1 back from $where: $(last_error "$work/fetch.err")"
  cmp -s "$work/download.gpg" "$work/$1" || fail "$1 reads back from $where other than it was uploaded"
  rm -f "$work/download.gpg"
}

verify_one() {
  fetch "$1"
  pg_restore --list "$work/restore.dump" >/dev/null 2>"$work/verify.err" ||
    fail "$1 does not read back as a dump: $(last_error "$work/verify.err")"
  rm -f "$work/download.gpg" "$work/restore.dump"
}

restore() {
  local name
  need_env PGHOST PGUSER
  name=$(resolve "$1")
  import_private_key
  fetch "$name"
  # One transaction: a restore that fails part-way leaves the database as it was.
  pg_restore --clean --if-exists --no-owner --single-transaction --exit-on-error --dbname "$PGDATABASE" \
    "$work/restore.dump" 2>"$work/pg_restore.err" ||
    fail "pg_restore of $name into $PGDATABASE: $(last_error "$work/pg_restore.err")"
  say "restored $PGDATABASE from $(url "$name")$at"
}

# Deletes backups whose name is older than BACKUP_KEEP_DAYS days; the newest one always stays.
prune() {
  need_env BACKUP_KEEP_DAYS
  check_number BACKUP_KEEP_DAYS "$BACKUP_KEEP_DAYS"
  local cutoff names name stamp deleted=0 kept=0
  cutoff=$(date -u -d "-$BACKUP_KEEP_DAYS days" +%Y%m%dT%H%M%SZ)
  names=$(list_names)
  [[ -n $names ]] || { say "no backups of $PGDATABASE in $where to prune"; return 0; }
  while read -r name; do
    stamp=${name#"$PGDATABASE-"}
    stamp=${stamp%.dump.gpg}
    if [[ $stamp < $cutoff && $name != "$(tail -n 1 <<<"$names")" ]]; then
      s3 deletefile "$folder/$name" 2>"$work/delete.err" ||
        fail "cannot delete $name from $where: $(last_error "$work/delete.err")"
      deleted=$((deleted + 1))
    else
      kept=$((kept + 1))
    fi
  done <<<"$names"
  say "pruned $deleted backup(s) older than $BACKUP_KEEP_DAYS days; $kept kept"
}

# --- the schedule -----------------------------------------------------------------------------------------

# field_matches VALUE SPEC MIN MAX: one cron field (*, N, A-B, */S, A-B/S, and lists of them).
field_matches() {
  local value=$1 min=$3 max=$4 part range step low high parts
  IFS=, read -ra parts <<<"$2"
  for part in "${parts[@]}"; do
    range=${part%/*} step=1
    [[ $part != */* ]] || step=${part#*/}
    case $range in
      '*') low=$min high=$max ;;
      *-*) low=${range%-*} high=${range#*-} ;;
      *) low=$range high=$range; [[ $part != */* ]] || high=$max ;;
    esac
    ((10#$value >= 10#$low && 10#$value <= 10#$high && (10#$value - 10#$low) % step == 0)) && return 0
  done
  return 1
}

# due SPEC "MIN HOUR DAY MONTH WEEKDAY": as cron, when both day fields are restricted either may match.
due() {
  local spec=$1 minute hour day month weekday
  local f_minute f_hour f_day f_month f_weekday
  read -r minute hour day month weekday <<<"$2"
  case $spec in
    @hourly) spec='0 * * * *' ;;
    @daily | @midnight) spec='0 0 * * *' ;;
    @weekly) spec='0 0 * * 0' ;;
  esac
  read -r f_minute f_hour f_day f_month f_weekday <<<"$spec"
  [[ -n $f_weekday ]] || die "schedule '$1' is not @hourly, @daily, @weekly or five cron fields"
  ((10#$weekday != 7)) || weekday=0
  field_matches "$minute" "$f_minute" 0 59 && field_matches "$hour" "$f_hour" 0 23 &&
    field_matches "$month" "$f_month" 1 12 || return 1
  local day_ok=1 weekday_ok=1
  field_matches "$day" "$f_day" 1 31 || day_ok=0
  # Sunday is 0 and 7 (5-7 is Friday to Sunday): the field is read over 0-7, and a Sunday matches either.
  field_matches "$weekday" "$f_weekday" 0 7 || { ((10#$weekday == 0)) && field_matches 7 "$f_weekday" 0 7; } ||
    weekday_ok=0
  if [[ $f_day != '*' && $f_weekday != '*' ]]; then
    ((day_ok || weekday_ok))
  else
    ((day_ok && weekday_ok))
  fi
}

schedule() {
  need_env BACKUP_SCHEDULE
  due "$BACKUP_SCHEDULE" "0 0 1 1 1" || true  # dies now on a malformed schedule, not at the first tick
  ! to_public_key || public_key_fingerprint >/dev/null  # and on a public key that cannot encrypt
  trap 'say "stopping"; exit 0' TERM INT
  say "backing up $PGDATABASE on '$BACKUP_SCHEDULE' (UTC) to ${BACKUP_S3_BUCKET:-?}, keeping $BACKUP_KEEP_DAYS days"
  while true; do
    # Sleeps in the background so `docker stop` ends it at once.
    sleep $((60 - 10#$(date -u +%S))) &
    wait $! || true
    if due "$BACKUP_SCHEDULE" "$(date -u '+%M %H %d %m %w')"; then
      bash "${BASH_SOURCE[0]}" now || say "the scheduled backup failed (see above); the next one runs as scheduled"
    fi
  done
}

# The secrets a restore brings on stdin: an S3 key that reads; a private key, then its passphrase's line; or a
# passphrase alone.
read_stdin() {
  local flag with_s3_key=no with_key=no with_passphrase=no input
  for flag; do
    case $flag in
      --s3-key-stdin) with_s3_key=yes ;;
      --private-key-stdin) with_key=yes ;;
      --passphrase-stdin) with_passphrase=yes ;;
      *) die "unknown option $flag" ;;
    esac
  done
  if [[ $with_s3_key == yes ]]; then
    # For this job only: rclone reads the key from its environment.
    if ! { IFS= read -r AWS_ACCESS_KEY_ID && IFS= read -r AWS_SECRET_ACCESS_KEY; }; then
      die "--s3-key-stdin: give the key's id and its secret, one a line"
    fi
    export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
    reading_key=yes
  fi
  if [[ $with_key == yes ]]; then
    input=$(cat)
    # Through pipes: a here-string may be a temporary file.
    private_key=$(printf '%s\n' "$input" | sed -n '/^-----BEGIN PGP PRIVATE KEY BLOCK-----/,/^-----END PGP PRIVATE KEY BLOCK-----/p')
    [[ -n $private_key ]] || die "--private-key-stdin: no ASCII-armored private key on stdin (gpg --armor --export-secret-keys KEY)"
    # A key without a passphrase decrypts with an empty one.
    passphrase=''
    [[ $with_passphrase == no ]] ||
      passphrase=$(printf '%s\n' "$input" | sed -n '/^-----END PGP PRIVATE KEY BLOCK-----/,$p' | sed '1d;/^\s*$/d' | head -n 1)
  elif [[ $with_passphrase == yes ]]; then
    IFS= read -r passphrase || [[ -n $passphrase ]] || die "--passphrase-stdin: no passphrase on stdin"
  fi
}

main() {
  local command=${1:-}
  verb=backup
  shift || true
  case $command in
    due) due "$@"; return ;;
    schedule) schedule; return ;;
    now | list | prune) ;;
    restore | verify) verb=$command; [[ $# -ge 1 ]] || die "$command needs a backup name or latest" ;;
    *) die "first argument must be schedule, now, restore, verify, list, prune or due, not '$command'" ;;
  esac
  local wanted=''
  [[ $command != restore && $command != verify ]] || { wanted=$1; shift; }
  passphrase=${BACKUP_PASSPHRASE:-}
  read_stdin "$@"
  configure_rclone
  [[ $command == now || $reading_key == yes ]] || ! write_only ||
    fail "s3.write_only: the backup key only writes, and $command reads the bucket: bring a key that reads (--s3-key-file FILE)"
  make_work_dir
  # One backup job at a time in this container: the schedule and an operator's `now` do not overlap.
  exec 8>"$LOCK"
  flock -w 3600 8 || fail "another backup job still runs after an hour"
  case $command in
    now) now ;;
    list) list_names ;;
    prune) prune ;;
    restore) restore "$wanted" ;;
    verify) import_private_key; verify_one "$(resolve "$wanted")"; say "$wanted decrypts and reads back as a dump" ;;
  esac
}

main "$@"
