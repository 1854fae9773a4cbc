"""Backend faults under a live mount and a running workload.

* redis-server (appendonly, appendfsync always) killed and restarted: operations in flight complete or fail
  with EIO, nothing that was acknowledged (fsync'ed and closed, or renamed) is lost, and the same mount
  works again once Redis is back — no remount.
* The link to redis-server cut for a few seconds (redis in a network namespace behind a veth pair whose
  host end goes down; SIGSTOP of the server where namespaces are not available), coming back before the
  client's timeouts: operations stall and then complete; nothing fails, nothing is corrupted.
* SeaweedFS S3 stopped and restarted (same data directory and ports): uploads are retried or fail with
  EIO, acknowledged data survives, and the mount works again afterwards.
* A Redis that goes silent for good is given up on (EIO) one reply timeout after its last reply; the
  timeouts come from the META-URL (``?read_timeout=1s&dial_timeout=1s``), so these tests wait seconds, not
  the default minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jfs.testing.mounts import format_volume, is_mounted, jfs, mounted
from jfs.testing.plugin import started_or_skip
from jfs.testing.servers import RedisServer, RedisServerError, start_redis_server

WORKER = r"""
import hashlib, os, random, sys, time
root, seed, duration, stop = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
rnd = random.Random(seed)
d = os.path.join(root, f"w{seed}")
os.makedirs(d, exist_ok=True)
end = time.monotonic() + duration
i = 0
while time.monotonic() < end and not os.path.exists(stop):
    i += 1
    name = os.path.join(d, f"f{i}")
    data = rnd.randbytes(rnd.choice([0, 10, 5000, 100_000, 700_000]))
    step = "create"
    try:
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            step = "fsync"
            os.fsync(fd)
        finally:
            step = "close"
            os.close(fd)
        print("ACK", name, len(data), hashlib.sha256(data).hexdigest(), time.time(), flush=True)
        if i % 3 == 0:
            step = "rename"
            os.rename(name, name + "-moved")
            print("MOVED", name, time.time(), flush=True)
        if i % 4 == 0:
            step = "mkdir"
            os.mkdir(os.path.join(d, f"dir{i}"))
            print("DIR", os.path.join(d, f"dir{i}"), time.time(), flush=True)
    except OSError as e:
        print("ERR", step, e.errno, time.time(), flush=True)
        if step == "rename":
            print("MAYBE", name, time.time(), flush=True)
        time.sleep(0.05)
