"""What a purge of the gateway's unfinished uploads reports, apart from the purge itself (`cleanup`): the
``jfs gc`` command reads it without importing the VFS (ADR 0063)."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_AGE = 7 * 24 * 3600.0
"""Seconds after which an unfinished upload counts as abandoned."""


@dataclass
class PurgeReport:
    """What a purge removed (or, with `dry_run`, would remove)."""

    tmp_files: int = 0
    uploads: int = 0
    parts: int = 0
    bytes: int = 0

    def __bool__(self) -> bool:
        return bool(self.tmp_files or self.uploads)
