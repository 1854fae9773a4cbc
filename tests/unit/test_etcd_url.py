"""Parsing of etcd META-URLs (JuiceFS's form): members, credentials, prefix bytes, TLS and limits."""

from __future__ import annotations

import pytest

from jfs.adapters.kv.etcd_url import parse_etcd_url


def test_members_credentials_and_juicefs_prefix() -> None:
    t = parse_etcd_url("etcd://us%40r:p%3Aw@h1:2381,h2,[::1]:2390/my%20vol")
    assert t.endpoints == ("h1:2381", "h2:2379", "[::1]:2390")
    assert (t.username, t.password) == ("us@r", "p:w")
    assert t.prefix == b"/my vol\xfd"  # the path keeps its slash, as JuiceFS's u.Path + "\xFD"
    assert "p:w" not in repr(t) and not t.tls and t.max_txn_ops == 128 and t.timeout == 30


def test_no_path_is_the_bare_separator() -> None:
    assert parse_etcd_url("etcd://h").prefix == b"\xfd"


def test_tls_limits_and_timeout() -> None:
    t = parse_etcd_url("etcd://h/v?cacert=/ca.pem&cert=/c.pem&key=/k.pem&server-name=etcd&max-txn-ops=1024&timeout=5s")
    assert (t.tls, t.cacert, t.cert, t.key, t.server_name) == (True, "/ca.pem", "/c.pem", "/k.pem", "etcd")
    assert (t.max_txn_ops, t.timeout) == (1024, 5.0)
    assert not t.insecure_skip_verify


@pytest.mark.parametrize(("query", "tls", "skip"), [
    ("insecure-skip-verify=true", False, True),  # JuiceFS's rule: the option alone does not turn TLS on
    ("cacert=/ca.pem&insecure-skip-verify=1", True, True),
    ("cert=/c.pem&key=/k.pem&insecure-skip-verify=false", True, False),
    ("server-name=etcd", True, False),
])  # fmt: skip
def test_insecure_skip_verify(query: str, tls: bool, skip: bool) -> None:
    t = parse_etcd_url(f"etcd://h/v?{query}")
    assert (t.tls, t.insecure_skip_verify) == (tls, skip)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis://h/1", "not an etcd"),
        ("etcd:///vol", "without members"),
        ("etcd://h:99999/v", "port"),
        ("etcd://::1/v", "brackets"),
        ("etcd://h/v?bogus=1", "unknown parameter"),
        ("etcd://h/v?max-txn-ops=1", "max-txn-ops"),
        ("etcd://h/v?timeout=soon", "timeout"),
        ("etcd://h/v?read-cache=-1", "read-cache"),
    ],
)
def test_malformed(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_etcd_url(url)
