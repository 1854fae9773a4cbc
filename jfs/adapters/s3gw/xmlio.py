"""The XML documents of the S3 API: rendered with escaping, parsed with bounded size and S3 errors."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from urllib.parse import quote
from xml.sax.saxutils import escape

from jfs.adapters.s3gw.errors import S3Error
from jfs.app.objectview import ListPage, ObjectInfo, Part, Upload

NS = "http://s3.amazonaws.com/doc/2006-03-01/"
HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n'
OWNER = "<Owner><ID>jfs</ID><DisplayName>jfs</DisplayName></Owner>"
MAX_XML = 1 << 20


def iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _doc(root: str, body: str) -> bytes:
    return f'{HEAD}<{root} xmlns="{NS}">{body}</{root}>'.encode()


def _key(text: str, url: bool) -> str:
    return escape(quote(text, safe="/") if url else text)


def list_buckets(buckets: list[tuple[str, int]]) -> bytes:
    items = "".join(f"<Bucket><Name>{escape(n)}</Name><CreationDate>{iso(t)}</CreationDate></Bucket>"
                    for n, t in buckets)
    return _doc("ListAllMyBucketsResult", f"{OWNER}<Buckets>{items}</Buckets>")


def _contents(objects: list[ObjectInfo], url: bool, owner: bool) -> str:
    return "".join(
        f"<Contents><Key>{_key(o.key, url)}</Key><LastModified>{iso(o.mtime_ns)}</LastModified>"
        f"<ETag>&quot;{o.etag}&quot;</ETag><Size>{o.size}</Size>{OWNER if owner else ''}"
        "<StorageClass>STANDARD</StorageClass></Contents>" for o in objects)


def _prefixes(prefixes: list[str], url: bool) -> str:
    return "".join(f"<CommonPrefixes><Prefix>{_key(p, url)}</Prefix></CommonPrefixes>" for p in prefixes)


def list_objects_v1(bucket: str, page: ListPage, prefix: str, delimiter: str, marker: str, max_keys: int,
                    url: bool) -> bytes:
    next_marker = f"<NextMarker>{_key(page.next_marker, url)}</NextMarker>" if page.truncated and delimiter else ""
    body = (f"<Name>{escape(bucket)}</Name><Prefix>{_key(prefix, url)}</Prefix><Marker>{_key(marker, url)}</Marker>"
            f"{next_marker}<MaxKeys>{max_keys}</MaxKeys>"
            + (f"<Delimiter>{_key(delimiter, url)}</Delimiter>" if delimiter else "")
            + ("<EncodingType>url</EncodingType>" if url else "")
            + f"<IsTruncated>{str(page.truncated).lower()}</IsTruncated>"
            + _contents(page.objects, url, True) + _prefixes(page.prefixes, url))
    return _doc("ListBucketResult", body)


def list_objects_v2(bucket: str, page: ListPage, prefix: str, delimiter: str, max_keys: int, url: bool,
                    token: str, start_after: str, next_token: str, owner: bool) -> bytes:
    body = (f"<Name>{escape(bucket)}</Name><Prefix>{_key(prefix, url)}</Prefix><MaxKeys>{max_keys}</MaxKeys>"
            + (f"<Delimiter>{_key(delimiter, url)}</Delimiter>" if delimiter else "")
            + ("<EncodingType>url</EncodingType>" if url else "")
            + f"<IsTruncated>{str(page.truncated).lower()}</IsTruncated>"
            + f"<KeyCount>{len(page.objects) + len(page.prefixes)}</KeyCount>"
            + (f"<ContinuationToken>{escape(token)}</ContinuationToken>" if token else "")
            + (f"<NextContinuationToken>{escape(next_token)}</NextContinuationToken>" if page.truncated else "")
            + (f"<StartAfter>{_key(start_after, url)}</StartAfter>" if start_after else "")
            + _contents(page.objects, url, owner) + _prefixes(page.prefixes, url))
    return _doc("ListBucketResult", body)


def list_versions(bucket: str, page: ListPage, prefix: str, delimiter: str, max_keys: int) -> bytes:
    items = "".join(
        f"<Version><Key>{escape(o.key)}</Key><VersionId>null</VersionId><IsLatest>true</IsLatest>"
        f"<LastModified>{iso(o.mtime_ns)}</LastModified><ETag>&quot;{o.etag}&quot;</ETag><Size>{o.size}</Size>"
        f"{OWNER}<StorageClass>STANDARD</StorageClass></Version>" for o in page.objects)
    body = (f"<Name>{escape(bucket)}</Name><Prefix>{escape(prefix)}</Prefix><KeyMarker></KeyMarker>"
            f"<VersionIdMarker></VersionIdMarker><MaxKeys>{max_keys}</MaxKeys>"
            + (f"<Delimiter>{escape(delimiter)}</Delimiter>" if delimiter else "")
            + f"<IsTruncated>{str(page.truncated).lower()}</IsTruncated>"
            + (f"<NextKeyMarker>{escape(page.next_marker)}</NextKeyMarker>" if page.truncated else "")
            + items + _prefixes(page.prefixes, False))
    return _doc("ListVersionsResult", body)


def copy_result(etag: str, mtime_ns: int, root: str = "CopyObjectResult") -> bytes:
    return _doc(root, f"<LastModified>{iso(mtime_ns)}</LastModified><ETag>&quot;{etag}&quot;</ETag>")


def initiate(bucket: str, key: str, upload_id: str) -> bytes:
    return _doc("InitiateMultipartUploadResult",
                f"<Bucket>{escape(bucket)}</Bucket><Key>{escape(key)}</Key><UploadId>{upload_id}</UploadId>")


def _checksum_xml(checksum: tuple[str, str] | None, with_type: bool = True) -> str:
    """``<ChecksumCRC32>…</ChecksumCRC32>`` (and its ``<ChecksumType>``) of an (algorithm, value) pair."""
    if checksum is None:
        return ""
    element = "Checksum" + checksum[0].upper()
    kind = "COMPOSITE" if "-" in checksum[1] else "FULL_OBJECT"
    return f"<{element}>{escape(checksum[1])}</{element}>" + (f"<ChecksumType>{kind}</ChecksumType>" if with_type else "")


def complete(location: str, bucket: str, key: str, etag: str, checksum: tuple[str, str] | None = None) -> bytes:
    return _doc("CompleteMultipartUploadResult",
                f"<Location>{escape(location)}</Location><Bucket>{escape(bucket)}</Bucket><Key>{escape(key)}</Key>"
                f"<ETag>&quot;{etag}&quot;</ETag>{_checksum_xml(checksum)}")


def list_parts(bucket: str, up: Upload, parts: list[Part], marker: int, max_parts: int) -> bytes:
    chosen = [p for p in parts if p.number > marker]
    truncated = len(chosen) > max_parts
    chosen = chosen[:max_parts]
    items = "".join(f"<Part><PartNumber>{p.number}</PartNumber><LastModified>{iso(p.mtime_ns)}</LastModified>"
                    f"<ETag>&quot;{p.etag}&quot;</ETag><Size>{p.size}</Size>"
                    f"{_checksum_xml(p.checksum, with_type=False)}</Part>"
                    for p in chosen)
    nxt = chosen[-1].number if chosen else 0
    body = (f"<Bucket>{escape(bucket)}</Bucket><Key>{escape(up.key)}</Key><UploadId>{up.upload_id}</UploadId>"
            f"<Initiator><ID>jfs</ID><DisplayName>jfs</DisplayName></Initiator>{OWNER}"
            f"<StorageClass>STANDARD</StorageClass><PartNumberMarker>{marker}</PartNumberMarker>"
            f"<NextPartNumberMarker>{nxt}</NextPartNumberMarker><MaxParts>{max_parts}</MaxParts>"
            f"<IsTruncated>{str(truncated).lower()}</IsTruncated>{items}")
    return _doc("ListPartsResult", body)


def list_uploads(bucket: str, uploads: list[Upload], prefix: str, max_uploads: int) -> bytes:
    truncated = len(uploads) > max_uploads
    items = "".join(f"<Upload><Key>{escape(u.key)}</Key><UploadId>{u.upload_id}</UploadId>"
                    f"<Initiator><ID>jfs</ID><DisplayName>jfs</DisplayName></Initiator>{OWNER}"
                    f"<StorageClass>STANDARD</StorageClass><Initiated>{iso(u.initiated_ns)}</Initiated></Upload>"
                    for u in uploads[:max_uploads])
    body = (f"<Bucket>{escape(bucket)}</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker>"
            f"<Prefix>{escape(prefix)}</Prefix><MaxUploads>{max_uploads}</MaxUploads>"
            f"<IsTruncated>{str(truncated).lower()}</IsTruncated>{items}")
    return _doc("ListMultipartUploadsResult", body)


def delete_result(deleted: list[str], errors: list[tuple[str, str, str]], quiet: bool) -> bytes:
    body = "" if quiet else "".join(f"<Deleted><Key>{escape(k)}</Key></Deleted>" for k in deleted)
    body += "".join(f"<Error><Key>{escape(k)}</Key><Code>{escape(c)}</Code><Message>{escape(m)}</Message></Error>"
                    for k, c, m in errors)
    return _doc("DeleteResult", body)


def location() -> bytes:
    return f'{HEAD}<LocationConstraint xmlns="{NS}"></LocationConstraint>'.encode()


def versioning() -> bytes:
    return _doc("VersioningConfiguration", "")


def tagging(tags: dict[str, str]) -> bytes:
    items = "".join(f"<Tag><Key>{escape(k)}</Key><Value>{escape(v)}</Value></Tag>" for k, v in tags.items())
    return _doc("Tagging", f"<TagSet>{items}</TagSet>")


# ---------------------------------------------------------------------------------------------------- parsing


def _parse(data: bytes) -> ET.Element:
    if len(data) > MAX_XML:
        raise S3Error("MalformedXML", "The XML document is too large.")
    try:
        return ET.fromstring(data)
    except ET.ParseError:
        raise S3Error("MalformedXML", "The XML you provided was not well-formed or did not validate against "
                      "our published schema.") from None


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _children(el: ET.Element, name: str) -> list[ET.Element]:
    return [c for c in el if _local(c.tag) == name]


def _text(el: ET.Element, name: str) -> str | None:
    found = _children(el, name)
    return found[0].text or "" if found else None


def parse_complete(data: bytes) -> list[tuple[int, str]]:
    root = _parse(data)
    if _local(root.tag) != "CompleteMultipartUpload":
        raise S3Error("MalformedXML", "Expected a CompleteMultipartUpload document.")
    parts = []
    for p in _children(root, "Part"):
        number, etag = _text(p, "PartNumber"), _text(p, "ETag")
        if number is None or etag is None or not number.strip().isdigit():
            raise S3Error("MalformedXML", "Each Part needs a PartNumber and an ETag.")
        parts.append((int(number), etag.strip().strip('"')))
    return parts


def parse_delete(data: bytes) -> tuple[list[str], bool]:
    root = _parse(data)
    if _local(root.tag) != "Delete":
        raise S3Error("MalformedXML", "Expected a Delete document.")
    keys = []
    for o in _children(root, "Object"):
        key = _text(o, "Key")
        if key is None:
            raise S3Error("MalformedXML", "Each Object needs a Key.")
        keys.append(key)
    if not keys or len(keys) > 1000:
        raise S3Error("MalformedXML", "At most 1000 keys can be deleted at once.")
    return keys, (_text(root, "Quiet") or "").strip().lower() == "true"


def parse_tagging(data: bytes) -> dict[str, str]:
    root = _parse(data)
    tags = {}
    for set_ in _children(root, "TagSet"):
        for t in _children(set_, "Tag"):
            k, v = _text(t, "Key"), _text(t, "Value")
            if k is None:
                raise S3Error("MalformedXML", "Each Tag needs a Key.")
            tags[k] = v or ""
    if len(tags) > 10:
        raise S3Error("InvalidTag", "Object tags cannot be greater than 10.")
    return tags
