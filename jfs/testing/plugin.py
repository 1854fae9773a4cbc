"""pytest plugin of jfs (entry point ``pytest11: jfs_contract``): KV fixtures shared by the contract suites.

Options:
  ``--jfs-kv-url URL`` (repeatable) — run the KV-parametrized tests ONLY against these META-URLs (any engine
  registered in the ``jfs.kv`` entry points). The stores are WIPED (`reset()`) before every test.

Fixtures:
  ``kv_url``          the META-URL of the store under test (parametrized: ``memory``, ``sqlite``, ``redis``,
                      ``tikv``, ``etcd`` (one member), ``etcd3`` (a 3-member cluster); or one id per
                      ``--jfs-kv-url``). ``tikv`` needs ``JFS_TEST_TIKV=pd-host:port`` and is skipped
                      otherwise; ``redis`` / ``etcd*`` are skipped when ``redis-server`` / ``etcd`` is not
                      installed. Each etcd test gets its own key prefix (a volume) on the shared cluster.
  ``kv``              a freshly reset, opened KV on `kv_url`, closed after the test.
  ``kv_connect``      ``await kv_connect()`` opens ANOTHER independent connection to the same store (two
                      SqliteKV objects on one file, two Redis clients, …); closed after the test.
  ``redis_server``    a throwaway redis-server for the session (`jfs.testing.servers.RedisServer`).
  ``redis_server_url`` its ``redis://127.0.0.1:PORT`` (append ``/db``).
  ``etcd_single`` / ``etcd_trio``  a throwaway 1- / 3-member etcd cluster for the session
                      (`jfs.testing.etcd_cluster.EtcdCluster`; ``--max-request-bytes`` raised to 16 MiB so
                      the contract's 5 MiB value fits). Tests that kill members start their own cluster.
  ``builtin_engines`` skips the test when ``--jfs-kv-url`` restricts the run to other engines (for tests of
                      the built-in adapters themselves).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Protocol, TypeVar

import pytest
import pytest_asyncio

from jfs.adapters.kv.registry import open_kv
from jfs.ports.kv import KV
from jfs.testing.etcd_cluster import EtcdCluster, EtcdError, start_etcd_cluster
from jfs.testing.servers import RedisServer, RedisServerError, start_redis_server

BUILTIN_ENGINES = ("memory", "sqlite", "redis", "tikv", "etcd", "etcd3")
ETCD_ARGS = ("--max-request-bytes", str(16 << 20))
TIKV_ENV = "JFS_TEST_TIKV"
TIKV_SKIP = "JFS_TEST_TIKV is not set: no TiKV server available here; set JFS_TEST_TIKV=pd-host:port to run the TiKV contract"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("jfs", "jfs KV contract")
    group.addoption(
        "--jfs-kv-url",
        action="append",
        default=[],
        metavar="URL",
        dest="jfs_kv_url",
        help="test only this META-URL (repeatable); the store is wiped before every test",
    )


def _custom_urls(config: pytest.Config) -> list[str]:
    return list(config.getoption("jfs_kv_url") or [])


def _ids(urls: list[str]) -> list[str]:
    out: list[str] = []
    for url in urls:
        scheme = url.partition("://")[0] or "url"
        name, n = scheme, 2
        while name in out:
            name, n = f"{scheme}{n}", n + 1
        out.append(name)
    return out


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "kv_url" not in metafunc.fixturenames:
        return
    urls = _custom_urls(metafunc.config)
    if urls:
        params = [("url", u) for u in urls]
        metafunc.parametrize("kv_url", params, ids=_ids(urls), indirect=True)
    else:
        # ``@pytest.mark.jfs_engines("redis", ...)``: a test of a capability only some engines offer runs on
        # those (with ``--jfs-kv-url`` the test itself finds out and skips).
        marker = metafunc.definition.get_closest_marker("jfs_engines")
        engines = [e for e in BUILTIN_ENGINES if marker is None or e in marker.args]
        params = [(e, "") for e in engines]
        metafunc.parametrize("kv_url", params, ids=engines, indirect=True)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "jfs_engines(*names): run a KV-parametrized test on these built-in engines only")


class _Stoppable(Protocol):
    def stop(self) -> None: ...


S = TypeVar("S", bound=_Stoppable)


@contextlib.contextmanager
def started_or_skip(start: Callable[[], S], unavailable: type[Exception]) -> Iterator[S]:
    """A server from `start()`, stopped on exit; the test is skipped when starting raises `unavailable`
    (the server's binary is missing or would not come up on this machine)."""
    try:
        server = start()
    except unavailable as exc:
        pytest.skip(str(exc))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with started_or_skip(start_redis_server, RedisServerError) as server:
        yield server


@pytest.fixture(scope="session")
def redis_server_url(redis_server: RedisServer) -> str:
    return redis_server.url


def _etcd(size: int) -> Iterator[EtcdCluster]:
    with started_or_skip(lambda: start_etcd_cluster(size, *ETCD_ARGS), EtcdError) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def etcd_single() -> Iterator[EtcdCluster]:
    yield from _etcd(1)


@pytest.fixture(scope="session")
def etcd_trio() -> Iterator[EtcdCluster]:
    yield from _etcd(3)


@pytest.fixture
def kv_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    engine, url = request.param
    if engine == "url":
        return str(url)
    if engine == "memory":
        return f"memory://contract-{uuid.uuid4().hex}"
    if engine == "sqlite":
        return f"sqlite3://{tmp_path}/meta.db"
    if engine == "redis":
        return f"{request.getfixturevalue('redis_server_url')}/0"
    if engine in ("etcd", "etcd3"):
        cluster = request.getfixturevalue("etcd_single" if engine == "etcd" else "etcd_trio")
        return str(cluster.url(f"jfs-contract-{uuid.uuid4().hex[:12]}"))
    if engine == "tikv":
        pd = os.environ.get(TIKV_ENV)
        if not pd:
            pytest.skip(TIKV_SKIP)
        return f"tikv://{pd}/jfs-contract-{uuid.uuid4().hex[:12]}"
    raise AssertionError(f"unknown engine {engine}")


@pytest_asyncio.fixture
async def kv(kv_url: str) -> AsyncIterator[KV]:
    store = await open_kv(kv_url)
    try:
        await store.reset()
        yield store
    finally:
        await store.close()


@pytest_asyncio.fixture
async def kv_connect(kv_url: str) -> AsyncIterator[Callable[[], Awaitable[KV]]]:
    opened: list[KV] = []

    async def connect() -> KV:
        store = await open_kv(kv_url)
        opened.append(store)
        return store

    try:
        yield connect
    finally:
        for store in opened:
            await store.close()


@pytest.fixture
def builtin_engines(request: pytest.FixtureRequest) -> None:
    if _custom_urls(request.config):
        pytest.skip("tests a built-in adapter; --jfs-kv-url restricts this run to the given engines")
