"""Process logging (`jfs.cli.logs`): one format and one line per event for structlog and stdlib loggers,
and a level that changes while the process runs (SIGHUP)."""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from jfs.cli import logs


@pytest.fixture(autouse=True)
def _restore() -> Iterator[None]:
    yield
    logs.setup_logging("info", human=False)


def test_stdlib_and_structlog_events_are_one_logfmt_line_each(capsys: pytest.CaptureFixture[str]) -> None:
    logs.setup_logging("info", human=False)
    structlog.get_logger("jfs.test").info("hello", n=1)
    logging.getLogger("botocore").warning("retrying %s", "PUT")
    logging.getLogger("cheroot").error("bad request")
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        logging.getLogger("aiohttp").exception("handler failed")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 4, lines
    assert "event=hello" in lines[0] and "logger=jfs.test" in lines[0] and "n=1" in lines[0]
    assert 'event="retrying PUT"' in lines[1] and "logger=botocore" in lines[1] and "level=warning" in lines[1]
    assert "logger=cheroot" in lines[2]
    assert "logger=aiohttp" in lines[3] and "exception=" in lines[3] and "Traceback" in lines[3]


def test_the_level_changes_for_loggers_already_in_use(capsys: pytest.CaptureFixture[str]) -> None:
    logs.setup_logging("info", human=False)
    log = structlog.get_logger("jfs.cached")
    log.debug("hidden")
    log.info("shown1")
    logs.set_level("debug")
    log.debug("shown2")
    logging.getLogger("jfs.stdlib").debug("shown3")
    logging.getLogger("botocore").debug("still quiet")  # chatty libraries stay at WARNING
    logs.set_level("error")
    log.warning("hidden2")
    log.error("shown4")
    err = capsys.readouterr().err
    assert "hidden" not in err and "still quiet" not in err
    assert all(f"event=shown{i}" in err for i in (1, 2, 3, 4))


def test_reload_toggles_debug_or_reads_the_level_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    logs.setup_logging("warning", human=False)
    monkeypatch.delenv(logs.LEVEL_FILE_ENV, raising=False)
    assert logs.reload_level() == "debug" and logs.current_level() == "debug"
    assert logs.reload_level() == "warning"
    level_file = tmp_path / "level"
    level_file.write_text("error\n")
    monkeypatch.setenv(logs.LEVEL_FILE_ENV, str(level_file))
    assert logs.reload_level() == "error" and logs.current_level() == "error"


def test_sighup_reloads_the_level(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    logs.setup_logging("info", human=False)
    monkeypatch.delenv(logs.LEVEL_FILE_ENV, raising=False)
    monkeypatch.delenv(logs.LOG_FILE_ENV, raising=False)
    old = signal.getsignal(signal.SIGHUP)
    try:
        logs.reload_on_sighup(None)
        os.kill(os.getpid(), signal.SIGHUP)
        time.sleep(0.05)
        assert logs.current_level() == "debug"
        assert "event=log_level" in capsys.readouterr().err
    finally:
        signal.signal(signal.SIGHUP, old)
