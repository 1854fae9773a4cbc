"""A directory's attributes as this client's own commits left them (docs/adr/0043-etcd-directory-attributes-
known-from-own-commits.md): the kernel's GETATTR of a directory this mount has just changed is answered
without an etcd request, and the kernel keeps that answer only for the attribute timeout less its age — so
another client's change is seen no later than if the kernel had asked when the commit was sent.

Skipped without Debian's etcd-server.
"""

from __future__ import annotations

import asyncio
import os
import time
import urllib.request
import uuid
from pathlib import Path

from jfs.adapters.kv.registry import open_kv
from jfs.app.meta import Meta
from jfs.app.meta.engine import format_meta
from jfs.domain.attrs import ROOT_INODE
from jfs.domain.settings import Settings
from jfs.testing.etcd_cluster import EtcdCluster
from jfs.testing.mounts import format_volume, mounted


def requests(cluster: EtcdCluster) -> float:
    """KV requests the members have answered so far (their ``grpc_server_handled_total``)."""
    total = 0.0
    for m in cluster.members:
        text = urllib.request.urlopen(f"http://{m.endpoint}/metrics", timeout=10).read().decode()
        for line in text.splitlines():
            if line.startswith("grpc_server_handled_total{") and 'grpc_service="etcdserverpb.KV"' in line:
                total += float(line.rsplit(" ", 1)[1])
    return total


async def test_meta_knows_a_directory_it_just_changed_and_not_a_file(etcd_single: EtcdCluster) -> None:
    url = etcd_single.url(f"dirattr-{uuid.uuid4().hex[:10]}")
    kv = await open_kv(url)
    await format_meta(kv, Settings(name="dirattr", trash_days=0))
    a, b = await Meta.load(kv), await Meta.load(await open_kv(url))
    try:
        d, _ = await a.mkdir(ROOT_INODE, b"d", 0o755)
        for step in (a.mkdir(d, b"sub", 0o755), a.create(d, b"f", 0o644), a.unlink(d, b"f"), a.rmdir(d, b"sub")):
            await step
            hit = a.recent_dir_attr(d, 5.0)
            assert hit is not None and 0 <= hit[1] < 5.0
            assert hit[0].encode() == (await a.getattr(d)).encode()  # what the store holds
        ino, _ = await a.create(d, b"g", 0o644)
        assert a.recent_dir_attr(ino, 5.0) is None  # a file: always asked
        assert a.recent_dir_attr(d, 0.0) is None
        await b.mkdir(d, b"other", 0o755)  # another client: not known to `a` until it reads
        hit = a.recent_dir_attr(d, 5.0)
        assert hit is not None and hit[0].nlink == 2
        assert (await a.getattr(d)).nlink == 3
        assert a.recent_dir_attr(d, 5.0) is None  # a later version read since: never the old one again
    finally:
        await b.kv.close()
        await a.kv.reset()
        await a.kv.close()


def test_a_mount_answers_getattr_after_its_own_change_without_etcd_and_only_for_the_timeout(
    etcd_single: EtcdCluster, tmp_path: Path
) -> None:
    url = etcd_single.url(f"dirattr-{uuid.uuid4().hex[:10]}")
    format_volume(url, str(tmp_path / "bucket"), "dirattr")
    with mounted(url, tmp_path / "m") as m:
        d = m / "d"
        d.mkdir()
        n = 40
        before = requests(etcd_single)
        for i in range(n):
            open(d / f"f{i}", "wb").close()
        per_create = (requests(etcd_single) - before) / n
        # the kernel's lookup of the new name and the create's commit; not the directory's GETATTR
        assert per_create < 2.5, per_create

        async def other_client() -> None:
            b = await Meta.load(await open_kv(url))
            try:
                ino, _ = await b.lookup(ROOT_INODE, b"d")
                await b.mkdir(ino, b"by-other", 0o755)
            finally:
                await b.kv.close()

        fd = os.open(d, os.O_RDONLY)  # fstat: the kernel's GETATTR of d, no lookup of its name
        try:
            changed = time.monotonic()
            open(d / "last", "wb").close()  # this mount's change: the kernel drops d's attributes
            time.sleep(0.5)
            assert os.fstat(fd).st_nlink == 2  # answered from the commit, half a second old: kept for the rest
            asyncio.run(other_client())
            time.sleep(max(0.0, changed + 1.0 + 0.2 - time.monotonic()))  # attribute timeout 1 s + margin
            # another client's change is seen 1 s after this mount's commit, not 1 s after the fstat above
            assert os.fstat(fd).st_nlink == 3
        finally:
            os.close(fd)
