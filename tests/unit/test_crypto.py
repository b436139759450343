"""Algorithms, digests, tokens and time parsing."""

from __future__ import annotations

import hashlib
import io
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from signgate.clock import FixedClock, SystemClock, parse_time
from signgate.crypto.algorithms import DigestAlgorithm, KeyAlgorithm, RsaPadding, parse_digest
from signgate.crypto.digests import CHUNK, digest_stream
from signgate.crypto.tokens import PREFIX, new_token, token_hash
from signgate.errors import InvalidInput

MIB = 1 << 20

# -- enums --------------------------------------------------------------------------------


def test_parse_known_values() -> None:
    assert KeyAlgorithm.parse("ed25519") is KeyAlgorithm.ED25519
    assert KeyAlgorithm.parse("rsa-4096") is KeyAlgorithm.RSA_4096
    assert RsaPadding.parse("pkcs1v15") is RsaPadding.PKCS1V15
    assert DigestAlgorithm.parse("sha384") is DigestAlgorithm.SHA384
    assert DigestAlgorithm.parse("SHA512") is DigestAlgorithm.SHA512


@pytest.mark.parametrize("value", ["md5", "sha1", "sha-256", "", "sha256 ", "sha3-256"])
def test_digest_algorithm_parse_error(value: str) -> None:
    with pytest.raises(InvalidInput) as info:
        DigestAlgorithm.parse(value)
    assert info.value.code == "unknown_digest_algorithm"
    assert repr(value) in str(info.value)
    assert "sha256, sha384 or sha512" in str(info.value)


@pytest.mark.parametrize("value", ["rsa-2048", "ECDSA-P256", "dsa", "", "ed448"])
def test_key_algorithm_parse_error(value: str) -> None:
    with pytest.raises(InvalidInput) as info:
        KeyAlgorithm.parse(value)
    assert info.value.code == "unknown_algorithm"
    assert repr(value) in str(info.value)
    for alg in KeyAlgorithm:
        assert alg.value in str(info.value)


@pytest.mark.parametrize("value", ["oaep", "PSS", "", "pkcs1"])
def test_rsa_padding_parse_error(value: str) -> None:
    with pytest.raises(InvalidInput) as info:
        RsaPadding.parse(value)
    assert info.value.code == "unknown_padding"
    assert repr(value) in str(info.value)
    assert "'pss' or 'pkcs1v15'" in str(info.value)


def test_algorithm_properties() -> None:
    assert [a for a in KeyAlgorithm if a.is_rsa] == [KeyAlgorithm.RSA_3072, KeyAlgorithm.RSA_4096]
    assert [a for a in KeyAlgorithm if a.is_ecdsa] == [KeyAlgorithm.ECDSA_P256,
                                                       KeyAlgorithm.ECDSA_P384]
    for d in DigestAlgorithm:
        assert d.size == hashlib.new(d.value).digest_size
        assert d.hash_algorithm().digest_size == d.size
        assert d.hash_algorithm().name == d.value


# -- parse_digest -------------------------------------------------------------------------


@pytest.mark.parametrize("alg", list(DigestAlgorithm))
def test_parse_digest_ok(alg: DigestAlgorithm) -> None:
    raw = hashlib.new(alg.value, b"x").digest()
    assert parse_digest(alg, raw.hex()) == raw
    assert parse_digest(alg, raw.hex().upper()) == raw


@pytest.mark.parametrize(("alg", "length"), [
    (DigestAlgorithm.SHA256, 31), (DigestAlgorithm.SHA256, 33), (DigestAlgorithm.SHA256, 0),
    (DigestAlgorithm.SHA256, 64), (DigestAlgorithm.SHA384, 32), (DigestAlgorithm.SHA512, 48),
])
def test_parse_digest_wrong_length(alg: DigestAlgorithm, length: int) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_digest(alg, "ab" * length)
    assert info.value.code == "bad_digest_length"
    msg = str(info.value)
    assert alg.value in msg
    assert f"{alg.size} bytes" in msg
    assert f"{alg.size * 2} hex characters" in msg
    assert f"got {length} bytes" in msg


@pytest.mark.parametrize("text", ["zz" * 32, "g" + "0" * 63, "0x" + "00" * 31, "0" * 63,
                                  "é" * 64, "00" * 31 + "0-"])
