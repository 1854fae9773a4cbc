"""Encryption at rest: the envelope codec, the volume key, sealing and opening objects, the setting's sealed
secrets — against objects JuiceFS 1.4.2 wrote (tests/unit/data/juicefs_encrypted/README.md)."""

from __future__ import annotations

import asyncio
import errno
import json
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from jfs.adapters.objects.memory import MemoryStore
from jfs.app.data.blocks import BlockStore
from jfs.app.data.compress import get_codec
from jfs.app.data.config import DataConfig
from jfs.app.data.crypto import (
    EncryptedStore,
    KeyProblem,
    SealBroken,
    Sealer,
    load_volume_key,
    open_secret,
    plain_settings,
    seal_secret,
    seal_settings,
)
from jfs.domain import envelope
from jfs.domain.errors import FSError
from jfs.domain.settings import Settings

DATA = Path(__file__).parent / "data" / "juicefs_encrypted"
PASS = "secret123"
HELLO = b"hello hello hello hello\n"
SETTINGS = json.loads((DATA / "settings.json").read_text())


@pytest.fixture(scope="module")
def juicefs_key() -> rsa.RSAPrivateKey:
    pem = open_secret(SETTINGS["aes"]["UUID"], SETTINGS["aes"]["EncryptKey"])
    assert pem == (DATA / "key.pem").read_text()  # EncryptKey is the PEM file as given, sealed with MD5(UUID)
    return load_volume_key(pem, PASS)


@pytest.fixture(scope="module")
def other_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


# -- known answers: what JuiceFS wrote, jfs reads ---------------------------------------------------------


@pytest.mark.parametrize(
    ("algo", "obj", "codec"),
    [("aes", "aes_lz4_2_0_24", "lz4"), ("chacha", "chacha_zstd_1_0_24", "zstd")],
)
def test_objects_sealed_by_juicefs_open(juicefs_key: rsa.RSAPrivateKey, algo: str, obj: str, codec: str) -> None:
    setting = SETTINGS[algo]
    sealer = Sealer(juicefs_key, setting["EncryptAlgo"])
    assert sealer.open((DATA / f"{algo}_juicefs_uuid").read_bytes()) == setting["UUID"].encode()
    assert get_codec(codec).decompress(sealer.open((DATA / obj).read_bytes()), len(HELLO)) == HELLO


def test_the_envelope_layout_is_juicefs_s(juicefs_key: rsa.RSAPrivateKey) -> None:
    raw = (DATA / "aes_juicefs_uuid").read_bytes()
    env = envelope.unpack(raw)
    assert (raw[:3], len(env.wrapped_key), len(env.nonce)) == (b"\x01\x00\x0c", 256, 12)
    assert len(raw) == 3 + 256 + 12 + 36 + 16
    mine = Sealer(juicefs_key).seal(b"x" * 36)
    assert len(mine) == len(raw) and mine[:3] == raw[:3]
    assert envelope.pack(env.wrapped_key, env.nonce, bytes(env.ciphertext)) == raw


# -- sealing and opening ----------------------------------------------------------------------------------


@pytest.mark.parametrize("algo", ["aes256gcm-rsa", "chacha20-rsa"])
def test_seal_open_round_trip_with_fresh_keys(juicefs_key: rsa.RSAPrivateKey, algo: str) -> None:
    sealer = Sealer(juicefs_key, algo)
    for data in (b"", b"a", HELLO, bytes(range(256)) * 4096):
        sealed = sealer.seal(memoryview(data))
        assert len(sealed) == len(data) + sealer.overhead
        assert len(data) < 16 or data[:64] not in sealed
        assert sealer.open(sealed) == data
    assert sealer.seal(HELLO) != sealer.seal(HELLO)  # a fresh data key and nonce every time


