"""`ObjectView`: a jfs volume seen as S3 buckets and objects, on the VFS of one client.

Buckets are the client's root (one bucket named after the volume) or, with `multi_buckets`, its top-level
directories. Objects are files; a key ending in ``/`` is a directory. What S3 keeps beside the bytes is
kept in extended attributes of the file, so it follows the file through renames and is visible on a mount:
``user.s3.object`` (JSON: the ETag with the length and mtime it was computed for, the standard headers and
the names of the user metadata) and ``user.s3.meta.<name>`` for each ``x-amz-meta-<name>``. A file changed
by another client (a mount) no longer matches its record and gets a synthetic ETag (``<md5>-1``, which
clients do not take for an MD5).

Writes are atomic for readers: an object is written to a temporary file in ``/.sys/tmp`` and renamed onto
its key when complete, so a crash or a failed upload never shows a partial object (the temporary file a
dead process leaves is removed by age: `cleanup.purge_stale_uploads`). Copies and multipart completion reference the
source's slices (`copy_file_range`): no data moves.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import json
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Mapping
from dataclasses import dataclass, field
from typing import Any

from jfs.app.meta import Ctx
from jfs.app.objectview.checksums import HEADER_PREFIX, ChecksumSlot
from jfs.app.objectview.errors import ObjectError
from jfs.app.objectview.keys import RESERVED_TOP, SYS_DIR, TMP_DIR, key_parts, valid_bucket
from jfs.app.vfs import VFS, PathResolver
from jfs.domain.attrs import Attr, FileType
from jfs.domain.errors import FSError

RECORD = b"user.s3.object"
META_PREFIX = b"user.s3.meta."
TAGS = b"user.s3.tagging"
DIR_MARKER = b"user.s3.dir"
"""Set on a directory PUT as the object ``dir/``: it outlives the objects under it (as on S3)."""
EMPTY_MD5 = hashlib.md5(b"").hexdigest()
STANDARD_HEADERS = ("content-type", "content-encoding", "content-disposition", "content-language",
                    "cache-control", "expires")
"""Headers S3 stores with an object and returns on GET/HEAD."""


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    size: int
    etag: str
    """Without quotes: an MD5 in hex, ``<md5 of part MD5s>-N`` for multipart, or synthetic ``<md5>-1``."""
    mtime_ns: int
    is_dir: bool = False
    headers: Mapping[str, str] = field(default_factory=dict)
    meta: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class NewObject:
    """What a writer says about an object besides its bytes."""

    headers: Mapping[str, str] = field(default_factory=dict)
    meta: Mapping[str, str] = field(default_factory=dict)
    content_md5: bytes | None = None
    """The MD5 the client sent (Content-MD5): BadDigest when the body differs."""
    checksum: ChecksumSlot | None = None
    """Filled by the front once the body matched its declared checksum: stored with the object."""
    md5: Any = None
    """An MD5 hasher the front updates with every piece of the body (it hashes all its digests in one
    pass, possibly while the piece is written): complete once the body iterator has ended; None: the
    view hashes the body itself."""


async def hashed_write(md5: Any, write: Awaitable[int], chunk: bytes) -> None:
    """Hash `chunk` (in a worker thread when big: hashlib releases the GIL) while `write` buffers it."""
    if len(chunk) >= 64 << 10:
        await asyncio.gather(asyncio.to_thread(md5.update, chunk), write)
    else:
        md5.update(chunk)
        await write


def synthetic_etag(ino: int, attr: Attr) -> str:
    return hashlib.md5(f"{ino}:{attr.length}:{attr.mtime_ns}".encode()).hexdigest() + "-1"


def fs_error(exc: FSError, *, writing: bool = False, resource: str = "") -> ObjectError:
    """The S3 error for a file-system failure on an object."""
    code = exc.errno
    if code in (errno.ENOENT, errno.EISDIR) or (code == errno.ENOTDIR and not writing):
        return ObjectError("NoSuchKey", "The specified key does not exist.", resource=resource)
    if code == errno.ENOTDIR:
        return ObjectError("XMinioParentIsObject", "A prefix of the key is an object.", resource=resource)
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return ObjectError("AccessDenied", exc.strerror or "Access Denied", resource=resource)
    if code == errno.ENAMETOOLONG:
        return ObjectError("KeyTooLongError", "Your key is too long.", resource=resource)
    if code in (errno.ENOSPC, errno.EDQUOT):
        return ObjectError("XMinioStorageFull", "The volume or its quota is full.", resource=resource)
    if code == errno.ENOTEMPTY:
        return ObjectError("XMinioObjectExistsAsDirectory", "The key is a non-empty directory.", resource=resource)
    return ObjectError("InternalError", exc.strerror or str(exc), resource=resource)


class ObjectView:
    """Buckets and objects of one volume client. `ctx` is the caller every operation runs as."""

    def __init__(self, vfs: VFS, root: int, volume: str, ctx: Ctx, *, multi_buckets: bool = False,
                 umask: int = 0o022) -> None:
        self.vfs = vfs
        self.paths = PathResolver(vfs, root)
        self.root = root
        self.volume = volume
        self.ctx = ctx
        self.multi_buckets = multi_buckets
        self.umask = umask
        self._tmp: int | None = None

    # ------------------------------------------------------------------ buckets

    def _bucket_path(self, bucket: str) -> bytes:
        if self.multi_buckets:
            if not valid_bucket(bucket):
                raise ObjectError("NoSuchBucket", "The specified bucket does not exist.", resource=bucket)
            return b"/" + bucket.encode()
        if bucket != self.volume:
            raise ObjectError("NoSuchBucket", "The specified bucket does not exist.", resource=bucket)
        return b"/"

    async def bucket_inode(self, bucket: str) -> int:
        """The directory of `bucket`; NoSuchBucket."""
        try:
            ino, attr = await self.paths.resolve(self.ctx, self._bucket_path(bucket))
        except FSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                raise ObjectError("NoSuchBucket", "The specified bucket does not exist.", resource=bucket) from None
            raise fs_error(exc, resource=bucket) from None
        if attr.typ is not FileType.DIRECTORY:
            raise ObjectError("NoSuchBucket", "The specified bucket does not exist.", resource=bucket)
        return ino

    async def list_buckets(self) -> list[tuple[str, int]]:
        """(name, creation time ns) of every bucket, by name."""
        root_attr = await self.vfs.getattr(self.ctx, self.root)
        if not self.multi_buckets:
            return [(self.volume, root_attr.ctime_ns)]
        out = []
        for e in await self.vfs.listdir(self.ctx, self.root, plus=True):
            name = e.name.decode("utf-8", "replace")
            if e.typ is FileType.DIRECTORY and e.name not in RESERVED_TOP and valid_bucket(name):
                out.append((name, e.attr.ctime_ns if e.attr else 0))
        return out

    async def create_bucket(self, bucket: str) -> None:
        if not self.multi_buckets:
            if bucket == self.volume:
                raise ObjectError("BucketAlreadyOwnedByYou", "The bucket exists and is yours.", resource=bucket)
            raise ObjectError("AccessDenied", "This gateway serves one bucket (start it with --multi-buckets).",
                              resource=bucket)
        if not valid_bucket(bucket):
            raise ObjectError("InvalidBucketName", "The specified bucket is not valid.", resource=bucket)
        try:
            await self.vfs.mkdir(self.ctx, self.root, bucket.encode(), 0o777 & ~self.umask)
        except FSError as exc:
            if exc.errno == errno.EEXIST:
                raise ObjectError("BucketAlreadyOwnedByYou", "The bucket exists and is yours.",
                                  resource=bucket) from None
            raise fs_error(exc, writing=True, resource=bucket) from None

    async def delete_bucket(self, bucket: str) -> None:
        ino = await self.bucket_inode(bucket)
        # Emptiness first: a non-empty bucket is BucketNotEmpty whatever the mode (S3's and JuiceFS's answer).
        if any(ino != self.root or e.name not in RESERVED_TOP for e in await self.vfs.listdir(self.ctx, ino)):
            raise ObjectError("BucketNotEmpty", "The bucket you tried to delete is not empty.", resource=bucket)
        if not self.multi_buckets:
            raise ObjectError("AccessDenied", "The volume's bucket cannot be deleted.", resource=bucket)
        try:
            await self.vfs.rmdir(self.ctx, self.root, bucket.encode())
        except FSError as exc:
            if exc.errno == errno.ENOTEMPTY:
                raise ObjectError("BucketNotEmpty", "The bucket you tried to delete is not empty.",
                                  resource=bucket) from None
            raise fs_error(exc, writing=True, resource=bucket) from None

    # ------------------------------------------------------------------ records

    async def _record(self, ino: int, attr: Attr) -> tuple[str, dict[str, str], dict[str, str]]:
        """(ETag, standard headers, user metadata) of a file."""
        try:
            rec = json.loads(await self.vfs.getxattr(self.ctx, ino, RECORD))
        except (FSError, ValueError):
            return synthetic_etag(ino, attr), {}, {}
        if rec.get("size") != attr.length or rec.get("mtime") != attr.mtime_ns:
            return synthetic_etag(ino, attr), {}, {}
        meta = {}
        for name in rec.get("meta", ()):
            try:
                meta[name] = (await self.vfs.getxattr(self.ctx, ino, META_PREFIX + name.encode())).decode()
            except FSError:
                continue
        return str(rec.get("etag", "")), dict(rec.get("headers", {})), meta

    async def etags_of(self, files: list[tuple[int, Attr]]) -> list[str]:
        """The ETags of many files in one metadata round trip."""
        raw = await self.vfs.getxattr_many(self.ctx, [ino for ino, _ in files], RECORD) if files else []
        out = []
        for (ino, attr), value in zip(files, raw, strict=True):
            try:
                rec = json.loads(value) if value is not None else None
            except ValueError:
                rec = None
            if rec is None or rec.get("size") != attr.length or rec.get("mtime") != attr.mtime_ns:
                out.append(synthetic_etag(ino, attr))
            else:
                out.append(str(rec.get("etag", "")))
        return out

    async def etag_of(self, ino: int, attr: Attr) -> str:
        try:
            rec = json.loads(await self.vfs.getxattr(self.ctx, ino, RECORD))
        except (FSError, ValueError):
            return synthetic_etag(ino, attr)
        if rec.get("size") != attr.length or rec.get("mtime") != attr.mtime_ns:
            return synthetic_etag(ino, attr)
        return str(rec.get("etag", ""))

    async def _write_record(self, ino: int, etag: str, headers: Mapping[str, str], meta: Mapping[str, str]) -> Attr:
        """Store the object's record and user metadata on file `ino`; returns the attributes the record
        was written for (a rename keeps its length and mtime: the caller needs not read them again)."""
        attr = await self.vfs.getattr(self.ctx, ino)
        for name, value in meta.items():
            await self.vfs.setxattr(self.ctx, ino, META_PREFIX + name.encode(), value.encode())
        rec = {"etag": etag, "size": attr.length, "mtime": attr.mtime_ns,
               "headers": {k: v for k, v in headers.items() if k in STANDARD_HEADERS or k.startswith(HEADER_PREFIX)}, "meta": sorted(meta)}
        await self.vfs.setxattr(self.ctx, ino, RECORD, json.dumps(rec, separators=(",", ":")).encode())
        return attr

    # ------------------------------------------------------------------ paths

    def _key_path(self, bucket: str, parts: list[bytes]) -> bytes:
        return self._bucket_path(bucket).rstrip(b"/") + b"/" + b"/".join(parts)

    async def _resolve_key(self, bucket: str, key: str) -> tuple[int, Attr, bool]:
        """(inode, attributes, is_dir) of an existing object; NoSuchBucket / NoSuchKey."""
        parts, is_dir = key_parts(key)
        await self.bucket_inode(bucket)
        try:
            ino, attr = await self.paths.resolve(self.ctx, self._key_path(bucket, parts), follow=True)
        except FSError as exc:
            raise fs_error(exc, resource=key) from None
        if (attr.typ is FileType.DIRECTORY) != is_dir or attr.typ not in (FileType.DIRECTORY, FileType.REGULAR):
            raise ObjectError("NoSuchKey", "The specified key does not exist.", resource=key)
        return ino, attr, is_dir

    async def _makedirs(self, start: int, names: list[bytes]) -> int:
        """mkdir -p of `names` below directory `start`; returns the last directory."""
        ino = start
        for name in names:
            try:
                ino, attr = await self._lookup(ino, name)
            except FSError as exc:
                if exc.errno != errno.ENOENT:
                    raise
                try:
                    ino, attr = await self.vfs.mkdir(self.ctx, ino, name, 0o777 & ~self.umask)
                except FSError as exc2:
                    if exc2.errno != errno.EEXIST:
                        raise
                    ino, attr = await self._lookup(ino, name)  # made meanwhile by another request
            if attr.typ is not FileType.DIRECTORY:
                raise FSError(errno.ENOTDIR)
        return ino

    async def _lookup(self, parent: int, name: bytes) -> tuple[int, Attr]:
        ino, attr = await self.paths._lookup(self.ctx, parent, name)
        assert isinstance(attr, Attr)  # only a `passing` lookup may answer a bare type
        return ino, attr

    async def _parent_dir(self, bucket: str, parts: list[bytes]) -> int:
        """The directory that holds the last of `parts`, created as needed."""
        base = await self.bucket_inode(bucket)
        if len(parts) == 1:
            return base
        try:
            ino, attr = await self.paths.resolve(self.ctx, self._key_path(bucket, parts[:-1]))
            if attr.typ is FileType.DIRECTORY:
                return ino
            raise FSError(errno.ENOTDIR)
        except FSError as exc:
            if exc.errno != errno.ENOENT:
                raise
        return await self._makedirs(base, parts[:-1])

    async def tmp_dir(self) -> int:
        if self._tmp is None:
            self._tmp = await self._makedirs(self.root, [SYS_DIR, TMP_DIR])
        return self._tmp

    async def new_tmp(self) -> tuple[int, int, bytes]:
        """A new temporary file: (inode, handle, name in the tmp directory)."""
        name = uuid.uuid4().hex.encode()
        try:
            ino, _, f = await self.vfs.create(self.ctx, await self.tmp_dir(), name, 0o666 & ~self.umask,
                                              os.O_RDWR | os.O_CREAT | os.O_EXCL)
        except FSError as exc:
            if exc.errno != errno.ENOENT:
                raise
            self._tmp = None  # the tmp directory was removed behind us
            ino, _, f = await self.vfs.create(self.ctx, await self.tmp_dir(), name, 0o666 & ~self.umask,
                                              os.O_RDWR | os.O_CREAT | os.O_EXCL)
        return ino, f.fh, name


    async def receive(self, ino: int, fh: int, body: AsyncIterator[bytes], md5: Any = None) -> Any:
        """Write `body` from offset 0 into the open temporary file `ino`/`fh`, commit and close it;
        returns the MD5 of the bytes: `md5` when given (the body's producer updates it with every piece,
        by the body's end), else hashed here while the writes are buffered.

        The next piece is read (and hashed by its producer) while the current one is written, so at most
        two pieces of the body are held at once. A failure of the body (a bad digest at its end) or of a
        write stops both and propagates; nothing is committed then.
        """
        hash_here = md5 is None
        if md5 is None:
            md5 = hashlib.md5()
        it = aiter(body)
        offset = 0
        pending: asyncio.Future[bytes | None] = asyncio.ensure_future(anext(it, None))
        try:
            while (chunk := await pending) is not None:
                pending = asyncio.ensure_future(anext(it, None))  # read ahead while this piece is written
                write = self.vfs.write(self.ctx, ino, fh, offset, chunk, owned=True)
                if hash_here:
                    await hashed_write(md5, write, chunk)
                else:
                    await write
                offset += len(chunk)
            await self.vfs.flush(self.ctx, ino, fh)
        finally:
            if not pending.done():
                pending.cancel()
                with contextlib.suppress(BaseException):
                    await pending
            await self.vfs.release(self.ctx, ino, fh)
        return md5

    async def drop_tmp(self, name: bytes) -> None:
        try:
            await self.vfs.unlink(self.ctx, await self.tmp_dir(), name)
        except FSError:
            pass

    async def _publish(self, bucket: str, key: str, parts: list[bytes], tmp_name: bytes) -> None:
        """Rename a complete temporary file onto its key (replacing a file there)."""
        try:
            for attempt in range(3):
                parent = await self._parent_dir(bucket, parts)
                try:
                    await self.vfs.rename(self.ctx, await self.tmp_dir(), tmp_name, parent, parts[-1])
                    return
                except FSError as exc:
                    # A delete removed the (then empty) parent meanwhile: make it again.
                    if exc.errno != errno.ENOENT or attempt == 2:
                        raise
                    if self.vfs.names is not None:
                        self.vfs.names.clear()
        except FSError as exc:
            if exc.errno in (errno.EISDIR, errno.ENOTEMPTY, errno.EEXIST):
                raise ObjectError("XMinioObjectExistsAsDirectory", "The key is a directory.", resource=key) from None
            raise fs_error(exc, writing=True, resource=key) from None

    # ------------------------------------------------------------------ objects

    async def put_object(self, bucket: str, key: str, body: AsyncIterator[bytes], new: NewObject) -> ObjectInfo:
        """Store the bytes of `body` as `key` (atomically: readers see the old object or the whole new one)."""
        parts, is_dir = key_parts(key)
        await self.bucket_inode(bucket)
        if is_dir:
            async for chunk in body:
                if chunk:
                    raise ObjectError("XMinioObjectExistsAsDirectory", "A key ending in '/' is a directory: "
                                      "it cannot hold data.", resource=key)
            try:
                ino = await self._makedirs(await self.bucket_inode(bucket), parts)
                await self.vfs.setxattr(self.ctx, ino, DIR_MARKER, b"1")
            except FSError as exc:
                raise fs_error(exc, writing=True, resource=key) from None
            attr = await self.vfs.getattr(self.ctx, ino)
            return ObjectInfo(key, 0, EMPTY_MD5, attr.mtime_ns, True)
        ino, fh, tmp = await self.new_tmp()
        try:
            md5 = await self.receive(ino, fh, body, new.md5)
            if new.content_md5 is not None and md5.digest() != new.content_md5:
                raise ObjectError("BadDigest", "The Content-MD5 you specified did not match what was received.",
                                  resource=key)
            etag = str(md5.hexdigest())
            headers = {**new.headers, **(new.checksum.header() if new.checksum is not None else {})}
            attr = await self._write_record(ino, etag, headers, new.meta)
            await self._publish(bucket, key, parts, tmp)
        except BaseException:
            await self.drop_tmp(tmp)
            raise
        return ObjectInfo(key, attr.length, etag, attr.mtime_ns, False, headers, dict(new.meta))

    async def head_object(self, bucket: str, key: str) -> ObjectInfo:
        ino, attr, is_dir = await self._resolve_key(bucket, key)
        if is_dir:
            return ObjectInfo(key, 0, EMPTY_MD5, attr.mtime_ns, True)
        etag, headers, meta = await self._record(ino, attr)
        return ObjectInfo(key, attr.length, etag, attr.mtime_ns, False, headers, meta)

    async def open_object(self, bucket: str, key: str) -> ObjectReader:
        """An open object to read ranges from (close it)."""
        ino, attr, is_dir = await self._resolve_key(bucket, key)
        if is_dir:
            return ObjectReader(self, 0, 0, ObjectInfo(key, 0, EMPTY_MD5, attr.mtime_ns, True))
        try:
            f = await self.vfs.open(self.ctx, ino, os.O_RDONLY)
            attr = await self.vfs.getattr(self.ctx, ino)
        except FSError as exc:
            raise fs_error(exc, resource=key) from None
        try:
            etag, headers, meta = await self._record(ino, attr)
        except BaseException:
            await self.vfs.release(self.ctx, ino, f.fh)
            raise
        return ObjectReader(self, ino, f.fh, ObjectInfo(key, attr.length, etag, attr.mtime_ns, False, headers, meta))

    async def delete_object(self, bucket: str, key: str) -> None:
        """Remove `key` (nothing when it does not exist), then its parent directories left empty, up to
        one that was PUT as a ``dir/`` object (`DIR_MARKER`): that object stays, as on S3."""
        parts, is_dir = key_parts(key)
        base = await self.bucket_inode(bucket)
        try:
            parent = base
            chain = [base]
            for name in parts[:-1]:
                parent, attr = await self._lookup(parent, name)
                if attr.typ is not FileType.DIRECTORY:
                    return
                chain.append(parent)
            if is_dir:
                await self.vfs.rmdir(self.ctx, parent, parts[-1])
            else:
                _, attr = await self._lookup(parent, parts[-1])
                if attr.typ is FileType.DIRECTORY:
                    return
                await self.vfs.unlink(self.ctx, parent, parts[-1])
        except FSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ENOTEMPTY):
                return
            raise fs_error(exc, writing=True, resource=key) from None
        for depth in range(len(parts) - 1, 0, -1):  # S3 has no directories: drop the ones the key made
            try:
                if await self._is_marker(chain[depth]):
                    break
                await self.vfs.rmdir(self.ctx, chain[depth - 1], parts[depth - 1])
            except FSError:
                break

    async def _is_marker(self, ino: int) -> bool:
        try:
            await self.vfs.getxattr(self.ctx, ino, DIR_MARKER)
        except FSError as exc:
            if exc.errno == errno.ENODATA:
                return False
            raise
        return True

    async def copy_object(self, src_bucket: str, src_key: str, bucket: str, key: str,
                          new: NewObject | None) -> ObjectInfo:
        """Copy by slice reference; `new` None keeps the source's headers and metadata (COPY directive)."""
        src_ino, src_attr, src_dir = await self._resolve_key(src_bucket, src_key)
        parts, is_dir = key_parts(key)
        if src_dir or is_dir:
            raise ObjectError("InvalidRequest", "Directories cannot be copied.", resource=key)
        etag, headers, meta = await self._record(src_ino, src_attr)
        if new is not None:
            headers, meta = dict(new.headers), dict(new.meta)
        if (src_bucket, src_key) == (bucket, key):
            if new is None:
                raise ObjectError("InvalidRequest", "This copy request is illegal because it is trying to copy an "
                                  "object to itself without changing the object's metadata.", resource=key)
            for name in await self.vfs.listxattr(self.ctx, src_ino):
                if name.startswith(META_PREFIX):
                    await self.vfs.removexattr(self.ctx, src_ino, name)
            await self._write_record(src_ino, etag, headers, meta)
            return ObjectInfo(key, src_attr.length, etag, src_attr.mtime_ns, False, headers, meta)
        await self.bucket_inode(bucket)
        ino, fh, tmp = await self.new_tmp()
        try:
            try:
                await self.copy_range(src_ino, 0, ino, 0, src_attr.length)
            finally:
                await self.vfs.release(self.ctx, ino, fh)
            attr = await self._write_record(ino, etag, headers, meta)
            await self._publish(bucket, key, parts, tmp)
        except BaseException:
            await self.drop_tmp(tmp)
            raise
        return ObjectInfo(key, attr.length, etag, attr.mtime_ns, False, headers, meta)

    async def get_tags(self, bucket: str, key: str) -> dict[str, str]:
        ino, _, _ = await self._resolve_key(bucket, key)
        try:
            return dict(json.loads(await self.vfs.getxattr(self.ctx, ino, TAGS)))
        except (FSError, ValueError):
            return {}

    async def set_tags(self, bucket: str, key: str, tags: Mapping[str, str]) -> None:
        """Replace the object's tags (none: remove them)."""
        ino, _, _ = await self._resolve_key(bucket, key)
        try:
            if tags:
                await self.vfs.setxattr(self.ctx, ino, TAGS, json.dumps(dict(tags)).encode())
            else:
                await self.vfs.removexattr(self.ctx, ino, TAGS)
        except FSError as exc:
            if exc.errno != errno.ENODATA:
                raise fs_error(exc, writing=True, resource=key) from None

    async def copy_range(self, src: int, src_off: int, dst: int, dst_off: int, length: int) -> None:
        done = 0
        while done < length:
            n = await self.vfs.copy_file_range(self.ctx, src, src_off + done, dst, dst_off + done, length - done)
            if n <= 0:
                raise ObjectError("InternalError", "the source ended early")
            done += n


class ObjectReader:
    """An object opened for reading: `info`, `chunks(start, end)`, `close()`."""

    def __init__(self, view: ObjectView, ino: int, fh: int, info: ObjectInfo) -> None:
        self.view = view
        self.ino = ino
        self.fh = fh
        self.info = info

    async def chunks(self, start: int, end: int, size: int = 1 << 20) -> AsyncIterator[bytes]:
        """The bytes [start, end) in pieces of at most `size` (one piece in memory at a time)."""
        at = start
        while at < end:
            buf = await self.view.vfs.read(self.view.ctx, self.ino, self.fh, at, min(size, end - at))
            if not buf:
                break
            at += len(buf)
            yield buf  # type: ignore[misc]

    async def close(self) -> None:
        if self.fh:
            fh, self.fh = self.fh, 0
            await self.view.vfs.release(self.view.ctx, self.ino, fh)
