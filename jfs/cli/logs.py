"""Logging for the jfs processes: structlog, one event per line, always on stderr.

On a terminal events are rendered for people (`structlog.dev.ConsoleRenderer`); otherwise as
``key=value`` pairs (logfmt: ``timestamp=… level=info event=volume_formatted name=demo``), one event per
line, ready for journald or a log shipper. Standard-library loggers (asyncio, redis, botocore, …) go
through the same renderer. Modules log with ``structlog.get_logger(__name__)``.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog
from structlog.typing import EventDict, Processor

LEVELS = ("debug", "info", "warning", "error")

# Chatty third-party loggers stay at WARNING even when jfs logs at DEBUG.
QUIET_LIBRARIES = ("botocore", "boto3", "s3transfer", "urllib3", "aiosqlite", "asyncio", "hpack")


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


def setup_logging(level: str = "info", *, human: bool | None = None) -> None:
    """Configure structlog and the stdlib root logger. `human` defaults to whether stderr is a TTY."""
    if level not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}, not {level!r}")
    numeric = logging.getLevelNamesMapping()[level.upper()]
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
            # Locals can hold passwords and secret keys: never print them.
            exception_formatter=structlog.dev.RichTracebackFormatter(show_locals=False),
        )
    else:
        shared.append(structlog.processors.format_exc_info)
        renderer = structlog.processors.LogfmtRenderer(
            key_order=["timestamp", "level", "event", "logger"], drop_missing=True
        )

    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
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
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(numeric, logging.WARNING))
