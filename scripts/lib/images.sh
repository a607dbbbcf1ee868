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

# import_rootfs IMAGE TAR KEY: the rootfs tarball TAR imported as IMAGE, labelled with KEY (the hash naming the
# tarball, which images built on it take as an input); nothing to do when IMAGE carries that label already.
import_rootfs() {
  local image=$1 tar=$2 key=$3
  if image_is_current "$image" "$key"; then
    say "$image is up to date"
    return
  fi
  docker import --change "LABEL $INPUTS_LABEL=$key" "$tar" "$image" >/dev/null \
    || die "docker import of $tar failed: remove the file and rerun this step to build it again"
  say "imported $image from $tar"
}

# unmount_under DIR: what a failed debootstrap left mounted (proc, sys) inside DIR, deepest first.
unmount_under() {
  local mount
  awk -v dir="$1/" 'index($2, dir) == 1 {print $2}' /proc/mounts | sort -r | while read -r mount; do
    umount -l "$mount" || true
  done
}

# save_rootfs TARGET TAR BUILD_DIR: TARGET's tree packed into TAR (written aside, then moved, so a failed write
# leaves no half tarball), older tarballs of the same name up to its last "-" removed, BUILD_DIR and its mounts
# gone. The caller's EXIT trap (the clean-up of a failed build) is dropped.
save_rootfs() {
  local target=$1 tar=$2 build_dir=$3
  unmount_under "$target"
  tar --numeric-owner --one-file-system -C "$target" -cf "$tar.tmp" . \
    || die "could not write $tar.tmp: check free space in ${tar%/*}"
  mv "$tar.tmp" "$tar"
  find "${tar%/*}" -maxdepth 1 -name "$(basename "${tar%-*}")-*.tar" \! -path "$tar" -delete
  unmount_under "$build_dir"
  rm -rf --one-file-system "$build_dir"
  trap - EXIT
}