def test_every_flipped_byte_and_every_truncation_is_caught(juicefs_key: rsa.RSAPrivateKey) -> None:
    sealer = Sealer(juicefs_key)
    sealed = sealer.seal(HELLO * 3)
    for i in range(len(sealed)):
        bad = bytearray(sealed)
        bad[i] ^= 0x01
        with pytest.raises(SealBroken):
            sealer.open(bytes(bad))
    for n in range(len(sealed)):
        with pytest.raises(SealBroken):
            sealer.open(sealed[:n])
    with pytest.raises(SealBroken):
        sealer.open(sealed + b"\x00")


def test_an_object_of_another_key_or_algorithm_does_not_open(
    juicefs_key: rsa.RSAPrivateKey, other_key: rsa.RSAPrivateKey
) -> None:
    with pytest.raises(SealBroken, match="does not unwrap with the volume's RSA key"):
        Sealer(other_key).open(Sealer(juicefs_key).seal(HELLO))
    with pytest.raises(SealBroken, match="tag does not verify"):
        Sealer(juicefs_key, "chacha20-rsa").open(Sealer(juicefs_key, "aes256gcm-rsa").seal(HELLO))
    with pytest.raises(KeyProblem, match="unsupported encryption algorithm 'sm4gcm'"):
        Sealer(juicefs_key, "sm4gcm")


# -- the volume key ---------------------------------------------------------------------------------------


def test_passphrase_problems_are_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    pem = (DATA / "key.pem").read_bytes()
    monkeypatch.delenv("JFS_RSA_PASSPHRASE", raising=False)
    with pytest.raises(KeyProblem, match="^the volume's RSA key is protected by a passphrase: set JFS_RSA_PASSPHRASE$"):
        load_volume_key(pem)
    monkeypatch.setenv("JFS_RSA_PASSPHRASE", "wrong")
    with pytest.raises(KeyProblem, match=r"^JFS_RSA_PASSPHRASE does not decrypt the volume's RSA key \(wrong passphrase\?\)$"):
        load_volume_key(pem)
    monkeypatch.setenv("JFS_RSA_PASSPHRASE", PASS)
    assert load_volume_key(pem).key_size == 2048
    with pytest.raises(KeyProblem, match="not a PEM private key"):
        load_volume_key("garbage")


def test_key_formats_juicefs_accepts(other_key: rsa.RSAPrivateKey, tmp_path: Path) -> None:
    """PKCS#1 plain (a passphrase is then ignored, JuiceFS only warns), PKCS#1 with OpenSSL's legacy
    encryption (``Proc-Type: 4,ENCRYPTED``, what `openssl genrsa -aes256` made before OpenSSL 3), PKCS#8."""
    plain = other_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                    serialization.NoEncryption())
    assert load_volume_key(plain, "ignored").private_numbers() == other_key.private_numbers()
    (tmp_path / "k.pem").write_bytes(plain)
    legacy = subprocess.run(["openssl", "rsa", "-in", str(tmp_path / "k.pem"), "-aes256", "-traditional",
                             "-passout", "pass:pw"], capture_output=True, check=True).stdout
    assert b"Proc-Type: 4,ENCRYPTED" in legacy
    assert load_volume_key(legacy, "pw").private_numbers() == other_key.private_numbers()
    pkcs8 = other_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.BestAvailableEncryption(b"pw"))
    assert load_volume_key(pkcs8, "pw").private_numbers() == other_key.private_numbers()
    ec_pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    with pytest.raises(KeyProblem, match="jfs supports RSA keys only"):
        load_volume_key(ec_pem)


# -- the setting's secrets --------------------------------------------------------------------------------


def test_sealed_secrets_round_trip_and_refuse_another_uuid() -> None:
    sealed = seal_secret("uuid-1", "SK-secret")
    assert "SK-secret" not in sealed and open_secret("uuid-1", sealed) == "SK-secret"
    assert open_secret("uuid-1", "removed") == "removed" and seal_secret("uuid-1", "") == ""
    with pytest.raises(KeyProblem, match="does not decrypt with the volume's UUID"):
        open_secret("uuid-2", sealed)


