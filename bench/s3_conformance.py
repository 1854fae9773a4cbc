"""Differential S3 conformance run: the same seeded random sequences of S3 requests against `jfs gateway`,
`juicefs gateway` (JuiceFS 1.4.2, MinIO's S3 semantics; the reference) and, optionally, SeaweedFS's S3.

Usage:  .venv/bin/python bench/s3_conformance.py [--seed 1|1-10|1,4] [--sequences 8] [--ops 60] [--no-seaweed]
        [--juicefs PATH] [--workdir DIR] [--trace OUT.jsonl] [--show-known]

Why: Ceph's s3-tests and MinIO's mint cannot be fetched here; two real implementations can. Every
sequence works under its own key prefix with keys made of unicode, spaces and S3's special characters,
drawn from a small alphabet so that keys collide as files and prefixes. Operations (boto3, and raw SigV4
requests through botocore's signer for what boto3 will not send): PutObject (Content-MD5 good/bad/invalid,
Content-Type, metadata), GetObject (ranges incl. suffix and invalid ones, If-* conditions, ``response-*``
overrides), HeadObject, DeleteObject(s), CopyObject (COPY / REPLACE directive), tagging, ListObjects v1/v2
(prefix, delimiter, marker / start-after / continuation, max-keys, ``encoding-type=url`` and raw keys),
multipart (create, parts, ListParts, complete in order / wrong order / with a too-small part, abort,
UploadPartCopy with ranges), bucket operations, malformed XML, oversize bodies and headers, path tricks.

Each answer is normalized (status, error code, body digest, ETag, keys and common prefixes, sizes,
Content-Type, Content-Range, metadata, tags) and jfs's answer is compared with JuiceFS's; SeaweedFS's
answer is shown next to each divergence as a third opinion. Divergences listed in `KNOWN` (documented, see
ADR 0011 "Conformance") are counted apart; any other one is reported as new. After every sequence each
server's objects are read back and compared with what the run wrote there (a model updated from that
server's own successful answers: no corruption, no phantom and no lost object), and each server process
must still be alive (no crash). Every jfs listing is also checked against that model (the entries S3
would list, in order); a divergence where jfs lists exactly the model is the reference's. Exit status 1 on
a crash, a corruption, a jfs listing off the model or a new divergence.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import http.client
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gateway_bench import _juicefs_gateway, _wait  # noqa: E402

from jfs.testing.gateways import ACCESS_KEY, SECRET_KEY, free_port  # noqa: E402

VOLUME = "conf"
MiB = 1 << 20
PART = 5 * MiB
"""S3's smallest part but the last."""
NAMES = ["a", "b", "ü", "日本", "sp ace", "p+q", "x%y", "amp&er", "eq=", "q?m", "h#", "t~", "ex!", "ap'o",
         "(pa)", "st*", "co,ma", "se;mi", "col:on", "at@", "do$", "dot.d", "x"]
PAST = "Mon, 01 Jan 2001 00:00:00 GMT"
FUTURE = "Mon, 01 Jan 2100 00:00:00 GMT"


# ---------------------------------------------------------------------------------------------- servers

@dataclass
class Server:
    name: str
    endpoint: str
    bucket: str
    access_key: str
    secret_key: str
    alive: Callable[[], bool]
    client: Any = None

    def __post_init__(self) -> None:
        import boto3
        from botocore.config import Config

        self.client = boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=self.access_key,
                                   aws_secret_access_key=self.secret_key, region_name="us-east-1",
                                   config=Config(s3={"addressing_style": "path"}, signature_version="s3v4",
                                                 retries={"max_attempts": 1}, read_timeout=30,
                                                 connect_timeout=5))

    # raw requests: what boto3 will not send (bad XML, bad digests, raw paths, oversize headers)
    def raw(self, method: str, path: str, query: str = "", headers: dict[str, str] | None = None,
            body: bytes = b"", sign_body: bool = True, timeout: float = 10.0) -> tuple[int, str, bytes, dict[str, str]]:
        """Send one SigV4-signed request with `path` exactly as given (no normalization); (status, S3
        error code or '', body, lower-cased headers)."""
        from botocore.auth import S3SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        host = urllib.parse.urlsplit(self.endpoint).netloc
        url = f"{self.endpoint}{path}" + (f"?{query}" if query else "")
        hdrs = dict(headers or {})
        hdrs["x-amz-content-sha256"] = hashlib.sha256(body).hexdigest() if sign_body else "UNSIGNED-PAYLOAD"
        req = AWSRequest(method=method, url=url, data=body, headers=hdrs)
        S3SigV4Auth(Credentials(self.access_key, self.secret_key), "s3", "us-east-1").add_auth(req)
        conn = http.client.HTTPConnection(host, timeout=timeout)
        try:
            conn.putrequest(method, path + (f"?{query}" if query else ""), skip_host=True,
                            skip_accept_encoding=True)
            conn.putheader("Host", host)
            for k, v in req.headers.items():
                if k.lower() != "host":
                    conn.putheader(k, v)
            if "Content-Length" not in hdrs:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body if body else None)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, _error_code(data), data, {k.lower(): v for k, v in resp.getheaders()}
        except (OSError, http.client.HTTPException) as exc:  # refused, reset, or no answer in time
            return -1, type(exc).__name__, b"", {}
        finally:
            conn.close()


def _error_code(body: bytes) -> str:
    if not body.lstrip().startswith(b"<"):
        return ""
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        return ""
    if root.tag.rpartition("}")[2] != "Error":
        return ""
    return root.findtext("Code") or ""


def _proc_alive(proc: subprocess.Popen[bytes] | None) -> Callable[[], bool]:
    return lambda: proc is None or proc.poll() is None


@contextlib.contextmanager
def jfs_server(work: Path) -> Iterator[Server]:
    url = f"sqlite3://{work}/jfs.db"
    subprocess.run([sys.executable, "-m", "jfs.cli.main", "format", url, VOLUME, "--bucket", str(work / "jfs-bucket"),
                    "--trash-days", "0"], check=True, capture_output=True)
    port = free_port()
    env = {**os.environ, "MINIO_ROOT_USER": ACCESS_KEY, "MINIO_ROOT_PASSWORD": SECRET_KEY}
    with open(work / "jfs-gateway.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "jfs.cli.main", "gateway", url, f"127.0.0.1:{port}",
                                 "--cache-dir", str(work / "jfs-cache")], env=env, stdout=log, stderr=log)
        try:
            _wait(f"http://127.0.0.1:{port}", proc)
            yield Server("jfs", f"http://127.0.0.1:{port}", VOLUME, ACCESS_KEY, SECRET_KEY, _proc_alive(proc))
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextlib.contextmanager
def juicefs_server(work: Path, juicefs: str) -> Iterator[Server]:
    with _juicefs_gateway(work, juicefs) as (endpoint, bucket, pid):
        def alive() -> bool:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return False
            with open(f"/proc/{pid}/stat") as f:
                return f.read().split(")")[-1].split()[0] != "Z"
        yield Server("juicefs", endpoint, bucket, ACCESS_KEY, SECRET_KEY, alive)


