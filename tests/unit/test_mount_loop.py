"""The event loop a mount runs on (`jfs.cli.mount.mount_loop_factory`, ADR 0037)."""

from __future__ import annotations

import asyncio

import pytest
import uvloop

from jfs.cli.mount import mount_loop_factory


def test_uvloop_by_default_and_the_standard_loop_on_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JFS_EVENT_LOOP", raising=False)
    factory = mount_loop_factory()
    assert factory is uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        assert runner.run(asyncio.sleep(0, "ran")) == "ran"
    monkeypatch.setenv("JFS_EVENT_LOOP", "asyncio")
    assert mount_loop_factory() is None
