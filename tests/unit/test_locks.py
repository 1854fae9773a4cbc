"""flock and POSIX record locks: rules against simple models, and the JuiceFS TKV encodings."""

from __future__ import annotations

import errno

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jfs.domain.errors import FSError
from jfs.domain.locks import (
    F_RDLCK,
    F_UNLCK,
    F_WRLCK,
    FLOCK_READ,
    FLOCK_WRITE,
    MAX_END,
    PlockRecord,
    PlockTable,
    decode_flocks,
    decode_plocks,
    drop_owner,
    drop_session,
    encode_flocks,
    encode_plocks,
    flock_acquire,
    flock_release,
    plock_apply,
    plock_conflict,
    plock_update,
)

# ------------------------------------------------------------------------------------------------ flock

owners = st.tuples(st.integers(1, 3), st.integers(0, 2))


def test_flock_rules() -> None:
    t = flock_acquire({}, 1, 10, FLOCK_READ)
    assert t == {(1, 10): "R"}
    t2 = flock_acquire(t, 2, 10, FLOCK_READ)
    assert t2 == {(1, 10): "R", (2, 10): "R"}
    # A write lock needs no other holder, even a reader.
    assert flock_acquire(t2, 1, 10, FLOCK_WRITE) is None
    # Alone, the same owner converts its read lock to a write lock.
    w = flock_acquire(t, 1, 10, FLOCK_WRITE)
    assert w == {(1, 10): "W"}
    # A foreign write lock blocks readers; the same owner at another session is a different holder.
    assert flock_acquire(w, 1, 11, FLOCK_READ) is None
    assert flock_acquire(w, 2, 10, FLOCK_READ) is None
    # Downgrade by the holder itself.
    assert flock_acquire(w, 1, 10, FLOCK_READ) == {(1, 10): "R"}
    assert flock_release(t2, 1, 10) == {(2, 10): "R"}
    assert flock_release(t2, 9, 9) == t2
    assert t == {(1, 10): "R"}  # inputs are never mutated
    with pytest.raises(FSError) as exc:
        flock_acquire({}, 1, 1, "X")
    assert exc.value.errno == errno.EINVAL


flock_ops = st.lists(st.tuples(owners, st.sampled_from(["R", "W", "U"])), max_size=30)


@given(flock_ops)
def test_flock_table_never_holds_conflicting_locks(ops: list[tuple[tuple[int, int], str]]) -> None:
    table: dict[tuple[int, int], str] = {}
    for (sid, owner), op in ops:
        if op == "U":
            table = flock_release(table, sid, owner)
            assert (sid, owner) not in table
            continue
        others = {who: held for who, held in table.items() if who != (sid, owner)}
        blocked = bool(others) if op == "W" else "W" in others.values()
        result = flock_acquire(table, sid, owner, op)
        assert (result is None) == blocked
        if result is not None:
            assert result == {**table, (sid, owner): op}
            table = result
        writers = [who for who, held in table.items() if held == "W"]
        assert not writers or len(table) == 1
        assert decode_flocks(encode_flocks(table)) == table


def test_flock_encoding_is_17_byte_entries_sorted_by_owner() -> None:
    table = {(2, 1): "W", (1, 0xABCDEF): "R"}
    data = encode_flocks(table)
    assert data == (
        bytes.fromhex("00000000000000010000000000abcdef")
        + b"R"
        + bytes.fromhex("00000000000000020000000000000001")
        + b"W"
    )
    assert decode_flocks(data) == table
    with pytest.raises(ValueError):
        decode_flocks(data[:-1])
    with pytest.raises(ValueError):
        decode_flocks(data[:-1] + b"X")


# ------------------------------------------------------------------------------------------------ plock

N = 24  # model address space; byte N-1 stands for every byte from N-1 to end of file


def model_end(end: int) -> int:
    return N - 1 if end == MAX_END else end


@st.composite
def lock_request(draw: st.DrawFn) -> tuple[int, int, int, int]:
    ltype = draw(st.sampled_from([F_RDLCK, F_WRLCK, F_UNLCK]))
    start = draw(st.integers(0, N - 2))
    end = draw(st.one_of(st.integers(start, N - 2), st.just(MAX_END)))
    pid = draw(st.integers(1, 4))
    return ltype, start, end, pid


def expand(records: list[PlockRecord]) -> dict[int, int]:
    out: dict[int, int] = {}
    for r in records:
        for b in range(r.start, model_end(r.end) + 1):
            assert b not in out, "records overlap"
            out[b] = r.type
    return out


@given(st.lists(lock_request(), max_size=20))
def test_plock_update_matches_a_per_byte_model(requests: list[tuple[int, int, int, int]]) -> None:
    records: list[PlockRecord] = []
    model: dict[int, int] = {}
    for ltype, start, end, pid in requests:
        records = plock_update(records, ltype, start, end, pid)
        for b in range(start, model_end(end) + 1):
            if ltype == F_UNLCK:
                model.pop(b, None)
            else:
                model[b] = ltype
        assert expand(records) == model
        for a, b in zip(records, records[1:], strict=False):
            assert a.end < b.start
            # Fully merged: touching ranges always differ in type.
            assert a.end + 1 < b.start or a.type != b.type
        assert all(r.type in (F_RDLCK, F_WRLCK) and r.end in (MAX_END, *range(N - 1)) for r in records)
        if ltype != F_UNLCK:
            assert all(r.pid == pid for r in records if r.overlaps(start, end))