def test_settings_are_sealed_and_opened_whole() -> None:
    sk = "secret-key-of-the-bucket"  # long enough not to turn up in base64 ciphertext by chance (as "SK" did)
    s = Settings(name="vol", secret_key=sk, encrypt_key="PEM")
    sealed = seal_settings(s)
    assert sealed.key_encrypted and sealed.secret_key not in ("", sk) and sealed.encrypt_key != "PEM"
    doc = json.loads(sealed.to_json())
    assert doc["KeyEncrypted"] is True and sk not in json.dumps(doc)
    again = plain_settings(Settings.from_json(sealed.to_json()))
    assert (again.secret_key, again.encrypt_key, again.key_encrypted) == (sk, "PEM", False)
    assert seal_settings(Settings(name="vol")).key_encrypted is False  # nothing to seal


# -- the data path ----------------------------------------------------------------------------------------


def test_blocks_on_an_encrypted_store_and_a_tampered_one_is_eio(
    juicefs_key: rsa.RSAPrivateKey, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    async def main() -> None:
        inner = MemoryStore()
        store = EncryptedStore(inner, Sealer(juicefs_key))
        config = DataConfig(volume="vol", uuid="u", block_size=1 << 16, compression="none", io_retries=3, retry_delay=0.001)
        blocks = BlockStore(store, config)
        try:
            assert not blocks.ranged  # a sealed object cannot be opened in part
            data = bytes(range(256)) * 256
            await blocks.put(7, 0, data)
            key = blocks.key(7, 0, len(data))
            raw = await inner.get(key)
            assert len(raw) == len(data) + store.sealer.overhead and data not in raw
            assert await blocks.get(7, 0, len(data)) == data
            assert await store.get(key, 100, 10) == data[100:110]
            bad = bytearray(raw)
            bad[-5] ^= 0x80
            await inner.put(key, bytes(bad))
            with pytest.raises(FSError) as e:
                await blocks.get(7, 0, len(data))
            assert e.value.errno == errno.EIO and key in str(e.value)
            await inner.put(key, raw[: len(raw) // 2])
            with pytest.raises(FSError) as e:
                await blocks.get(7, 0, len(data))
            assert e.value.errno == errno.EIO
        finally:
            await blocks.close()
            await store.close()

    asyncio.run(main())
    out = capsys.readouterr()
    assert "block_io_failed" in out.out + out.err
    assert "vol/chunks/0/0/7_0_65536" in out.out + out.err


@pytest.mark.parametrize("codec", ["none", "lz4"])
def test_a_block_is_compressed_and_sealed_in_one_cpu_call(juicefs_key: rsa.RSAPrivateKey, codec: str) -> None:
    """ADR 0023: the block store seals on its own CPU pool in the call that compresses, and stores the sealed
    bytes under the EncryptedStore — whose pool is never used for blocks; the object is what it would seal."""
    async def main() -> None:
        inner = MemoryStore()
        store = EncryptedStore(inner, Sealer(juicefs_key))

        async def no_second_hop(*_: object) -> None:
            raise AssertionError("a block went through EncryptedStore's own pool")

        store._cpu = no_second_hop  # type: ignore[method-assign,assignment]
        blocks = BlockStore(store, DataConfig(volume="vol", uuid="u", block_size=1 << 16, compression=codec))
        calls: list[str] = []
        real_cpu = blocks.cpu

        async def counting_cpu(fn, *args):  # type: ignore[no-untyped-def]
            calls.append(fn.__name__)
            return await real_cpu(fn, *args)

        blocks.cpu = counting_cpu  # type: ignore[method-assign]
        try:
            data = b"jfs " * (1 << 14)
            await blocks.put(3, 0, data)
            assert calls == ["_encode"]
            raw = await inner.get(blocks.key(3, 0, len(data)))
            assert get_codec(codec).decompress(store.sealer.open(raw), len(data)) == data
            calls.clear()
            assert await blocks.get(3, 0, len(data)) == data
            assert calls == ["_decode"]
        finally:
            await blocks.close()
            await inner.close()

    asyncio.run(main())


@pytest.mark.parametrize("codec", ["none", "lz4", "zstd"])
def test_blocks_sealed_at_once_stay_apart(juicefs_key: rsa.RSAPrivateKey, codec: str) -> None:
    """The seal reads the compressed block from a per-thread scratch buffer: many blocks encoded at once
    on the CPU pool must each open to their own bytes."""
    import os

    async def main() -> None:
        inner = MemoryStore()
        store = EncryptedStore(inner, Sealer(juicefs_key))
        blocks = BlockStore(store, DataConfig(volume="vol", uuid="u", block_size=1 << 18, compression=codec))
        try:
            datas = [os.urandom(1 << 17) + bytes([i]) * (1 << 17) for i in range(24)]
            await asyncio.gather(*(blocks.put(10 + i, 0, d) for i, d in enumerate(datas)))
            for i, d in enumerate(datas):
                raw = await inner.get(blocks.key(10 + i, 0, len(d)))
                assert get_codec(codec).decompress(store.sealer.open(raw), len(d)) == d
                assert await blocks.get(10 + i, 0, len(d)) == d
        finally:
            await blocks.close()
            await inner.close()

    asyncio.run(main())


@pytest.mark.parametrize("codec", ["none", "lz4"])
def test_blocks_are_sealed_once_through_the_mounts_store_layers(juicefs_key: rsa.RSAPrivateKey, codec: str) -> None:
    """The data path wraps the EncryptedStore in other layers (request metrics, throttling): the block store
    still seals in its own CPU call — never on the EncryptedStore's pool — the layers still see every
    request (with the sealed size), and other objects through the same chain are still sealed."""
    from jfs.app.data.throttle import throttled
    from jfs.app.metrics import TimedStore

    async def main() -> None:
        inner = MemoryStore()
        sealed = EncryptedStore(inner, Sealer(juicefs_key))
        store = TimedStore(throttled(sealed, upload_mbps=10_000, download_mbps=10_000))
        pool_calls: list[str] = []
        real = sealed._cpu

        async def counting(fn, *args):  # type: ignore[no-untyped-def]
            pool_calls.append(fn.__name__)
            return await real(fn, *args)

        sealed._cpu = counting  # type: ignore[method-assign]
        blocks = BlockStore(store, DataConfig(volume="vol", uuid="u", block_size=1 << 16, compression=codec))
        try:
            data = b"jfs " * (1 << 14)
            await blocks.put(5, 0, data)
            raw = await inner.get(blocks.key(5, 0, len(data)))
            assert get_codec(codec).decompress(sealed.sealer.open(raw), len(data)) == data
            assert await blocks.get(5, 0, len(data)) == data
            assert pool_calls == []
            assert store.meters["PUT"].count == 1 and store.meters["GET"].count == 1  # type: ignore[attr-defined]
            await store.put("other", b"plain text")  # not a block: sealed by the EncryptedStore as before
            assert sealed.sealer.open(await inner.get("other")) == b"plain text"
            assert await store.get("other") == b"plain text"
            assert pool_calls == ["seal", "open"]
        finally:
            await blocks.close()
            await sealed.close()

    asyncio.run(main())


@pytest.mark.parametrize("algo", ["aes256gcm-rsa", "chacha20-rsa"])
def test_open_scratch_opens_as_open_does_and_catches_the_same_damage(juicefs_key: rsa.RSAPrivateKey, algo: str) -> None:
    sealer = Sealer(juicefs_key, algo)
    big, small = bytes(range(256)) * 4096, b"tiny"
    sealed_big, sealed_small = sealer.seal(big), sealer.seal(small)
    assert bytes(sealer.open_scratch(sealed_big)) == sealer.open(sealed_big) == big
    view = sealer.open_scratch(sealed_small)  # the scratch stays as large as it grew: a view of the right size
    assert bytes(view) == small and len(view) == len(small)
    tampered = bytearray(sealed_big)
    tampered[-100] ^= 1
    with pytest.raises(SealBroken):
        sealer.open_scratch(tampered)
    with pytest.raises(SealBroken):
        sealer.open_scratch(sealed_big[: envelope.header_size(256) + 3])
