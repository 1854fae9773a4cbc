"""Slice commits that assume what this client's previous commit left (`CommitTails`, `AssumingTx`): on
every engine, a commit after another client changed the file meanwhile keeps both changes."""

from __future__ import annotations

import pytest
from meta_pairs import two_clients_on

from jfs.adapters.kv.registry import open_kv
from jfs.app.meta import Meta
from jfs.app.meta.setattr import SetAttr
from jfs.app.meta.tails import MISS_PAUSE, CommitTails
from jfs.domain.attrs import ROOT_INODE


async def _commit(m: Meta, ino: int, pos: int) -> None:
    await m.write_slice(ino, 0, pos, await m.next_slice_id(), 4096, 0, 4096)


async def test_commits_keep_what_another_client_changed_meanwhile(two_clients: tuple[Meta, Meta]) -> None:
    a, b = two_clients
    ino, _ = await a.create(ROOT_INODE, b"f", 0o644)
    await _commit(a, ino, 0)
    await _commit(a, ino, 4096)  # a guess from the first commit
    await _commit(b, ino, 8192)  # the other client appends a record: a's guess of the chunk is stale
    await b.setattr(ino, SetAttr(mode=0o600))  # and changes the attributes
    await _commit(a, ino, 12288)
    records = await a.read_chunk(ino, 0)
    assert [r.pos for r in records] == [0, 4096, 8192, 12288]
    attr = await a.getattr(ino)
    assert attr.length == 16384 and attr.mode & 0o777 == 0o600
    for pos in range(16384, 16384 + 4096 * (MISS_PAUSE + 2), 4096):  # guesses resume after the pause
        await _commit(a, ino, pos)
    assert len(await a.read_chunk(ino, 0)) == 4 + MISS_PAUSE + 2


async def test_a_new_files_first_commit_keeps_what_another_client_did_meanwhile(
    two_clients: tuple[Meta, Meta],
) -> None:
    """The first commit of a file this client created assumes its attributes and an empty chunk 0 (ADR 0072):
    another client's change in between (attributes, a record in chunk 0) is kept, nothing lost."""
    a, b = two_clients
    ino, _ = await a.create(ROOT_INODE, b"n", 0o644)
    await b.setattr(ino, SetAttr(mode=0o600))
    await _commit(a, ino, 0)
    attr = await a.getattr(ino)
    assert attr.length == 4096 and attr.mode & 0o777 == 0o600
    ino2, _ = await a.create(ROOT_INODE, b"n2", 0o644)
    await _commit(b, ino2, 4096)  # the other client writes chunk 0 first: a's empty-chunk guess is stale
    await _commit(a, ino2, 0)
    assert [r.pos for r in await a.read_chunk(ino2, 0)] == [4096, 0]
    assert (await a.getattr(ino2)).length == 8192


async def test_a_change_by_this_client_drops_the_guess(two_clients: tuple[Meta, Meta]) -> None:
    a, _ = two_clients
    ino, _ = await a.create(ROOT_INODE, b"g", 0o644)
    await _commit(a, ino, 0)
    await a.setattr(ino, SetAttr(mode=0o640))
    await _commit(a, ino, 4096)
    attr = await a.getattr(ino)
    assert attr.mode & 0o777 == 0o640 and attr.length == 8192


def test_a_created_file_is_guessed_empty_at_chunk_0_only() -> None:
    t = CommitTails()
    t.keep_created(7, b"attr")
    assert t.take(7, 1) is None
    assert t.take(7, 0) == (b"attr", 0)
    t.keep_created(8, b"attr")
    t.forget((8,))  # this client changed it meanwhile (setattr, truncate): read first
    assert t.take(8, 0) is None


def test_tails_hand_out_a_guess_once_and_pause_after_a_miss() -> None:
    t = CommitTails()
    assert t.take(1, 0) is None
    t.keep(1, 0, b"attr", 240)
    assert t.take(1, 1) is None  # another chunk: no guess
    assert t.take(1, 0) == (b"attr", 240)
    assert t.take(1, 0) is None  # handed out once
    t.keep(1, 0, b"attr", 240)
    t.missed(1)
    for _ in range(MISS_PAUSE):
        t.keep(1, 0, b"attr", 240)
        assert t.take(1, 0) is None
    t.keep(1, 0, b"attr", 240)
    assert t.take(1, 0) == (b"attr", 240)
    t.keep(2, 0, b"a", 24)
    t.forget((2,))
    assert t.take(2, 0) is None


async def test_on_redis_a_guessed_commit_is_one_round_trip(redis_server_url: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Redis only (the other engines validate reads at commit by version, not by value): a guessed commit is
    one script call, no read first."""
    kv = await open_kv(f"{redis_server_url}/13")
    await kv.reset()
    try:
        async with two_clients_on(kv) as (a, _):
            ino, _ = await a.create(ROOT_INODE, b"h", 0o644)
            await _commit(a, ino, 0)
            sid = await a.next_slice_id()
            calls: list[bytes] = []
            client = kv._client  # type: ignore[attr-defined]  # every command goes through execute_packed
            inner = client.execute_packed

            async def counted(command: bytes) -> object:
                calls.append(command)
                return await inner(command)

            monkeypatch.setattr(client, "execute_packed", counted)
            await a.write_slice(ino, 0, 4096, sid, 4096, 0, 4096)
            assert len(calls) == 1 and kv._sha["commit"] in calls[0]  # type: ignore[attr-defined]
            # A file this client has just created: its first commit is one script call too (ADR 0072).
            monkeypatch.undo()
            new, _ = await a.create(ROOT_INODE, b"h2", 0o644)
            sid = await a.next_slice_id()
            monkeypatch.setattr(client, "execute_packed", counted)
            calls.clear()
            await a.write_slice(new, 0, 0, sid, 4096, 0, 4096)
            assert len(calls) == 1 and kv._sha["commit"] in calls[0]  # type: ignore[attr-defined]
            assert (await a.getattr(new)).length == 4096
            assert len(await a.read_chunk(new, 0)) == 1
    finally:
        await kv.reset()
        await kv.close()
