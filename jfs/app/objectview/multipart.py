"""Multipart uploads: each upload is a directory ``/.sys/multipart/<upload id>`` holding one file per part
(named by its number) and, in the xattr ``user.s3.upload``, the bucket, key, headers and metadata it was
created with. Completing assembles the parts into a temporary file by slice reference (no data is copied),
renames it onto the key and removes the upload. Uploads never completed nor aborted are removed by age
(`cleanup.purge_stale_uploads`, run by the gateway and `jfs gc`).
"""

from __future__ import annotations

import errno
import hashlib
import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from jfs.app.objectview.checksums import (
    FULL_OBJECT,
    HEADER_PREFIX,
    TYPES,
    ChecksumSlot,
    composite,
    default_type,
    full_object,
    stored_checksum,
)
from jfs.app.objectview.errors import ObjectError
from jfs.app.objectview.keys import SYS_DIR, UPLOADS_DIR, key_parts
from jfs.app.objectview.service import NewObject, ObjectInfo, ObjectView
from jfs.domain.attrs import FileType
from jfs.domain.errors import FSError

UPLOAD = b"user.s3.upload"
MIN_PART = 5 << 20
MAX_PART_NUMBER = 10000
_UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True, slots=True)
class Upload:
    upload_id: str
    bucket: str
    key: str
    initiated_ns: int
    headers: dict[str, str] = field(default_factory=dict)
    meta: dict[str, str] = field(default_factory=dict)
    checksum: tuple[str, str] | None = None
    """(algorithm, COMPOSITE or FULL_OBJECT) declared by CreateMultipartUpload, or None."""


@dataclass(frozen=True, slots=True)
class Part:
    number: int
    size: int
    etag: str
    mtime_ns: int
    checksum: tuple[str, str] | None = None
    """(algorithm, base64) of the part's verified additional checksum."""


