"""`Issue` and `FsckReport`: what fsck found and repaired, as a table row, a summary line or JSON.

Contract: plain data, no I/O. `KINDS` lists every problem kind in report order (the `jfs.app.ops.fsck`
docstring says what each means); `FsckReport.summary()` and `to_dict()` are the output format of
``jfs fsck``: keep them stable.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

KINDS = (
    "lost-blocks",
    "broken-dentry",
    "dead-entries",
    "stray-records",
    "wrong-type",
    "wrong-nlink",
    "wrong-parent",
    "orphan",
    "multi-linked-dir",
    "counters",
)


@dataclass
class Issue:
    """One problem found; `repair` says what ``--repair`` does about it ("" = nothing can be done)."""

    kind: str
    detail: str
    ino: int = 0
    """The inode concerned (for entry problems: the inode the entry names)."""
    parent: int = 0
    """For entry problems: the directory holding the entry."""
    name: bytes = b""
    path: str = ""
    repair: str = ""
    repaired: bool = False
    error: str = ""
    """Why a repair was not done (changed meanwhile, failed…)."""

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["name"] = self.name.decode(errors="replace")
        return doc


@dataclass
class FsckReport:
    """What `run_fsck` found (and repaired)."""

    scope: str = "/"
    recursive: bool = True
    issues: list[Issue] = field(default_factory=list)
    inodes: int = 0
    directories: int = 0
    files: int = 0
    entries: int = 0
    slices: int = 0
    objects: int = 0
    """Block objects listed (whole-volume check) or HEAD requests made (path check)."""
    counters: dict[str, dict[str, int]] = field(default_factory=dict)
    """name → {"stored", "expected"} (empty when not checked)."""
    counters_note: str = ""
    repair: bool = False
    seconds: float = 0.0

    @property
    def remaining(self) -> list[Issue]:
        """Issues still present (not repaired)."""
        return [i for i in self.issues if not i.repaired]

    def summary(self) -> str:
        found = len(self.issues)
        line = (
            f"checked {self.inodes} inodes ({self.directories} directories, {self.files} files), "
            f"{self.entries} entries, {self.slices} slices, {self.objects} objects: "
        )
        if not found:
            return line + "no problems found"
        by_kind: dict[str, int] = defaultdict(int)
        for i in self.issues:
            by_kind[i.kind] += 1
        line += f"{found} problems (" + ", ".join(f"{n} {k}" for k, n in by_kind.items()) + ")"
        if self.repair:
            line += f"; repaired {found - len(self.remaining)}, {len(self.remaining)} remain"
        return line

    def to_dict(self) -> dict[str, Any]:
        return {
            "Scope": self.scope,
            "Recursive": self.recursive,
            "Inodes": self.inodes,
            "Directories": self.directories,
            "Files": self.files,
            "Entries": self.entries,
            "Slices": self.slices,
            "Objects": self.objects,
            "Counters": self.counters,
            "CountersNote": self.counters_note,
            "Issues": [i.to_dict() for i in self.issues],
            "Repair": self.repair,
            "Remaining": len(self.remaining),
            "Seconds": round(self.seconds, 3),
        }
