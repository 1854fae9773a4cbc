"""gc's classification of block objects and its report, on hand-built reference sets (no engine, no bucket)."""

from __future__ import annotations

from jfs.app.ops.gc import GCReport
from jfs.app.ops.gc.references import References
from jfs.app.ops.slice_set import SliceSet

BS = 4096


Pairs = tuple[tuple[int, int], ...]


def refs(valid: Pairs = (), pending: Pairs = (), trash: Pairs = ()) -> References:
    sets = []
    for pairs in (valid, pending, trash):
        s = SliceSet()
        for p in pairs:
            s.add(*p)
        sets.append(s.freeze())
    return References(sets[0], sets[1], sets[2], negative=[], delfiles={})


def test_a_block_takes_the_class_of_the_slice_that_owns_it() -> None:
    r = refs(valid=((1, 5000),), pending=((2, 100),), trash=((3, BS),))
    assert r.classify(1, 0, BS, BS) == "valid"
    assert r.classify(1, 1, 5000 - BS, BS) == "valid"
    assert r.classify(2, 0, 100, BS) == "pending"
    assert r.classify(3, 0, BS, BS) == "trash"
    assert r.known(1) and r.known(3) and not r.known(4)


def test_a_block_that_does_not_fit_its_slice_is_owned_by_none() -> None:
    r = refs(valid=((1, 5000),))
    assert r.classify(1, 1, BS, BS) is None  # the last block ends at 5000, not 8192
    assert r.classify(1, 2, 1, BS) is None  # past the end
    assert r.classify(9, 0, BS, BS) is None  # unknown slice


def test_valid_wins_when_a_slice_is_in_several_classes() -> None:
    r = refs(valid=((1, BS),), pending=((1, BS),), trash=((1, BS),))
    assert r.classify(1, 0, BS, BS) == "valid"


def test_report_summary_and_document() -> None:
    report = GCReport(skip_age=60, deleted=True)
    report.objects["valid"].add(2048)
    report.objects["leaked"].add(3 << 20)
    report.deleted_leaked.add(3 << 20)
    report.compacted_chunks = 2
    assert report.summary() == (
        "scanned 2 objects: 1 valid (2.0 KiB), 0 pending (0 B), 0 trash (0 B), 1 leaked (3.0 MiB), 0 skipped (0 B)"
        "; deleted 1 leaked objects (3.0 MiB), finished 0 deleted files, freed 0 slices, purged 0 trash entries"
        "; compacted 2 chunks"
    )
    doc = report.to_dict()
    assert doc["Objects"]["leaked"] == {"count": 1, "bytes": 3 << 20}
    assert doc["Deleted"]["LeakedObjects"] == 1 and doc["SkipAge"] == 60
    assert GCReport().to_dict()["Deleted"] is None
