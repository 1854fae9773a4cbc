"""A bounded differential S3 conformance run (bench/s3_conformance.py): one fixed seed of random S3
request sequences against `jfs gateway` and `juicefs gateway` (JuiceFS 1.4.2) on fresh SQLite + file
volumes. No crash, no corrupt / lost / phantom object, and every divergence from JuiceFS is one of the
documented ones (ADR 0011, "Conformance"); plus the regressions the run found."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "s3_conformance.py"
JUICEFS = Path(sys.executable).with_name("juicefs")


def _load() -> Any:
    spec = importlib.util.spec_from_file_location("jfs_bench_s3_conformance", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


conformance = _load()


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Any]]:
    if not JUICEFS.exists():
        pytest.skip("the juicefs binary (JuiceFS 1.4.2) is not in the venv")
    with conformance.servers(tmp_path_factory.mktemp("s3conf"), str(JUICEFS), seaweed=False) as srv:
        yield srv


def test_a_seeded_run_finds_no_crash_no_corruption_and_only_documented_divergences(servers: list[Any]) -> None:
    report = conformance.run(servers, seed=7, sequences=4, n_ops=60)
    text = conformance.render(report)
    assert report.requests["jfs"] > 100, text
    assert not report.problems, text
    assert not report.off_model, text
    assert not report.new, text


def test_deleting_a_non_empty_volume_bucket_is_bucket_not_empty(servers: list[Any]) -> None:
    """Found by the run: the single-bucket gateway said AccessDenied before looking at the contents."""
    for server in servers:  # jfs and the reference agree
        s3 = server.client
        s3.put_object(Bucket=server.bucket, Key="conformance-keep", Body=b"x")
        try:
            with pytest.raises(ClientError) as e:
                s3.delete_bucket(Bucket=server.bucket)
            assert e.value.response["Error"]["Code"] == "BucketNotEmpty", server.name
            assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409
        finally:
            s3.delete_object(Bucket=server.bucket, Key="conformance-keep")


def test_copy_source_keys_may_hold_a_question_mark(servers: list[Any]) -> None:
    """Found by the run: the copy source was decoded before its query was cut off, so a key with an
    encoded '?' (%3F) lost everything after it (NoSuchKey), in CopyObject and UploadPartCopy."""
    for server in servers:
        s3, b = server.client, server.bucket
        s3.put_object(Bucket=b, Key="cq/q?m/b", Body=b"question")
        try:
            s3.copy_object(Bucket=b, Key="cq/copy", CopySource={"Bucket": b, "Key": "cq/q?m/b"})
            assert s3.get_object(Bucket=b, Key="cq/copy")["Body"].read() == b"question", server.name
            up = s3.create_multipart_upload(Bucket=b, Key="cq/mp")
            part = s3.upload_part_copy(Bucket=b, Key="cq/mp", UploadId=up["UploadId"], PartNumber=1,
                                       CopySource={"Bucket": b, "Key": "cq/q?m/b"}, CopySourceRange="bytes=1-3")
            s3.complete_multipart_upload(Bucket=b, Key="cq/mp", UploadId=up["UploadId"], MultipartUpload={
                "Parts": [{"PartNumber": 1, "ETag": part["CopyPartResult"]["ETag"]}]})
            assert s3.get_object(Bucket=b, Key="cq/mp")["Body"].read() == b"ues", server.name
        finally:
            for k in ("cq/q?m/b", "cq/copy", "cq/mp"):
                s3.delete_object(Bucket=b, Key=k)


def test_deleting_a_key_under_an_object_keeps_the_object(servers: list[Any]) -> None:
    """The run found JuiceFS 1.4.2 deleting object `a` for a DeleteObjects of `a/b`; jfs must keep it
    (the key `a/b` does not exist: S3 reports it deleted and changes nothing)."""
    jfs = servers[0]
    s3, b = jfs.client, jfs.bucket
    s3.put_object(Bucket=b, Key="under/f", Body=b"kept")
    try:
        xml = b"<Delete><Object><Key>under/f/g</Key></Object></Delete>"
        status, _, body, _ = jfs.raw("POST", f"/{b}", "delete=", {"Content-MD5": conformance._b64md5(xml)}, xml)
        assert status == 200 and b"<Key>under/f/g</Key>" in body
        s3.delete_object(Bucket=b, Key="under/f/g")
        assert s3.get_object(Bucket=b, Key="under/f")["Body"].read() == b"kept"
    finally:
        s3.delete_object(Bucket=b, Key="under/f")


def test_a_directory_marker_outlives_the_objects_under_it(servers: list[Any]) -> None:
    """Found by the run: deleting the last object under a PUT ``dir/`` removed the directory, so the
    object ``dir/`` disappeared (S3 and JuiceFS keep it). Directories made only by keys still go."""
    for server in servers:
        s3, b = server.client, server.bucket
        s3.put_object(Bucket=b, Key="mk/kept/", Body=b"")
        s3.put_object(Bucket=b, Key="mk/kept/f", Body=b"1")
        s3.put_object(Bucket=b, Key="mk/implicit/f", Body=b"1")
        s3.delete_object(Bucket=b, Key="mk/kept/f")
        s3.delete_object(Bucket=b, Key="mk/implicit/f")
        try:
            listed = [o["Key"] for o in s3.list_objects_v2(Bucket=b, Prefix="mk/").get("Contents", [])]
            assert listed == ["mk/kept/"], (server.name, listed)
            assert s3.head_object(Bucket=b, Key="mk/kept/")["ContentLength"] == 0
        finally:
            s3.delete_object(Bucket=b, Key="mk/kept/")
