"""Ctrl-C: at any moment of a command, exit status 130 (or death by SIGINT, -2) and at most one
``jfs: error: interrupted`` line, never a traceback; and promptly, even when `jfs load` waits on a pipe.

Instants are counted from the end of the import of `jfs.cli` (seen in ``-X importtime`` output), not from
the start of the process: Python's own start-up (importing `site`) can take longer than the instants on a
busy machine, and a Ctrl-C there is Python's business ("Fatal Python error: init_import_site").
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from jfs.testing.mounts import format_volume, jfs

INSTANTS = (0.0, 0.05, 0.2, 0.4)
"""Seconds after `jfs.cli` is imported: inside the imports of the CLI (about 0.2 s), during the command."""


class Run:
    """A ``python -m jfs.cli.main …`` child whose stderr is collected; `started` is set once `jfs.cli`
    (and with it the start-up guard against Ctrl-C) is imported."""

    def __init__(self, args: list[str], stdin: bytes | None = None) -> None:
        env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jfs.cli.main", *args], env=env, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        )
        if stdin is not None:
            assert self.proc.stdin is not None
            self.proc.stdin.write(stdin)  # and the pipe stays open: the reader waits for more
            self.proc.stdin.flush()
        self.lines: list[str] = []
        self.started = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode(errors="replace")
            self.lines.append(line)
            if re.search(r"\|\s+jfs\.cli$", line.rstrip()):
                self.started.set()
        self.started.set()

    def interrupt(self, after: float, timeout: float = 30) -> tuple[int, str, float]:
        """SIGINT `after` seconds past the start signal; (exit status, stderr without the import times,
        seconds from SIGINT to exit)."""
        assert self.started.wait(60)
        time.sleep(after)
        sent = time.monotonic()
        self.proc.send_signal(signal.SIGINT)
        try:
            rc = self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        waited = time.monotonic() - sent
        self._reader.join(10)
        err = "".join(ln for ln in self.lines if not ln.startswith("import time:"))
        return rc, err, waited


def _check(rc: int, err: str) -> None:
    assert "Traceback" not in err and "Exception ignored" not in err and "Exception in" not in err, err
    assert rc in (130, -signal.SIGINT, 0), (rc, err)
    if rc == 130:
        errors = [ln for ln in err.splitlines() if ln.startswith("jfs: error:")]
        assert errors == ["jfs: error: interrupted"], err
        assert err.splitlines()[-1] == "jfs: error: interrupted", err


@pytest.fixture
def volume(tmp_path: Path) -> str:
    url = f"sqlite3://{tmp_path}/meta.db"
    format_volume(url, str(tmp_path / "bucket"))
    return url


def test_ctrl_c_early_in_a_command(volume: str) -> None:
    outcomes = []
    for after in INSTANTS:
        rc, err, _ = Run(["status", volume]).interrupt(after)
        _check(rc, err)
        outcomes.append(rc)
    assert outcomes[0] in (130, -signal.SIGINT)  # inside the imports: never too late
    assert jfs("status", volume).returncode == 0


def test_ctrl_c_stops_a_load_waiting_on_a_pipe(volume: str, tmp_path: Path) -> None:
    """`load -` reads the dump on the event loop's thread; a pipe whose writer went quiet used to hold
    the load until the writer closed it (asyncio only cancels the main task on Ctrl-C)."""
    dump = tmp_path / "dump.json"
    jfs("dump", volume, str(dump))
    half = dump.read_bytes()[: dump.stat().st_size // 2]

    for n, after in enumerate(INSTANTS):
        rc, err, waited = Run(["load", f"sqlite3://{tmp_path}/early-{n}.db", "-"], stdin=half).interrupt(after)
        _check(rc, err)
        assert waited < 2, (after, waited)

    # Surely inside the load: all of the dump but its last brace sent (padded with blanks past the reader's
    # 256 KiB reads, which a pipe only completes with that much or at its end), so the engine is open (its
    # file exists) and the entries are read; the load then waits for the rest.
    text = dump.read_bytes().rstrip()
    assert text.endswith(b"}")
    target = tmp_path / "loading.db"
    run = Run(["load", f"sqlite3://{target}", "-"], stdin=text[:-1] + b" " * (600 << 10))
    deadline = time.monotonic() + 30
    while not target.exists():
        assert time.monotonic() < deadline and run.proc.poll() is None, "".join(run.lines)[-2000:]
        time.sleep(0.02)
    rc, err, waited = run.interrupt(0.5)
    _check(rc, err)
    assert rc == 130 and waited < 2, (rc, waited, err)
    res = jfs("status", f"sqlite3://{target}", check=False)  # nothing loaded: still no volume there
    assert res.returncode == 1 and "no volume found" in res.stderr


STUCK = """
import asyncio, sys
from jfs.cli import app_calls, quit_on_interrupt
app_calls.CLEANUP_GRACE = 1.0

async def deaf(_api):
    print("ready", flush=True)
    while True:  # swallows every cancellation: a clean-up that never ends
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            pass

quit_on_interrupt()
app_calls.run(deaf)
"""


def test_a_clean_up_stuck_after_ctrl_c_is_ended_with_the_stacks_shown() -> None:
    proc = subprocess.Popen([sys.executable, "-c", STUCK], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
        waited = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = err.decode()
    assert proc.returncode == 130, text
    assert 0.9 < waited < 5, waited
    assert "did not end within 1 s" in text and "in deaf" in text, text
    assert text.splitlines()[-1] == "jfs: error: interrupted", text
