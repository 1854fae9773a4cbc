"""gRPC's reports of failed TLS handshakes turned into one line naming the option to fix (etcd_tls)."""

from __future__ import annotations

import pytest

from jfs.adapters.kv.etcd_tls import tls_failure
from jfs.adapters.kv.etcd_url import parse_etcd_url

TLS = parse_etcd_url("etcd://h/v?cacert=/ca.pem&cert=/c.pem&key=/c.key")
EP = "127.0.0.1:2379"


@pytest.mark.parametrize(("details", "words"), [
    ("failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:2379: Tls handshake failed "
     "(TSI_PROTOCOL_FAILURE): SSL_ERROR_SSL: error:1000007d:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED:"
     " unable to get local issuer certificate: OK", ["does not verify", "unable to get local issuer", "cacert=/ca.pem"]),
    ("failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:2379: Custom verification check "
     "failed with error: UNAUTHENTICATED: Hostname Verification Check failed.", ["does not verify for the name", "server-name"]),
    ("failed to connect to all addresses; last error: UNAVAILABLE: ipv4:127.0.0.1:2379: Unwrap failed "
     "(TSI_DATA_CORRUPTED)", ["refused our TLS connection", "cert=/c.pem"]),
    ("failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:2379: Tls handshake failed: "
     "SSL_ERROR_SSL: error:100000f7:SSL routines:OPENSSL_internal:WRONG_VERSION_NUMBER", ["does not speak TLS"]),
])  # fmt: skip
def test_handshake_failures_name_the_fix(details: str, words: list[str]) -> None:
    line = tls_failure(details, EP, TLS)
    assert line is not None and "\n" not in line and line.startswith(f"etcd at {EP}")
    for w in words:
        assert w in line, (w, line)


def test_other_failures_are_not_about_tls() -> None:
    assert tls_failure("failed to connect to all addresses; Connection refused", EP, TLS) is None
    plain = parse_etcd_url("etcd://h/v")
    assert tls_failure("Tls handshake failed ... CERTIFICATE_VERIFY_FAILED", EP, plain) is None
