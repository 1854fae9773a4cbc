"""The backends of `bench/compare.py`: the servers each needs and the two mounts (jfs, JuiceFS) on it.

Servers come from `jfs.testing` (redis-server, SeaweedFS, etcd) and are stopped when the backend is done;
each system gets its own metadata DB / Redis DB / bucket / key prefix on the same server.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from .harness import (
    SYSTEMS,
    Item,
    JfsMount,
    JuiceFSMount,
    MiB,
    Mount,
    Params,
    Result,
    Round,
    StepError,
    progress,
)
from .workloads import run_system

BACKENDS = {
    "sqlite-file": "SQLite + local directory",
    "redis-file": "Redis + local directory",
    "sqlite-s3": "SQLite + SeaweedFS S3",
    "etcd3-file": "etcd, 3 members + local directory",
}


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """The URL of a throwaway redis-server in its own session (a Ctrl-C in the terminal must not stop it
    before the mounts using it are unmounted); StepError when it cannot start."""
    from jfs.testing.servers import RedisServerError, start_redis_server

    try:
        server = start_redis_server(new_session=True)
    except RedisServerError as exc:
        raise StepError(str(exc)) from None
    try:
        yield server.url
    finally:
        server.stop()


def round_root(base: Path, system: str, number: int) -> Path:
    """The work directory of `system` in round `number` (1-based): ``base/jfs``, then ``base/jfs-r2``, ..."""
    return base / (system.lower() if number == 1 else f"{system.lower()}-r{number}")


def round_order(number: int) -> tuple[str, ...]:
    """The systems in the order they run in round `number` (1-based): jfs first in odd rounds."""
    return SYSTEMS if number % 2 else tuple(reversed(SYSTEMS))


MountsOfRound = Callable[[int], list[Mount]]
"""Round number (1-based) -> the jfs and JuiceFS mounts of that round (fresh, not yet formatted)."""


@contextlib.contextmanager
def backend_mounts(backend: str, workdir: Path, binaries: dict[str, str],
                   mount_args: dict[str, list[str]]) -> Iterator[MountsOfRound]:
    """Yields a maker of each round's jfs and JuiceFS mounts of `backend`, with its servers running meanwhile.

    Every round gets fresh volumes: its own work directories (SQLite file, local bucket, cache, mount
    point), its own S3 buckets; on Redis the two databases are emptied (FLUSHDB) before rounds after the
    first -- the caller runs rounds one after the other, so the previous round's mounts are gone by then.
    """
    base = workdir / backend
    classes = {"jfs": JfsMount, "JuiceFS": JuiceFSMount}

    def make(system: str, number: int, meta_url: str, storage_args: list[str]) -> Mount:
        return classes[system](system, binaries[system], meta_url, storage_args, round_root(base, system, number),
                               mount_args[system])

    def roots(number: int) -> dict[str, Path]:
        found = {system: round_root(base, system, number) for system in SYSTEMS}
        for root in found.values():
            root.mkdir(parents=True)
        return found

    def sqlite_url(root: Path) -> str:
        return f"sqlite3://{root / 'meta.db'}"

    def file_args(root: Path) -> list[str]:
        return ["--storage", "file", "--bucket", f"{root / 'bucket'}/"]

    if backend == "sqlite-file":
        def sqlite_file(n: int) -> list[Mount]:
            return [make(s, n, sqlite_url(r), file_args(r)) for s, r in roots(n).items()]

        yield sqlite_file
    elif backend == "redis-file":
        progress(f"{backend}: starting redis-server")
        with redis_server() as url:
            def redis_file(n: int) -> list[Mount]:
                dbs = {s: f"{url}/{db}" for db, s in enumerate(SYSTEMS, start=1)}
                if n > 1:
                    for db_url in dbs.values():
                        flush_redis_db(db_url)
                return [make(s, n, dbs[s], file_args(r)) for s, r in roots(n).items()]

            yield redis_file
            progress(f"{backend}: stopping redis-server")
    elif backend == "sqlite-s3":
        from jfs.testing.seaweed import seaweed_s3

        progress(f"{backend}: starting SeaweedFS")
        with seaweed_s3(bucket="bench-jfs") as s3:
            client = s3.client()

            def sqlite_s3(n: int) -> list[Mount]:
                mounts = []
                for s, r in roots(n).items():
                    bucket = f"bench-{s.lower()}" + (f"-r{n}" if n > 1 else "")
                    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
                        client.create_bucket(Bucket=bucket)
                    mounts.append(make(s, n, sqlite_url(r), [
                        "--storage", "s3", "--bucket", f"{s3.endpoint}/{bucket}",
                        "--access-key", s3.access_key, "--secret-key", s3.secret_key]))
                return mounts

            yield sqlite_s3
            progress(f"{backend}: stopping SeaweedFS")
    elif backend == "etcd3-file":
        from jfs.testing.etcd_cluster import etcd_cluster

        progress(f"{backend}: starting a 3-member etcd cluster")
        with etcd_cluster(3, "--max-request-bytes", str(16 * MiB)) as cluster:
            def etcd3_file(n: int) -> list[Mount]:
                suffix = f"-r{n}" if n > 1 else ""
                return [make(s, n, cluster.url(f"bench-{s.lower()}{suffix}"), file_args(r))
                        for s, r in roots(n).items()]

            yield etcd3_file
            progress(f"{backend}: stopping etcd")
    else:
        raise ValueError(f"unknown backend {backend}")


def flush_redis_db(url: str) -> None:
    """Empty the Redis database at `url` (``redis://host:port/db``); StepError when it cannot."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    except redis.RedisError as exc:
        raise StepError(f"cannot empty {url}: {exc}") from None
    finally:
        client.close()


def free_round_data(mount: Mount) -> None:
    """Remove a finished round's volume data (metadata file, local bucket, disk cache); logs stay."""
    for name in ("bucket", "cache"):
        shutil.rmtree(mount.root / name, ignore_errors=True)
    for path in mount.root.glob("meta.db*"):
        with contextlib.suppress(OSError):
            path.unlink()


def run_backend(backend: str, workdir: Path, params: Params, binaries: dict[str, str],
                mount_args: dict[str, list[str]], items: list[Item], rounds: list[Round], *,
                count: int = 1, count_long: int | None = None, keep: bool = False) -> None:
    """Run both systems on one backend `count` times; appends each round ({system: {key: result}}) to `rounds`.

    Round n runs the long parts when n <= `count_long` (default: all rounds), jfs first in odd rounds and
    JuiceFS first in even ones. Unless `keep`, a round's volume data is removed once its mount is down.
    """
    count_long = count if count_long is None else count_long
    try:
        with backend_mounts(backend, workdir, binaries, mount_args) as mounts_of_round:
            for number in range(1, count + 1):
                started = time.monotonic()
                by_system: dict[str, dict[str, Result]] = {}
                rounds.append(by_system)
                mounts = {m.system: m for m in mounts_of_round(number)}
                for system in round_order(number):
                    mount = mounts[system]
                    label = f"{backend}/{system}" + (f"/round {number}" if count > 1 else "")
                    run_system(mount, params, binaries["JuiceFS"], label, items, by_system.setdefault(system, {}),
                               full=number <= count_long)
                    if not keep:
                        free_round_data(mount)
                if count > 1:
                    progress(f"{backend}: round {number} of {count} took {time.monotonic() - started:.0f} s")
    except (StepError, OSError, RuntimeError) as exc:  # a backend that cannot start fails its table only
        progress(f"{backend}: failed: {exc}")
        if not rounds:
            rounds.append({})
        for system in SYSTEMS:
            if not rounds[-1].get(system):
                rounds[-1][system] = {item.key: f"error: {backend} setup: {exc}" for item in items}
