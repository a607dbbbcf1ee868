# shellcheck shell=bash
# What the set-up steps that build images share. Sourced after common.sh, never run.

# The label an image carries with the hash of the inputs it was built from.
INPUTS_LABEL=quayside.inputs

# inputs_hash ITEM...: one hash over ITEMs; a file counts by its name and content, anything else as text.
inputs_hash() {
  local item
  for item; do
    if [[ -f $item ]]; then
      printf 'file %s %s\n' "${item##*/}" "$(sha256sum <"$item" | cut -c1-64)"
    else
      printf 'text %s\n' "$item"
    fi
  done | sha256sum | cut -c1-64
}

# image_is_current IMAGE HASH: IMAGE exists and was built from the inputs HASH names.
image_is_current() {
  [[ $(docker image inspect --format "{{index .Config.Labels \"$INPUTS_LABEL\"}}" "$1" 2>/dev/null) == "$2" ]]
}

# unmount_under DIR: what a failed debootstrap left mounted (proc, sys) inside DIR, deepest first.
unmount_under() {
  local mount
  awk -v dir="$1/" 'index($2, dir) == 1 {print $2}' /proc/mounts | sort -r | while read -r mount; do
    umount -l "$mount" || true
  done
}
