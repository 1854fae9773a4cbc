"""A Prometheus endpoint for one client, served by `prometheus_client` on its own thread.

Every scrape calls `source()` — a list of metric families as plain data (`jfs.app.metrics.Family`: name,
kind, help, samples) — and translates it, adding the global labels ``vol_name`` and ``mp`` as JuiceFS does.
Python-process metrics (``process_*``, ``python_*``) come from prometheus-client's own collectors.

JuiceFS's counters are named without ``_total`` (``juicefs_blockcache_hits``); prometheus-client always
appends ``_total`` to a counter's sample, so such counters are exposed *untyped* under their exact name
(PromQL's ``rate()`` works the same on them), and names that end in ``_total`` as real counters.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
    UnknownMetricFamily,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from jfs.adapters.metrics.address import MetricsError, parse_address  # noqa: F401 (re-exported)

DEFAULT_ADDRESS = "127.0.0.1:9567"
PORT_TRIES = 100
"""Ports tried upwards from the one asked for when it is taken (several mounts on one host)."""


class _Collector:
    def __init__(self, source: Callable[[], Iterable[Any]], labels: dict[str, str]) -> None:
        self.source = source
        self.names = list(labels)
        self.values = list(labels.values())

    def collect(self) -> Iterator[Metric]:
        for fam in self.source():
            extra = sorted({k for labels, _ in fam.samples for k in labels})
            names = self.names + extra
            metric: Any
            if fam.kind == "histogram":
                metric = HistogramMetricFamily(fam.name, fam.help, labels=names)
            elif fam.kind == "counter" and fam.name.endswith("_total"):
                metric = CounterMetricFamily(fam.name, fam.help, labels=names)
            elif fam.kind == "counter":
                metric = UnknownMetricFamily(fam.name, fam.help, labels=names)
            else:
                metric = GaugeMetricFamily(fam.name, fam.help, labels=names)
            for labels, value in fam.samples:
                label_values = self.values + [labels.get(k, "") for k in extra]
                if fam.kind == "histogram":
                    counts, total = value
                    metric.add_metric(label_values, _cumulative(counts), total)
                else:
                    metric.add_metric(label_values, float(value))
            yield metric


def _cumulative(buckets: list[tuple[float, int]]) -> list[tuple[str, float]]:
    """(upper bound, count in that bucket alone) → prometheus-client's cumulative (le, count) pairs."""
    out, running = [], 0
    for bound, n in buckets:
        running += n
        out.append(("+Inf" if bound == float("inf") else f"{bound:.6g}", float(running)))
    return out


class MetricsServer:
    """A running endpoint (``http://host:port/metrics``); `close()` stops it."""

    def __init__(self, httpd: Any, thread: Any, host: str, port: int, registry: CollectorRegistry) -> None:
        self._httpd, self._thread = httpd, thread
        self.host, self.port, self.registry = host, port, registry

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)


def start(addr: str, source: Callable[[], Iterable[Any]], labels: dict[str, str]) -> MetricsServer:
    """Serve `source`'s families at `addr`; when its port is taken, the next free one of `PORT_TRIES`."""
    host, port = parse_address(addr)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(source, labels))  # type: ignore[arg-type]
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    last: OSError | None = None
    for candidate in range(port, min(port + PORT_TRIES, 65536)) if port else [0]:
        try:
            httpd, thread = start_http_server(candidate, host, registry)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise MetricsError(f"cannot serve metrics on {host}:{candidate}: {exc.strerror or exc}") from None
            last = exc
            continue
        return MetricsServer(httpd, thread, host, httpd.server_address[1], registry)
    raise MetricsError(f"cannot serve metrics on {host}: ports {port}-{port + PORT_TRIES - 1} are taken ({last})")
