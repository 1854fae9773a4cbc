"""A jfs volume as S3 buckets and objects (the use cases behind the S3 gateway)."""

from jfs.app.objectview.checksums import ChecksumSlot
from jfs.app.objectview.cleanup import DEFAULT_AGE, PurgeReport, purge_stale_uploads
from jfs.app.objectview.errors import ObjectError
from jfs.app.objectview.listing import ListPage, list_objects
from jfs.app.objectview.multipart import Multipart, Part, Upload
from jfs.app.objectview.service import NewObject, ObjectInfo, ObjectReader, ObjectView

__all__ = ["ChecksumSlot", "DEFAULT_AGE", "ListPage", "PurgeReport", "Multipart", "NewObject", "ObjectError", "ObjectInfo", "ObjectReader", "ObjectView", "Part",
           "Upload", "list_objects", "purge_stale_uploads"]
