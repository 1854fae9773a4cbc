"""Encryption in transit against real servers: Redis over TLS (``rediss://``, a `redis-server` started
here with ``--tls-port`` and a CA made here) and S3 over HTTPS (SeaweedFS behind a TLS proxy started here).

A server whose certificate does not verify is refused with one line unless the URL (or environment) asks
to skip verification; JuiceFS's option names (``tls-ca-cert-file``, ``tls-cert-file``, ``tls-key-file``,
``insecure-skip-verify``) are accepted.
"""

from __future__ import annotations

import asyncio
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from jfs.adapters.objects.s3 import S3Store
from jfs.testing.mounts import jfs, mounted
from jfs.testing.object_fixtures import seaweed_s3  # noqa: F401  (fixture)
from jfs.testing.seaweed import SeaweedS3
from jfs.testing.servers import RedisServerError, free_port, start_redis_server
from jfs.testing.tls import Pki, make_pki, tls_proxy


@pytest.fixture(scope="module")
def pki() -> Iterator[tuple[Pki, Pki, Path]]:
    d = Path(tempfile.mkdtemp(prefix="jfstls-"))
    d.chmod(0o755)
    yield make_pki(d / "good"), make_pki(d / "other", ca_name="another CA"), d
    subprocess.run(["rm", "-rf", str(d)], check=False)


