"""`LoopPuts` (ADR 0103): small PUTs sent from the event loop to SeaweedFS, kept-alive connections, and the
fall-back to the threads' `ObjectRequests` on anything but a 2xx answer (a local fake server)."""

from __future__ import annotations

import asyncio
import http.server
import socket
import threading
from collections.abc import Iterator

import pytest

from jfs.adapters.objects.s3 import S3Store
from jfs.adapters.objects.s3_loop import LOOP_PUT_MAX
from jfs.ports.objects import ObjectStoreError
from jfs.testing.object_fixtures import *  # noqa: F403  (the seaweed_s3 session fixture)
from jfs.testing.seaweed import SeaweedS3
from jfs.testing.servers import local_http_server


def _store(seaweed_s3: SeaweedS3) -> S3Store:
    return S3Store(seaweed_s3.url, access_key=seaweed_s3.access_key, secret_key=seaweed_s3.secret_key)


async def test_small_puts_go_from_the_loop_over_one_kept_connection(seaweed_s3: SeaweedS3) -> None:
    s = _store(seaweed_s3)
    try:
        loop_puts = s._loop_puts
        assert loop_puts is not None
        bodies = {f"loop/small/{i}": bytes([i]) * (100 + i * 1000) for i in range(20)}
        for key, body in bodies.items():
            await s.put(key, body)
        assert loop_puts.connections == 1  # one connection, kept alive across the puts
        await s.put("loop/edge", b"e" * LOOP_PUT_MAX)  # the largest body sent from the loop
        assert loop_puts.connections == 1
        await s.put("loop/big", b"b" * (LOOP_PUT_MAX + 1))  # through the threads
        assert loop_puts.connections == 1 and loop_puts.stored == 21
        await asyncio.gather(*(s.put(f"loop/many/{i}", b"m" * 5000) for i in range(16)))
        assert loop_puts.connections <= 16
        assert loop_puts.stored == 20 + 1 + 16  # none of them fell back to the threads
        for key, body in bodies.items():
            assert await s.get(key) == body
        assert await s.get("loop/edge") == b"e" * LOOP_PUT_MAX
        assert len(await s.get("loop/big")) == LOOP_PUT_MAX + 1
        assert all([await s.get(f"loop/many/{i}") == b"m" * 5000 for i in range(16)])
    finally:
        await s.close()


async def test_connections_are_not_shared_across_loops(seaweed_s3: SeaweedS3) -> None:
    """A store used from a second loop (the SDK's, a later `asyncio.run`) opens its own connections."""
    s = _store(seaweed_s3)
    try:
        await s.put("loops/a", b"a")
        done = threading.Event()

        def other() -> None:
            asyncio.run(s.put("loops/b", b"b"))
            done.set()

        t = threading.Thread(target=other)
        t.start()
        await asyncio.to_thread(t.join)
        assert done.is_set()
        await s.put("loops/c", b"c")
        assert s._loop_puts is not None and s._loop_puts.connections == 3
        assert [await s.get(f"loops/{k}") for k in "abc"] == [b"a", b"b", b"c"]
    finally:
        await s.close()


class _Answers(http.server.BaseHTTPRequestHandler):
    """Answers each PUT with the next status of `plan` (then 200), HTTP/1.1 with keep-alive."""

    protocol_version = "HTTP/1.1"
    plan: list[int] = []  # noqa: RUF012 - reset per test
    seen: list[str] = []  # noqa: RUF012 - reset per test

    def do_PUT(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        type(self).seen.append(self.headers.get("x-amz-content-sha256", ""))
        status = type(self).plan.pop(0) if type(self).plan else 200
        body = b"" if status == 200 else b"<Error><Code>SlowDown</Code><Message>easy</Message></Error>"
        self.send_response(status)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def answers() -> Iterator[str]:
    _Answers.plan = []
    _Answers.seen = []
    with local_http_server(_Answers) as url:
        yield url


async def test_a_refused_loop_put_is_sent_again_from_the_threads(
    answers: str, monkeypatch: pytest.MonkeyPatch
) -> None:  # fmt: skip
    monkeypatch.setattr("jfs.adapters.objects.s3_requests.time.sleep", lambda s: None)
    s = S3Store(f"{answers}/bkt", access_key="AK", secret_key="SK", max_attempts=2)
    try:
        _Answers.plan = [503]
        await s.put("k", b"x")  # the loop's attempt refused, the threads' first one stored it
        assert len(_Answers.seen) == 2 and set(_Answers.seen) == {"UNSIGNED-PAYLOAD"}
        _Answers.plan = [503, 503, 503]
        with pytest.raises(ObjectStoreError, match="SlowDown"):
            await s.put("k", b"x")  # one loop attempt, then the threads' two: the port's error
        assert len(_Answers.seen) == 5
        await s.put("k", b"x")
        assert len(_Answers.seen) == 6
    finally:
        await s.close()


async def test_a_server_that_closes_kept_connections_costs_no_failed_put(answers: str) -> None:
    """The server drops an idle connection: the next put notices and connects again (nothing sent twice)."""
    s = S3Store(f"{answers}/bkt", access_key="AK", secret_key="SK", max_attempts=1)
    try:
        await s.put("k1", b"1")
        loop_puts = s._loop_puts
        assert loop_puts is not None and loop_puts.connections == 1
        for _, writer in loop_puts._idle:
            sock = writer.get_extra_info("socket")
            sock.shutdown(socket.SHUT_RDWR)  # as a server closing it: the reader sees EOF
        await asyncio.sleep(0.05)
        await s.put("k2", b"2")
        assert loop_puts.connections == 2
        assert len(_Answers.seen) == 2
    finally:
        await s.close()


async def test_an_unreachable_endpoint_is_the_usual_one_line_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed once this block ends: nobody listens there
    s = S3Store(f"http://127.0.0.1:{port}/bkt", access_key="AK", secret_key="SK", max_attempts=1,
                connect_timeout=1)  # fmt: skip
    try:
        with pytest.raises(ObjectStoreError) as err:
            await s.put("k", b"x")
        assert "\n" not in str(err.value) and f"127.0.0.1:{port}" in str(err.value)
    finally:
        await s.close()


async def test_a_server_that_never_answers_times_out_on_both_paths() -> None:
    """The loop's attempt gives up after the read timeout (it does not hang the put), then the threads'."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        port = server.getsockname()[1]
        s = S3Store(f"http://127.0.0.1:{port}/bkt", access_key="AK", secret_key="SK", max_attempts=1,
                    read_timeout=0.5)  # fmt: skip
        try:
            loop = asyncio.get_running_loop()
            start = loop.time()
            with pytest.raises(ObjectStoreError):
                await asyncio.wait_for(s.put("k", b"x" * 1000), 30)
            assert loop.time() - start < 10
            assert s._loop_puts is not None and s._loop_puts.stored == 0
        finally:
            await s.close()
