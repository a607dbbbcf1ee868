#!/usr/bin/env bash
# image-receive: the server's side of sending an image over SSH (registry: none; the deploying side is
# components/send_image.py). Says whether the image is here already; if not, lists the layers of every image
# here, then loads the image from stdin. The server's images lock is held shared throughout, so a swap's
# pruning does not remove an image whose layers the sender left out.
#
#   image-receive.sh --service S --image-id sha256:<64 hex> --tag REPO:TAG   (components/steps.py IMAGE_RECEIVE)
#   stdout: `present` (the image is here, now tagged TAG), or `layers`, the layer diff IDs of each image here
#   (one image a line) and `send`. Then stdin brings `bytes N` (what the layers sent take unpacked) on a line and
#   the image (a docker save archive, gzip); stdout ends `loaded`, or `full` when the disk has no room for it.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

service='' image_id='' tag=''

parse_options() {
  while (($#)); do
    case $1 in
      --service) need_value "$@"; service=$2; shift ;;
      --image-id) need_value "$@"; image_id=$2; shift ;;
      --tag) need_value "$@"; tag=$2; shift ;;
      *) die "unknown option $1" ;;
    esac
    shift
  done
  required --service "$service"; required --image-id "$image_id"; required --tag "$tag"
  check_part_name --service "$service"
  [[ $image_id =~ ^sha256:[0-9a-f]{64}$ ]] || die "--image-id '$image_id' is not sha256:<64 hex>"
  [[ $tag =~ ^[A-Za-z0-9][A-Za-z0-9_./:-]*:[A-Za-z0-9_][A-Za-z0-9_.-]*$ ]] || die "--tag '$tag' is not REPO:TAG"
}

# With containerd's image store, docker load may not find a left-out layer where the sender assumes it: list
# nothing, so every layer comes.
layer_chains() {
  [[ $(docker info --format '{{json .DriverStatus}}') != *io.containerd.snapshotter* ]] || return 0
  local ids
  ids=$(docker image ls --quiet --no-trunc | sort -u)
  [[ -z $ids ]] && return 0
  # shellcheck disable=SC2086 # one argument per ID
  docker image inspect --format '{{range .RootFS.Layers}}{{.}} {{end}}' $ids
}

# docker load unpacks the archive's layers, then applies each: about twice what they take unpacked.
ensure_room_to_load() {
  local line
  IFS= read -r line || die "the sender sent nothing"
  [[ $line =~ ^bytes\ ([0-9]+)$ ]] || die "the sender's first line is not 'bytes N'"
  local unpacked_kb=$(((BASH_REMATCH[1] + 1023) / 1024))
  ensure_room load "$tag" $((unpacked_kb * 2)) "2 x its $(mib "$unpacked_kb") of layers"
}

main() {
  parse_options "$@"
  hold_images
  if [[ $(docker image inspect --format '{{.Id}}' "$image_id" 2>/dev/null) == "$image_id" ]]; then
    docker tag -- "$image_id" "$tag"
    echo present
    return 0
  fi
  echo layers
  layer_chains
  echo send
  ensure_room_to_load || { echo full; exit 1; }
  docker load >&2
  local loaded
  loaded=$(docker image inspect --format '{{.Id}}' "$tag" 2>/dev/null) || die "docker load did not tag $tag"
  [[ $loaded == "$image_id" ]] || die "$tag is $loaded after docker load, expected $image_id"
  say "loaded $tag (${image_id:7:12})" >&2
  echo loaded
}

main "$@"