@contextlib.contextmanager
def seaweed_server() -> Iterator[Server]:
    from jfs.testing.seaweed import seaweed_s3

    with seaweed_s3(bucket=VOLUME) as s3:
        yield Server("seaweedfs", s3.endpoint, VOLUME, s3.access_key, s3.secret_key, lambda: True)


# ---------------------------------------------------------------------------------------------- sequences

def _payload(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


def make_sequence(rng: random.Random, n_ops: int, prefix: str) -> list[dict[str, Any]]:
    """`n_ops` operations (plain dicts, the same for every server) on keys under `prefix`."""
    def name() -> str:
        return rng.choice(NAMES)

    def key() -> str:
        depth = rng.choices([1, 2, 3], [5, 3, 1])[0]
        return prefix + "/".join(name() for _ in range(depth))

    def size() -> int:
        return rng.choice([0, 1, 7, 100, 4096, 65537, 1 << 20, 1 << 20, (4 << 20) + 3])  # 4 MiB + 3: two blocks

    keys: list[str] = []
    marked: set[str] = set()
    """Keys with a ``key/`` directory marker: deleting ``key`` is its own operation (`dir_alias`)."""

    def known() -> str:
        return rng.choice(keys) if keys and rng.random() < 0.85 else key()

    def deletable() -> str:
        k = known()
        return k if k not in marked else k + "-other"

    ops: list[dict[str, Any]] = []
    for _ in range(n_ops):
        kind = rng.choices(
            ["put", "get", "head", "delete", "delete_objects", "copy", "tagging", "list1", "list2", "list_raw",
             "multipart", "bucket", "malformed"],
            [14, 12, 4, 4, 2, 4, 3, 5, 6, 2, 3, 2, 6])[0]
        op: dict[str, Any] = {"op": kind}
        if kind == "put":
            k = key() if rng.random() < 0.7 or not keys else rng.choice(keys)
            keys.append(k)
            op.update(key=k, size=size(), seed=rng.randrange(1 << 30),
                      content_type=rng.choice([None, "text/plain", "application/x-foo; charset=utf-8"]),
                      meta=rng.choice([{}, {"color": "blue"}, {"Mixed-Case": "Mixed Value"}]),
                      md5=rng.choices(["none", "good", "bad", "invalid"], [6, 2, 1, 1])[0],
                      dirkey=rng.random() < 0.08)
            if op["dirkey"]:
                marked.add(k)
        elif kind in ("get", "head"):
            op.update(key=known(),
                      range=rng.choice([None, None, "bytes=0-0", "bytes=1-5", "bytes=-3", "bytes=10-", "bytes=5-2",
                                        "bytes=-0", "bytes=99999999-", "bytes=0-0,2-3", "items=0-1", "bytes=abc",
                                        "bytes=0-99999999", "bytes=4194300-4194310", "bytes=1048570-"]),
                      cond=rng.choice([None, None, "if-match-right", "if-match-wrong", "if-none-match-right",
                                       "if-none-match-wrong", "if-modified-past", "if-modified-future",
                                       "if-unmodified-past", "if-unmodified-future", "match-and-unmodified-past"]),
                      override=rng.random() < 0.2)
        elif kind == "delete":
            op.update(key=deletable())
        elif kind == "delete_objects":
            op.update(keys=sorted({deletable() for _ in range(rng.randint(1, 4))}), quiet=rng.random() < 0.3,
                      md5=rng.random() < 0.85)
        elif kind == "copy":
            dst = key()
            keys.append(dst)
            op.update(src=known(), dst=dst, directive=rng.choice(["COPY", "REPLACE"]),
                      meta=rng.choice([{}, {"copied": "yes"}]))
        elif kind == "tagging":
            op.update(key=known(), action=rng.choice(["put", "get", "delete"]),
                      tags=rng.choice([{"a": "1"}, {"k e y": "v a l", "x": ""}, {f"t{i}": "v" for i in range(11)}]))
        elif kind in ("list1", "list2", "list_raw"):
            op.update(prefix=rng.choice([prefix, prefix, prefix + name(), prefix + name() + "/", prefix + "zz"]),
                      delimiter=rng.choice(["", "/", "/", "a"]), max_keys=rng.choice([1, 2, 3, 1000]),
                      start=rng.choice([None, None, prefix + name()]), pages=rng.choice([1, 3]))
        elif kind == "multipart":
            k = key()
            keys.append(k)
            op.update(key=k, variant=rng.choice(["ok", "ok", "wrong_order", "too_small", "abort", "copy_part",
                                                 "bad_etag", "list_uploads", "list_parts_paged",
                                                 "copy_part_bad_range"]), seed=rng.randrange(1 << 30),
                      src=known())
        elif kind == "bucket":
            op.update(variant=rng.choice(["head_missing", "create_other", "delete_nonempty", "location",
                                          "versioning", "head_own", "list_buckets", "delete_missing",
                                          "dir_alias", "list_versions"]), key=key() + "-alias")
        elif kind == "malformed":
            op.update(variant=rng.choice(["bad_delete_xml", "bad_complete_xml", "oversize_put", "big_meta",
                                          "huge_header", "dotdot", "dot", "double_slash", "encoded_dotdot",
                                          "long_key", "empty_delete", "no_such_upload", "bad_part_number",
                                          "bad_max_keys", "bad_copy_source", "tagging_bad_xml"]), key=key())
        ops.append(op)
    return ops


# ---------------------------------------------------------------------------------------------- execution

def _client_error(exc: Exception) -> dict[str, Any]:
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        return {"status": exc.response["ResponseMetadata"].get("HTTPStatusCode"),
                "code": exc.response.get("Error", {}).get("Code", "")}
    return {"status": -1, "code": type(exc).__name__}


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


class Runner:
    """Runs operations against one server and keeps its model: key -> bytes it should hold."""

    def __init__(self, server: Server) -> None:
        self.s = server
        self.c = server.client
        self.b = server.bucket
        self.model: dict[str, bytes] = {}
        self.meta: dict[str, tuple[dict[str, str], str] | None] = {}
        """key -> (user metadata, Content-Type) it was written with; None: not followed."""
        self.markers: set[str] = set()
        """``dir/`` keys this server accepted (listed as empty objects)."""
        self.requests = 0
        self.last_listing: tuple[list[str], list[str]] = ([], [])

    def run(self, op: dict[str, Any]) -> dict[str, Any]:
        fn = getattr(self, f"_op_{op['op']}")
        try:
            return dict(fn(op))
        except Exception as exc:  # noqa: BLE001  a client-side failure is an answer too
            from botocore.exceptions import BotoCoreError, ClientError

            if isinstance(exc, ClientError | BotoCoreError):
                return _client_error(exc)
            raise

    def _call(self, name: str, **kw: Any) -> Any:
        self.requests += 1
        return getattr(self.c, name)(**kw)

    def _raw(self, *a: Any, **kw: Any) -> tuple[int, str, bytes, dict[str, str]]:
        self.requests += 1
        return self.s.raw(*a, **kw)

    def _try(self, name: str, **kw: Any) -> tuple[dict[str, Any], Any]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            r = self._call(name, **kw)
        except (ClientError, BotoCoreError) as exc:
            return _client_error(exc), None
        return {"status": r["ResponseMetadata"]["HTTPStatusCode"]}, r

    # -- objects

    def _op_put(self, op: dict[str, Any]) -> dict[str, Any]:
        key = op["key"] + ("/" if op["dirkey"] else "")
        data = b"" if op["dirkey"] else _payload(op["seed"], op["size"])
        kw: dict[str, Any] = {"Bucket": self.b, "Key": key, "Body": data, "Metadata": op["meta"]}
        if op["content_type"]:
            kw["ContentType"] = op["content_type"]
        if op["md5"] == "good":
            kw["ContentMD5"] = base64.b64encode(hashlib.md5(data).digest()).decode()
        elif op["md5"] == "bad":
            kw["ContentMD5"] = base64.b64encode(hashlib.md5(data + b"x").digest()).decode()
        elif op["md5"] == "invalid":
            kw["ContentMD5"] = "not-base64!"
        res, r = self._try("put_object", **kw)
        if r is not None:
            res["dir_etag" if op["dirkey"] else "etag"] = r.get("ETag")
            if op["dirkey"]:
                self.markers.add(key)
            else:
                self.model[key] = data
                self.meta[key] = ({k.lower(): v for k, v in op["meta"].items()},
                                  op["content_type"] or "binary/octet-stream")
        return res

    def _cond_headers(self, op: dict[str, Any]) -> dict[str, Any]:
        cond = op["cond"]
        if not cond:
            return {}
        etag = "0123456789abcdef0123456789abcdef"
        if cond.endswith("right") or cond.startswith("match-and"):
            with contextlib.suppress(Exception):
                etag = self._call("head_object", Bucket=self.b, Key=op["key"])["ETag"].strip('"')
        return {"if-match-right": {"IfMatch": etag}, "if-match-wrong": {"IfMatch": '"nope"'},
                "if-none-match-right": {"IfNoneMatch": etag}, "if-none-match-wrong": {"IfNoneMatch": '"nope"'},
                "if-modified-past": {"IfModifiedSince": PAST}, "if-modified-future": {"IfModifiedSince": FUTURE},
                "if-unmodified-past": {"IfUnmodifiedSince": PAST},
                "if-unmodified-future": {"IfUnmodifiedSince": FUTURE},
                "match-and-unmodified-past": {"IfMatch": etag, "IfUnmodifiedSince": PAST}}[cond]

    def _op_get(self, op: dict[str, Any]) -> dict[str, Any]:
        kw: dict[str, Any] = {"Bucket": self.b, "Key": op["key"], **self._cond_headers(op)}
        if op["range"]:
            kw["Range"] = op["range"]
        if op["override"]:
            kw.update(ResponseContentType="image/x-test", ResponseContentDisposition='attachment; filename="f"',
                      ResponseCacheControl="no-cache", ResponseContentLanguage="fr")
        res, r = self._try("get_object", **kw)
        if r is not None:
            body = r["Body"].read()
            res.update(length=r.get("ContentLength"), range=r.get("ContentRange"), type=r.get("ContentType"),
                       etag=r.get("ETag"), meta=r.get("Metadata"), body=_md5(body), size=len(body),
                       disposition=r.get("ContentDisposition"), cache=r.get("CacheControl"),
                       language=r.get("ContentLanguage"))
        return res

    def _op_head(self, op: dict[str, Any]) -> dict[str, Any]:
        kw: dict[str, Any] = {"Bucket": self.b, "Key": op["key"], **self._cond_headers(op)}
        if op["range"]:
            kw["Range"] = op["range"]
        res, r = self._try("head_object", **kw)
        if r is not None:
            res.update(length=r.get("ContentLength"), range=r.get("ContentRange"), type=r.get("ContentType"),
                       etag=r.get("ETag"), meta=r.get("Metadata"))
        return res

    def _op_delete(self, op: dict[str, Any]) -> dict[str, Any]:
        res, r = self._try("delete_object", Bucket=self.b, Key=op["key"])
        if r is not None:
            self.model.pop(op["key"], None)
            self.markers.discard(op["key"])
        return res

    def _op_delete_objects(self, op: dict[str, Any]) -> dict[str, Any]:
        if not op["md5"]:
            # boto3 sends a CRC32 checksum and no Content-MD5 (MinIO wants the MD5): keys that do not exist,
            # so that a refusal does not make the servers' states differ
            return self._try("delete_objects", Bucket=self.b, Delete={"Objects": [{"Key": k + "-none"}
                                                                                  for k in op["keys"]]})[0]
        from xml.sax.saxutils import escape

        body = ("<Delete>" + ("<Quiet>true</Quiet>" if op["quiet"] else "")
                + "".join(f"<Object><Key>{escape(k)}</Key></Object>" for k in op["keys"]) + "</Delete>").encode()
        status, code, data, _ = self._raw("POST", f"/{self.b}", "delete=", {"Content-MD5": _b64md5(body)}, body)
        res: dict[str, Any] = {"status": status, "code": code}
        if status == 200:
            root = _bare(ElementTree.fromstring(data))
            r = {"Deleted": [{"Key": d.findtext("Key") or ""} for d in root.findall("Deleted")],
                 "Errors": [{"Key": e.findtext("Key") or "", "Code": e.findtext("Code") or ""}
                            for e in root.findall("Error")]}
            failed = {e["Key"] for e in r.get("Errors", [])}
            echoed = all(d["Key"] for d in r.get("Deleted", []))
            if not echoed:  # <Deleted> without its <Key>: every key without an error was deleted
                r["Deleted"] = [{"Key": k} for k in op["keys"] if k not in failed]
            deleted = sorted(d["Key"] for d in r.get("Deleted", []))
            for k in deleted:
                self.model.pop(k, None)
                self.markers.discard(k)
            if op["quiet"]:  # quiet answers list only errors; the keys without one were deleted
                for k in op["keys"]:
                    if k not in failed:
                        self.model.pop(k, None)
            res.update(deleted=deleted, errors=sorted((e["Key"], e["Code"]) for e in r.get("Errors", [])),
                       keys_echoed=echoed)
        return res


    def _op_copy(self, op: dict[str, Any]) -> dict[str, Any]:
        kw: dict[str, Any] = {"Bucket": self.b, "Key": op["dst"], "CopySource": {"Bucket": self.b, "Key": op["src"]},
                              "MetadataDirective": op["directive"]}
        if op["directive"] == "REPLACE":
            kw.update(Metadata=op["meta"], ContentType="text/x-replaced")
        res, r = self._try("copy_object", **kw)
        if r is not None:
            res["etag"] = r.get("CopyObjectResult", {}).get("ETag")
            src = self.model.get(op["src"])
            if src is not None:
                self.model[op["dst"]] = src
                self.meta[op["dst"]] = (op["meta"], "text/x-replaced") if op["directive"] == "REPLACE" \
                    else self.meta.get(op["src"])
            h, hr = self._try("head_object", Bucket=self.b, Key=op["dst"])
            if hr is not None:
                res.update(meta=hr.get("Metadata"), type=hr.get("ContentType"), length=hr.get("ContentLength"))
        return res

    def _op_tagging(self, op: dict[str, Any]) -> dict[str, Any]:
        if op["action"] == "put":
            tagset = [{"Key": k, "Value": v} for k, v in op["tags"].items()]
            res, _ = self._try("put_object_tagging", Bucket=self.b, Key=op["key"], Tagging={"TagSet": tagset})
        elif op["action"] == "delete":
            res, _ = self._try("delete_object_tagging", Bucket=self.b, Key=op["key"])
        else:
            res, r = self._try("get_object_tagging", Bucket=self.b, Key=op["key"])
            if r is not None:
                res["tags"] = sorted((t["Key"], t["Value"]) for t in r.get("TagSet", []))
        return res

    # -- listings

    def _op_list1(self, op: dict[str, Any]) -> dict[str, Any]:
        kw: dict[str, Any] = {"Bucket": self.b, "Prefix": op["prefix"], "MaxKeys": op["max_keys"]}
        if op["delimiter"]:
            kw["Delimiter"] = op["delimiter"]
        if op["start"]:
            kw["Marker"] = op["start"]
        pages: list[Any] = []
        for _ in range(op["pages"]):
            res, r = self._try("list_objects", **kw)
            if r is None:
                return res
            contents = r.get("Contents", [])
            pages.append({"keys": [(c["Key"], c["Size"], c.get("ETag")) for c in contents],
                          "prefixes": [p["Prefix"] for p in r.get("CommonPrefixes", [])],
                          "truncated": r.get("IsTruncated"), "next": r.get("NextMarker")})
            if not r.get("IsTruncated"):
                break
            nxt = r.get("NextMarker") or (contents[-1]["Key"] if contents else None)
            if nxt is None:
                break
            kw["Marker"] = nxt
        return {"status": 200, "pages": pages}

    def _op_list2(self, op: dict[str, Any]) -> dict[str, Any]:
        kw: dict[str, Any] = {"Bucket": self.b, "Prefix": op["prefix"], "MaxKeys": op["max_keys"]}
        if op["delimiter"]:
            kw["Delimiter"] = op["delimiter"]
        if op["start"]:
            kw["StartAfter"] = op["start"]
        pages: list[Any] = []
        for _ in range(op["pages"]):
            res, r = self._try("list_objects_v2", **kw)
            if r is None:
                return res
            pages.append({"keys": [(c["Key"], c["Size"], c.get("ETag")) for c in r.get("Contents", [])],
                          "prefixes": [p["Prefix"] for p in r.get("CommonPrefixes", [])],
                          "truncated": r.get("IsTruncated"), "count": r.get("KeyCount"),
                          "token": bool(r.get("NextContinuationToken"))})
            if not r.get("NextContinuationToken"):
                break
            kw["ContinuationToken"] = r["NextContinuationToken"]
        return {"status": 200, "pages": pages}

    def _op_list_raw(self, op: dict[str, Any]) -> dict[str, Any]:
        """ListObjectsV2 without encoding-type (boto3 always asks for url encoding): raw keys in XML."""
        q = {"list-type": "2", "prefix": op["prefix"], "max-keys": str(op["max_keys"])}
        if op["delimiter"]:
            q["delimiter"] = op["delimiter"]
        if op["start"]:
            q["start-after"] = op["start"]
        query = urllib.parse.urlencode(sorted(q.items()), quote_via=urllib.parse.quote, safe="-_.~")
        status, code, body, _ = self._raw("GET", f"/{self.b}", query)
        res: dict[str, Any] = {"status": status, "code": code}
        if status == 200:
            root = _bare(ElementTree.fromstring(body))
            res["keys"] = [c.findtext("Key") for c in root.findall("Contents")]
            res["prefixes"] = [c.findtext("Prefix") for c in root.findall("CommonPrefixes")]
            res["truncated"] = root.findtext("IsTruncated")
            res["encoding"] = root.findtext("EncodingType")
        return res

    # -- multipart

    def _op_multipart(self, op: dict[str, Any]) -> dict[str, Any]:
        key, variant = op["key"], op["variant"]
        out: dict[str, Any] = {}
        res, r = self._try("create_multipart_upload", Bucket=self.b, Key=key, ContentType="text/x-mp",
                           Metadata={"mp": "1"})
        out["create"] = res
        if r is None:
            return out
        uid = r["UploadId"]
        if variant == "list_uploads":
            lr, lu = self._try("list_multipart_uploads", Bucket=self.b, Prefix=key)
            out["list_uploads"] = {**lr, "keys": sorted(u["Key"] for u in lu.get("Uploads", []))} if lu else lr
        sizes = {"too_small": [100, 100], "copy_part": [PART], "copy_part_bad_range": [PART]}.get(variant, [PART, 1234])
        parts: list[tuple[int, bytes, str]] = []
        for i, sz in enumerate(sizes, 1):
            data = _payload(op["seed"] + i, sz)
            pres, pr = self._try("upload_part", Bucket=self.b, Key=key, UploadId=uid, PartNumber=i, Body=data)
            out[f"part{i}"] = {**pres, "etag": pr.get("ETag") if pr else None}
            if pr is None:
                return out
            parts.append((i, data, pr["ETag"]))
        if variant == "copy_part_bad_range":
            cres, _ = self._try("upload_part_copy", Bucket=self.b, Key=key, UploadId=uid, PartNumber=2,
                                CopySource={"Bucket": self.b, "Key": op["src"]}, CopySourceRange="bytes=5-99999999")
            out["copy"] = cres
        if variant == "list_parts_paged":
            pages = []
            marker = 0
            for _ in range(3):
                pr2, pg = self._try("list_parts", Bucket=self.b, Key=key, UploadId=uid, MaxParts=1,
                                    PartNumberMarker=marker)
                if pg is None:
                    pages.append(pr2)
                    break
                pages.append([p["PartNumber"] for p in pg.get("Parts", [])] + [pg.get("IsTruncated")])
                if not pg.get("IsTruncated"):
                    break
                marker = pg.get("NextPartNumberMarker", 0)
            out["paged"] = pages
        if variant == "copy_part":
            src = self.model.get(op["src"])
            cres, cr = self._try("upload_part_copy", Bucket=self.b, Key=key, UploadId=uid, PartNumber=2,
                                 CopySource={"Bucket": self.b, "Key": op["src"]},
                                 CopySourceRange="bytes=0-0" if src else "bytes=0-9")
            out["copy"] = {**cres, "etag": cr["CopyPartResult"]["ETag"] if cr else None}
            if cr is not None and src is not None:
                parts.append((2, src[:1], cr["CopyPartResult"]["ETag"]))
        lres, lr2 = self._try("list_parts", Bucket=self.b, Key=key, UploadId=uid)
        out["list"] = {**lres, "parts": [(p["PartNumber"], p["Size"], p["ETag"]) for p in lr2.get("Parts", [])]} \
            if lr2 else lres
        if variant == "abort":
            out["abort"], _ = self._try("abort_multipart_upload", Bucket=self.b, Key=key, UploadId=uid)
            out["after_abort"], _ = self._try("list_parts", Bucket=self.b, Key=key, UploadId=uid)
            return out
        listed = [{"PartNumber": n, "ETag": e} for n, _, e in parts]
        if variant == "wrong_order":
            listed.reverse()
        if variant == "bad_etag":
            listed[0]["ETag"] = '"00000000000000000000000000000000"'
        cres2, cr2 = self._try("complete_multipart_upload", Bucket=self.b, Key=key, UploadId=uid,
                               MultipartUpload={"Parts": listed})
        out["complete"] = {**cres2, "etag": cr2.get("ETag") if cr2 else None}
        if cr2 is not None:
            self.model[key] = b"".join(d for _, d, _ in parts)
            self.meta[key] = ({"mp": "1"}, "text/x-mp")
            h, hr = self._try("head_object", Bucket=self.b, Key=key)
            out["head"] = {**h, "type": hr.get("ContentType"), "meta": hr.get("Metadata"),
                           "length": hr.get("ContentLength")} if hr else h
        else:
            self._try("abort_multipart_upload", Bucket=self.b, Key=key, UploadId=uid)
        if variant == "too_small":  # completed by some servers only: remove it so that the states stay alike
            self._try("delete_object", Bucket=self.b, Key=key)
            self.model.pop(key, None)
        return out

    # -- buckets

    def _op_bucket(self, op: dict[str, Any]) -> dict[str, Any]:
        v = op["variant"]
        if v == "head_missing":
            return self._try("head_bucket", Bucket="no-such-bucket-xyz")[0]
        if v == "delete_missing":
            return self._try("delete_bucket", Bucket="no-such-bucket-xyz")[0]
        if v == "head_own":
            return self._try("head_bucket", Bucket=self.b)[0]
        if v == "location":
            res, r = self._try("get_bucket_location", Bucket=self.b)
            return {**res, "loc": r.get("LocationConstraint")} if r else res
        if v == "versioning":
            res, r = self._try("get_bucket_versioning", Bucket=self.b)
            return {**res, "status_v": r.get("Status")} if r else res
        if v == "list_versions":
            res, r = self._try("list_object_versions", Bucket=self.b, Prefix=op["key"].rpartition("/")[0])
            return {**res, "versions": sorted((x["Key"], x["Size"], x.get("VersionId"), x.get("IsLatest"))
                                              for x in r.get("Versions", []))} if r else res
        if v == "list_buckets":
            res, r = self._try("list_buckets")
            return {**res, "has_own": any(b["Name"] == self.b for b in r["Buckets"])} if r else res
        if v == "create_other":
            res, r = self._try("create_bucket", Bucket="conf-other")
            if r is not None:
                self._try("delete_bucket", Bucket="conf-other")
            return res
        if v == "dir_alias":
            # DELETE `k` where only the directory marker `k/` exists; then is `k/` still there?
            self._try("put_object", Bucket=self.b, Key=op["key"] + "/", Body=b"")
            res, _ = self._try("delete_object", Bucket=self.b, Key=op["key"])
            res["marker_after"] = self._try("head_object", Bucket=self.b, Key=op["key"] + "/")[0]
            self._try("delete_object", Bucket=self.b, Key=op["key"] + "/")
            return res
        # delete_nonempty: the bucket holds at least this marker object
        self._try("put_object", Bucket=self.b, Key="zz-bucket-marker", Body=b"m")
        res, r = self._try("delete_bucket", Bucket=self.b)
        if r is not None:  # it went: put it back so the sequence goes on
            self._try("create_bucket", Bucket=self.b)
        self._try("delete_object", Bucket=self.b, Key="zz-bucket-marker")
        return res

    # -- malformed input

    def _op_malformed(self, op: dict[str, Any]) -> dict[str, Any]:
        v, b = op["variant"], self.b
        qkey = urllib.parse.quote(op["key"], safe="/-_.~")
        if v == "bad_delete_xml":
            body = b"<Delete><Object><Key>x</Key></Object"
            st, code, _, _ = self._raw("POST", f"/{b}", "delete=", {"Content-MD5": _b64md5(body)}, body)
        elif v == "empty_delete":
            body = b"<Delete></Delete>"
            st, code, _, _ = self._raw("POST", f"/{b}", "delete=", {"Content-MD5": _b64md5(body)}, body)
        elif v == "bad_complete_xml":
            r = self._call("create_multipart_upload", Bucket=b, Key=op["key"])
            body = b"<CompleteMultipartUpload><Part><PartNumber>1</Part>"
            st, code, _, _ = self._raw("POST", f"/{b}/{qkey}",
                                       "uploadId=" + urllib.parse.quote(r["UploadId"], safe=""), {}, body)
            self._try("abort_multipart_upload", Bucket=b, Key=op["key"], UploadId=r["UploadId"])
        elif v == "no_such_upload":
            st, code, _, _ = self._raw("GET", f"/{b}/{qkey}", "uploadId=nonexistent-upload-id")
        elif v == "bad_part_number":
            r = self._call("create_multipart_upload", Bucket=b, Key=op["key"])
            uid = urllib.parse.quote(r["UploadId"], safe="")
            st, code, _, _ = self._raw("PUT", f"/{b}/{qkey}", f"partNumber=10001&uploadId={uid}", {}, b"abc")
            self._try("abort_multipart_upload", Bucket=b, Key=op["key"], UploadId=r["UploadId"])
        elif v == "oversize_put":
            st, code, _, _ = self._raw("PUT", f"/{b}/{qkey}", "", {"Content-Length": str((5 << 30) + 1)}, b"",
                                       sign_body=False, timeout=3)
        elif v == "big_meta":
            st, code, _, _ = self._raw("PUT", f"/{b}/{qkey}", "", {"x-amz-meta-big": "m" * 2100}, b"data")
            if st == 200:
                self.model[op["key"]] = b"data"
                self.meta[op["key"]] = None
        elif v == "huge_header":
            st, code, _, _ = self._raw("GET", f"/{b}/{qkey}", "", {"x-custom": "h" * 20000})
            st = 400 if st in (400, 431, -1) else st  # "too large" comes as 400 or 431, or a closed connection
            code = ""
        elif v == "bad_max_keys":
            st, code, _, _ = self._raw("GET", f"/{b}", "list-type=2&max-keys=abc")
        elif v == "bad_copy_source":
            st, code, _, _ = self._raw("PUT", f"/{b}/{qkey}", "", {"x-amz-copy-source": "nobucketonly"})
        elif v == "tagging_bad_xml":
            st, code, _, _ = self._raw("PUT", f"/{b}/{qkey}", "tagging=", {}, b"<Tagging><TagSet>")
        elif v == "long_key":
            st, code, _, _ = self._raw("PUT", f"/{b}/" + "k" * 1100, "", {}, b"x")
        else:
            path = {"dotdot": f"/{b}/../escape", "dot": f"/{b}/./dot/./x", "double_slash": f"/{b}/a//b",
                    "encoded_dotdot": f"/{b}/x/%2e%2e/%2e%2e/escape"}[v]
            st, code, _, _ = self._raw("PUT", path, "", {}, b"trick")
            st2, code2, _, _ = self._raw("GET", path)
            return {"status": st, "code": code, "get_status": st2, "get_code": code2}
        return {"status": st, "code": code}

    # -- verification

    def expected_listing(self, prefix: str, delimiter: str, marker: str | None) -> list[str]:
        """Every entry S3 would list after `marker` from what this server accepted, in order: keys, and
        common prefixes (ending in `delimiter`)."""
        out: list[str] = []
        everything = sorted({*self.model, *self.markers})
        # A marker is a directory: once it holds keys it is listed only through them (ADR 0011).
        hidden = {m for m in self.markers if any(k != m and k.startswith(m) for k in everything)}
        for key in everything:
            if key in hidden:
                continue
            if not key.startswith(prefix) or (marker and key <= marker):
                continue
            rest = key[len(prefix):]
            if delimiter and delimiter in rest:
                key = prefix + rest[:rest.index(delimiter) + len(delimiter)]
                if (out and out[-1] == key) or (marker and key <= marker):  # a prefix of an earlier page
                    continue
            out.append(key)
        return out

    def listing_matches_model(self, op: dict[str, Any], answer: dict[str, Any]) -> bool:
        """Whether a successful listing answer gives exactly the entries `expected_listing` predicts, in
        order, with the right truncation flag."""
        pages = answer.get("pages", [answer])
        got: list[str] = []
        for p in pages:
            names = [k[0] if isinstance(k, list | tuple) else k for k in p.get("keys", [])]
            got += sorted(names + list(p.get("prefixes", [])))
        want = self.expected_listing(op["prefix"], op["delimiter"], op["start"])
        truncated = str(pages[-1].get("truncated")).lower() == "true" if pages else False
        self.last_listing = (got, want)
        return got == want[:len(got)] and truncated == (len(want) > len(got))

    def verify(self, prefix: str, check_meta: bool = False) -> list[str]:
        """Problems between what this server holds under `prefix` and its model (corruption, lost or
        phantom objects; with `check_meta`, user metadata and Content-Type other than written)."""
        problems: list[str] = []
        listed: dict[str, int] = {}
        token: dict[str, Any] = {}
        while True:
            try:
                r = self._call("list_objects_v2", Bucket=self.b, Prefix=prefix, **token)
            except Exception as exc:  # noqa: BLE001
                return [f"{self.s.name}: cannot list the bucket: {_client_error(exc)}"]
            for c in r.get("Contents", []):
                listed[c["Key"]] = c["Size"]
            if not r.get("NextContinuationToken"):
                break
            token = {"ContinuationToken": r["NextContinuationToken"]}
        for key, data in sorted(self.model.items()):
            if not key.startswith(prefix):
                continue
            try:
                resp = self._call("get_object", Bucket=self.b, Key=key)
                got = resp["Body"].read()
            except Exception as exc:  # noqa: BLE001
                problems.append(f"{self.s.name}: lost {key!r} ({_client_error(exc)})")
                continue
            if got != data:
                problems.append(f"{self.s.name}: CORRUPT {key!r}: {len(got)} bytes read, {len(data)} written")
            written = self.meta.get(key)
            if check_meta and written is not None and (resp.get("Metadata"), resp.get("ContentType")) != written:
                problems.append(f"{self.s.name}: {key!r} has metadata {resp.get('Metadata')} / "
                                f"{resp.get('ContentType')}, written {written}")
            if key not in listed:
                problems.append(f"{self.s.name}: {key!r} readable but not listed")
        for key, size in listed.items():
            if key not in self.model and not (key.endswith("/") and size == 0):
                problems.append(f"{self.s.name}: phantom object {key!r} ({size} bytes) listed")
        return problems


def _bare(root: ElementTree.Element) -> ElementTree.Element:
    """`root` with the namespaces taken off every tag."""
    for el in root.iter():
        el.tag = el.tag.rpartition("}")[2]
    return root


def _b64md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


# ---------------------------------------------------------------------------------------------- comparison

KNOWN: list[tuple[str, str]] = [
    # (regular expression on a divergence's signature, why it is accepted; ADR 0011 "Conformance")
    (r"^bucket\[versioning\]: code=None/'NotImplemented'",
     "(c) jfs answers GetBucketVersioning as unversioned (issue 13; SeaweedFS too); JuiceFS: NotImplemented"),
    (r"^[a-z_0-9]+\[[^\]]*\]: ((head\.)?(meta\.[^,]+|type)(, |$))+$",
     "(c) jfs keeps x-amz-meta-* and Content-Type (default binary/octet-stream, AWS's) as S3 and SeaweedFS do; "
     "JuiceFS 1.4.2's gateway drops them and answers application/octet-stream"),
    (r"^delete_objects\[\]: code=None/'MissingContentMD5'",
     "(b) MinIO wants Content-MD5 on DeleteObjects; AWS accepts an x-amz-checksum-* instead (boto3 >= 1.36 "
     "sends CRC32), SeaweedFS too"),
    (r"^list(1|2|_raw)\[\]: code=(None|'')/'NotImplemented'",
     "(b) MinIO refuses a marker / start-after that does not start with the prefix; S3 and SeaweedFS list"),
    (r"^get\[[^\]]*\]: code='NoSuchKey'/'InvalidRange'",
     "(b) MinIO judges the Range before the key: a missing key with a bad range is InvalidRange there, "
     "NoSuchKey on S3 and SeaweedFS"),
    (r"^malformed\[double_slash\]",
     "(c) keys are paths: `a//b` is XMinioInvalidObjectName (issue 13); JuiceFS and SeaweedFS collapse it "
     "into `a/b`, so two keys alias one object"),
    (r"^malformed\[(encoded_dotdot|dotdot|dot)\]: code='XMinioInvalidObjectName'/'XMinioInvalidResourceName'",
     "(b) both refuse a `.` or `..` component with 400; only the code's name differs"),
    (r"^malformed\[long_key\]: code='KeyTooLongError'/''",
     "(c) a key over 1024 bytes is KeyTooLongError (S3's limit); JuiceFS stores it"),
    (r"^(put|copy|multipart)\[[^\]]*\]: (complete\.)?code='XMinioParentIsObject'/'InternalError'",
     "(c) a key under an object (`a` is a file, put `a/b`): jfs 400 XMinioParentIsObject, JuiceFS 500"),
    (r"^bucket\[create_other\]: code='AccessDenied'/'NoSuchBucket'",
     "(c) one bucket per volume without --multi-buckets: CreateBucket is AccessDenied; JuiceFS NoSuchBucket"),
    (r"^get\[[^\]]*\]: code='(304|PreconditionFailed)'/'InvalidRange'",
     "(b) MinIO judges the Range before If-*; S3 evaluates the conditions first (RFC 7232 section 5)"),
    (r"^(get|head)\[[^\]]*match-and-unmodified-past\]: .*code=[^/]*/'(PreconditionFailed|412)'",
     "(b) If-Match true and If-Unmodified-Since false: 200 on S3 (documented under GetObject) and jfs; "
     "MinIO 412"),
    (r"^(get|head)\[bytes=5-2[^\]]*\]: .*code=None/'(416|InvalidRange)'",
     "(b) a syntactically invalid range (last < first) is ignored by S3 (RFC 7233): the whole object; "
     "MinIO 416"),
    (r"^delete_objects\[\]: keys_echoed$",
     "(b) JuiceFS's DeleteObjects answers empty <Deleted/> elements (no <Key>); jfs names each key as S3"),
    (r"^multipart\[[^\]]*\]: complete\.code='EntityTooSmall'/",
     "(c) jfs refuses a part but the last under 5 MiB as AWS and SeaweedFS do; JuiceFS completes it"),
    (r"^(put|copy|multipart)\[[^\]]*\]: (complete\.)?code='XMinioObjectExistsAsDirectory'/'InternalError'",
     "(c) a key that is a directory: jfs 409 XMinioObjectExistsAsDirectory (MinIO's code), JuiceFS 500"),
    (r"^put\[\]: dir_etag$",
     "(c) a `dir/` marker gets the empty object's ETag (as AWS and SeaweedFS); JuiceFS sends none"),
    (r"^tagging\[[^\]]*\]: code=[^/]*/'NotImplemented'",
     "(c) JuiceFS 1.4.2's gateway has no object tagging; jfs has (issue 13), as SeaweedFS"),
    (r"^tagging\[put\]: code='InvalidTag'/'BadRequest'",
     "(b) more than 10 tags: InvalidTag (s3-tests, SeaweedFS); MinIO says BadRequest"),
    (r"^malformed\[oversize_put\]: code='EntityTooLarge'/'TimeoutError'",
     "(b) a declared Content-Length over 5 GiB: jfs answers EntityTooLarge at once (S3's answer); JuiceFS "
     "waits for the body (no answer within 3 s)"),
    (r"^list(1|2|_raw)\[delimiter='a'\]: jfs-only key: marker, ref-only prefix: marker$",
     "(b) a `dir/` marker with a delimiter other than '/' not inside it: a key on S3 (and jfs, SeaweedFS); "
     "JuiceFS rolls it into a common prefix"),
    (r"^list(1|2)\[[^\]]*\]: etag: marker$",
     "(b) JuiceFS lists a `dir/` marker with an empty ETag; jfs gives the empty object's MD5, as S3"),
    (r"^list(1|2|_raw)\[[^\]]*\]: .*\[jfs = model\]$",
     "(b) jfs lists exactly what was written there (checked against the run's model); JuiceFS's listing "
     "differs: a stale page of its listing cache after a write, NextMarker without a delimiter, or one "
     "of the listing quirks above"),
    (r"\[reference off its model\]$",
     "(b) a consequence: the reference had already lost or gained objects behind its answers (see its "
     "notes; JuiceFS 1.4.2's DeleteObjects of `a/b` deletes the object `a`); jfs is checked on its own"),
    (r"^multipart\[copy_part[a-z_]*\]: copy\.code='InvalidArgument'/'InvalidRange', copy\.status=400/416"
     r"(, head\.(meta\.mp|type))*$",
     "(b) an UploadPartCopy range past the source's end: 400 InvalidArgument as AWS (s3-tests accept it or "
     "416 InvalidRange); MinIO and SeaweedFS 416 InvalidRange"),
    (r"^bucket\[dir_alias\]: marker_after",
     "(b) JuiceFS's DELETE `k` also removes the empty directory marker `k/`; on S3 (and jfs, SeaweedFS) `k` "
     "and `k/` are distinct keys"),
]
"""Accepted divergences (see ADR 0011, "Conformance")."""


def known(sig: str) -> str | None:
    """Why divergence `sig` is accepted, or None when it is new."""
    for pattern, why in KNOWN:
        if re.search(pattern, sig):
            return why
    return None


def signature(op: dict[str, Any], mine: Any, ref: Any) -> str:
    """A short, stable description of how two answers differ, used to group and to accept divergences."""
    def flat(x: Any, path: str = "") -> dict[str, Any]:
        if isinstance(x, dict):
            out: dict[str, Any] = {}
            for k, v in x.items():
                out.update(flat(v, f"{path}.{k}" if path else k))
            return out
        return {path: x}

    if op["op"] in ("list1", "list2", "list_raw") and mine.get("status") == ref.get("status") == 200:
        return f"{op['op']}[delimiter={op['delimiter']!r}]: " + _listing_difference(mine, ref)
    a, b = flat(mine), flat(ref)
    fields = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    variant = op.get("variant") or op.get("action") or "|".join(filter(None, [op.get("range"), op.get("cond")]))
    if op["op"] in ("list1", "list2", "list_raw"):
        variant = ""
    parts = []
    for f in fields[:4]:
        if f in ("status", "code") or f.endswith((".status", ".code")):
            parts.append(f"{f}={a.get(f)!r}/{b.get(f)!r}")
        else:
            parts.append(f)
    return f"{op['op']}[{variant}]: " + ", ".join(parts)


def _listing_difference(mine: dict[str, Any], ref: dict[str, Any]) -> str:
    """How two listings differ: which kind of entry (a ``dir/`` marker or a name) only one of them has,
    as a key or as a common prefix; else "paging" (same entries, other pages / flags)."""
    def entries(answer: dict[str, Any]) -> tuple[set[str], set[str]]:
        pages = answer.get("pages", [answer])
        keys = {k[0] if isinstance(k, list | tuple) else k for p in pages for k in p.get("keys", [])}
        return keys, {x for p in pages for x in p.get("prefixes", [])}

    (mk, mp), (rk, rp) = entries(mine), entries(ref)
    parts = []
    for what, only in (("jfs-only key", mk - rk), ("ref-only key", rk - mk), ("jfs-only prefix", mp - rp),
                       ("ref-only prefix", rp - mp)):
        kinds = sorted({"marker" if x.endswith("/") else "name" for x in only})
        if kinds:
            parts.append(f"{what}: {'+'.join(kinds)}")
    if not parts:  # the same entries: their sizes and ETags
        def attrs(answer: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
            return {k[0]: tuple(k[1:]) for p in answer.get("pages", []) for k in p.get("keys", [])
                    if isinstance(k, list | tuple)}
        ma, ra = attrs(mine), attrs(ref)
        for i, what in ((0, "size"), (1, "etag")):
            kinds = sorted({"marker" if k.endswith("/") else "name" for k in ma.keys() & ra.keys()
                            if ma[k][i] != ra[k][i]})
            if kinds:
                parts.append(f"{what}: {'+'.join(kinds)}")
    return ", ".join(parts) or "paging"


@dataclass
class Report:
    requests: Counter[str] = field(default_factory=Counter)
    divergences: dict[str, list[tuple[dict[str, Any], Any, Any, Any]]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    """jfs's: a crash, corrupt, lost or phantom object."""
    notes: list[str] = field(default_factory=list)
    """The same of the reference servers (shown, not failing the run)."""
    ops: int = 0
    off_model: list[tuple[dict[str, Any], Any]] = field(default_factory=list)
    """jfs listings that differ from what the run wrote (whether or not JuiceFS agrees)."""

    @property
    def new(self) -> list[str]:
        return sorted(s for s in self.divergences if known(s) is None)

    def ok(self) -> bool:
        return not self.problems and not self.new and not self.off_model


def run(servers: list[Server], seed: int, sequences: int, n_ops: int,
        progress: Callable[[str], None] = lambda s: None, trace: Any = None, report: Report | None = None) -> Report:
    """Drive every sequence at every server; jfs is `servers[0]`, the reference `servers[1]`, others (a
    third opinion) after them. With `report`, add to it (several seeds on the same servers)."""
    report = report if report is not None else Report()
    runners = [Runner(s) for s in servers]
    for n in range(sequences):
        rng = random.Random(f"{seed}/{n}")
        prefix = f"s{seed}-{n}/"
        ops = make_sequence(rng, n_ops, prefix)
        for op in ops:
            answers = [r.run(op) for r in runners]
            report.ops += 1
            if trace is not None:
                print(json.dumps({"op": op, "answers": answers}, ensure_ascii=False, default=str), file=trace)
            if op["op"].startswith("list") and answers[0].get("status") == 200 \
                    and not runners[0].listing_matches_model(op, answers[0]):
                got, want = runners[0].last_listing
                report.off_model.append((op, {"listed": got, "written": want}))
            if answers[0] != answers[1]:
                sig = signature(op, answers[0], answers[1])
                if op["op"].startswith("list") and answers[0].get("status") == 200:
                    sig += " [jfs = model]" if runners[0].listing_matches_model(op, answers[0]) \
                        else " [jfs != model]"
                if known(sig) is None and runners[1].verify(prefix):
                    sig += " [reference off its model]"
                report.divergences.setdefault(sig, []).append((op, answers[0], answers[1],
                                                               answers[2] if len(answers) > 2 else None))
        for i, r in enumerate(runners):
            found = r.verify(prefix, check_meta=i == 0)
            if not r.s.alive():
                found.append(f"{r.s.name}: server process died during sequence {n}")
            (report.problems if i == 0 else report.notes).extend(found)
        progress(f"sequence {n}: {len(ops)} ops, {len(report.divergences)} divergence kinds so far, "
                 f"{len(report.problems)} problems")
    for r in runners:
        report.requests[r.s.name] += r.requests
    return report


def render(report: Report, show_known: bool = False) -> str:
    lines = [f"operations: {report.ops}; requests: " + ", ".join(f"{k} {v}" for k, v in report.requests.items())]
    lines.append(f"problems (crash / corruption / lost / phantom): {len(report.problems)}")
    lines += [f"  {p}" for p in report.problems]
    if report.notes:
        lines.append(f"the same of the reference servers (not failing): {len(report.notes)}")
        lines += [f"  {p}" for p in report.notes]
    lines.append(f"jfs listings that differ from what was written: {len(report.off_model)}")
    for op, answer in report.off_model[:5]:
        lines.append(f"  {json.dumps(op, ensure_ascii=False)} -> {json.dumps(answer, ensure_ascii=False)[:1500]}")
    lines.append(f"divergences from JuiceFS: {len(report.divergences)} kinds, {len(report.new)} not documented")
    for sig, cases in sorted(report.divergences.items()):
        why = known(sig)
        if why is not None and not show_known:
            lines.append(f"  [known x{len(cases)}] {sig}")
            continue
        op, mine, ref, third = cases[0]
        lines.append(f"  [{'known' if why else 'NEW'} x{len(cases)}] {sig}")
        lines.append(f"      op:        {json.dumps(op, ensure_ascii=False)}")
        lines.append(f"      jfs:       {json.dumps(mine, ensure_ascii=False, default=str)}")
        lines.append(f"      juicefs:   {json.dumps(ref, ensure_ascii=False, default=str)}")
        if third is not None:
            lines.append(f"      seaweedfs: {json.dumps(third, ensure_ascii=False, default=str)}")
        if why:
            lines.append(f"      why:       {why}")
    return "\n".join(lines)


@contextlib.contextmanager
def servers(work: Path, juicefs: str, seaweed: bool) -> Iterator[list[Server]]:
    with contextlib.ExitStack() as stack:
        (work / "jfs").mkdir(parents=True, exist_ok=True)
        (work / "juicefs").mkdir(parents=True, exist_ok=True)
        out = [stack.enter_context(jfs_server(work / "jfs")), stack.enter_context(juicefs_server(work / "juicefs",
                                                                                                   juicefs))]
        if seaweed:
            out.append(stack.enter_context(seaweed_server()))
        yield out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", default="1", help="a seed, or several: 1,2,5 or 1-10 (the same servers)")
    p.add_argument("--sequences", type=int, default=8)
    p.add_argument("--ops", type=int, default=60)
    p.add_argument("--no-seaweed", action="store_true")
    p.add_argument("--show-known", action="store_true")
    p.add_argument("--juicefs", default=str(Path(sys.executable).with_name("juicefs")))
    p.add_argument("--workdir", default="")
    p.add_argument("--trace", default="", help="write every operation and its answers (JSON lines) here")
    args = p.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="jfs-s3conf-"))
    start = time.monotonic()
    try:
        with servers(work, args.juicefs, not args.no_seaweed) as srv:
            seeds: list[int] = []
            for part in args.seed.split(","):
                a, _, b = part.partition("-")
                seeds += list(range(int(a), int(b or a) + 1))
            report = Report()
            with open(args.trace or os.devnull, "w") as trace:
                for seed in seeds:
                    run(srv, seed, args.sequences, args.ops, lambda s, seed=seed: print(f"seed {seed}, {s}",
                                                                                      file=sys.stderr), trace, report)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    print(render(report, args.show_known))
    print(f"elapsed: {time.monotonic() - start:.1f} s")
    sys.exit(0 if report.ok() else 1)


if __name__ == "__main__":
    main()
