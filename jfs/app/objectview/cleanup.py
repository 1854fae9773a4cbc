"""Reclaiming what interrupted uploads leave in the gateway's ``/.sys``.

A PUT streams into ``/.sys/tmp/<uuid>`` and a multipart upload keeps its parts in
``/.sys/multipart/<upload id>/`` (`ObjectView.new_tmp`, `Multipart`). A gateway killed mid-upload, or a
client that never completes nor aborts, leaves them behind, invisible to S3 listings but holding data.
`purge_stale_uploads` removes those older than an age, as JuiceFS's gateway does (default 7 days, S3's
usual lifecycle for incomplete multipart uploads):

* a temporary file whose mtime is older than the age (a live upload writes, so its mtime keeps moving);
* an upload directory whose creation (its record's ``initiated``) *and* latest change (the directory's
  mtime: a part stored) are both older than the age, parts first, then the directory. A directory
  without a readable record is judged by its mtime alone.

It is safe beside live gateways as long as the age exceeds the longest pause of a live upload: a part
stored into an upload that was just purged fails with NoSuchUpload, never lands elsewhere. Removal is
`unlink`/`rmdir` through the VFS, so with trash enabled the files go to the trash like any other.
"""

from __future__ import annotations

import errno
import json
import time

import structlog

from jfs.app.meta import ROOT_CTX, Ctx
from jfs.app.objectview.keys import SYS_DIR, TMP_DIR, UPLOADS_DIR
from jfs.app.objectview.multipart import UPLOAD as UPLOAD_RECORD
from jfs.app.objectview.report import DEFAULT_AGE, PurgeReport
from jfs.app.vfs import VFS
from jfs.domain.attrs import FileType
from jfs.domain.errors import FSError

log = structlog.get_logger("jfs.gateway")


async def _child_dir(vfs: VFS, ctx: Ctx, parent: int, name: bytes) -> int | None:
    try:
        ino, attr = await vfs.lookup(ctx, parent, name)
    except FSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        raise
    return ino if attr.typ is FileType.DIRECTORY else None


async def purge_stale_uploads(vfs: VFS, root: int, age: float = DEFAULT_AGE, *, ctx: Ctx = ROOT_CTX,
                              now_ns: int | None = None, dry_run: bool = False) -> PurgeReport:
    """Remove the gateway's temporary files and multipart uploads under ``<root>/.sys`` older than `age`
    seconds (see the module's rules); `root` is the directory a gateway serves (the volume root, or its
    ``--subdir``). Entries that vanish meanwhile (a live gateway completing or aborting) are skipped.

    Returns what was removed; engine errors propagate (nothing half-judged is removed).
    """
    now = time.time_ns() if now_ns is None else now_ns
    cutoff = now - int(age * 1e9)
    report = PurgeReport()
    sys_dir = await _child_dir(vfs, ctx, root, SYS_DIR)
    if sys_dir is None:
        return report
    tmp = await _child_dir(vfs, ctx, sys_dir, TMP_DIR)
    if tmp is not None:
        async for e in vfs.iterdir(ctx, tmp, plus=True):
            if e.typ is not FileType.REGULAR or e.attr is None or e.attr.mtime_ns >= cutoff:
                continue
            if not dry_run and not await _unlink(vfs, ctx, tmp, e.name):
                continue
            report.tmp_files += 1
            report.bytes += e.attr.length
    uploads = await _child_dir(vfs, ctx, sys_dir, UPLOADS_DIR)
    if uploads is not None:
        async for e in vfs.iterdir(ctx, uploads, plus=True):
            if e.typ is not FileType.DIRECTORY or e.attr is None or e.attr.mtime_ns >= cutoff:
                continue
            try:
                initiated = int(json.loads(await vfs.getxattr(ctx, e.ino, UPLOAD_RECORD))["initiated"])
            except (FSError, ValueError, KeyError, TypeError):
                initiated = 0
            if initiated >= cutoff:
                continue
            parts, size = await _purge_upload(vfs, ctx, uploads, e.name, e.ino, dry_run)
            if parts < 0:
                continue
            report.uploads += 1
            report.parts += parts
            report.bytes += size
    if report:
        log.info("stale_uploads_purged" if not dry_run else "stale_uploads_found", tmp_files=report.tmp_files,
                 uploads=report.uploads, parts=report.parts, bytes=report.bytes, age=age)
    return report


async def _unlink(vfs: VFS, ctx: Ctx, parent: int, name: bytes) -> bool:
    try:
        await vfs.unlink(ctx, parent, name)
    except FSError as exc:
        if exc.errno == errno.ENOENT:
            return False
        raise
    return True


async def _purge_upload(vfs: VFS, ctx: Ctx, uploads: int, name: bytes, ino: int, dry_run: bool
                        ) -> tuple[int, int]:
    """(parts, bytes) of the upload directory `name`, removed unless `dry_run`; parts -1 when it vanished."""
    parts = size = 0
    try:
        entries = await vfs.listdir(ctx, ino, plus=True)
    except FSError as exc:
        if exc.errno == errno.ENOENT:
            return -1, 0
        raise
    for e in entries:
        if dry_run or await _unlink(vfs, ctx, ino, e.name):
            parts += 1
            size += e.attr.length if e.attr is not None else 0
    if not dry_run:
        try:
            await vfs.rmdir(ctx, uploads, name)
        except FSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTEMPTY):  # gone, or a part stored meanwhile (judged again
                return -1, 0                                 # by the next pass)
            raise
    return parts, size
