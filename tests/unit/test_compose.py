"""The composition root `jfs.compose`: a volume opened from a META-URL, closed in the reverse order, and the
use cases it feeds (they take opened ports and report on the one progress protocol)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from jfs.app.errors import JfsError, VolumeError
from jfs.app.meta.engine import VolumeNotFormatted
from jfs.app.ops.dump import dump_meta
from jfs.app.ops.load import dump_events, load_meta
from jfs.compose import format_volume, open_volume, opened_engine, update_settings, volume_status
from jfs.domain.settings import Settings


class RecordingBar:
    def __init__(self, board: RecordingBoard, description: str, total: int | None, unit: str) -> None:
        self.description, self.total, self.unit = description, total, unit
        self.done = 0
        self.closed = False
        board.bars.append(self)

    def advance(self, n: int = 1) -> None:
        assert not self.closed
        self.done += n

    def set_total(self, total: int) -> None:
        self.total = total

    def close(self) -> None:
        self.closed = True


class RecordingBoard:
    def __init__(self) -> None:
        self.bars: list[RecordingBar] = []

    def bar(self, description: str, total: int | None = None, *, unit: str = "") -> RecordingBar:
        return RecordingBar(self, description, total, unit)


@pytest.fixture
async def url(tmp_path: Path) -> str:
    url = f"memory://compose-{uuid.uuid4().hex}"
    await format_volume(url, Settings(name="composed", storage="file", bucket=str(tmp_path / "bucket"), trash_days=0))
    return url


async def test_open_volume_loads_meta_without_a_session_and_opens_the_store_on_demand(url: str) -> None:
    async with open_volume(url) as vol:
        assert vol.settings.name == "composed"
        assert vol._store is None  # not opened until asked for
        store = await vol.store()
        assert await vol.store() is store
        await store.put("composed/probe", b"x")
        assert (await volume_status(url))["Sessions"] == []
    async with open_volume(url) as vol:
        assert await (await vol.store()).get("composed/probe") == b"x"
        await (await vol.store()).delete("composed/probe")


async def test_open_volume_closes_in_reverse_order(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    order: list[str] = []
    async with open_volume(url, session="test:compose", background=False) as vol:
        store = await vol.store()
        for name, obj in (("store", store), ("meta", vol.meta), ("kv", vol.kv)):
            close = obj.close

            async def recorded(close: Any = close, name: str = name) -> None:
                order.append(name)
                await close()

            monkeypatch.setattr(obj, "close", recorded)
    assert order == ["store", "meta", "kv"]


async def test_a_session_is_started_when_asked_and_ended_on_exit(url: str) -> None:
    async with open_volume(url, session="test:compose", background=False) as vol:
        assert vol.meta.sid
        sessions = (await volume_status(url))["Sessions"]
        assert [s["MountPoint"] for s in sessions] == ["test:compose"]
    assert (await volume_status(url))["Sessions"] == []


async def test_an_unformatted_engine_is_a_volume_error_and_nothing_stays_open() -> None:
    url = f"memory://compose-empty-{uuid.uuid4().hex}"
    with pytest.raises(VolumeNotFormatted, match="no volume found") as err:
        async with open_volume(url):
            pass
    assert isinstance(err.value, VolumeError) and isinstance(err.value, JfsError)


async def test_update_settings_refuses_an_immutable_setting_before_opening_the_engine(tmp_path: Path) -> None:
    target = tmp_path / "never.db"
    with pytest.raises(VolumeError, match="cannot change block_size"):
        await update_settings(f"sqlite3://{target}", {"block_size": 8})
    assert not target.exists()


async def test_dump_and_load_report_on_the_progress_protocol(url: str) -> None:
    async with open_volume(url, session="test:compose", background=False) as vol:
        from jfs.app.meta.context import ROOT_CTX

        for i in range(5):
            await vol.meta.mkdir(1, f"d{i}".encode(), 0o755, ROOT_CTX)
    out: list[bytes] = []
    board = RecordingBoard()
    async with opened_engine(url) as kv:
        result = await dump_meta(kv, out.append, progress=board)
    [bar] = board.bars
    assert (bar.description, bar.unit, bar.closed) == ("Dumped entries", "entries", True)
    assert bar.done == bar.total == result.entries == 7  # root, trash root, 5 directories

    text = b"".join(out)
    chunks = [text]

    def read(n: int) -> bytes:
        return chunks.pop() if chunks else b""

    board = RecordingBoard()
    target = f"memory://compose-load-{uuid.uuid4().hex}"
    events = dump_events(read)
    async with opened_engine(target) as kv:
        loaded = await load_meta(kv, read, progress=board, events=events)
    [bar] = board.bars
    assert (bar.description, bar.closed) == ("Loaded entries", True)
    assert bar.done == bar.total == loaded.entries
    assert (await volume_status(target))["Setting"]["Name"] == "composed"
