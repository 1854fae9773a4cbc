"""`body.digested` on block-sized pieces: every digest right whatever the piece and stride sizes, pieces
hashed in order while the consumer holds them, the checks run before the iterator ends (a bad digest
raises there, after the last piece), an abandoned body leaves no error behind."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import os
from collections.abc import AsyncIterator

import pytest

from jfs.adapters.s3gw.body import HASH_STRIDE, THREAD_HASH, digested
from jfs.adapters.s3gw.errors import S3Error
from jfs.app.objectview.checksums import FACTORIES


async def _pieces(data: bytes, size: int) -> AsyncIterator[bytes]:
    for at in range(0, len(data), size):
        yield data[at:at + size]


@pytest.mark.parametrize("size", [1000, THREAD_HASH, HASH_STRIDE + 1, 3 * HASH_STRIDE + 7, 4 << 20])
def test_every_digest_matches_one_pass_over_the_whole(size: int) -> None:
    data = os.urandom(2 * size + 123)
    hashers = [hashlib.md5(), hashlib.sha256(), FACTORIES["crc32"](), FACTORIES["crc32c"]()]

    async def go() -> bytes:
        return b"".join([p async for p in digested(_pieces(data, size), hashers, [])])

    assert asyncio.run(go()) == data
    for h, name in zip(hashers, ["md5", "sha256", "crc32", "crc32c"], strict=True):
        want = FACTORIES[name]() if name in FACTORIES else hashlib.new(name)  # md5 is no S3 checksum
        want.update(data)
        assert h.digest() == want.digest(), name


def test_checks_run_after_the_last_piece_before_the_end() -> None:
    data = os.urandom(3 * THREAD_HASH)
    md5 = hashlib.md5()
    seen: list[str] = []

    def check() -> None:
        seen.append(md5.hexdigest())
        raise S3Error("BadDigest", "no")

    async def go() -> int:
        n = 0
        async for piece in digested(_pieces(data, THREAD_HASH), [md5], [check]):
            n += len(piece)
        return n

    with pytest.raises(S3Error):
        asyncio.run(go())
    assert seen == [hashlib.md5(data).hexdigest()]  # the whole body was hashed when the check ran


def test_abandoned_body_leaves_no_unretrieved_error() -> None:
    class Failing:
        def update(self, data: bytes) -> None:
            raise RuntimeError("hasher broke")

    async def go() -> None:
        it = digested(_pieces(os.urandom(2 * THREAD_HASH), THREAD_HASH), [Failing()], [])
        assert await anext(it)
        await it.aclose()
        await asyncio.sleep(0.05)

    errors: list[object] = []
    loop = asyncio.new_event_loop()
    loop.set_exception_handler(lambda _loop, ctx: errors.append(ctx))
    try:
        loop.run_until_complete(go())
    finally:
        loop.close()
    gc.collect()  # an unretrieved future exception is reported when the future is collected
    assert errors == []
