"""`GCReport`: what `run_gc` found (objects per class) and did, as one summary line or a JSON document.

Contract: plain data, no I/O. `summary()` and `to_dict()` are the output format of ``jfs gc`` (the CLI
prints them as they are): keep them stable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from jfs.app.ops.gc.skip_age import DEFAULT_SKIP_AGE

CLASSES = ("valid", "pending", "trash", "leaked", "skipped")


@dataclass
class ClassStat:
    count: int = 0
    bytes: int = 0

    def add(self, size: int) -> None:
        self.count += 1
        self.bytes += size


@dataclass
class GCReport:
    """What `run_gc` found and did. Object classes are described in the `jfs.app.ops.gc` docstring."""

    objects: dict[str, ClassStat] = field(default_factory=lambda: {c: ClassStat() for c in CLASSES})
    slices: int = 0
    """Distinct slices referenced by live chunks (valid + trash)."""
    pending_files: int = 0
    """Delfile markers (deleted files whose data is not released yet)."""
    pending_slices: int = 0
    """Slice records with K < 0 (released, blocks not deleted yet)."""
    skip_age: float = DEFAULT_SKIP_AGE
    leaked_examples: list[str] = field(default_factory=list)
    """Up to 20 leaked keys, for the report."""
    compacted_chunks: int = 0
    deleted_leaked: ClassStat = field(default_factory=ClassStat)
    kept_leaked: int = 0
    """Leaked candidates that the confirmation scan found referenced after all (not deleted)."""
    finished_files: int = 0
    freed_slices: int = 0
    inconsistent_slices: int = 0
    """Slices with K < 0 that are still referenced by a chunk (their blocks are kept)."""
    purged_trash: int = 0
    deleted_sums: int = 0
    """Block-checksum records of unreferenced slices deleted (ADR 0008)."""
    deleted: bool = False
    seconds: float = 0.0

    def summary(self) -> str:
        """One line, as JuiceFS ends its gc: counts and bytes per class, then what was done."""
        parts = [f"{s.count} {c} ({_fmt_bytes(s.bytes)})" for c, s in self.objects.items()]
        total = sum(s.count for s in self.objects.values())
        line = f"scanned {total} objects: " + ", ".join(parts)
        if self.deleted:
            line += (
                f"; deleted {self.deleted_leaked.count} leaked objects ({_fmt_bytes(self.deleted_leaked.bytes)}), "
                f"finished {self.finished_files} deleted files, freed {self.freed_slices} slices, "
                f"purged {self.purged_trash} trash entries"
            )
        if self.compacted_chunks:
            line += f"; compacted {self.compacted_chunks} chunks"
        return line

    def to_dict(self) -> dict[str, Any]:
        return {
            "Objects": {c: {"count": s.count, "bytes": s.bytes} for c, s in self.objects.items()},
            "Slices": self.slices,
            "PendingFiles": self.pending_files,
            "PendingSlices": self.pending_slices,
            "SkipAge": self.skip_age,
            "LeakedExamples": self.leaked_examples,
            "Compacted": self.compacted_chunks,
            "Deleted": (
                {
                    "LeakedObjects": self.deleted_leaked.count,
                    "LeakedBytes": self.deleted_leaked.bytes,
                    "KeptLeaked": self.kept_leaked,
                    "FinishedFiles": self.finished_files,
                    "FreedSlices": self.freed_slices,
                    "InconsistentSlices": self.inconsistent_slices,
                    "PurgedTrash": self.purged_trash,
                }
                if self.deleted
                else None
            ),
            "Seconds": round(self.seconds, 3),
        }


def _fmt_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"
