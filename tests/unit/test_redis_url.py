"""Redis META-URL parsing: the timeout parameters (go-redis / JuiceFS names) and their errors."""

from __future__ import annotations

import pytest

from jfs.adapters.kv.redis_url import parse_duration, parse_redis_url


def test_timeouts_default_to_the_clients_own() -> None:
    t = parse_redis_url("redis://127.0.0.1:6379/1")
    assert t.read_timeout is None and t.dial_timeout is None


@pytest.mark.parametrize(
    ("url", "read", "dial"),
    [
        ("redis://h:1/2?read_timeout=10s", 10.0, None),
        ("redis://h/2?read_timeout=500ms&dial_timeout=2", 0.5, 2.0),
        ("rediss://h/0?read_timeout=1m30s&ssl_cert_reqs=none", 90.0, None),
        ("unix:///run/redis.sock?db=3&dial_timeout=1.5s", None, 1.5),
    ],
)
def test_timeouts_from_the_query(url: str, read: float | None, dial: float | None) -> None:
    t = parse_redis_url(url)
    assert (t.read_timeout, t.dial_timeout) == (read, dial)


@pytest.mark.parametrize("text", ["0", "-1", "0s", "s", "10x", "1s2", "inf", "nan", ""])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="read_timeout must be a positive duration"):
        parse_redis_url(f"redis://h/1?read_timeout={text}")


def test_go_duration_forms() -> None:
    assert parse_duration("x", "1h2m3s") == 3723.0
    assert parse_duration("x", "250us") == pytest.approx(0.00025)
    assert parse_duration("x", "2.5") == 2.5


def test_unknown_parameters_are_still_refused() -> None:
    with pytest.raises(ValueError, match="unknown parameter"):
        parse_redis_url("redis://h/1?timeout=10s")