print("DONE", i, flush=True)
"""


class Workload:
    """`n` WORKER processes on a mount; `check` verifies what they were told was done.

    Workers stop after `duration` seconds, or earlier once `wait(until=…)` is reached: a fault test says
    how long the workload must go on *after* the fault, not in total (a slow restart on a busy CI machine
    must not leave no time for recovery)."""

    def __init__(self, root: Path, n: int, duration: float) -> None:
        self._stop = Path(tempfile.mkdtemp(prefix="jfs-workload-")) / "stop"
        self.procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(root), str(s), str(duration),
                                        str(self._stop)],
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                      for s in range(n)]
        self.lines: list[list[str]] = []
        # The workers' reports are drained as they come: a full pipe (64 KiB, ~450 reports) would block
        # a worker on print and look like a mount that stopped answering.
        self._out: dict[int, list[str]] = {p.pid: [] for p in self.procs}
        self._err: dict[int, list[str]] = {p.pid: [] for p in self.procs}
        self._readers = [threading.Thread(target=self._drain, args=(stream, sink), daemon=True)
                         for p in self.procs
                         for stream, sink in ((p.stdout, self._out[p.pid]), (p.stderr, self._err[p.pid]))]
        for t in self._readers:
            t.start()

    @staticmethod
    def _drain(stream: Any, sink: list[str]) -> None:
        for line in stream:
            sink.append(line)

    def wait(self, timeout: float = 180, until: float | None = None) -> None:
        """Collects the workers' reports; with `until` (a time.time()), tells them to stop at that time."""
        if until is not None:
            time.sleep(max(0.0, until - time.time()))
            self._stop.touch()
        for p in self.procs:
            try:
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                self._join()
                out, err = "".join(self._out[p.pid]), "".join(self._err[p.pid])
                raise AssertionError(f"a worker hung:\n{out[-2000:]}\n{err[-2000:]}") from None
        self._join()
        for p in self.procs:
            assert p.returncode == 0, "".join(self._err[p.pid])[-3000:]
            self.lines += [ln.split() for ln in self._out[p.pid] if ln.strip()]

    def _join(self) -> None:
        for t in self._readers:
            t.join(timeout=10)

    def kill(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        self._join()
        shutil.rmtree(self._stop.parent, ignore_errors=True)

    def errors(self) -> list[list[str]]:
        return [ln for ln in self.lines if ln[0] == "ERR"]

    def acks_after(self, t: float) -> int:
        return sum(1 for ln in self.lines if ln[0] == "ACK" and float(ln[4]) > t)

    def check(self) -> int:
        """Every acknowledged file is where it was last put, with its bytes; returns how many."""
        moved = {ln[1] for ln in self.lines if ln[0] == "MOVED"}
        maybe = {ln[1] for ln in self.lines if ln[0] == "MAYBE"}
        n = 0
        for ln in self.lines:
            if ln[0] == "DIR":
                assert os.path.isdir(ln[1]), ln
            if ln[0] != "ACK":
                continue
            _, name, length, digest, _ = ln
            where = [name + "-moved"] if name in moved else [name, name + "-moved"] if name in maybe else [name]
            found = [w for w in where if os.path.exists(w)]
            assert len(found) == 1, (name, where)
            with open(found[0], "rb") as f:
                data = f.read()
            assert len(data) == int(length) and hashlib.sha256(data).hexdigest() == digest, found[0]
            n += 1
        return n


def _usage_matches(url: str, root: Path) -> None:
    """`jfs status` UsedSpace/UsedInodes equal a walk of the volume (align4k(size) per inode)."""
    seen: dict[int, int] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        if Path(dirpath) == root:
            dirnames[:] = [d for d in dirnames if d != ".trash"]
            filenames = [f for f in filenames if not f.startswith(".")]
        for name in dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, name))
            seen[st.st_ino] = 4096 if st.st_size == 0 else -(-st.st_size // 4096) * 4096
    stat_ = json.loads(jfs("status", url, "--json").stdout)["Statistic"]
    assert (stat_["UsedSpace"], stat_["UsedInodes"]) == (sum(seen.values()), len(seen)), stat_


def _fsck_clean(url: str) -> None:
    res = jfs("fsck", url, check=False)
    assert res.returncode == 0, f"jfs fsck failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"


@contextlib.contextmanager
def _persistent_redis() -> Iterator[RedisServer]:
    with started_or_skip(
        lambda: start_redis_server("--appendonly", "yes", "--appendfsync", "always", "--save", ""), RedisServerError
    ) as server:
        yield server


def _restart_redis(server: RedisServer, down: float) -> None:
    """SIGKILL the server (no goodbye to clients), wait `down` seconds, start it again on the same port
    and directory (it replays its append-only file)."""
    cmd = list(server.process.args)  # type: ignore[arg-type]
    server.process.kill()
    server.process.wait()
    time.sleep(down)
    log = open(os.path.join(server.directory, "redis.log"), "ab")
    server.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    log.close()
    deadline = time.monotonic() + 20
    while True:
        with contextlib.suppress(OSError):
            import socket

            with socket.create_connection(("127.0.0.1", server.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                if s.recv(64).startswith(b"+PONG"):
                    return
        assert server.process.poll() is None and time.monotonic() < deadline, "redis did not come back"
        time.sleep(0.05)


def _mount_dir() -> Iterator[Path]:
    outside = Path(tempfile.mkdtemp(prefix="jfs-faults-"))
    try:
        yield outside
    finally:
        shutil.rmtree(outside, ignore_errors=True)


@pytest.fixture
def place() -> Iterator[Path]:
    yield from _mount_dir()


def test_redis_restart_during_a_workload(place: Path) -> None:
    with _persistent_redis() as redis:
        url = f"{redis.url}/1"
        format_volume(url, str(place / "bucket"))
        with mounted(url, place / "mnt") as mnt:
            work = Workload(mnt, 2, 120.0)
            try:
                time.sleep(2.0)
                _restart_redis(redis, down=1.5)
                back = time.time()
                work.wait(until=back + 4.0)
            finally:
                work.kill()
            assert work.errors(), "no operation failed while Redis was down?"
            assert {e[2] for e in work.errors()} == {"5"}, work.errors()  # EIO, nothing else
            assert work.acks_after(back + 1.0) > 3, "the mount did not recover after Redis came back"
            acked = work.check()
            (mnt / "after").write_bytes(b"works")
            assert (mnt / "after").read_bytes() == b"works"
            _usage_matches(url, mnt)
            log = (place / "mnt.log").read_text(errors="replace")
            assert "redis_connection_lost" in log
            assert "meta_engine_failed" in log and "fuse_handler_failed" not in log  # one line each, no traceback
        with mounted(url, place / "mnt"):  # a fresh client sees all of it too
            assert work.check() == acked
        _fsck_clean(url)


class _Link:
    """redis-server in a network namespace of its own, reached over a veth pair: `cut` takes the link down
    (packets are dropped, connections hang without a reset, as when a cable is pulled), `restore`
    brings it back. (Taking the host end down would drop the host's route, and this sandbox sends such
    packets to a proxy that answers garbage: the far end goes down instead.) Without `ip` or the right to create namespaces, `cut` freezes the server (SIGSTOP)
    instead — to the client, the same silence."""

    def __init__(self) -> None:
        self.tag = os.urandom(3).hex()
        self.ns = f"jfs-{self.tag}"
        self.host_if, self.peer_if = f"jh{self.tag}", f"jr{self.tag}"
        octet = int(self.tag[:2], 16)
        self.host_ip, self.peer_ip = f"10.213.{octet}.1", f"10.213.{octet}.2"
        self.dir = tempfile.mkdtemp(prefix="jfs-redis-ns-")
        self.password = os.urandom(8).hex()
        self.proc: subprocess.Popen[bytes] | None = None
        self.netns = False
        self.server: RedisServer | None = None

    def _ip(self, *args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)

    def start(self) -> str:
        try:
            self._ip("netns", "add", self.ns)
            self.netns = True
            self._ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.peer_if)
            self._ip("link", "set", self.peer_if, "netns", self.ns)
            self._ip("addr", "add", f"{self.host_ip}/30", "dev", self.host_if)
            self._ip("link", "set", self.host_if, "up")
            self._ip("-n", self.ns, "addr", "add", f"{self.peer_ip}/30", "dev", self.peer_if)
            self._ip("-n", self.ns, "link", "set", self.peer_if, "up")
            self._ip("-n", self.ns, "link", "set", "lo", "up")
        except (OSError, subprocess.CalledProcessError):
            self.stop()
            self.netns = False
            try:
                self.server = start_redis_server("--appendonly", "yes", "--appendfsync", "always", "--save", "")
            except RedisServerError as exc:
                pytest.skip(str(exc))
            return f"{self.server.url}/1"
        log = open(os.path.join(self.dir, "redis.log"), "wb")
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, shutil.which("redis-server") or "redis-server", "--bind", self.peer_ip,
             "--port", "6379", "--dir", self.dir, "--requirepass", self.password, "--appendonly", "yes",
             "--appendfsync", "always", "--save", ""], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        import socket

        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection((self.peer_ip, 6379), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                if s.recv(64).startswith((b"+PONG", b"-NOAUTH")):
                    break
            assert self.proc.poll() is None and time.monotonic() < deadline, "redis in the namespace did not start"
            time.sleep(0.05)
        return f"redis://:{self.password}@{self.peer_ip}:6379/1"

    def cut(self) -> None:
        if self.netns:  # the far end: the host keeps its route, packets go into the veth and are lost
            self._ip("-n", self.ns, "link", "set", self.peer_if, "down")
        else:
            assert self.server is not None
            self.server.process.send_signal(signal.SIGSTOP)

    def restore(self) -> None:
        if self.netns:
            self._ip("-n", self.ns, "link", "set", self.peer_if, "up")
        elif self.server is not None:
            self.server.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.server is not None:
            self.server.process.send_signal(signal.SIGCONT)
            self.server.stop()
        if self.netns:
            subprocess.run(["ip", "link", "del", self.host_if], capture_output=True, timeout=10)
            subprocess.run(["ip", "netns", "del", self.ns], capture_output=True, timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


def test_redis_link_cut_for_a_while_stalls_then_recovers(place: Path) -> None:
    """The link to Redis goes silent (no replies, no resets) and comes back within the client's timeouts:
    operations stall, then complete; nothing fails, nothing is lost or corrupted, no remount."""
    link = _Link()
    try:
        url = link.start()
        format_volume(url, str(place / "bucket"))
        with mounted(url, place / "mnt") as mnt:
            work = Workload(mnt, 2, 120.0)
            try:
                time.sleep(1.5)
                link.cut()
                try:
                    time.sleep(3.0)
                finally:
                    link.restore()
                back = time.time()
                work.wait(until=back + 2.5)
            finally:
                work.kill()
            assert not work.errors(), work.errors()
            acks = sorted(float(ln[4]) for ln in work.lines if ln[0] == "ACK")
            assert max(b - a for a, b in zip(acks, acks[1:], strict=False)) > 2.0, "the cut did not cut"
            assert work.acks_after(back + 0.5) > 3
            work.check()
            _usage_matches(url, mnt)
    finally:
        link.stop()


# --------------------------------------------------------------------------------------------- S3

@contextlib.contextmanager
def _restartable_seaweed() -> Iterator[tuple[object, callable]]:  # type: ignore[valid-type]
    """A private SeaweedFS (the session one must not be disturbed) and a function restarting it."""
    from jfs.testing import seaweed as sw

    try:
        binary = sw.weed_binary()
    except sw.SeaweedUnavailable as exc:
        pytest.skip(str(exc))
    data_dir = Path(tempfile.mkdtemp(prefix="jfs-seaweed-restart-"))
    identity = {"name": "jfs", "credentials": [{"accessKey": sw.ACCESS_KEY, "secretKey": sw.SECRET_KEY}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"]}
    (data_dir / "s3.json").write_text(json.dumps({"identities": [identity]}))
    ports = sw._free_ports(8)
    server = sw.SeaweedS3(f"http://127.0.0.1:{ports[6]}", "faults", sw.ACCESS_KEY, sw.SECRET_KEY, data_dir)
    state = {"proc": sw._start(binary, data_dir, ports)}
    try:
        sw._wait_ready(server, state["proc"], data_dir / "weed.log", time.monotonic() + 60)

        def restart(down: float) -> None:
            sw._stop(state["proc"])
            time.sleep(down)
            state["proc"] = sw._start(binary, data_dir, ports)
            sw._wait_ready(server, state["proc"], data_dir / "weed.log", time.monotonic() + 60)

        yield server, restart
    finally:
        sw._cleanup(state["proc"], ports)
        shutil.rmtree(data_dir, ignore_errors=True)


def test_seaweedfs_restart_during_a_workload(place: Path) -> None:
    with _restartable_seaweed() as (s3, restart):
        url = f"sqlite3://{place}/meta.db"
        format_volume(url, s3.url, "test-vol", "--storage", "s3", "--access-key", s3.access_key,  # type: ignore[attr-defined]
                      "--secret-key", s3.secret_key)  # type: ignore[attr-defined]
        with mounted(url, place / "mnt") as mnt:
            (mnt / "before").write_bytes(os.urandom(300_000))
            before = (mnt / "before").read_bytes()
            work = Workload(mnt, 2, 120.0)
            try:
                time.sleep(1.5)
                restart(1.0)
                back = time.time()
                work.wait(until=back + 8.0)
            finally:
                work.kill()
            assert {e[2] for e in work.errors()} <= {"5"}, work.errors()  # retried, or EIO
            acked = work.check()
            assert acked > 0 and work.acks_after(back) > 0, "no progress after SeaweedFS came back"
            (mnt / "after").write_bytes(b"works")
            assert (mnt / "after").read_bytes() == b"works"
            assert is_mounted(str(mnt))
        shutil.rmtree(place / "mnt-cache")  # read everything back from the restarted store
        with mounted(url, place / "mnt") as mnt:
            assert (mnt / "before").read_bytes() == before
            assert work.check() == acked
            _usage_matches(url, mnt)
        _fsck_clean(url)


# ------------------------------------------------------------------------------------ silent server

async def _silent_after_never(reader_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A fake Redis: PING answered at once, ``GET slow`` after 0.6 s (in order), and from ``GET never`` on
    it sends nothing more — a server (or link) gone silent without closing anything."""
    import hiredis

    parser = hiredis.Reader()
    silent = False
    replies: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def send() -> None:
        while True:
            due, data = await replies.get()
            await asyncio.sleep(max(0.0, due - asyncio.get_running_loop().time()))
            writer.write(data)

    sender = asyncio.create_task(send())
    try:
        while data := await reader_.read(65536):
            parser.feed(data)
            while (cmd := parser.gets()) is not False:
                now = asyncio.get_running_loop().time()
                if silent:
                    continue
                if cmd[0].upper() == b"PING":
                    replies.put_nowait((now, b"+PONG\r\n"))
                elif cmd[1] == b"never":
                    silent = True
                else:
                    replies.put_nowait((now + 0.6, b"$-1\r\n"))
    finally:
        sender.cancel()
        writer.close()


async def test_a_silent_redis_is_given_up_on_after_the_reply_timeout_not_twice_that() -> None:
    """The client notices a server gone quiet `timeout` seconds after the last bytes it sent (here 1 s),
    not up to twice that (a reply counted in the previous check interval must not buy another interval)."""
    from jfs.adapters.kv.redis_url import RedisTarget
    from jfs.adapters.kv.resp import ConnectionLost, RespClient

    server = await asyncio.start_server(_silent_after_never, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = RespClient(RedisTarget(host="127.0.0.1", port=port), timeout=1.0, connect_timeout=2.0)
    loop = asyncio.get_running_loop()
    try:
        t0 = loop.time()
        await client.connect()  # the handshake arms the first check at t0 + 1
        background: list[asyncio.Task[object]] = []
        while loop.time() < t0 + 1.45:  # steady traffic whose replies keep arriving until ~t0 + 2.05
            background.append(asyncio.ensure_future(client.execute(b"GET", b"slow")))
            await asyncio.sleep(0.1)
        sent = loop.time()
        with pytest.raises(ConnectionLost):
            await asyncio.wait_for(client.execute(b"GET", b"never"), 10)
        waited = loop.time() - sent
        assert waited < 2.0, f"gave up after {waited:.2f} s: the last reply came 0.6 s after the send, timeout 1 s"
        assert waited > 1.3
        await asyncio.gather(*background, return_exceptions=True)
    finally:
        await client.close()
        server.close()
        await server.wait_closed()


def _frozen_redis() -> RedisServer:
    try:
        return start_redis_server()
    except RedisServerError as exc:
        pytest.skip(str(exc))


async def test_the_reply_timeout_comes_from_the_meta_url() -> None:
    """A real redis-server frozen (SIGSTOP: connections stay open, nothing is answered) is given up on
    after the URL's read_timeout (plus one reconnect bounded by its dial_timeout), not after 60 s."""
    from jfs.adapters.kv.registry import open_kv
    from jfs.ports.kv import EngineUnavailable

    server = _frozen_redis()
    kv = await open_kv(f"{server.url}/3?read_timeout=1s&dial_timeout=1s")
    loop = asyncio.get_running_loop()

    async def get(tx: object) -> object:
        return await tx.get(b"some-key")  # type: ignore[attr-defined]

    try:
        assert await kv.read(get) is None
        server.process.send_signal(signal.SIGSTOP)
        try:
            t0 = loop.time()
            with pytest.raises(EngineUnavailable):
                await asyncio.wait_for(kv.read(get), 30)
            waited = loop.time() - t0
            assert 0.9 < waited < 5.0, f"gave up after {waited:.1f} s with read_timeout=1s and dial_timeout=1s"
        finally:
            server.process.send_signal(signal.SIGCONT)
        assert await kv.read(get) is None  # the same client works again once the server answers
    finally:
        await kv.close()
        server.stop()


def test_a_mount_gives_up_on_a_silent_redis_after_the_url_timeout(place: Path) -> None:
    """Through a real mount: with the server frozen, a lookup fails with EIO after a few seconds (the
    URL's timeouts), the mount survives, and serves again once the server is back."""
    server = _frozen_redis()
    try:
        url = f"{server.url}/4?read_timeout=2s&dial_timeout=1s"
        format_volume(url, str(place / "bucket"))
        with mounted(url, place / "mnt") as mnt:
            (mnt / "before").write_bytes(b"x")
            server.process.send_signal(signal.SIGSTOP)
            try:
                t0 = time.monotonic()
                with pytest.raises(OSError) as e:
                    os.stat(mnt / "never-looked-up")
                waited = time.monotonic() - t0
            finally:
                server.process.send_signal(signal.SIGCONT)
            assert e.value.errno == errno.EIO, e.value
            assert waited < 20, f"gave up after {waited:.1f} s with read_timeout=2s"
            assert (mnt / "before").read_bytes() == b"x"
            (mnt / "after").write_bytes(b"y")
            assert (mnt / "after").read_bytes() == b"y"
    finally:
        server.stop()