def test_plock_update_splits_converts_and_merges() -> None:
    base = [PlockRecord(F_RDLCK, 7, 0, 99)]
    # Write lock in the middle of a read lock splits it in three.
    mid = plock_update(base, F_WRLCK, 10, 19, 8)
    assert mid == [
        PlockRecord(F_RDLCK, 7, 0, 9),
        PlockRecord(F_WRLCK, 8, 10, 19),
        PlockRecord(F_RDLCK, 7, 20, 99),
    ]
    # Converting it back to read merges the three into one range carrying the new pid.
    assert plock_update(mid, F_RDLCK, 10, 19, 9) == [PlockRecord(F_RDLCK, 9, 0, 99)]
    # Unlock in the middle leaves two ranges.
    assert plock_update(base, F_UNLCK, 50, 59, 7) == [
        PlockRecord(F_RDLCK, 7, 0, 49),
        PlockRecord(F_RDLCK, 7, 60, 99),
    ]
    # Adjacent ranges of one type merge; to-EOF locks stay to EOF.
    assert plock_update(base, F_RDLCK, 100, MAX_END, 7) == [PlockRecord(F_RDLCK, 7, 0, MAX_END)]
    assert plock_update([PlockRecord(F_WRLCK, 1, 5, MAX_END)], F_UNLCK, 0, MAX_END, 1) == []
    with pytest.raises(FSError):
        plock_update(base, F_RDLCK, 5, 4, 1)
    with pytest.raises(FSError):
        plock_update(base, 3, 0, 4, 1)


def test_plock_conflict_rules() -> None:
    table: PlockTable = {
        (1, 1): [PlockRecord(F_RDLCK, 100, 0, 9)],
        (2, 5): [PlockRecord(F_WRLCK, 200, 20, 29)],
    }
    # Readers share; a writer conflicts with readers and writers of other owners.
    assert plock_conflict(table, 3, 3, F_RDLCK, 0, 9) is None
    assert plock_conflict(table, 3, 3, F_WRLCK, 9, 10) == ((1, 1), PlockRecord(F_RDLCK, 100, 0, 9))
    assert plock_conflict(table, 3, 3, F_RDLCK, 25, MAX_END) == ((2, 5), PlockRecord(F_WRLCK, 200, 20, 29))
    assert plock_conflict(table, 3, 3, F_WRLCK, 10, 19) is None
    # An owner never conflicts with itself; the same owner id in another session is someone else.
    assert plock_conflict(table, 1, 1, F_WRLCK, 0, 9) is None
    assert plock_conflict(table, 2, 1, F_WRLCK, 0, 9) is not None
    assert plock_conflict(table, 3, 3, F_UNLCK, 0, MAX_END) is None


@given(st.lists(st.tuples(owners, lock_request()), max_size=25))
def test_plock_apply_never_lets_owners_conflict(
    ops: list[tuple[tuple[int, int], tuple[int, int, int, int]]],
) -> None:
    table: PlockTable = {}
    for (sid, owner), (ltype, start, end, pid) in ops:
        result = plock_apply(table, sid, owner, ltype, start, end, pid)
        conflict = plock_conflict(table, sid, owner, ltype, start, end)
        assert (result is None) == (conflict is not None)
        if result is None:
            continue
        table = result
        assert all(table.values()), "owners without locks must be dropped"
        held = {who: expand(recs) for who, recs in table.items()}
        whos = list(held)
        for i, a in enumerate(whos):
            for b in whos[i + 1 :]:
                for byte in held[a].keys() & held[b].keys():
                    assert held[a][byte] == held[b][byte] == F_RDLCK
        assert decode_plocks(encode_plocks(table)) == table


def test_plock_golden_vector_from_juicefs() -> None:
    table = {(1, 2): [PlockRecord(F_WRLCK, 0x3AF5, 5, 14)]}
    data = encode_plocks(table)
    assert data == bytes.fromhex(
        "00000000000000010000000000000002000000180000000100003af50000000000000005000000000000000e"
    )
    assert decode_plocks(data) == table


def test_plock_codec_multiple_owners_and_errors() -> None:
    table = {
        (9, 1): [PlockRecord(F_RDLCK, 1, 0, 0), PlockRecord(F_WRLCK, 1, 10, MAX_END)],
        (3, 7): [PlockRecord(F_RDLCK, 2, 4, 8)],
        (4, 4): [],
    }
    data = encode_plocks(table)
    assert len(data) == 2 * 20 + 3 * 24
    assert data[:8] == (3).to_bytes(8, "big")  # sorted by (sid, owner)
    assert decode_plocks(data) == {k: v for k, v in table.items() if v}
    with pytest.raises(ValueError):
        decode_plocks(data[:-1])
    with pytest.raises(ValueError):
        decode_plocks(data[:10])


def test_drop_session_and_owner() -> None:
    flocks = {(1, 1): "R", (1, 2): "R", (2, 1): "R"}
    assert drop_session(flocks, 1) == {(2, 1): "R"}
    plocks: PlockTable = {(1, 1): [PlockRecord(F_RDLCK, 1, 0, 1)], (2, 1): [PlockRecord(F_WRLCK, 1, 5, 6)]}
    assert drop_session(plocks, 2) == {(1, 1): [PlockRecord(F_RDLCK, 1, 0, 1)]}
    assert drop_owner(flocks, 1, 2) == {(1, 1): "R", (2, 1): "R"}
