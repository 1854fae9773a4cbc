"""A jfs volume as S3 buckets and objects (the use cases behind the S3 gateway).

The names below are imported from their modules on first use (PEP 562): ``jfs gc`` reads
`jfs.app.objectview.report` and `jfs.app.objectview.keys` without loading the VFS and the checksum
libraries the rest needs (ADR 0063).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jfs.app.objectview.checksums import ChecksumSlot
    from jfs.app.objectview.cleanup import purge_stale_uploads
    from jfs.app.objectview.errors import ObjectError
    from jfs.app.objectview.listing import ListPage, list_objects
    from jfs.app.objectview.multipart import Multipart, Part, Upload
    from jfs.app.objectview.report import DEFAULT_AGE, PurgeReport
    from jfs.app.objectview.service import NewObject, ObjectInfo, ObjectReader, ObjectView

_HOMES = {
    "ChecksumSlot": "checksums", "DEFAULT_AGE": "report", "PurgeReport": "report",
    "purge_stale_uploads": "cleanup", "ObjectError": "errors", "ListPage": "listing", "list_objects": "listing",
    "Multipart": "multipart", "Part": "multipart", "Upload": "multipart", "NewObject": "service",
    "ObjectInfo": "service", "ObjectReader": "service", "ObjectView": "service",
}

__all__ = ["ChecksumSlot", "DEFAULT_AGE", "ListPage", "PurgeReport", "Multipart", "NewObject", "ObjectError", "ObjectInfo", "ObjectReader", "ObjectView", "Part",
           "Upload", "list_objects", "purge_stale_uploads"]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value
