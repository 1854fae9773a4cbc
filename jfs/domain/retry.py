"""The retry policy of jfs: every retry budget, stated once, and the back-off schedule they share (ADR 0017).

A call is retried by exactly one layer — the one that knows what a failure means — and no layer retries
what another already retried, so the attempts of a call are the numbers below, not their product:

================  ===========================================  ===================  ================  =======================
budget            applied by                                   retried on           attempts          back-off before try n+1
================  ===========================================  ===================  ================  =======================
``KV_CONFLICT``   ``adapters.kv.base.retrying`` (every         ``ConflictError``    50 (a caller's    uniform(0, n²) ms
                  adapter's ``txn``/``read``)                                       ``max_retries``)
``BLOCK_IO``      ``app.data.blocks.BlockStore`` (the data     ``ObjectStoreError``  10 (the volume's  0.1 s·2^(n-1), ≤ 5 s,
                  path: put/get/delete of one block)           (not NotFound),      ``io_retries``)   × uniform(0.5, 1)
                                                               ``OSError``
``BLOCK_CORRUPT`` ``app.data.blocks.BlockStore``               ``CorruptBlock``     3 of those 10     as ``BLOCK_IO``
``S3_REQUEST``    botocore inside ``adapters.objects.s3``      5xx, throttling,     2 in total        botocore "standard":
                  (one HTTP request of any port call)          dropped connection                     uniform(0, 2^n) s
``LOCK_WAIT_W``   ``app.meta.locks`` (a blocked F_SETLKW /     lock held by         unbounded (until  1 ms·1.5^n, ≤ 200 ms
                  flock write waiter polls)                    another owner        granted or        (no jitter)
                                                                                    interrupted)
``LOCK_WAIT_R``   ``app.meta.locks`` (read waiter)             as above             unbounded         10 ms·1.5^n, ≤ 200 ms
================  ===========================================  ===================  ================  =======================

So a block on S3 costs at most ``BLOCK_IO × S3_REQUEST`` = 20 HTTP requests before EIO (it was up to
10 × 3 × 6 = 180 when the S3 adapter also re-read broken bodies and botocore ran its default 6), and a
metadata transaction at most 50 runs of its body. A GET whose body breaks off mid-read is not retried by
the adapter: it surfaces as ObjectStoreError and counts as one ``BLOCK_IO`` attempt.

Retries that are not of a failed call and so are not budgets here: the etcd client's fail-over to another
member (bounded by the META-URL's ``timeout``), the RESP client's one reconnect of a dead idle connection,
and the reader's re-resolve of a slice compacted away under it (``app.data.reader.READ_ATTEMPTS``).

Pure: no clock, no sleep, no randomness of its own — the loops that apply a policy sleep for what
`RetryPolicy.delay` says, given a uniform random number, so the schedule is testable on plain numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often a call is tried and how long to wait between tries.

    `attempts` counts every try including the first (None: until the caller stops). The wait before try
    n+1 (n ≥ 1 tries done) is ``min(cap, base(n))`` scaled into ``[jitter_low, jitter_high]`` of itself,
    where ``base(n)`` is ``first·growth^(n-1)`` (exponential) or ``first·n²`` (quadratic).
    """

    attempts: int | None
    first: float
    cap: float
    growth: float = 2.0
    shape: Literal["exponential", "quadratic"] = "exponential"
    jitter_low: float = 1.0
    jitter_high: float = 1.0

    def delay(self, tries: int, uniform: float = 1.0) -> float:
        """Seconds to wait after `tries` (≥ 1) failed tries; `uniform` is a random number in [0, 1)."""
        base = self.first * tries * tries if self.shape == "quadratic" else self.first * self.growth ** (tries - 1)
        return min(self.cap, base) * (self.jitter_low + (self.jitter_high - self.jitter_low) * uniform)

    def gives_up_after(self, tries: int) -> bool:
        """Whether `tries` failed tries exhaust the budget."""
        return self.attempts is not None and tries >= self.attempts

    def tuned(self, *, attempts: int | None = None, first: float | None = None, cap: float | None = None) -> RetryPolicy:
        """The same policy with the given budget (at least one try) or delays; None keeps a field."""
        return replace(
            self,
            attempts=self.attempts if attempts is None else max(1, attempts),
            first=self.first if first is None else first,
            cap=self.cap if cap is None else cap,
        )


KV_CONFLICT_ATTEMPTS = 50
KV_CONFLICT = RetryPolicy(attempts=KV_CONFLICT_ATTEMPTS, first=0.001, cap=2.5, shape="quadratic", jitter_low=0.0)
"""A metadata transaction that conflicted re-runs its body (the port's ``DEFAULT_MAX_RETRIES``)."""

BLOCK_IO_ATTEMPTS = 10
BLOCK_IO = RetryPolicy(attempts=BLOCK_IO_ATTEMPTS, first=0.1, cap=5.0, jitter_low=0.5)
"""One block's put/get/delete in the data path; the volume may set another count (``io_retries``)."""

BLOCK_CORRUPT_ATTEMPTS = 3
"""Tries of a block whose content is bad: another read heals a response torn in transit, but an object
damaged at rest stays damaged, and all of `BLOCK_IO` with back-off would stall every read of it for ~20 s
(the kernel asks more than once, so about a minute) before the same EIO."""

S3_REQUEST_ATTEMPTS = 2
"""Total tries of one S3 HTTP request, made by botocore (``total_max_attempts``): one quick re-send of a
request that met a dropped keep-alive connection, a 5xx or throttling. The data path's patience is
`BLOCK_IO`; calls outside it (listing, head, the volume's UUID object) get only this."""

LOCK_WAIT_WRITE = RetryPolicy(attempts=None, first=0.001, cap=0.2, growth=1.5)
"""Polling of a blocked write-lock waiter (flock ``W``, F_SETLKW with F_WRLCK)."""

LOCK_WAIT_READ = RetryPolicy(attempts=None, first=0.01, cap=0.2, growth=1.5)
"""Polling of a blocked read-lock waiter: readers wait longer so a waiting writer gets in first."""
