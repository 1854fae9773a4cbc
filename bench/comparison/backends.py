"""The backends of `bench/compare.py`: the servers each needs and the two mounts (jfs, JuiceFS) on it.

Servers come from `jfs.testing` (redis-server, SeaweedFS, etcd) and are stopped when the backend is done;
each system gets its own metadata DB / Redis DB / bucket / key prefix on the same server.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from .harness import SYSTEMS, Item, JfsMount, JuiceFSMount, MiB, Mount, Params, Result, StepError, progress
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


@contextlib.contextmanager
def backend_mounts(backend: str, workdir: Path, binaries: dict[str, str],
                   mount_args: dict[str, list[str]]) -> Iterator[list[Mount]]:
    """The jfs and JuiceFS mounts (not yet formatted) of `backend`, with its servers running meanwhile."""
    base = workdir / backend
    roots = {system: base / system.lower() for system in SYSTEMS}
    for root in roots.values():
        root.mkdir(parents=True)
    classes = {"jfs": JfsMount, "JuiceFS": JuiceFSMount}

    def make(system: str, meta_url: str, storage_args: list[str]) -> Mount:
        return classes[system](system, binaries[system], meta_url, storage_args, roots[system], mount_args[system])

    def sqlite_url(system: str) -> str:
        return f"sqlite3://{roots[system] / 'meta.db'}"

    def file_args(system: str) -> list[str]:
        return ["--storage", "file", "--bucket", f"{roots[system] / 'bucket'}/"]

    if backend == "sqlite-file":
        yield [make(s, sqlite_url(s), file_args(s)) for s in SYSTEMS]
    elif backend == "redis-file":
        progress(f"{backend}: starting redis-server")
        with redis_server() as url:
            yield [make(s, f"{url}/{db}", file_args(s)) for db, s in enumerate(SYSTEMS, start=1)]
            progress(f"{backend}: stopping redis-server")
    elif backend == "sqlite-s3":
        from jfs.testing.seaweed import seaweed_s3

        progress(f"{backend}: starting SeaweedFS")
        with seaweed_s3(bucket="bench-jfs") as s3:
            client = s3.client()
            mounts = []
            for s in SYSTEMS:
                bucket = f"bench-{s.lower()}"
                with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
                    client.create_bucket(Bucket=bucket)
                mounts.append(make(s, sqlite_url(s), [
                    "--storage", "s3", "--bucket", f"{s3.endpoint}/{bucket}",
                    "--access-key", s3.access_key, "--secret-key", s3.secret_key]))
            yield mounts
            progress(f"{backend}: stopping SeaweedFS")
    elif backend == "etcd3-file":
        from jfs.testing.etcd_cluster import etcd_cluster

        progress(f"{backend}: starting a 3-member etcd cluster")
        with etcd_cluster(3, "--max-request-bytes", str(16 * MiB)) as cluster:
            yield [make(s, cluster.url(f"bench-{s.lower()}"), file_args(s)) for s in SYSTEMS]
            progress(f"{backend}: stopping etcd")
    else:
        raise ValueError(f"unknown backend {backend}")


def run_backend(backend: str, workdir: Path, params: Params, binaries: dict[str, str],
                mount_args: dict[str, list[str]], items: list[Item], results: dict[str, dict[str, Result]]) -> None:
    """Run both systems on one backend; fills `results` {system: {item key: result}} as it goes."""
    try:
        with backend_mounts(backend, workdir, binaries, mount_args) as mounts:
            for mount in mounts:
                label = f"{backend}/{mount.system}"
                run_system(mount, params, binaries["JuiceFS"], label, items, results.setdefault(mount.system, {}))
    except (StepError, OSError, RuntimeError) as exc:  # a backend that cannot start fails its table only
        progress(f"{backend}: failed: {exc}")
        for system in SYSTEMS:
            if not results.get(system):
                results[system] = {item.key: f"error: {backend} setup: {exc}" for item in items}


# --------------------------------------------------------------------------------------------------------
# Report
