"""The KV contract's tests of the built-in adapters themselves: failures a user meets with a bad address,
password, database, socket or file (Redis, SQLite, TiKV), each reported as ONE line (`EngineUnavailable`,
`BadMetaURL`) within a bounded time, never with a secret in it; SQLite URL options and lock waits.

Collected through `jfs.testing.kv_contract` (see there); skipped (fixture ``builtin_engines``) when
``--jfs-kv-url`` restricts the run to other engines.
"""


from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from jfs.adapters.kv.registry import BadMetaURL, open_kv
from jfs.domain.records import decode_i64
from jfs.ports.kv import (
    EngineError,
    EngineUnavailable,
    TooManyConflicts,
    Tx,
)
from jfs.testing.kv_contract_support import put_all, read_get, read_scan, rmw_body
from jfs.testing.servers import RedisServer, free_port, start_redis_server

pytestmark = pytest.mark.asyncio



async def _unavailable(url: str, within: float) -> str:
    t0 = time.monotonic()
    with pytest.raises(EngineUnavailable) as caught:
        kv = await open_kv(url)
        await kv.close()
    assert time.monotonic() - t0 < within
    message = str(caught.value)
    assert "\n" not in message
    return message


async def test_redis_unreachable(builtin_engines: None) -> None:
    port = free_port()
    message = await _unavailable(f"redis://127.0.0.1:{port}/0", 6)
    assert message.startswith(f"cannot reach Redis at 127.0.0.1:{port}: ")


async def test_redis_bad_password_and_bad_db(builtin_engines: None, redis_server: RedisServer) -> None:
    server = start_redis_server(password="right-pw")
    try:
        message = await _unavailable(f"redis://:wrong-pw@127.0.0.1:{server.port}/0", 6)
        assert "wrong-pw" not in message and "authentication" in message
        kv = await open_kv(f"redis://:right-pw@127.0.0.1:{server.port}/0")
        assert "right-pw" not in kv.url
        await kv.close()
    finally:
        server.stop()
    message = await _unavailable(f"{redis_server.url}/99", 6)
    assert "out of range" in message


async def test_redis_unix_socket_and_separate_db(builtin_engines: None, redis_server: RedisServer) -> None:
    unix = await open_kv(f"{redis_server.unix_url}?db=3")
    tcp = await open_kv(f"{redis_server.url}/4")
    try:
        await unix.reset()
        await tcp.reset()
        await put_all(unix, [(b"u", b"1")])
        assert await read_get(unix, b"u") == b"1"
        assert await read_get(tcp, b"u") is None
    finally:
        await unix.close()
        await tcp.close()


async def test_redis_reloads_flushed_scripts(builtin_engines: None, redis_server: RedisServer) -> None:
    import redis.asyncio as aioredis

    kv = await open_kv(f"{redis_server.url}/5")
    raw = aioredis.Redis.from_url(f"{redis_server.url}/5")
    try:
        await kv.reset()
        await raw.script_flush()
        await put_all(kv, [(b"a", b"1")])
        assert await read_scan(kv, b"a", b"b") == [(b"a", b"1")]
    finally:
        await raw.aclose()
        await kv.close()


