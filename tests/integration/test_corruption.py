"""Damaged data under a real mount: block objects truncated, extended, garbled or missing in a ``file``
bucket (compression none and lz4), and corrupted disk-cache entries.

A damaged object is never served as data: reads of its block fail with EIO — soon, not after a minute of
retries — the mount log names the object, the other blocks of the file still read fine, and the mount keeps
serving. A corrupted disk-cache entry is detected by its checksums and the block is fetched again from the
object store.

Objects carry no checksum (ADR 0005), so a byte changed in place inside an uncompressed block, or inside a
literal run of an LZ4 block, reads back as that byte — unless the volume was formatted with ``--checksum``
(ADR 0008): then every block fetched from the object store is checked against the CRC-32 recorded in the
metadata, and a flipped byte is EIO with the object key in the log.
"""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import time
from pathlib import Path

import pytest

from jfs.testing.mounts import format_volume, jfs, mounted

BS = 64 << 10  # the smallest block size keeps files small


def _content(seed: int) -> bytes:
    rnd = random.Random(seed)
    text = b"".join(b"line %d of a compressible file %s\n" % (i, rnd.randbytes(4).hex().encode()) for i in range(9000))
    return (text + rnd.randbytes(BS))[: 3 * BS + 12345]  # 3 full blocks and a partial one


def _objects(path: Path) -> list[str]:
    info = json.loads(jfs("info", str(path), "--json").stdout)
    return [o for c in info["chunks"] for s in c["slices"] for o in s["objects"]]


def _volume(tmp_path: Path, compress: str, *extra: str) -> tuple[str, Path]:
    url = f"sqlite3://{tmp_path}/meta.db"
    format_volume(url, str(tmp_path / "bucket"), "test-vol", "--block-size", "64", "--compress", compress, *extra)
    return url, tmp_path / "bucket"


