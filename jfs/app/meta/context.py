"""Who is calling: the credentials and process of a file-system request."""

from __future__ import annotations

from dataclasses import dataclass, field

from jfs.domain.permissions import Caller


@dataclass(frozen=True, slots=True)
class Ctx:
    """Caller of one operation: uid, primary gid, supplementary groups, pid; `check` off skips permission checks."""

    uid: int = 0
    gid: int = 0
    groups: frozenset[int] = field(default_factory=frozenset)
    pid: int = 0
    umask: int = 0
    check: bool = True

    @property
    def caller(self) -> Caller:
        return Caller(self.uid, self.gid, self.groups)

    @property
    def is_root(self) -> bool:
        return self.uid == 0


ROOT_CTX = Ctx()