async def test_redis_connection_lost_during_commit(
    builtin_engines: None, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jfs.adapters.kv.resp import ConnectionLost

    kv = await open_kv(f"{redis_server.url}/6")
    try:

        async def lost(*args: Any, **kw: Any) -> Any:
            raise ConnectionLost("Connection closed by server.")

        monkeypatch.setattr(kv._client, "evalsha", lost)  # type: ignore[attr-defined]
        with pytest.raises(EngineUnavailable, match="outcome of the transaction is unknown"):
            await put_all(kv, [(b"a", b"1")])
        with pytest.raises(EngineUnavailable, match="^cannot reach Redis"):
            await read_scan(kv, b"a", b"b")
    finally:
        await kv.close()


async def test_sqlite_missing_directory(builtin_engines: None) -> None:
    message = await _unavailable("sqlite3:///nonexistent/dir/x.db", 5)
    assert "/nonexistent/dir/x.db" in message and "does not exist" in message


async def test_sqlite_not_a_database(builtin_engines: None, tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(os.urandom(8192))
    message = await _unavailable(f"sqlite3://{junk}", 5)
    assert str(junk) in message and "not a database" in message


async def test_sqlite_foreign_database(builtin_engines: None, tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE jfs_node (inode INTEGER)")
    conn.close()
    assert "not a jfs metadata database" in await _unavailable(f"sqlite3://{path}", 5)


_OPEN_AS_CHILD = (
    "import asyncio, sys\n"
    "from jfs.adapters.kv.registry import open_kv\n"
    "from jfs.ports.kv import EngineUnavailable\n"
    "async def main():\n"
    "    try:\n"
    "        kv = await open_kv(sys.argv[1])\n"
    "    except EngineUnavailable as exc:\n"
    "        print(exc)\n"
    "        return\n"
    "    await kv.close()\n"
    "    print('OPENED')\n"
    "asyncio.run(main())\n"
)


def _unavailable_as_nobody(url: str) -> str:
    """`open_kv(url)`'s one-line refusal as seen by uid/gid 65534 (root is not stopped by file modes)."""

    def drop() -> None:
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)

    source_root = str(Path(__file__).resolve().parents[2])
    paths = [source_root, sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    env = {**os.environ, "HOME": "/tmp", "PYTHONNOUSERSITE": "1", "PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}
    v = sys.version_info
    # This interpreter may live under root's 0700 home: then a system one of the same version.
    for exe in (sys.executable, f"/usr/bin/python{v.major}.{v.minor}", f"/usr/local/bin/python{v.major}.{v.minor}"):
        try:
            probe = subprocess.run([exe, "-c", "import jfs.adapters.kv.registry"], preexec_fn=drop, env=env,
                                   cwd="/", capture_output=True, text=True, timeout=60)
        except OSError:
            continue
        if probe.returncode == 0:
            break
    else:
        pytest.skip(f"running as root, and uid 65534 finds no Python {v.major}.{v.minor} that imports jfs")
    res = subprocess.run([exe, "-c", _OPEN_AS_CHILD, url], preexec_fn=drop, env=env, cwd="/",
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert len(lines) == 1, res.stdout
    return lines[0]


async def test_sqlite_permission_denied(builtin_engines: None, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        assert "permission denied" in await _unavailable(f"sqlite3://{locked}/x.db", 5)
        return
    # Root ignores file modes: ask as an ordinary user, in a directory that user can reach but not write.
    with tempfile.TemporaryDirectory(prefix="jfs-perm-") as reachable:
        os.chmod(reachable, 0o755)
        locked = Path(reachable) / "locked"
        locked.mkdir(mode=0o555)
        message = _unavailable_as_nobody(f"sqlite3://{locked}/x.db")
        assert "permission denied" in message and str(locked) in message


async def test_sqlite_url_options(builtin_engines: None, tmp_path: Path) -> None:
    kv = await open_kv(f"sqlite3://{tmp_path}/o.db?synchronous=full&busy_timeout=100")
    await put_all(kv, [(b"a", b"1")])
    await kv.close()
    with pytest.raises(BadMetaURL):
        await open_kv(f"sqlite3://{tmp_path}/o.db?synchronous=sometimes")


async def test_sqlite_body_must_only_await_its_transaction(builtin_engines: None, tmp_path: Path) -> None:
    kv = await open_kv(f"sqlite3://{tmp_path}/a.db")
    try:

        async def body(tx: Tx) -> None:
            tx.put(b"a", b"1")
            await asyncio.sleep(0)

        with pytest.raises(EngineError, match="awaited something outside its transaction"):
            await kv.txn(body)
        assert await read_get(kv, b"a") is None
    finally:
        await kv.close()


async def test_sqlite_lock_wait_timeout_is_a_conflict(builtin_engines: None, tmp_path: Path) -> None:
    path = tmp_path / "busy.db"
    kv = await open_kv(f"sqlite3://{path}?busy_timeout=50")
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")  # another process holding the write lock
        with pytest.raises(TooManyConflicts):
            await kv.txn(rmw_body(b"k"), max_retries=2)
        holder.execute("ROLLBACK")
        await kv.txn(rmw_body(b"k"), max_retries=1)
        assert decode_i64(await read_get(kv, b"k")) == 1
    finally:
        holder.close()
        await kv.close()


async def test_tikv_unreachable_pd(builtin_engines: None) -> None:
    pytest.importorskip("tikv_client")
    port = free_port()
    message = await _unavailable(f"tikv://127.0.0.1:{port}/contract", 15)
    assert message.startswith(f"cannot reach TiKV PD at 127.0.0.1:{port}")
