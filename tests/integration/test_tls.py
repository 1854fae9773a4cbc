"""Encryption in transit against real servers: Redis over TLS (``rediss://``, a `redis-server` started
here with ``--tls-port`` and a CA made here) and S3 over HTTPS (SeaweedFS behind a TLS proxy started here).

A server whose certificate does not verify is refused with one line unless the URL (or environment) asks
to skip verification; JuiceFS's option names (``tls-ca-cert-file``, ``tls-cert-file``, ``tls-key-file``,
``insecure-skip-verify``) are accepted.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from jfs.testing.mounts import jfs, mounted
from jfs.testing.servers import RedisServerError, free_port, start_redis_server
from jfs.testing.tls import Pki, make_pki


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
            expected = "certificate required" if why == "no client certificate" else "certificate verify failed"
            assert expected in line, (why, line)
        skip = f"rediss://localhost:{port}/1?insecure-skip-verify=true{client}"
        assert "tlsvol" in jfs("status", skip).stdout
        res = jfs("status", f"rediss://localhost:{port}/1?tls-ca-cert-file={base}/missing.pem", check=False)
        assert "cannot load the TLS files" in _last_line(res) and "No such file" in _last_line(res)
    finally:
        srv.stop()
