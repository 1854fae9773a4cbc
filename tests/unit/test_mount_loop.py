"""The event loop a mount runs on (`jfs.cli.mount.mount_loop_factory`, ADR 0037)."""

from __future__ import annotations

import asyncio

import pytest
import uvloop

from jfs.cli.mount import mount_loop_factory


def test_uvloop_for_network_engines_and_the_standard_loop_for_sqlite_or_on_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("JFS_EVENT_LOOP", raising=False)
    factory = mount_loop_factory("redis://localhost/1")
    assert factory is uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        assert runner.run(asyncio.sleep(0, "ran")) == "ran"
    assert mount_loop_factory("sqlite3:///tmp/x.db") is None
    monkeypatch.setenv("JFS_EVENT_LOOP", "asyncio")
    assert mount_loop_factory("redis://localhost/1") is None
    monkeypatch.setenv("JFS_EVENT_LOOP", "uvloop")
    assert mount_loop_factory("sqlite3:///tmp/x.db") is uvloop.new_event_loop


@pytest.mark.parametrize(("given", "seen"), [(None, ["128", "1"]), ("0", ["0", "0"]), ("64", ["64", "64"])])
def test_a_mount_keeps_only_the_newest_written_blocks_in_the_page_cache_unless_told(
    monkeypatch: pytest.MonkeyPatch, given: str | None, seen: list[str]
) -> None:
    """ADR 0059: `jfs mount` serves with $JFS_FILE_KEEP_WRITTEN_MIB = 128 and $JFS_FILE_DIRECT_WRITES = 1 unless
    the variables are set (0: off)."""
    import os

    from jfs.adapters.objects import file, file_pages
    from jfs.cli import mount

    if given is None:
        monkeypatch.delenv(file_pages.KEEP_ENV, raising=False)
        monkeypatch.delenv(file.DIRECT_ENV, raising=False)
    else:
        monkeypatch.setenv(file_pages.KEEP_ENV, given)
        monkeypatch.setenv(file.DIRECT_ENV, given)
    got: list[str | None] = []

    async def serve(args: object) -> None:
        got.append(os.environ.get(file_pages.KEEP_ENV))
        got.append(os.environ.get(file.DIRECT_ENV))

    monkeypatch.setattr(mount, "serve", serve)
    monkeypatch.setattr(mount, "mount_loop_factory", lambda url: None)
    monkeypatch.setattr(mount.sys, "setswitchinterval", lambda s: None)
    mount.run_foreground(mount.MountArgs(meta_url="sqlite3:///x.db", mountpoint="/x"))
    assert got == seen
