"""The gateway's memory while one huge object streams through it: a `--gib` GiB PutObject (one request,
signed headers, UNSIGNED-PAYLOAD, the bytes generated on the fly) and the GetObject of it read back and
compared (MD5), while the gateway process's RSS is sampled every 50 ms.

Usage:  .venv/bin/python bench/gateway_memory.py [--gib 5] [--limit-mib 300] [--workdir DIR]

Prints baseline / peak RSS for each phase and the throughput; exits 1 when the peak exceeds the baseline
by more than `--limit-mib` (the gateway's buffers are bounded: a body is never held whole). It is a
script, not a CI test: 5 GiB each way take minutes on a shared machine (well over the 60 s a CI test may).
SQLite + a local directory, one fresh volume, formatted with ``--trash-days 0`` and removed afterwards.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gateway_bench import PeakRss, _client, _jfs_gateway  # noqa: E402

from jfs.testing.gateways import ACCESS_KEY, SECRET_KEY  # noqa: E402

MiB = 1 << 20
BLOCK = os.urandom(8 * MiB)


def _put(endpoint: str, bucket: str, key: str, size: int) -> str:
    """Stream `size` bytes (BLOCK repeated) as one PutObject; returns the MD5 hex sent."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    host = endpoint.removeprefix("http://")
    class UnsignedPayload(S3SigV4Auth):
        def payload(self, request: AWSRequest) -> str:
            return "UNSIGNED-PAYLOAD"

    req = AWSRequest("PUT", f"{endpoint}/{bucket}/{key}", headers={"Host": host, "Content-Length": str(size)})
    UnsignedPayload(Credentials(ACCESS_KEY, SECRET_KEY), "s3", "us-east-1").add_auth(req)
    conn = http.client.HTTPConnection(host, timeout=600)
    conn.putrequest("PUT", f"/{bucket}/{key}", skip_host=True, skip_accept_encoding=True)
    for k, v in req.headers.items():
        conn.putheader(k, v)
    conn.endheaders()
    md5 = hashlib.md5()
    sent = 0
    while sent < size:
        piece = BLOCK[: min(len(BLOCK), size - sent)]
        md5.update(piece)
        conn.send(piece)
        sent += len(piece)
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    if resp.status != 200:
        raise RuntimeError(f"PUT failed: {resp.status} {body[:300]!r}")
    return md5.hexdigest()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gib", type=float, default=5.0)
    p.add_argument("--limit-mib", type=int, default=300)
    p.add_argument("--workdir", default="")
    args = p.parse_args()
    size = int(args.gib * (1 << 30))
    work = Path(args.workdir or tempfile.mkdtemp(prefix="jfs-gw-mem-"))
    work.mkdir(parents=True, exist_ok=True)
    ok = True
    try:
        with _jfs_gateway(work) as (endpoint, bucket, pid):
            s3 = _client(endpoint)
            s3.put_object(Bucket=bucket, Key="warm", Body=b"x")  # the tmp dir, the engine: warmed up
            with PeakRss(pid) as rss:
                base = rss.peak
                start = time.perf_counter()
                sent_md5 = _put(endpoint, bucket, "huge", size)
                t = time.perf_counter() - start
            print(f"PUT {args.gib:g} GiB: {size / MiB / t:.1f} MiB/s, RSS baseline {base / MiB:.0f} MiB, "
                  f"peak {rss.peak / MiB:.0f} MiB (+{(rss.peak - base) / MiB:.0f})", flush=True)
            ok &= rss.peak - base <= args.limit_mib * MiB
            with PeakRss(pid) as rss:
                base = rss.peak
                start = time.perf_counter()
                got = hashlib.md5()
                body = s3.get_object(Bucket=bucket, Key="huge")["Body"]
                n = 0
                while chunk := body.read(4 * MiB):
                    got.update(chunk)
                    n += len(chunk)
                t = time.perf_counter() - start
            print(f"GET {args.gib:g} GiB: {size / MiB / t:.1f} MiB/s, RSS baseline {base / MiB:.0f} MiB, "
                  f"peak {rss.peak / MiB:.0f} MiB (+{(rss.peak - base) / MiB:.0f})", flush=True)
            ok &= rss.peak - base <= args.limit_mib * MiB
            if n != size or got.hexdigest() != sent_md5:
                print(f"data differs: {n} bytes, md5 {got.hexdigest()} != {sent_md5}")
                ok = False
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    print("OK: RSS bounded" if ok else f"FAIL: RSS grew more than {args.limit_mib} MiB or data differs")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
