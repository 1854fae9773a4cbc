"""The fsspec filesystem (protocol ``jfs``) on a real SQLite + local-directory volume: fsspec's own shipped
abstract test suite (copy, get, put, open, pipe), a pandas/pyarrow Parquet round trip through the
protocol, transactions, ranged reads, and copies made by slice reference."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pytest
from fsspec.tests import abstract

from jfs.sdk.fsspec import JfsFileSystem
from jfs.testing.mounts import format_volume


@pytest.fixture(scope="module")
def meta_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    base = tmp_path_factory.mktemp("fsspec")
    url = f"sqlite3://{base}/meta.db"
    format_volume(url, str(base / "bucket"))
    yield url
    fs = JfsFileSystem(meta=url, cache_dir=None)
    fs.client.close()
    JfsFileSystem.clear_instance_cache()


@pytest.fixture(scope="module")
def jfs_fs(meta_url: str) -> JfsFileSystem:
    fs = fsspec.filesystem("jfs", meta=meta_url, cache_dir=None)
    assert isinstance(fs, JfsFileSystem)
    return fs


class JfsFixtures(abstract.AbstractFixtures):  # type: ignore[misc]
    @pytest.fixture
    def fs(self, jfs_fs: JfsFileSystem) -> JfsFileSystem:
        return jfs_fs

    @pytest.fixture
    def fs_path(self, jfs_fs: JfsFileSystem) -> Iterator[str]:
        path = f"/abstract-{uuid.uuid4().hex[:12]}"  # test ids hold glob characters
        jfs_fs.makedirs(path, exist_ok=True)
        yield path
        jfs_fs.rm(path, recursive=True)

    @pytest.fixture
    def supports_empty_directories(self) -> bool:
        return True


class TestJfsCopy(abstract.AbstractCopyTests, JfsFixtures):  # type: ignore[misc]
    pass


class TestJfsGet(abstract.AbstractGetTests, JfsFixtures):  # type: ignore[misc]
    pass


class TestJfsPut(abstract.AbstractPutTests, JfsFixtures):  # type: ignore[misc]
    pass


class TestJfsOpen(abstract.AbstractOpenTests, JfsFixtures):  # type: ignore[misc]
    pass


class TestJfsPipe(abstract.AbstractPipeTests, JfsFixtures):  # type: ignore[misc]
    pass


def test_parquet_round_trip_with_pandas_and_pyarrow(meta_url: str, jfs_fs: JfsFileSystem) -> None:
    pd = pytest.importorskip("pandas")
    pa_ds = pytest.importorskip("pyarrow.dataset")
    df = pd.DataFrame({"k": list(range(10_000)), "v": [f"row-{i}" for i in range(10_000)]})
    opts = {"meta": meta_url, "cache_dir": None}
    df.to_parquet("jfs://tables/t.parquet", storage_options=opts)
    back = pd.read_parquet("jfs://tables/t.parquet", storage_options=opts)
    assert back.equals(df)
    dataset = pa_ds.dataset("/tables", filesystem=jfs_fs, format="parquet")
    assert dataset.to_table().num_rows == 10_000
    with fsspec.open("jfs://tables/c.csv", "wt", meta=meta_url, cache_dir=None) as f:
        df.head(5).to_csv(f, index=False)
    assert pd.read_csv("jfs://tables/c.csv", storage_options=opts)["v"].tolist() == [f"row-{i}" for i in range(5)]


def test_native_operations(jfs_fs: JfsFileSystem) -> None:
    fs = jfs_fs
    fs.pipe("/native/a", b"0123456789" * 1000)
    assert fs.cat_file("/native/a", 5, 15) == b"5678901234"
    assert fs.cat_file("/native/a", -4) == b"6789"
    fs.cp_file("/native/a", "/native/b")
    assert fs.info("/native/b")["ino"] != fs.info("/native/a")["ino"]
    assert fs.cat("/native/b") == fs.cat("/native/a")
    assert fs.du("/native") == 20_000
    assert sorted(fs.find("/native")) == ["/native/a", "/native/b"]
    assert fs.glob("/native/*") == ["/native/a", "/native/b"]
    fs.mv("/native/b", "/native/c")
    assert fs.ls("/native", detail=False) == ["/native/a", "/native/c"]
    fs.touch("/native/t")
    assert fs.info("/native/t")["size"] == 0 and fs.modified("/native/t").year >= 2026
    with fs.transaction:
        with fs.open("/native/staged", "wb") as f:
            f.write(b"later")
        assert not fs.exists("/native/staged")
    assert fs.cat("/native/staged") == b"later"
    fs.rm("/native", recursive=True)
    assert not fs.exists("/native")


def test_meta_url_from_the_environment(meta_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JFS_META_URL", meta_url)
    fs = JfsFileSystem(cache_dir=None, skip_instance_cache=True)
    try:
        fs.pipe("/env-file", b"x")
        assert fs.cat("/env-file") == b"x"
        local = tmp_path / "got"
        fs.get("/env-file", str(local))
        assert local.read_bytes() == b"x"
        assert os.path.getsize(local) == 1
    finally:
        fs.client.close()
