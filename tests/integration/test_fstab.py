"""fstab integration with real mount(8): ``jfs mount --update-fstab`` writes the line and links
/sbin/mount.jfs, then ``mount MOUNTPOINT`` mounts through the helper — all in a private mount namespace
where a temp file stands in for /etc/fstab and a temp directory for /usr/sbin."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from jfs.cli.fstab import options_to_args
from jfs.testing.mounts import format_volume

SCRIPT = r"""
set -eu
mount --bind "$T/fstab" /etc/fstab
mkdir "$T/sbin"
for f in /usr/sbin/*; do ln -s "$f" "$T/sbin/"; done
mount --bind "$T/sbin" /usr/sbin
gone() {  # wait until no jfs mount process serves $MP
  for _ in $(seq 200); do pgrep -f -- "jfs.cli.main mount .*$MP" >/dev/null || return 0; sleep 0.1; done
  return 1
}
cleanup() { umount "$MP" 2>/dev/null || umount -l "$MP" 2>/dev/null || true; gone || true; }
trap cleanup EXIT
"$PY" -m jfs.cli.main mount --update-fstab "$URL" "$MP" --cache-dir "$T/cache" --metrics off --cache-size 64 \
    --enable-xattr -d
readlink /sbin/mount.jfs
echo one > "$MP/one"
umount "$MP"
gone
mount "$MP"
echo "fstype: $(findmnt -n -o FSTYPE "$MP")"
cat "$MP/one"
"$PY" -c 'import os, sys; os.setxattr(sys.argv[1], "user.k", b"v"); print("xattr-ok")' "$MP/one"
umount "$MP"
gone
echo done
"""


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root and unshare(1)")
def test_update_fstab_then_mount_by_mountpoint(tmp_path: Path) -> None:
    base = Path(tempfile.mkdtemp(prefix="jfs-fstab-"))
    try:
        url = f"sqlite3://{base}/meta.db"
        format_volume(url, str(base / "bucket"), "fstab-vol")
        (base / "fstab").write_text("# test fstab\n/dev/sda1 / ext4 defaults 0 1\n"
                                    f"old:// {base}/mnt jfs _netdev 0 0\n")
        (base / "mnt").mkdir()
        env = {**os.environ, "T": str(base), "URL": url, "MP": str(base / "mnt"), "PY": sys.executable}
        r = subprocess.run(["unshare", "-m", "--propagation", "private", "bash", "-c", SCRIPT], env=env,
                           capture_output=True, text=True, timeout=180)
        assert r.returncode == 0, r.stdout + r.stderr
        out = r.stdout.splitlines()
        assert out[0].endswith("is mounted")
        assert out[1] == os.path.join(os.path.dirname(sys.executable), "mount.jfs")
        assert "fstype: fuse.jfs" in out and "one" in out and "xattr-ok" in out and out[-1] == "done"
        lines = (base / "fstab").read_text().splitlines()
        assert lines[:2] == ["# test fstab", "/dev/sda1 / ext4 defaults 0 1"]
        assert lines[2:] == [f"{url} {base}/mnt jfs _netdev,cache-dir={base}/cache,cache-size=64,enable-xattr,"
                             "metrics=off 0 0"]
    finally:
        subprocess.run(["umount", "-l", str(base / "mnt")], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def test_mount_options_become_jfs_mount_arguments() -> None:
    args, env = options_to_args("_netdev,rw,cache-size=10240,enable_xattr,ro,x-systemd.automount,nofail,"
                                "env.META_PASSWORD=s3cret,metrics=127.0.0.1:9600")
    assert args == ["--cache-size", "10240", "--enable-xattr", "--read-only", "--metrics", "127.0.0.1:9600"]
    assert env == {"META_PASSWORD": "s3cret"}
    args, _ = options_to_args("allow_other,noatime,max_read=131072,cache-size=10G")
    assert args == ["-o", "allow_other", "-o", "noatime", "-o", "max_read=131072", "--cache-size", "10G"]