def test_parse_digest_not_hex(text: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_digest(DigestAlgorithm.SHA256, text)
    assert info.value.code == "bad_digest"
    assert "hexadecimal" in str(info.value)


# -- digest_stream ------------------------------------------------------------------------


class Trickle(io.RawIOBase):
    """A raw stream that hands out at most ``step`` bytes per read, like a pipe."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data = data
        self._pos = 0
        self._step = step

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        n = min(self._step, len(buffer), len(self._data) - self._pos)
        buffer[:n] = self._data[self._pos:self._pos + n]
        self._pos += n
        return n


SIZES = [0, 1, MIB - 1, MIB, 3 * MIB + 7]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("alg", list(DigestAlgorithm))
def test_digest_stream_matches_hashlib(size: int, alg: DigestAlgorithm) -> None:
    data = bytes(i * 7 % 251 for i in range(size)) if size < MIB else \
        (bytes(range(256)) * (size // 256 + 1))[:size]
    calls: list[int] = []
    got = digest_stream(io.BytesIO(data), alg, calls.append)
    assert got == hashlib.new(alg.value, data).digest()
    assert sum(calls) == size
    assert all(0 < n <= CHUNK for n in calls)
    assert len(calls) == -(-size // CHUNK)


def test_digest_stream_default_is_sha256_without_progress() -> None:
    assert digest_stream(io.BytesIO(b"abc")) == hashlib.sha256(b"abc").digest()


def test_digest_stream_of_a_file(tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    data = bytes(range(256)) * (3 * MIB // 256) + b"tail!!!"
    path.write_bytes(data)
    total = 0

    def progress(n: int) -> None:
        nonlocal total
        total += n

    with path.open("rb") as f:
        assert digest_stream(f, DigestAlgorithm.SHA512, progress) == \
            hashlib.sha512(data).digest()
    assert total == len(data) == 3 * MIB + 7


def test_digest_stream_short_reads() -> None:
    data = b"0123456789" * 100_000
    calls: list[int] = []
    assert digest_stream(Trickle(data, 4099), DigestAlgorithm.SHA256, calls.append) == \
        hashlib.sha256(data).digest()
    assert sum(calls) == len(data)


# -- tokens -------------------------------------------------------------------------------


def test_new_token_format_and_uniqueness() -> None:
    tokens = {new_token() for _ in range(1000)}
    assert len(tokens) == 1000
    for t in tokens:
        assert t.startswith("sgt_")
        assert t.startswith(PREFIX)
        assert re.fullmatch(r"sgt_[A-Za-z0-9_-]{43}", t), t


def test_token_hash_is_sha256_hex() -> None:
    t = new_token()
    assert token_hash(t) == hashlib.sha256(t.encode()).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", token_hash(t))
    assert token_hash(t) == token_hash(t)
    assert token_hash(t) != token_hash(new_token())
    assert t not in token_hash(t)


# -- clock --------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-11-28T09:00:00Z", datetime(2026, 11, 28, 9, tzinfo=UTC)),
    ("2026-11-28T09:00:00.250000Z", datetime(2026, 11, 28, 9, 0, 0, 250000, tzinfo=UTC)),
    ("2026-11-28T09:00:00+00:00", datetime(2026, 11, 28, 9, tzinfo=UTC)),
    ("2026-11-28T10:30:00+01:30", datetime(2026, 11, 28, 9, tzinfo=UTC)),
    ("2026-11-28T04:00:00-05:00", datetime(2026, 11, 28, 9, tzinfo=UTC)),
    ("2026-11-28T09:00:00", datetime(2026, 11, 28, 9, tzinfo=UTC)),
    ("2026-11-28 09:00", datetime(2026, 11, 28, 9, tzinfo=UTC)),
    ("2026-11-28", datetime(2026, 11, 28, tzinfo=UTC)),
    ("  2026-11-28T09:00:00Z \n", datetime(2026, 11, 28, 9, tzinfo=UTC)),
])
def test_parse_time(text: str, expected: datetime) -> None:
    got = parse_time(text)
    assert got == expected
    assert got.tzinfo is UTC
    assert got.utcoffset() == timedelta(0)


@pytest.mark.parametrize("text", ["", "yesterday", "2026-13-01", "2026-02-30T00:00:00Z",
                                  "28/11/2026", "2026-11-28T25:00:00", "1700000000",
                                  "2026-11-28T09:00:00+25:00"])
def test_parse_time_garbage(text: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_time(text)
    assert info.value.code == "bad_time"
    assert repr(text) in str(info.value)
    assert "ISO 8601" in str(info.value)


def test_clocks() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    clock = FixedClock(start)
    assert clock.now() == start
    assert clock.now() == start
    clock.advance(timedelta(days=29, seconds=1))
    assert clock.now() == datetime(2026, 1, 30, 0, 0, 1, tzinfo=UTC)
    now = SystemClock().now()
    assert now.tzinfo is UTC
    assert abs(now - datetime.now(UTC)) < timedelta(seconds=5)


@pytest.mark.parametrize("text", ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"])
def test_parse_time_out_of_range(text: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_time(text)
    assert info.value.code == "bad_time"
    assert repr(text) in str(info.value)
    assert "out of range" in str(info.value)
