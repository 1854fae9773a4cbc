"""``.control`` requests: JSON written to the virtual file ``.control``, answered by reading it back.

A request names inodes (``info``, ``summary``, ``warmup``) or a name in a directory (``rmr``); it runs with
the credentials of the process that wrote it. The answer is JSON: the result, or ``{"error", "errno"}``.
"""

from __future__ import annotations

import errno
import json
import os
import struct
from typing import TYPE_CHECKING, Any

from jfs.app import tree_jobs
from jfs.app.inode_info import inode_info
from jfs.app.meta import Ctx
from jfs.app.virtual_files import VIRTUAL_FILES
from jfs.domain.attrs import ROOT_INODE
from jfs.domain.errors import FSError

if TYPE_CHECKING:
    from jfs.app.vfs.core import VFS


async def answer_control(vfs: VFS, request: bytes, who: Ctx) -> bytes:
    """Serve one request: ``{"op": "info"|"summary"|"rmr"|"warmup", ...}``; never raises.

    Every request runs as `who`, the writer of the request (with its supplementary groups), with permission
    checks on even when a kernel checks the rest (``default_permissions``): requests name inodes by number,
    so no path check ran — the use cases check what `who` may see."""
    try:
        req = json.loads(request or b"{}")
        op = req.get("op")
        doc: dict[str, Any]
        if op == "info":
            doc = await inode_info(vfs.meta, int(req["inode"]), recursive=bool(req.get("recursive", True)), ctx=who)
        elif op == "summary":
            doc = await tree_jobs.summary_tree(vfs.meta, int(req["inode"]), str(req.get("name", "")),
                                           depth=int(req.get("depth", 2)), entries=int(req.get("entries", 10)),
                                           ctx=who)
        elif op == "rmr":
            doc = await remove_tree(vfs, int(req["parent"]), os.fsencode(str(req["name"])),
                                    int(req.get("threads", 16)), who)
        elif op == "warmup":
            doc = await tree_jobs.warmup(vfs.meta, vfs.data, [int(i) for i in req["inodes"]],
                                     threads=int(req.get("threads", 16)), ctx=who)
        else:
            raise ValueError(f"unknown request {op!r}")
    except OSError as exc:
        doc = {"error": os.strerror(exc.errno or errno.EIO), "errno": exc.errno}
    except (ValueError, KeyError, TypeError, OverflowError, struct.error) as exc:  # bad numbers, e.g. inode 2**70
        doc = {"error": f"bad request: {exc}", "errno": errno.EINVAL}
    return json.dumps(doc).encode()


async def remove_tree(vfs: VFS, parent: int, name: bytes, threads: int, who: Ctx) -> dict[str, Any]:
    """Remove `name` in `parent` recursively (as `who`), then tell the face's cache the name is gone."""
    if not name or name in (b".", b"..") or b"/" in name or (parent == ROOT_INODE and name in VIRTUAL_FILES):
        raise FSError(errno.EINVAL)
    if vfs.config.read_only:
        raise FSError(errno.EROFS)
    doc = await tree_jobs.remove_tree(vfs.meta, parent, name, threads=threads, ctx=who)
    if vfs.names is not None:
        vfs.names.clear()
    if vfs.invalidator is not None:
        try:
            vfs.invalidator.inval_entry(parent, doc["inode"], name)
            vfs.invalidator.inval_inode(parent, data=False)
        except OSError:
            pass
    return doc
