"""The `jfs` command-line shell: options, rendering, and the one-line error boundary.

Two kinds of tests: the shell alone, with the app layer replaced by a stub module (what the CLI passes
down, how it renders what comes back, how it reports failures); and real round trips through
`jfs.app.volume` on a SQLite volume with a local-directory bucket.
"""

from __future__ import annotations

import errno
import json
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import structlog
from typer.testing import CliRunner

import jfs.cli.main as cli
from jfs.adapters.kv.registry import BadMetaURL
from jfs.adapters.objects.registry import BadStorage
from jfs.app.errors import JfsError
from jfs.cli import app_calls
from jfs.cli.logs import setup_logging
from jfs.domain.errors import FSError
from jfs.domain.settings import InvalidSettings, Settings
from jfs.ports.kv import EngineUnavailable, TooManyConflicts
from jfs.ports.objects import ObjectStoreUnavailable

GiB = 1 << 30


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("JFS_DEBUG", "JFS_LOG_LEVEL", "ACCESS_KEY", "SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)


def run(*args: str) -> Any:
    return CliRunner().invoke(cli.app, list(args))


def assert_one_line_error(result: Any, *, code: int | None = None, contains: str = "") -> str:
    """The failure is one ``jfs: error: …`` line, last on stderr (log lines may precede it), no traceback."""
    assert result.exit_code != 0, result.output
    if code is not None:
        assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    errors = [line for line in lines if line.startswith("jfs: error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
    assert contains in errors[0]
    return errors[0]


# ---------------------------------------------------------------------------------------------------
# A stub of the volume commands' URL wrappers (jfs.compose), for testing the shell on its own


class StubVolumeError(JfsError):
    pass


class StubApp:
    """Records calls; returns canned answers or raises `fail`."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self.fail: BaseException | None = None
        self.status_doc: dict[str, Any] = {
            "Setting": {
                "Name": "demo",
                "UUID": "u-1",
                "Storage": "file",
                "SecretKey": "plain-secret",
                "Capacity": 0,
            },
            "Sessions": [
                {"Sid": 3, "HostName": "h1", "MountPoint": "/mnt/jfs", "ProcessID": 42, "Expire": "x"}
            ],
            "Statistic": {"UsedSpace": 4096, "AvailableSpace": GiB, "UsedInodes": 1, "AvailableInodes": 99},
        }
        self.old = Settings(name="demo", trash_days=1)
        self.new = Settings(name="demo", uuid=self.old.uuid, trash_days=3, capacity=2 * GiB)

    def module(self) -> types.ModuleType:
        mod = types.ModuleType("jfs.compose")

        def record(name: str, answer: Any) -> Any:
            async def fn(*args: Any, **kwargs: Any) -> Any:
                self.calls.append((name, args, kwargs))
                if self.fail is not None:
                    raise self.fail
                return answer(*args, **kwargs) if callable(answer) else answer

            return fn

        mod.format_volume = record("format_volume", lambda url, settings, force=False, encrypt_secret=False: settings)  # type: ignore[attr-defined]
        mod.volume_status = record("volume_status", lambda *a, **k: self.status_doc)  # type: ignore[attr-defined]
        mod.update_settings = record("update_settings", lambda *a, **k: (self.old, self.new))  # type: ignore[attr-defined]
        return mod


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch) -> StubApp:
    stub = StubApp()
    mod = stub.module()
    monkeypatch.setattr(app_calls, "volume_api", lambda: mod)
    return stub


# ---------------------------------------------------------------------------------------------------
# Help, version, usage errors


def test_help_lists_the_commands() -> None:
    result = run("--help")
    assert result.exit_code == 0
    for command in ("format", "status", "config", "version"):
        assert command in result.output


def test_no_arguments_shows_help() -> None:
    result = run()
    assert "Usage" in result.output
    assert "format" in result.output


@pytest.mark.parametrize("command", ["format", "status", "config"])
def test_command_help_has_examples(command: str) -> None:
    result = run(command, "--help")
    assert result.exit_code == 0
    assert "META-URL" in result.output
    assert "Examples" in result.output


@pytest.mark.parametrize("args", [["version"], ["--version"], ["-V"]])
def test_version(args: list[str]) -> None:
    result = run(*args)
    assert result.exit_code == 0
    assert result.output.startswith("jfs version ")


def test_invalid_volume_name_is_a_usage_error(stub: StubApp) -> None:
    result = run("format", "memory://", "Bad_Name")
    assert_one_line_error(result, code=2, contains="invalid volume name 'Bad_Name'")
    assert stub.calls == []


def test_invalid_block_size_is_a_usage_error(stub: StubApp) -> None:
    result = run("format", "memory://", "demo", "--block-size", "1000")
    assert_one_line_error(result, code=2, contains="block size")
    assert stub.calls == []


def test_negative_trash_days_is_a_usage_error(stub: StubApp) -> None:
    assert run("format", "memory://", "demo", "--trash-days", "-1").exit_code == 2
    assert run("config", "memory://", "--inodes", "-5").exit_code == 2
    assert stub.calls == []


def test_s3_needs_a_bucket(stub: StubApp) -> None:
    assert_one_line_error(run("format", "memory://", "demo", "--storage", "s3"), code=2, contains="--bucket")


# ---------------------------------------------------------------------------------------------------
# What the shell passes to the app layer and how it renders the answers


def test_format_builds_settings(stub: StubApp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = run(
        "format", "redis://:hunter22@localhost:6379/1", "demo",
        "--bucket", "data", "--block-size", "1024", "--compress", "zstd", "--trash-days", "0",
        "--capacity", "2", "--inodes", "1000", "--hash-prefix", "--access-key", "AK", "--secret-key", "SK-secret",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    [(name, args, kwargs)] = stub.calls
    assert name == "format_volume"
    url, settings = args
    assert url == "redis://:hunter22@localhost:6379/1"
    assert kwargs == {"force": False, "encrypt_secret": False}
    assert settings.name == "demo"
    assert settings.storage == "file"
    assert settings.bucket == "data"  # made absolute by the app layer
    assert (settings.block_size, settings.compression, settings.trash_days) == (1024, "zstd", 0)
    assert (settings.capacity, settings.inodes, settings.hash_prefix) == (2 * GiB, 1000, True)
    assert (settings.access_key, settings.secret_key) == ("AK", "SK-secret")
    # The summary names the volume, masks the META-URL password and never shows the secret key.
    assert "Volume 'demo' formatted" in result.stdout
    assert settings.uuid in result.stdout
    assert "redis://:****@localhost:6379/1" in result.stdout
    assert "hunter22" not in result.output
    assert "SK-secret" not in result.output
    assert "trash disabled" in result.stdout
    assert "2.0 GiB" in result.stdout


def test_format_reads_keys_from_the_environment(stub: StubApp, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACCESS_KEY", "env-ak")
    monkeypatch.setenv("SECRET_KEY", "env-sk")
    result = run("format", "memory://", "demo", "--storage", "mem", "--force")
    assert result.exit_code == 0, result.output
    [(_, (_, settings), kwargs)] = stub.calls
    assert (settings.access_key, settings.secret_key, kwargs["force"]) == ("env-ak", "env-sk", True)


def test_status_json(stub: StubApp) -> None:
    result = run("status", "sqlite3://x.db", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert set(doc) == {"Setting", "Sessions", "Statistic"}
    assert doc["Setting"]["SecretKey"] == "removed"
    assert "plain-secret" not in result.output
    assert stub.calls == [("volume_status", ("sqlite3://x.db",), {"session": None})]


def test_status_tables(stub: StubApp) -> None:
    result = run("status", "sqlite3://x.db", "--session", "3")
    assert result.exit_code == 0, result.output
    assert stub.calls[0][2] == {"session": 3}
    out = result.stdout
    for text in ("Setting", "demo", "Sessions (1)", "/mnt/jfs", "Statistic", "4.0 KiB", "1.0 GiB"):
        assert text in out
    assert "plain-secret" not in out


def test_config_shows_the_diff(stub: StubApp) -> None:
    result = run("config", "sqlite3://x.db", "--trash-days", "3", "--capacity", "2")
    assert result.exit_code == 0, result.output
    assert stub.calls == [("update_settings", ("sqlite3://x.db", {"trash_days": 3, "capacity": 2 * GiB}), {})]
    assert "trash-days: 1 -> 3" in result.stdout
    assert "capacity: unlimited -> 2.0 GiB" in result.stdout


def test_config_without_options_shows_settings(stub: StubApp) -> None:
    result = run("config", "sqlite3://x.db")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["Name"] == "demo"
    assert [c[0] for c in stub.calls] == ["volume_status"]


def test_config_credentials_need_yes_without_a_terminal(stub: StubApp) -> None:
    assert_one_line_error(
        run("config", "sqlite3://x.db", "--secret-key", "new-secret"), code=1, contains="--yes"
    )
    assert stub.calls == []
    stub.new = Settings(name="demo", uuid=stub.old.uuid, secret_key="new-secret")
    result = run("config", "sqlite3://x.db", "--secret-key", "new-secret", "--yes")
    assert result.exit_code == 0, result.output
    assert stub.calls == [("update_settings", ("sqlite3://x.db", {"secret_key": "new-secret"}), {})]
    assert "secret-key: (none) -> removed (changed)" in result.stdout
    assert "new-secret" not in result.output


# ---------------------------------------------------------------------------------------------------
# The error boundary


@pytest.mark.parametrize(
    ("error", "code", "message"),
    [
        (
            EngineUnavailable("cannot connect to redis://localhost:1: Connection refused"),
            1,
            "Connection refused",
        ),
        (TooManyConflicts("transaction still conflicting after 50 tries"), 1, "after 50 tries"),
        (ObjectStoreUnavailable("bucket /nope is not writable"), 1, "not writable"),
        (FSError(errno.ENOSPC, "quota exceeded"), 1, "No space left on device: quota exceeded (ENOSPC)"),
        (BadMetaURL("unknown metadata engine 'nosuch'"), 2, "unknown metadata engine"),
        (BadStorage("malformed S3 bucket 'x': expected http(s)://host[:port]/bucket"), 2, "jfs: error: malformed S3"),
        (InvalidSettings("setting record is not valid JSON"), 1, "not valid JSON"),
        (StubVolumeError("volume 'demo' is already formatted"), 1, "already formatted"),
        (PermissionError(errno.EACCES, "Permission denied", "/var/jfs"), 1, "Permission denied"),
        (EngineUnavailable("line one\nline two"), 1, "line one line two"),
    ],
)
def test_user_errors_are_one_line(stub: StubApp, error: Exception, code: int, message: str) -> None:
    stub.fail = error
    for args in (
        ["status", "sqlite3://x.db"],
        ["format", "sqlite3://x.db", "demo"],
        ["config", "memkv://", "--inodes", "1"],
    ):
        assert_one_line_error(run(*args), code=code, contains=message)


def test_unexpected_errors_are_one_line_too(stub: StubApp) -> None:
    stub.fail = RuntimeError("boom")
    line = assert_one_line_error(
        run("status", "sqlite3://x.db"), code=1, contains="internal error: RuntimeError: boom"
    )
    assert "--debug" in line


@pytest.mark.parametrize("how", ["flag", "env"])
def test_debug_shows_the_traceback(stub: StubApp, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    stub.fail = EngineUnavailable("engine down")
    if how == "env":
        monkeypatch.setenv("JFS_DEBUG", "1")
        result = run("status", "sqlite3://x.db")
    else:
        result = run("--debug", "status", "sqlite3://x.db")
    assert result.exit_code == 1
    assert "Traceback" in result.stderr
    assert result.stderr.splitlines()[-1] == "jfs: error: engine down"


def test_passwords_never_reach_error_messages(stub: StubApp) -> None:
    stub.fail = EngineUnavailable("AUTH failed for redis://:hunter22@db:6379/1")
    line = assert_one_line_error(run("status", "redis://:hunter22@db:6379/1"))
    assert "hunter22" not in line
    stub.fail = StubVolumeError("bucket refused key SK-very-secret")
    line = assert_one_line_error(
        run("format", "memory://", "demo", "--storage", "mem", "--secret-key", "SK-very-secret")
    )
    assert "SK-very-secret" not in line


# ---------------------------------------------------------------------------------------------------
# Logging


def test_logs_are_key_value_lines_off_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("info", human=False)
    log = structlog.get_logger("jfs.test")
    log.debug("hidden")
    log.info("volume_formatted", name="demo", path="a b\nc")
    err = capsys.readouterr().err
    [line] = err.splitlines()
    assert "level=info" in line
    assert "event=volume_formatted" in line
    assert "logger=jfs.test" in line
    assert "name=demo" in line
    assert 'path="a b\\nc"' in line


def test_log_level_option(stub: StubApp) -> None:
    assert run("--log-level", "warning", "status", "sqlite3://x.db").exit_code == 0
    assert run("-q", "status", "sqlite3://x.db").exit_code == 0
    assert run("--log-level", "loud", "status", "sqlite3://x.db").exit_code == 2


# ---------------------------------------------------------------------------------------------------
# Round trips through the real app layer: SQLite metadata, local-directory bucket


@pytest.fixture
def volume(tmp_path: Path) -> tuple[str, Path]:
    return f"sqlite3://{tmp_path}/meta.db", tmp_path / "bucket"


def test_format_then_status(volume: tuple[str, Path]) -> None:
    meta, bucket = volume
    result = run("format", meta, "demo", "--storage", "file", "--bucket", str(bucket), "--trash-days", "0",
                 "--capacity", "1", "--access-key", "AK", "--secret-key", "SK-stored-secret")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Volume 'demo' formatted" in result.stdout

    result = run("status", meta, "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    setting = doc["Setting"]
    assert setting["Name"] == "demo"
    assert setting["Storage"] == "file"
    assert setting["Bucket"] == f"{bucket}/"
    assert setting["TrashDays"] == 0
    assert setting["Capacity"] == GiB
    assert setting["SecretKey"] == "removed"
    assert "SK-stored-secret" not in result.output
    assert isinstance(doc["Sessions"], list)
    assert {"UsedSpace", "AvailableSpace", "UsedInodes", "AvailableInodes"} <= set(doc["Statistic"])

    table = run("status", meta)
    assert table.exit_code == 0, table.output
    assert "demo" in table.stdout and "Statistic" in table.stdout


def test_format_refuses_an_existing_volume(volume: tuple[str, Path]) -> None:
    meta, bucket = volume
    assert run("format", meta, "demo", "--bucket", str(bucket)).exit_code == 0
    assert_one_line_error(run("format", meta, "demo", "--bucket", str(bucket)), code=1)
    # --force updates the existing volume (as JuiceFS does), but never renames it.
    result = run("format", meta, "demo", "--bucket", str(bucket), "--trash-days", "5", "--force")
    assert result.exit_code == 0, result.output
    assert json.loads(run("status", meta, "--json").stdout)["Setting"]["TrashDays"] == 5
    assert_one_line_error(run("format", meta, "demo2", "--bucket", str(bucket), "--force"), code=1)


def test_config_changes_settings(volume: tuple[str, Path]) -> None:
    meta, bucket = volume
    assert run("format", meta, "demo", "--bucket", str(bucket)).exit_code == 0
    result = run("config", meta, "--trash-days", "7", "--inodes", "500")
    assert result.exit_code == 0, result.output
    assert "trash-days: 1 -> 7" in result.stdout
    setting = json.loads(run("status", meta, "--json").stdout)["Setting"]
    assert (setting["TrashDays"], setting["Inodes"]) == (7, 500)


def test_status_of_an_unformatted_engine_is_one_line(volume: tuple[str, Path]) -> None:
    meta, _ = volume
    assert_one_line_error(run("status", meta), code=1)


def test_unwritable_bucket_is_one_line(volume: tuple[str, Path]) -> None:
    meta, _ = volume
    assert_one_line_error(run("format", meta, "demo", "--bucket", "/proc/jfs-cannot-write-here"), code=1)
    assert_one_line_error(run("status", meta), code=1)  # nothing was formatted


@pytest.mark.parametrize(
    ("url", "code"),
    [("nosuch://x", 2), ("not-a-meta-url", 2), ("redis://127.0.0.1:1/0", 1)],
)
def test_bad_meta_url_is_one_line(url: str, code: int) -> None:
    assert_one_line_error(run("status", url), code=code)


# ---------------------------------------------------------------------------------------------------
# Ctrl-C (the subprocess tests are in tests/integration/test_interrupt.py)


def test_ctrl_c_outside_the_app_layer_is_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Without the quick exit (another SIGINT handler was in place), typer turns a KeyboardInterrupt
    outside `_run` into a silent exit 130: `main` adds the line."""
    import signal

    def interrupted(level: str) -> None:
        raise KeyboardInterrupt

    import jfs.cli.logs

    monkeypatch.setattr(jfs.cli.logs, "setup_logging", interrupted)  # imported by the global options (ADR 0063)
    monkeypatch.setattr(sys, "argv", ["jfs", "version"])
    previous = signal.signal(signal.SIGINT, lambda *_: None)
    try:
        with pytest.raises(SystemExit) as exc:
            cli.main()
    finally:
        signal.signal(signal.SIGINT, previous)
    assert exc.value.code == 130
    assert capsys.readouterr().err == "jfs: error: interrupted\n"


def test_quick_exit_on_ctrl_c_except_while_stopping_cleanly() -> None:
    """`jfs.cli`: SIGINT exits at once, except inside `stops_cleanly` (Python's handler, which asyncio.run
    replaces with its own)."""
    import signal

    import jfs.cli as entry

    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    entry.quit_on_interrupt()
    try:
        assert signal.getsignal(signal.SIGINT) is entry._quit
        with entry.stops_cleanly():
            assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
            with entry.stops_cleanly():
                assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
            assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        assert signal.getsignal(signal.SIGINT) is entry._quit
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    with entry.stops_cleanly():  # without the quick exit: nothing changes
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_load_stdin_reader_reads_and_notices_cancellation() -> None:
    """`jfs load -` reads stdin through `_Stdin`: data as usual, and CancelledError (not an endless wait)
    once the running task is being cancelled, as asyncio.run does on Ctrl-C."""
    import asyncio
    import io
    import os

    from jfs.cli.dump_cmd import _Stdin

    r, w = os.pipe()
    try:
        os.write(w, b"abc")
        reader = io.BufferedReader(_Stdin(r))
        assert reader.read1(10) == b"abc"

        async def body() -> None:
            task = asyncio.current_task()
            assert task is not None
            task.cancel()  # what the SIGINT handler of asyncio.run does while the read waits
            reader.read(10)  # nothing comes and the writer keeps the pipe open

        with pytest.raises(asyncio.CancelledError):
            asyncio.run(body())
        os.write(w, b"de")
        os.close(w)
        w = -1
        assert reader.read() == b"de"
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
