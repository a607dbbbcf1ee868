"""volume.sh over real SSH, on a real block device: a loop device on the test server stands in for a Hetzner volume
(a file formatted ext4 as Hetzner formats a new volume), piped to `bash -s` as the volume's mount step runs it.

It mounts, remembers the mount in an fstab (a file of the test's own: the machine's /etc/fstab stays untouched),
runs again as a no-op, finds the data again after an unmount, grows the file system after the device grows, and
refuses, changing nothing, to format a blank device or to hide files already where it would mount.
"""

from __future__ import annotations

import secrets
import shlex
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

import pytest

from components import remote, steps
from tests.support.testbed import TestServer

MEGABYTE: Final = 1024 * 1024
OTHER_MOUNT: Final = "UUID=0000-1111 /srv/other ext4 defaults 0 2"
CAP_SYS_RESOURCE: Final = 24


@dataclass
class Volume:
    server: TestServer
    directory: str  # on the server: the device's backing file, the fstab, the mount point's parent
    device: str

    @property
    def mount_point(self) -> str:
        return f"{self.directory}/quayside/acme"

    @property
    def fstab(self) -> str:
        return f"{self.directory}/fstab"

    def sh(self, command: str, *, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.server.run(command, check=check, timeout=120)

    def mount(self, *, device: str | None = None, wait: int = 10) -> subprocess.CompletedProcess[str]:
        """The mount step as the volume's remote command runs it: the script on stdin of `bash -s`."""
        args = steps.VOLUME.argv(
            device=device or self.device, mount_point=self.mount_point, wait=wait, fstab=self.fstab
        )
        command = remote.piped_script(args, timeout_seconds=120)
        return self.server.run(command, stdin=remote.script_text("volume.sh"), check=False, timeout=180)

    def mounted_device(self) -> str:
        done = self.sh(f"findmnt -n -o SOURCE --mountpoint {shlex.quote(self.mount_point)}", check=False)
        return done.stdout.strip()

    def size_bytes(self) -> int:
        return int(self.sh(f"df -B1 --output=size {shlex.quote(self.mount_point)} | tail -1").stdout)

    def fstab_lines(self) -> list[str]:
        return self.sh(f"cat {shlex.quote(self.fstab)}").stdout.splitlines()


def attach(server: TestServer, image: str, megabytes: int, *, formatted: bool) -> str:
    fill = f"truncate -s {megabytes}M {shlex.quote(image)}"
    make_fs = f" && mkfs.ext4 -q -F {shlex.quote(image)}" if formatted else ""
    return server.run(f"{fill}{make_fs} && losetup -f --show {shlex.quote(image)}").stdout.strip()


@pytest.fixture
def volume(test_server: TestServer) -> Iterator[Volume]:
    directory = f"/tmp/quayside-volume-{secrets.token_hex(4)}"
    test_server.run(f"mkdir -p {directory} && printf '%s\\n' {shlex.quote(OTHER_MOUNT)} > {directory}/fstab")
    device = attach(test_server, f"{directory}/disk.img", 64, formatted=True)
    made = Volume(test_server, directory, device)
    try:
        yield made
    finally:
        # Unmounted and detached whatever the test did: the loop device is the machine's.
        test_server.run(
            f"umount -q {made.mount_point} 2>/dev/null; for dev in $(losetup -j {directory}/disk.img -O NAME -n) "
            f"$(losetup -j {directory}/blank.img -O NAME -n); do losetup -d $dev; done; rm -rf {directory}",
            check=False,
        )


def test_a_volume_is_mounted_remembered_in_fstab_and_a_second_run_changes_nothing(volume: Volume) -> None:
    first = volume.mount()

    assert first.returncode == 0, first.stderr
    assert volume.mounted_device() == volume.device
    uuid = volume.sh(f"blkid -o value -s UUID {volume.device}").stdout.strip()
    assert volume.fstab_lines() == [OTHER_MOUNT, f"UUID={uuid} {volume.mount_point} ext4 discard,nofail,defaults 0 0"]
    assert f"{volume.mount_point} is on the volume" in first.stdout

    again = volume.mount()

    assert again.returncode == 0, again.stderr
    assert "mounted" not in again.stdout.replace("is on the volume", "")
    assert volume.fstab_lines() == [OTHER_MOUNT, f"UUID={uuid} {volume.mount_point} ext4 discard,nofail,defaults 0 0"]
    assert volume.sh(f"findmnt -n --mountpoint {volume.mount_point} | wc -l").stdout.strip() == "1"


def test_the_data_on_a_volume_is_found_again_never_formatted_away(volume: Volume) -> None:
    assert volume.mount().returncode == 0
    volume.sh(f"echo kept > {volume.mount_point}/canary && umount {volume.mount_point}")
    assert volume.sh(f"ls -A {volume.mount_point}").stdout == ""  # as on a new server that gets the volume

    done = volume.mount()

    assert done.returncode == 0, done.stderr
    assert volume.sh(f"cat {volume.mount_point}/canary").stdout == "kept\n"


def can_resize_online(server: TestServer) -> bool:
    """Online growth of ext4 needs CAP_SYS_RESOURCE, which root has on a server but not in every sandbox."""
    effective = next(
        line for line in server.run("cat /proc/self/status").stdout.splitlines() if line.startswith("CapEff")
    )
    return bool(int(effective.split()[1], 16) & (1 << CAP_SYS_RESOURCE))


def test_a_grown_volume_grows_its_file_system_or_says_why_not(volume: Volume) -> None:
    assert volume.mount().returncode == 0
    before = volume.size_bytes()
    volume.sh(f"truncate -s 128M {volume.directory}/disk.img && losetup -c {volume.device}")

    done = volume.mount()

    assert done.returncode == 0, done.stderr
    assert volume.mounted_device() == volume.device
    after = volume.size_bytes()
    print(f"file system {before // MEGABYTE} MB -> {after // MEGABYTE} MB; {done.stderr.strip()}")
    if can_resize_online(volume.server):
        assert after > before + 50 * MEGABYTE
        assert done.stderr == ""
    else:
        # This machine: the deploy goes on, the data whole, and the step says what to run.
        assert after == before
        assert done.stderr.startswith(f"volume: WARNING: the file system on {volume.device} keeps its size (")
        assert done.stderr.rstrip().endswith(f"run resize2fs {volume.device}")


def test_files_where_it_would_mount_are_never_hidden(volume: Volume) -> None:
    volume.sh(f"mkdir -p {volume.mount_point}/postgres && echo live > {volume.mount_point}/postgres/PG_VERSION")

    done = volume.mount()

    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"volume: {volume.mount_point} holds files already, which the volume would hide: mount a volume on a new "
        "server, or move them onto it by hand first"
    )
    assert volume.mounted_device() == ""
    assert volume.fstab_lines() == [OTHER_MOUNT]


def test_a_device_without_a_file_system_is_never_formatted(volume: Volume, test_server: TestServer) -> None:
    blank = attach(test_server, f"{volume.directory}/blank.img", 16, formatted=False)

    done = volume.mount(device=blank)

    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"volume: {blank} has no file system: Hetzner formats a volume only when it is made, and quayside never does"
    )
    assert volume.sh(f"blkid -o value -s TYPE {blank}", check=False).stdout == ""
    assert volume.fstab_lines() == [OTHER_MOUNT]


def test_a_volume_that_never_appears_fails_naming_the_device(volume: Volume) -> None:
    missing = "/dev/disk/by-id/scsi-0HC_Volume_does-not-exist"

    done = volume.mount(device=missing, wait=2)

    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"volume: {missing} did not appear within 2s: is the volume attached to this server?"
    )