class Multipart:
    """The multipart uploads of an `ObjectView`."""

    def __init__(self, view: ObjectView) -> None:
        self.view = view
        self._dir: int | None = None

    async def _uploads_dir(self) -> int:
        if self._dir is None:
            self._dir = await self.view._makedirs(self.view.root, [SYS_DIR, UPLOADS_DIR])
        return self._dir

    async def _upload(self, bucket: str, key: str | None, upload_id: str) -> tuple[int, Upload]:
        """The directory and record of an upload; NoSuchUpload (also for another key's upload)."""
        if not _UPLOAD_ID.match(upload_id):
            raise ObjectError("NoSuchUpload", "The specified upload does not exist.", resource=upload_id)
        try:
            ino, _ = await self.view._lookup(await self._uploads_dir(), upload_id.encode())
            rec = json.loads(await self.view.vfs.getxattr(self.view.ctx, ino, UPLOAD))
        except (FSError, ValueError):
            raise ObjectError("NoSuchUpload", "The specified upload does not exist.", resource=upload_id) from None
        declared = rec.get("checksum")
        up = Upload(upload_id, rec["bucket"], rec["key"], rec["initiated"], rec.get("headers", {}), rec.get("meta", {}),
                    (declared[0], declared[1]) if declared else None)
        if up.bucket != bucket or (key is not None and up.key != key):
            raise ObjectError("NoSuchUpload", "The specified upload does not exist.", resource=upload_id)
        return ino, up

    @staticmethod
    def checksum_declaration(algorithm: str | None, kind: str | None) -> tuple[str, str] | None:
        """(algorithm, type) of CreateMultipartUpload's ``x-amz-checksum-algorithm`` / ``-type`` (either
        case), the type defaulted as S3 does; None for neither. InvalidRequest for an unknown algorithm, a
        type without an algorithm or a pair S3 refuses (CRC64NVME COMPOSITE, SHA FULL_OBJECT)."""
        if not algorithm:
            if kind:
                raise ObjectError("InvalidRequest", "The x-amz-checksum-type header can only be used with the "
                                  "x-amz-checksum-algorithm header.")
            return None
        algorithm = algorithm.strip().lower()
        if algorithm not in TYPES:
            raise ObjectError("InvalidRequest", f"Checksum algorithm {algorithm!r} is not supported.")
        kind = kind.strip().upper() if kind else default_type(algorithm)
        if kind not in TYPES[algorithm]:
            raise ObjectError("InvalidRequest", f"The {kind} checksum type cannot be used with the "
                              f"{algorithm.upper()} checksum algorithm.")
        return algorithm, kind

    async def create(self, bucket: str, key: str, new: NewObject, checksum: tuple[str, str] | None = None) -> str:
        """A new upload; `checksum`: the (algorithm, type) its parts and object carry (see
        `checksum_declaration`)."""
        _, is_dir = key_parts(key)
        if is_dir:
            raise ObjectError("XMinioObjectExistsAsDirectory", "A key ending in '/' is a directory.", resource=key)
        await self.view.bucket_inode(bucket)
        upload_id = uuid.uuid4().hex
        ino, _ = await self.view.vfs.mkdir(self.view.ctx, await self._uploads_dir(), upload_id.encode(), 0o700)
        rec = {"bucket": bucket, "key": key, "initiated": time.time_ns(), "headers": dict(new.headers),
               "meta": dict(new.meta), "checksum": list(checksum) if checksum else None}
        await self.view.vfs.setxattr(self.view.ctx, ino, UPLOAD, json.dumps(rec).encode())
        return upload_id

    @staticmethod
    def _part_number(number: int) -> bytes:
        if not 1 <= number <= MAX_PART_NUMBER:
            raise ObjectError("InvalidArgument", "Part number must be an integer between 1 and 10000, inclusive.")
        return b"%05d" % number

    async def _store_part(self, upload_dir: int, number: int, tmp: bytes) -> None:
        v = self.view
        try:
            await v.vfs.rename(v.ctx, await v.tmp_dir(), tmp, upload_dir, self._part_number(number))
        except FSError as exc:
            if exc.errno == errno.ENOENT:
                raise ObjectError("NoSuchUpload", "The upload was aborted meanwhile.") from None
            raise

    async def upload_part(self, bucket: str, key: str, upload_id: str, number: int, body: AsyncIterator[bytes],
                          content_md5: bytes | None = None, checksum: ChecksumSlot | None = None,
                          md5: Any = None) -> str:
        """Store one part; returns its ETag (MD5 hex). A `checksum` slot filled once the body ended is
        kept with the part (ListParts, the object's composite checksum). `md5`: as `NewObject.md5`."""
        self._part_number(number)
        upload_dir, up = await self._upload(bucket, key, upload_id)
        if up.checksum is not None and checksum is not None and checksum.algorithm != up.checksum[0]:
            raise ObjectError("InvalidRequest", f"Checksum Type mismatch occurred, expected checksum Type: "
                              f"{up.checksum[0]}, actual checksum Type: {checksum.algorithm}")
        v = self.view
        ino, fh, tmp = await v.new_tmp()
        try:
            md5 = await v.receive(ino, fh, body, md5)
            if content_md5 is not None and md5.digest() != content_md5:
                raise ObjectError("BadDigest", "The Content-MD5 you specified did not match what was received.")
            etag = str(md5.hexdigest())
            await v._write_record(ino, etag, checksum.header() if checksum is not None else {}, {})
            await self._store_part(upload_dir, number, tmp)
        except BaseException:
            await v.drop_tmp(tmp)
            raise
        return etag

    async def upload_part_copy(self, bucket: str, key: str, upload_id: str, number: int, src_bucket: str,
                               src_key: str, first: int | None, last: int | None) -> tuple[str, int]:
        """A part made of a range of another object (by slice reference); returns (ETag, mtime ns)."""
        self._part_number(number)
        upload_dir, _ = await self._upload(bucket, key, upload_id)
        v = self.view
        src_ino, src_attr, src_dir = await v._resolve_key(src_bucket, src_key)
        if src_dir:
            raise ObjectError("InvalidRequest", "Directories cannot be copied.", resource=src_key)
        start, end = (0, src_attr.length) if first is None or last is None else (first, last + 1)
        if start >= end or end > src_attr.length:
            raise ObjectError("InvalidArgument", "The x-amz-copy-source-range is not within the source object.")
        ino, fh, tmp = await v.new_tmp()
        try:
            try:
                await v.copy_range(src_ino, start, ino, 0, end - start)
            finally:
                await v.vfs.release(v.ctx, ino, fh)
            etag = await v.etag_of(src_ino, src_attr) if (start, end) == (0, src_attr.length) else ""
            if not etag or "-" in etag:  # the part's own MD5 is needed: read the range (no write)
                reader = await v.open_object(src_bucket, src_key)
                try:
                    md5 = hashlib.md5()
                    async for chunk in reader.chunks(start, end):
                        md5.update(chunk)
                    etag = md5.hexdigest()
                finally:
                    await reader.close()
            await v._write_record(ino, etag, {}, {})
            await self._store_part(upload_dir, number, tmp)
        except BaseException:
            await v.drop_tmp(tmp)
            raise
        return etag, (await v.vfs.getattr(v.ctx, ino)).mtime_ns

    async def list_parts(self, bucket: str, key: str, upload_id: str) -> tuple[Upload, list[Part]]:
        upload_dir, up = await self._upload(bucket, key, upload_id)
        v = self.view
        parts = []
        for e in await v.vfs.listdir(v.ctx, upload_dir, plus=True):
            if e.attr is None or e.typ is not FileType.REGULAR or not e.name.isdigit():
                continue
            etag, headers, _ = await v._record(e.ino, e.attr)
            parts.append(Part(int(e.name), e.attr.length, etag, e.attr.mtime_ns, stored_checksum(headers)))
        return up, sorted(parts, key=lambda p: p.number)

    async def list_uploads(self, bucket: str, prefix: str = "") -> list[Upload]:
        await self.view.bucket_inode(bucket)
        v = self.view
        out = []
        for e in await v.vfs.listdir(v.ctx, await self._uploads_dir()):
            try:
                _, up = await self._upload(bucket, None, e.name.decode())
            except ObjectError:
                continue
            if up.key.startswith(prefix):
                out.append(up)
        return sorted(out, key=lambda u: (u.key.encode(), u.initiated_ns))

    async def abort(self, bucket: str, key: str, upload_id: str) -> None:
        upload_dir, _ = await self._upload(bucket, key, upload_id)
        await self._remove(upload_dir, upload_id)

    async def _remove(self, upload_dir: int, upload_id: str) -> None:
        v = self.view
        for e in await v.vfs.listdir(v.ctx, upload_dir):
            try:
                await v.vfs.unlink(v.ctx, upload_dir, e.name)
            except FSError:
                pass
        try:
            await v.vfs.rmdir(v.ctx, await self._uploads_dir(), upload_id.encode())
        except FSError:
            pass

    async def complete(self, bucket: str, key: str, upload_id: str, wanted: list[tuple[int, str]],
                       expected: tuple[str, str] | None = None) -> ObjectInfo:
        """Assemble the listed (part number, ETag) in order into the object; its ETag is
        ``md5(concatenated part MD5s)-N``. When every part carries the same checksum the object gets one:
        FULL_OBJECT (the CRC of the whole object, combined from the parts') for an upload declared so and
        always for CRC64NVME, else COMPOSITE. `expected`: the (algorithm, base64) the request says the
        object's checksum is: BadDigest, nothing published, when it differs."""
        upload_dir, up = await self._upload(bucket, key, upload_id)
        v = self.view
        if not wanted:
            raise ObjectError("MalformedXML", "You must specify at least one part.")
        numbers = [n for n, _ in wanted]
        if numbers != sorted(numbers) or len(set(numbers)) != len(numbers):
            raise ObjectError("InvalidPartOrder", "The list of parts was not in ascending order.")
        _, stored = await self.list_parts(bucket, key, upload_id)
        by_number = {p.number: p for p in stored}
        chosen = []
        for i, (n, etag) in enumerate(wanted):
            p = by_number.get(n)
            if p is None or p.etag != etag.strip('"'):
                raise ObjectError("InvalidPart", "One or more of the specified parts could not be found or its "
                                  "entity tag did not match.", resource=str(n))
            if p.size < MIN_PART and i < len(wanted) - 1:
                raise ObjectError("EntityTooSmall", "Your proposed upload is smaller than the minimum allowed "
                                  "object size.", resource=str(n))
            chosen.append(p)
        parts, _ = key_parts(key)
        ino, fh, tmp = await v.new_tmp()
        try:
            offset = 0
            try:
                for p in chosen:
                    part_ino, _ = await v._lookup(upload_dir, self._part_number(p.number))
                    await v.copy_range(part_ino, 0, ino, offset, p.size)
                    offset += p.size
            finally:
                await v.vfs.release(v.ctx, ino, fh)
            md5s = b"".join(bytes.fromhex(p.etag) for p in chosen)
            etag = f"{hashlib.md5(md5s).hexdigest()}-{len(chosen)}"
            headers = dict(up.headers)
            checksum = self._object_checksum(up, chosen)
            if expected is not None and (checksum is None or checksum[0] != expected[0]
                                         or checksum[1].partition("-")[0] != expected[1].partition("-")[0]):
                raise ObjectError("BadDigest", f"The {expected[0].upper()} you specified did not match the "
                                  "calculated checksum.")
            if checksum is not None:
                headers[HEADER_PREFIX + checksum[0]] = checksum[1]
            attr = await v._write_record(ino, etag, headers, up.meta)
            await v._publish(bucket, key, parts, tmp)
        except BaseException:
            await v.drop_tmp(tmp)
            raise
        await self._remove(upload_dir, upload_id)
        return ObjectInfo(key, attr.length, etag, attr.mtime_ns, False, headers, up.meta)


    @staticmethod
    def _object_checksum(up: Upload, chosen: list[Part]) -> tuple[str, str] | None:
        """(algorithm, base64) of the assembled object, from its parts' checksums; None unless every part
        has one of the same algorithm (the upload's, if it declared one)."""
        algorithms = {p.checksum[0] if p.checksum else "" for p in chosen}
        if len(algorithms) != 1 or "" in algorithms:
            return None
        algorithm = algorithms.pop()
        if up.checksum is not None and up.checksum[0] != algorithm:
            return None
        kind = up.checksum[1] if up.checksum is not None else default_type(algorithm)
        if kind == FULL_OBJECT:
            return algorithm, full_object(algorithm, [(p.checksum[1], p.size) for p in chosen if p.checksum])
        return algorithm, composite(algorithm, [p.checksum[1] for p in chosen if p.checksum])


__all__ = ["Multipart", "Part", "Upload"]
