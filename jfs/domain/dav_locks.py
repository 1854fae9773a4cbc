"""WebDAV lock records (RFC 4918 §6-7) and the rules that decide which locks apply and which conflict.

A lock is a JSON object stored under ``jW<token>`` (see `jfs.domain.keys`) so that every `jfs webdav`
serving the volume sees it. Its fields are WsgiDAV's lock dictionary: ``token``, ``root`` (the locked path,
absolute in the volume, no trailing slash, ``/`` for the root), ``type`` ("write"), ``scope`` ("exclusive"
or "shared"), ``depth`` ("0" or "infinity"), ``owner`` (the client's XML, as text), ``principal`` (the
user), ``timeout`` (seconds granted) and ``expire`` (unix seconds; a lock past it no longer exists).
"""

from __future__ import annotations

import json
from typing import Any

Lock = dict[str, Any]


class LockConflict(Exception):
    """The requested lock conflicts with `lock`, held by someone else."""

    def __init__(self, lock: Lock) -> None:
        super().__init__(f"{lock.get('root')} is locked ({lock.get('scope')})")
        self.lock = lock


def normalize(path: str) -> str:
    """``/a/b/`` → ``/a/b``; ``""`` → ``/``."""
    path = "/" + path.strip("/")
    return path


def is_within(path: str, root: str) -> bool:
    """Whether `path` is `root` or below it (both normalized)."""
    return path == root or root == "/" or path.startswith(root + "/")


def is_expired(lock: Lock, now: float) -> bool:
    return float(lock.get("expire", 0)) < now


def applies_to(lock: Lock, path: str) -> bool:
    """Whether `lock` locks `path`: its root, or anything below it for a depth-infinity lock."""
    root = str(lock["root"])
    if path == root:
        return True
    return lock.get("depth") == "infinity" and is_within(path, root)


def conflicts(new: Lock, held: Lock) -> bool:
    """Whether `new` cannot be granted while `held` exists: the two overlap and one is exclusive."""
    if new.get("scope") == "shared" and held.get("scope") == "shared":
        return False
    return applies_to(held, str(new["root"])) or applies_to(new, str(held["root"]))


def selected(lock: Lock, path: str, *, include_root: bool, include_children: bool) -> bool:
    """WsgiDAV's `get_lock_list` choice: locks rooted at `path` and/or rooted strictly below it."""
    root = str(lock["root"])
    if root == path:
        return include_root
    return include_children and is_within(root, path)


def encode(lock: Lock) -> bytes:
    return json.dumps(lock, sort_keys=True, separators=(",", ":")).encode()


def decode(data: bytes) -> Lock:
    lock: Lock = json.loads(data)
    return lock
