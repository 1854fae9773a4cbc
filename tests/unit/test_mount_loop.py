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
