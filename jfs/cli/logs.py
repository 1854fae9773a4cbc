"""Logging for the jfs processes: structlog, one event per line, always on stderr.

On a terminal events are rendered for people (`structlog.dev.ConsoleRenderer`, exceptions by rich:
`RichTraceback`); otherwise as
``key=value`` pairs (logfmt: ``timestamp=… level=info event=volume_formatted name=demo``), one event per
line, ready for journald or a log shipper. Standard-library loggers (asyncio, redis, botocore, …) go
through the same renderer (boto3, botocore, asyncio, aiohttp, cheroot, wsgidav: one format, one line per
event — a traceback is one escaped ``exception="…\\n…"`` value). Modules log with
``structlog.get_logger(__name__)``.

The level can change while a process runs (`set_level`): loggers are cached on first use, so their class
(`LevelGate`) checks one module-level threshold instead of being built for a fixed level. A long-running
process (mount, gateway, webdav) calls `reload_on_sighup`: SIGHUP then reloads the level (see
`reload_level`) and reopens the log file of a background process (for logrotate).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor

from jfs.cli.background import LOG_FILE_ENV  # noqa: F401 (re-exported: defined where the parent needs no structlog)

LEVELS = ("debug", "info", "warning", "error")

# Chatty third-party loggers stay at WARNING even when jfs logs at DEBUG.
QUIET_LIBRARIES = ("botocore", "boto3", "s3transfer", "urllib3", "aiosqlite", "asyncio", "hpack", "aiohttp",
                   "cheroot", "wsgidav")

_NUMERIC = logging.getLevelNamesMapping()
_threshold = logging.INFO
_configured = "info"
"""The level the process was started with (what SIGHUP goes back to)."""


class LevelGate(structlog.BoundLoggerBase):
    """A bound logger whose methods drop events below the process's current level (`set_level`) with
    one comparison, as `structlog.make_filtering_bound_logger` does for a level fixed at configuration."""

    def _at(self, numeric: int, method: str, event: Any, args: tuple[Any, ...], kw: dict[str, Any]) -> Any:
        if numeric < _threshold:
            return None
        if args:
            event = event % args
        return self._proxy_to_logger(method, event, **kw)

    def debug(self, event: Any = None, *args: Any, **kw: Any) -> Any:
        return self._at(logging.DEBUG, "debug", event, args, kw)

    def info(self, event: Any = None, *args: Any, **kw: Any) -> Any:
        return self._at(logging.INFO, "info", event, args, kw)

    def warning(self, event: Any = None, *args: Any, **kw: Any) -> Any:
        return self._at(logging.WARNING, "warning", event, args, kw)

    warn = warning

    def error(self, event: Any = None, *args: Any, **kw: Any) -> Any:
        return self._at(logging.ERROR, "error", event, args, kw)

    def exception(self, event: Any = None, *args: Any, **kw: Any) -> Any:
        kw.setdefault("exc_info", True)
        return self._at(logging.ERROR, "error", event, args, kw)

    def critical(self, event: Any = None, *args: Any, **kw: Any) -> Any:
        return self._at(logging.CRITICAL, "critical", event, args, kw)

    fatal = critical
    msg = info


class _StderrLogger:
    """Writes each rendered event to the current ``sys.stderr`` (test runners swap it per invocation)."""

    def __init__(self, name: str = "") -> None:
        self.name = name

    def msg(self, message: str) -> None:
        stream = sys.stderr
        stream.write(message + "\n")
        stream.flush()

    debug = info = warning = warn = error = critical = exception = fatal = log = msg


def _stderr_logger(*args: Any) -> _StderrLogger:
    """structlog logger factory; `get_logger(name)` passes the name as first argument."""
    return _StderrLogger(args[0] if args and isinstance(args[0], str) else "")


def _add_logger_name(logger: Any, _method: str, event_dict: EventDict) -> EventDict:
    """Add ``logger=<name>`` for named loggers (structlog or stdlib); nothing for anonymous ones."""
    record = event_dict.get("_record")
    name = record.name if record is not None else getattr(logger, "name", "")
    if name:
        event_dict.setdefault("logger", name)
    return event_dict


class RichTraceback:
    """A `structlog.dev.ConsoleRenderer` exception formatter: rich's traceback without locals, rendered as
    `structlog.dev.RichTracebackFormatter(show_locals=False)` renders it, with rich imported on the first
    exception rather than with structlog (`jfs.cli.structlog_import`, ADR 0081)."""

    def __call__(self, sio: TextIO, exc_info: Any) -> None:
        from rich.console import Console
        from rich.traceback import Traceback

        sio.write("\n")
        # Locals can hold passwords and secret keys: never print them.
        tb = Traceback.from_exception(*exc_info, show_locals=False, word_wrap=True, width=None)
        tb.code_width = 88
        Console(file=sio, color_system="truecolor", width=None).print(tb)


def setup_logging(level: str = "info", *, human: bool | None = None) -> None:
    """Configure structlog and the stdlib root logger. `human` defaults to whether stderr is a TTY."""
    global _configured
    if level not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}, not {level!r}")
    _configured = level
    if human is None:
        human = sys.stderr.isatty()

    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        _add_logger_name,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="%Y-%m-%d %H:%M:%S.%f" if human else "iso", utc=not human),
    ]
    renderer: Processor
    if human:
        renderer = structlog.dev.ConsoleRenderer(
            colors=True,
            exception_formatter=RichTraceback(),
        )
    else:
        shared.append(structlog.processors.format_exc_info)
        renderer = structlog.processors.LogfmtRenderer(
            key_order=["timestamp", "level", "event", "logger"], drop_missing=True
        )

    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=LevelGate,
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=True,
    )

    handler = logging.StreamHandler()  # sys.stderr
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=shared,
        )
    )
    logging.getLogger().handlers[:] = [handler]
    logging.captureWarnings(True)  # warnings.warn(...) of libraries: one event too
    set_level(level)


def set_level(level: str) -> None:
    """Log at `level` from now on (structlog and stdlib loggers; chatty libraries stay at WARNING)."""
    global _threshold
    if level not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}, not {level!r}")
    numeric = _NUMERIC[level.upper()]
    _threshold = numeric
    logging.getLogger().setLevel(numeric)
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(numeric, logging.WARNING))


def current_level() -> str:
    return logging.getLevelName(_threshold).lower()


LEVEL_FILE_ENV = "JFS_LOG_LEVEL_FILE"


def reload_level() -> str:
    """The level SIGHUP switches to: the first word of the file named by ``$JFS_LOG_LEVEL_FILE`` when it
    is set and holds a level; otherwise it toggles between ``debug`` and the level the process started
    with. Applies and returns it."""
    path = os.environ.get(LEVEL_FILE_ENV)
    level = ""
    if path:
        try:
            with open(path, encoding="utf-8") as f:
                level = (f.read().split() or [""])[0].lower()
        except OSError:
            level = ""
    if level not in LEVELS:
        level = _configured if current_level() == "debug" and _configured != "debug" else "debug"
    set_level(level)
    return level


def reopen_log_file(path: str) -> None:
    """Point stdout and stderr at `path` anew (after logrotate moved the old file away)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        os.dup2(fd, 1)
        os.dup2(fd, 2)
    finally:
        os.close(fd)


def reload_on_sighup(loop: Any | None = None) -> None:
    """Handle SIGHUP (on asyncio `loop`, or with `signal.signal` in the main thread when None):
    `reload_level`, and reopen ``$JFS_LOG_FILE`` when set."""
    log = structlog.get_logger("jfs.logs")

    def on_hup(*_: Any) -> None:
        path = os.environ.get(LOG_FILE_ENV)
        if path:
            try:
                reopen_log_file(path)
            except OSError as exc:
                log.error("log_reopen_failed", path=path, error=exc.strerror or str(exc))
        level = reload_level()
        log.warning("log_level", new_level=level, signal="SIGHUP")

    if loop is None:
        signal.signal(signal.SIGHUP, on_hup)
    else:
        loop.add_signal_handler(signal.SIGHUP, on_hup)
