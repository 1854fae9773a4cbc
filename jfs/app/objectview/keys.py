"""Object keys and bucket names → path components, with the checks that keep every key inside its bucket.

A key ``a/b/c`` is file ``c`` in directory ``a/b``; a key ending in ``/`` names a directory. A key that
cannot be a path (an empty, ``.`` or ``..`` component, a NUL byte) is refused, never reinterpreted, so no
key reaches outside its bucket or aliases another key.
"""

from __future__ import annotations

import re

MAX_KEY = 1024
MAX_NAME = 255
SYS_DIR = b".sys"
"""The gateway's own directory at the client's root (temporary files, multipart uploads)."""
TMP_DIR = b"tmp"
"""``/.sys/tmp``: objects being written, renamed onto their keys when complete."""
UPLOADS_DIR = b"multipart"
"""``/.sys/multipart``: one directory per multipart upload, holding its parts."""
RESERVED_TOP = frozenset({SYS_DIR, b".trash", b".stats", b".config", b".control", b".accesslog"})
"""Names at the volume root that are not objects: jfs's virtual files, the trash and the gateway's own."""
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def valid_bucket(name: str) -> bool:
    """S3's bucket naming rules (3-63 of a-z 0-9 . -, alphanumeric at both ends, not an IP address)."""
    return bool(_BUCKET.match(name)) and ".." not in name and not re.match(r"^\d+\.\d+\.\d+\.\d+$", name)


def key_parts(key: str) -> tuple[list[bytes], bool]:
    """The path components of `key` and whether it names a directory (ends in ``/``).

    ObjectError XMinioInvalidObjectName for an empty key or a bad component, KeyTooLongError past 1024
    bytes or 255 bytes in one component.
    """
    from jfs.app.objectview.errors import ObjectError

    raw = key.encode("utf-8", "surrogateescape")
    if not raw:
        raise ObjectError("XMinioInvalidObjectName", "the object name is empty")
    if len(raw) > MAX_KEY:
        raise ObjectError("KeyTooLongError", "the key is longer than 1024 bytes")
    is_dir = raw.endswith(b"/")
    parts = (raw[:-1] if is_dir else raw).split(b"/")
    for p in parts:
        if not p or p in (b".", b"..") or b"\0" in p:
            raise ObjectError("XMinioInvalidObjectName", "the key is not a valid path (empty, '.' or '..' component)")
        if len(p) > MAX_NAME:
            raise ObjectError("KeyTooLongError", "a component of the key is longer than 255 bytes")
    if parts[0] in RESERVED_TOP:
        raise ObjectError("XMinioInvalidObjectName", f"{parts[0].decode()!r} is reserved")
    return parts, is_dir
