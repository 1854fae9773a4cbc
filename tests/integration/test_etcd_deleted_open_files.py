"""A file one client has open and another client deletes (one etcd volume, a jfs mount and a JuiceFS 1.4
mount): what the reader's next read answers on each client.

Neither implementation keeps an open file of another client alive: an unlink or rename-over that drops
the last name deletes the inode (and its data) unless *the unlinking client* has it open (JuiceFS's
POSIX-compatibility page: "open files remain accessible after unlink from same mount point"; jfs keeps
the same rule and the same ``sustained`` records, see ``jfs/app/meta/engine.py``). The reader's next
read that has to reach the volume then fails:

- JuiceFS: its chunk read finds no inode (ENOENT) and ``vfs.Read`` turns that into **EBADF**
  (``pkg/vfs/vfs.go``: ``if err == syscall.ENOENT { err = syscall.EBADF }``), logging
  ``read file N: no such file or directory``. ``bench/soak.py --deleted-reads-ebadf`` expects exactly this.
- jfs: ESTALE (``read_chunk`` finds no inode: ENOENT, which the FUSE adapter answers as ESTALE for
  every request addressed to an inode, as NFS does: ``_stale_when_gone``), never EBADF — the handle is
  still in jfs's handle tables. ESTALE is one of the workloads' race answers.
"""

from __future__ import annotations

import errno
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from jfs.testing.etcd_cluster import EtcdCluster
from jfs.testing.juicefs import juicefs_mounted, needs_juicefs
from jfs.testing.mounts import format_volume, mounted, reachable_dir
from jfs.testing.workloads import JUICEFS_DELETED_READ, Tally

pytestmark = needs_juicefs


@pytest.fixture
def both(etcd_single: EtcdCluster) -> Iterator[tuple[Path, Path, Path]]:
    """(jfs mount, JuiceFS mount, the volume's object directory) of one fresh etcd volume."""
    with reachable_dir("jfsdel-") as work:
        url = etcd_single.url(f"del-{uuid.uuid4().hex[:10]}")
        format_volume(url, str(work / "bucket"), "delvol", "--block-size", "1024")
        with mounted(url, work / "mnt") as m, juicefs_mounted(url, work / "jmnt", "--attr-cache", "0") as jm:
            yield m, jm, work / "bucket" / "delvol"


def _objects(bucket: Path) -> int:
    return sum(1 for p in bucket.rglob("*") if p.is_file() and "chunks" in p.parts)


def _read_after_remote_delete(reader: Path, writer: Path, bucket: Path, replace: bool) -> tuple[int | None, bool]:
    """Write a file through `writer`, open it through `reader`, drop its last name through `writer`
    (unlink, or rename another file over it), wait until its data are deleted, then read through the open
    descriptor: the errno of that read (None if it succeeded), and whether a JuiceFS soak worker would
    count that answer as expected (`Tally.read_error`: EBADF, and fstat of the descriptor finds the file
    gone).

    The read is a splice: a read(2) first has the kernel ask GETATTR (attribute timeout 0, or the open
    dropped the attributes), which answers for the deleted inode before any READ is sent; a splice goes
    to the page cache, which sends READ alone — what a read(2) does when the deletion lands between its
    GETATTR and its READ (the soak's race)."""
    (writer / "f").write_bytes(os.urandom(300_000))
    if replace:
        (writer / "f.new").write_bytes(b"new")
    time.sleep(1.2)  # the reader's kernel entry cache
    fd = os.open(reader / "f", os.O_RDONLY)
    try:
        before = _objects(bucket)
        if replace:
            os.rename(writer / "f.new", writer / "f")
        else:
            os.unlink(writer / "f")
        deadline = time.monotonic() + 30
        while _objects(bucket) >= before:  # the data go after the chunk records (both implementations)
            assert time.monotonic() < deadline, "the deleted file's data were not deleted in 30 s"
            time.sleep(0.1)
        r, w = os.pipe()
        try:
            os.splice(fd, w, 4096, offset_src=0)
        except OSError as exc:
            # What the soak's workers then check before they count it as expected (`Tally.read_error`).
            t = Tally()
            judged = t.read_error(exc, fd, JUICEFS_DELETED_READ)
            return exc.errno, judged
        finally:
            os.close(r)
            os.close(w)
        return None, False
    finally:
        os.close(fd)


@pytest.mark.parametrize("replace", [False, True], ids=["unlink", "rename-over"])
def test_juicefs_reads_ebadf_from_a_file_jfs_deleted(both: tuple[Path, Path, Path], replace: bool) -> None:
    m, jm, bucket = both
    assert _read_after_remote_delete(jm, m, bucket, replace) == (errno.EBADF, True)
    log = (jm.parent / "jmnt.log").read_text(errors="replace")
    assert "no such file or directory [done@reader.go" in log  # its chunk read found no inode


@pytest.mark.parametrize("replace", [False, True], ids=["unlink", "rename-over"])
def test_jfs_reads_estale_from_a_file_juicefs_deleted(both: tuple[Path, Path, Path], replace: bool) -> None:
    m, jm, bucket = both
    assert _read_after_remote_delete(m, jm, bucket, replace) == (errno.ESTALE, False)
