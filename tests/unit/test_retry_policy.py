"""The retry budgets of `jfs.domain.retry`: schedules on plain numbers, and the places that apply them."""

from __future__ import annotations

import pytest

from jfs.domain import retry
from jfs.domain.retry import RetryPolicy


def test_kv_conflict_waits_a_random_share_of_n_squared_milliseconds() -> None:
    assert retry.KV_CONFLICT.delay(1, 0.0) == 0.0
    assert retry.KV_CONFLICT.delay(3, 0.5) == pytest.approx(0.0045)
    assert retry.KV_CONFLICT.delay(50, 0.999) == pytest.approx(2.5 * 0.999)
    assert retry.KV_CONFLICT.gives_up_after(50) and not retry.KV_CONFLICT.gives_up_after(49)


def test_block_io_doubles_from_the_first_delay_up_to_the_cap_with_half_to_full_jitter() -> None:
    p = retry.BLOCK_IO
    assert [p.delay(n) for n in (1, 2, 3)] == pytest.approx([0.1, 0.2, 0.4])
    assert p.delay(9) == 5.0
    assert p.delay(1, 0.0) == pytest.approx(0.05)
    assert p.attempts == retry.BLOCK_IO_ATTEMPTS


def test_lock_waits_are_unbounded_and_writers_poll_sooner() -> None:
    w, r = retry.LOCK_WAIT_WRITE, retry.LOCK_WAIT_READ
    assert not w.gives_up_after(10**6) and not r.gives_up_after(10**6)
    assert w.delay(1) == pytest.approx(0.001) and r.delay(1) == pytest.approx(0.01)
    assert w.delay(3) == pytest.approx(0.001 * 1.5**2)
    assert w.delay(100) == r.delay(100) == 0.2


def test_tuned_keeps_the_schedule_and_at_least_one_try() -> None:
    p = RetryPolicy(attempts=4, first=0.5, cap=2.0, jitter_low=0.5)
    t = p.tuned(attempts=0, first=0.01)
    assert t.attempts == 1 and t.first == 0.01 and t.cap == 2.0 and t.jitter_low == 0.5
    assert p.tuned() == p


def test_budgets_do_not_multiply_beyond_the_table() -> None:
    """A block on S3 costs at most BLOCK_IO × S3_REQUEST requests: the adapter re-reads no broken body."""
    import jfs.adapters.objects.s3 as s3

    assert not hasattr(s3, "BODY_READ_ATTEMPTS")
    assert retry.BLOCK_IO_ATTEMPTS * retry.S3_REQUEST_ATTEMPTS == 20


def test_the_s3_client_is_configured_with_total_attempts_from_the_table() -> None:
    from jfs.adapters.objects.s3 import S3Store

    store = S3Store("http://127.0.0.1:9/bkt", access_key="a", secret_key="b")
    try:
        assert store._client.meta.config.retries["total_max_attempts"] == retry.S3_REQUEST_ATTEMPTS
    finally:
        store._pool.shutdown()
        store._client.close()


def test_the_kv_port_default_is_the_conflict_budget() -> None:
    from jfs.ports.kv import DEFAULT_MAX_RETRIES

    assert DEFAULT_MAX_RETRIES == retry.KV_CONFLICT.attempts