def _last_line(res: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in res.stderr, res.stderr
    return res.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("auth_clients", ["optional", "yes"])
def test_redis_over_tls(pki: tuple[Pki, Pki, Path], auth_clients: str) -> None:
    good, other, base = pki
    port = free_port()
    try:
        srv = start_redis_server("--tls-port", str(port), "--tls-cert-file", str(good.server_cert),
                                 "--tls-key-file", str(good.server_key), "--tls-ca-cert-file", str(good.ca),
                                 "--tls-auth-clients", auth_clients)
    except RedisServerError as exc:
        pytest.skip(f"redis-server without TLS: {exc}")
    try:
        client = f"&tls-cert-file={good.client_cert}&tls-key-file={good.client_key}"
        url = f"rediss://localhost:{port}/1?tls-ca-cert-file={good.ca}{client}"
        work = base / f"w-{auth_clients}"
        work.mkdir()
        jfs("format", url, "tlsvol", "--bucket", str(work / "bucket"), "--trash-days", "0")
        with mounted(url, work / "mnt") as mnt:
            (mnt / "f").write_bytes(b"over tls" * 1000)
            assert (mnt / "f").read_bytes() == b"over tls" * 1000
        assert "tlsvol" in jfs("status", url).stdout
        # jfs's own names, and no client certificate where the server does not ask for one.
        own = f"rediss://127.0.0.1:{port}/1?ssl_ca_certs={good.ca}&ssl_certfile={good.client_cert}&ssl_keyfile={good.client_key}"
        assert "tlsvol" in jfs("status", own).stdout
        refused = {
            "no CA: the system's do not know the test CA": f"rediss://localhost:{port}/1?{client[1:]}",
            "another CA": f"rediss://localhost:{port}/1?tls-ca-cert-file={other.ca}{client}",
        }
        if auth_clients == "yes":
            refused["no client certificate"] = f"rediss://localhost:{port}/1?tls-ca-cert-file={good.ca}"
        else:
            assert "tlsvol" in jfs("status", f"rediss://localhost:{port}/1?tls-ca-cert-file={good.ca}").stdout
        for why, bad in refused.items():
            res = jfs("status", bad, check=False)
            line = _last_line(res)
            assert res.returncode == 1 and line.startswith("jfs: error: "), (why, res.stderr)
            assert sum(ln.startswith("jfs: error") for ln in res.stderr.splitlines()) == 1, (why, res.stderr)
            # TLS 1.3 reports a missing client certificate as an alert, or as a reset when the server closes
            # first (timing): either way the line says what to check.
            expected = ("certificate required", "client certificate") if why == "no client certificate" \
                else ("certificate verify failed",)
            assert any(e in line for e in expected), (why, line)
        skip = f"rediss://localhost:{port}/1?insecure-skip-verify=true{client}"
        assert "tlsvol" in jfs("status", skip).stdout
        res = jfs("status", f"rediss://localhost:{port}/1?tls-ca-cert-file={base}/missing.pem", check=False)
        assert "cannot load the TLS files" in _last_line(res) and "No such file" in _last_line(res)
    finally:
        srv.stop()


def test_s3_over_https(pki: tuple[Pki, Pki, Path], seaweed_s3: SeaweedS3, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """An encrypted volume on SeaweedFS's S3 behind a TLS proxy with a certificate of the test CA: works with
    the CA bundle given, is refused with one line without it or with another CA, works when asked to skip."""
    good, other, base = pki
    monkeypatch.delenv("AWS_CA_BUNDLE", raising=False)  # some hosts point boto3 at the system bundle
    monkeypatch.delenv("JFS_S3_INSECURE_SKIP_VERIFY", raising=False)
    monkeypatch.setenv("JFS_RSA_PASSPHRASE", "pw")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"pw"))
    (base / "rsa.pem").write_bytes(key)
    host, _, port = seaweed_s3.endpoint.removeprefix("http://").partition(":")
    with tls_proxy((host, int(port)), good.server_cert, good.server_key) as tls_port:
        bucket = f"https://localhost:{tls_port}/{seaweed_s3.bucket}"
        meta = f"sqlite3://{base}/s3.db"
        creds = ("--access-key", seaweed_s3.access_key, "--secret-key", seaweed_s3.secret_key)
        fmt = ("format", meta, "httpsvol", "--storage", "s3", "--bucket", bucket, "--trash-days", "0", *creds,
               "--encrypt-rsa-key", str(base / "rsa.pem"))
        for ca in (None, other.ca):
            if ca is None:
                monkeypatch.delenv("JFS_S3_CA_BUNDLE", raising=False)
            else:
                monkeypatch.setenv("JFS_S3_CA_BUNDLE", str(ca))
            res = jfs(*fmt, check=False)
            line = _last_line(res)
            assert res.returncode == 1 and "certificate verify failed" in line and "JFS_S3_CA_BUNDLE" in line, line
            assert sum(ln.startswith("jfs: error") for ln in res.stderr.splitlines()) == 1
        monkeypatch.setenv("JFS_S3_CA_BUNDLE", str(good.ca))
        jfs(*fmt)

        async def small_put() -> int:
            s = S3Store(bucket, access_key=seaweed_s3.access_key, secret_key=seaweed_s3.secret_key)
            try:
                await s.put("direct/small", b"x" * 1000)
                assert await s.get("direct/small") == b"x" * 1000
                assert s._loop_puts is not None
                return s._loop_puts.stored
            finally:
                await s.close()

        assert asyncio.run(small_put()) == 1  # sent from the loop over TLS, not by the threads' fallback
        with mounted(meta, base / "s3mnt", "--cache-size", "0") as mnt:
            (mnt / "f").write_bytes(b"https" * 300_000)
            (mnt / "small").write_bytes(b"tls" * 1000)  # a small block: PUT from the loop (ADR 0103)
            assert (mnt / "f").read_bytes() == b"https" * 300_000
        monkeypatch.delenv("JFS_S3_CA_BUNDLE")
        res = jfs("fsck", meta, check=False)
        assert res.returncode == 1 and "certificate verify failed" in _last_line(res)
        monkeypatch.setenv("JFS_S3_INSECURE_SKIP_VERIFY", "true")
        assert jfs("fsck", meta).returncode == 0
        with mounted(meta, base / "s3mnt2", "--cache-size", "0") as mnt:
            assert (mnt / "f").read_bytes() == b"https" * 300_000
            assert (mnt / "small").read_bytes() == b"tls" * 1000
