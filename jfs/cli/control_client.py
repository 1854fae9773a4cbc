"""The client side of a running mount's ``.control`` file: the commands that a mount serves (info,
summary, rmr, warmup, stats) reach it here.

A request is one JSON object written to ``<mount root>/.control``; the answer is read back from the same
open file (one JSON object). `ask_mount` raises `JfsError` (one line for the user) when the path is not on a
jfs mount, when the mount cannot be reached, or when it answers ``{"error": ...}``.
"""

from __future__ import annotations

import json
import os
from typing import Any

from jfs.app.errors import JfsError

CONTROL_NAME = ".control"


def mount_root(path: str) -> str:
    """The root of the mount that holds `path` (the topmost directory on the same device). Raises OSError
    when `path` or a parent cannot be examined."""
    cur = os.path.abspath(path)
    dev = os.lstat(cur).st_dev
    while cur != "/":
        parent = os.path.dirname(cur)
        if os.lstat(parent).st_dev != dev:
            break
        cur = parent
    return cur


def ask_mount(path: str, request: dict[str, Any], *, shown: list[str] | None = None) -> dict[str, Any]:
    """The answer of the jfs mount holding `path` to `request`. Failures (JfsError) name `shown`
    (default: `path`), the path(s) the user gave."""
    names = shown or [path]
    what = ", ".join(names)
    root = mount_root(path)
    control = os.path.join(root, CONTROL_NAME)
    try:
        with open(control, "r+b", buffering=0) as f:
            f.write(json.dumps(request).encode())
            f.seek(0)
            chunks = []
            while True:
                piece = f.read(1 << 20)
                if not piece:
                    break
                chunks.append(piece)
    except FileNotFoundError:  # the file system holding `path` has no .control: not jfs
        raise JfsError(f"{what} {'is' if len(names) == 1 else 'are'} not on a jfs mount") from None
    except OSError as exc:
        raise JfsError(f"{what}: cannot reach the jfs mount at {root}: {exc.strerror}") from None
    doc: dict[str, Any] = json.loads(b"".join(chunks))
    if "error" in doc:
        raise JfsError(f"{what}: {doc['error']}")
    return doc