def _damage(obj: Path, how: str) -> None:
    raw = obj.read_bytes()
    if how == "truncate":
        obj.write_bytes(raw[: len(raw) // 2])
    elif how == "extend":
        obj.write_bytes(raw + b"\0junk after the block")
    elif how == "garble":  # the first LZ4 token: the block no longer decodes to its length
        obj.write_bytes(bytes([raw[0] ^ 0xFF]) + raw[1:])
    elif how == "empty":
        obj.write_bytes(b"")
    elif how == "delete":
        obj.unlink()
    else:
        raise AssertionError(how)


def _log(mnt: Path) -> str:
    return (mnt.parent / f"{mnt.name}.log").read_text(errors="replace")


DAMAGES = {"none": ["truncate", "extend", "empty", "delete"], "lz4": ["truncate", "extend", "garble", "empty", "delete"]}


@pytest.mark.parametrize("compress", ["none", "lz4"])
def test_damaged_objects_read_as_eio_never_as_data(tmp_path: Path, compress: str) -> None:
    url, bucket = _volume(tmp_path, compress)
    mnt = tmp_path / "mnt"
    files: dict[str, tuple[bytes, str]] = {}
    with mounted(url, mnt):
        for i, how in enumerate(DAMAGES[compress]):
            data = _content(i)
            (mnt / how).write_bytes(data)
            objects = _objects(mnt / how)
            assert len(objects) == 4
            files[how] = (data, objects[1])  # the second block, bytes [BS, 2 BS), gets damaged
    for how, (_, victim) in files.items():
        _damage(bucket / victim, how)
    shutil.rmtree(tmp_path / "mnt-cache")  # no cached copy may hide the damage
    with mounted(url, mnt):
        for how, (data, _) in files.items():
            start = time.monotonic()
            with pytest.raises(OSError) as e:
                (mnt / how).read_bytes()
            assert e.value.errno == errno.EIO, how
            assert time.monotonic() - start < 10, "a damaged block must fail fast, not after a minute of retries"
            fd = os.open(mnt / how, os.O_RDONLY)
            try:
                for off in (BS + 100, 2 * BS - 10, BS):  # reads touching the block: EIO, or bytes still intact
                    try:
                        assert os.pread(fd, 20, off) == data[off:off + 20], (how, off)
                    except OSError as exc:
                        assert exc.errno == errno.EIO, (how, off)
                assert os.pread(fd, BS, 0) == data[:BS]  # the undamaged blocks read fine
                assert os.pread(fd, len(data), 2 * BS) == data[2 * BS:]
            finally:
                os.close(fd)
        (mnt / "after").write_bytes(b"the mount still serves")
        assert (mnt / "after").read_bytes() == b"the mount still serves"
        log = _log(mnt)
    for how, (_, victim) in files.items():
        assert f"key={victim}" in log, (how, log[-3000:])
    assert "fuse_handler_failed" not in log


def test_a_corrupted_disk_cache_entry_is_refetched(tmp_path: Path) -> None:
    url, bucket = _volume(tmp_path, "none")
    mnt = tmp_path / "mnt"
    data = _content(2)
    with mounted(url, mnt):
        (mnt / "f").write_bytes(data)
        objects = _objects(mnt / "f")
        assert (mnt / "f").read_bytes() == data
        jfs("warmup", str(mnt / "f"))  # a ``file`` bucket's blocks are cached only on request
    cached = sorted((tmp_path / "mnt-cache").rglob("*_1_65536"))
    assert cached, "the written blocks should be in the disk cache"
    entry = cached[0]
    raw = bytearray(entry.read_bytes())
    raw[1000] ^= 0x01  # one bit inside the block bytes
    entry.write_bytes(bytes(raw))
    store_copy = (bucket / objects[1]).read_bytes()
    with mounted(url, mnt):
        assert (mnt / "f").read_bytes() == data  # not the flipped bit
        log = _log(mnt)
    assert "cache_entry_corrupt" in log and objects[1].split("/", 1)[1] in log, log[-3000:]
    assert (bucket / objects[1]).read_bytes() == store_copy
    with mounted(url, mnt):  # the entry was replaced by a good copy (or dropped): still right
        assert (mnt / "f").read_bytes() == data


@pytest.mark.parametrize("compress", ["none", "lz4"])
def test_a_flipped_byte_in_a_checksum_volume_is_eio_with_the_key_logged(tmp_path: Path, compress: str) -> None:
    url, bucket = _volume(tmp_path, compress, "--checksum")
    mnt = tmp_path / "mnt"
    data = _content(7)
    with mounted(url, mnt):
        (mnt / "f").write_bytes(data)
        victim = _objects(mnt / "f")[1]
    raw = bytearray((bucket / victim).read_bytes())
    # Uncompressed: a byte in the middle of the block. LZ4: the last byte, always inside a literal run.
    at = 1000 if compress == "none" else len(raw) - 1
    raw[at] ^= 0x01
    (bucket / victim).write_bytes(bytes(raw))
    shutil.rmtree(tmp_path / "mnt-cache")
    with mounted(url, mnt):
        start = time.monotonic()
        with pytest.raises(OSError) as e:
            (mnt / "f").read_bytes()
        assert e.value.errno == errno.EIO
        assert time.monotonic() - start < 10
        fd = os.open(mnt / "f", os.O_RDONLY)
        try:
            with pytest.raises(OSError) as e:
                os.pread(fd, 20, BS + 5000)  # a small read inside the block: not served by a ranged GET
            assert e.value.errno == errno.EIO
            assert os.pread(fd, BS, 0) == data[:BS]  # the other blocks read fine
            assert os.pread(fd, len(data), 2 * BS) == data[2 * BS:]
        finally:
            os.close(fd)
        log = _log(mnt)
    assert f"key={victim}" in log and "block_checksum_mismatch" in log, log[-3000:]
    assert "fuse_handler_failed" not in log


def test_a_volume_without_checksums_reads_a_flipped_byte_as_before(tmp_path: Path) -> None:
    url, bucket = _volume(tmp_path, "none")
    mnt = tmp_path / "mnt"
    data = _content(8)
    with mounted(url, mnt):
        (mnt / "f").write_bytes(data)
        victim = _objects(mnt / "f")[1]
    raw = bytearray((bucket / victim).read_bytes())
    raw[1000] ^= 0x01
    (bucket / victim).write_bytes(bytes(raw))
    shutil.rmtree(tmp_path / "mnt-cache")
    expected = bytearray(data)
    expected[BS + 1000] ^= 0x01
    with mounted(url, mnt):
        assert (mnt / "f").read_bytes() == bytes(expected)  # undetectable without --checksum (ADR 0005)
        log = _log(mnt)
    assert "block_checksum_mismatch" not in log
