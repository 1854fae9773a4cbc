"""How `bench/compare.py --rounds N` combines the rounds of one backend into one row per item (pure).

A round is ``{system: {item key: Result}}``: both systems ran the workloads back to back (which one first
alternates per round). A key absent from a round was not run in it (a long row after ``--rounds-long``);
a ``str`` value is an error of that round.

Per item (its `Item.kind`):

* ``"median"``: each system's cell is the median of its values; the ratio is the median of the per-round
  ratios jfs / JuiceFS (pairs that ran back to back, so load common to both cancels);
* ``"max"`` (RSS): each cell is the maximum over rounds, the ratio that of the maxima;
* ``"cpu"``: each cell is the CPU seconds summed over the rounds divided by the work summed over them
  (``KEY:cpu_s`` / ``KEY:cpu_work``; a round without them counts its per-work value with a weight of 1),
  the ratio that of the two sums -- so that few clock ticks per round do not decide a row.

`spread` is the lowest and highest per-round ratio (rounds where both systems have a value); `pairs` how
many rounds that is.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from .harness import CPU_SECONDS, CPU_WORK, SYSTEMS, Item, Result, Round


@dataclass(frozen=True)
class Row:
    """One table row over all rounds."""

    values: dict[str, Result]
    """{system: combined value, or the first error when no round has a value, or "not run"}"""
    ratio: float | None
    spread: tuple[float, float] | None
    pairs: int
    errors: dict[str, dict[str, list[int]]]
    """{system: {error message: [1-based rounds]}} of the rounds that failed this item."""


def per_round_ratios(rounds: list[Round], key: str) -> list[float]:
    """jfs / JuiceFS of each round where both have a value (JuiceFS's above zero), in round order."""
    ratios = []
    for rnd in rounds:
        a = rnd.get(SYSTEMS[0], {}).get(key)
        b = rnd.get(SYSTEMS[1], {}).get(key)
        if isinstance(a, float | int) and isinstance(b, float | int) and b > 0:
            ratios.append(a / b)
    return ratios


def _cpu_total(rounds: list[Round], system: str, key: str) -> float | None:
    seconds = work = 0.0
    found = False
    for rnd in rounds:
        results = rnd.get(system, {})
        value = results.get(key)
        if not isinstance(value, float | int):
            continue
        found = True
        used, per = results.get(key + CPU_SECONDS), results.get(key + CPU_WORK)
        if isinstance(used, float | int) and isinstance(per, float | int) and per > 0:
            seconds, work = seconds + used, work + per
        else:
            seconds, work = seconds + value, work + 1.0
    return seconds / work if found else None


def combine(rounds: list[Round], item: Item) -> Row:
    """The row of `item` over `rounds` (see the module docstring)."""
    values: dict[str, Result] = {}
    errors: dict[str, dict[str, list[int]]] = {}
    for system in SYSTEMS:
        numbers: list[float] = []
        for index, rnd in enumerate(rounds, start=1):
            value = rnd.get(system, {}).get(item.key)
            if isinstance(value, str):
                errors.setdefault(system, {}).setdefault(value, []).append(index)
            elif value is not None:
                numbers.append(float(value))
        if not numbers:
            failed = errors.get(system)
            values[system] = next(iter(failed)) if failed else "not run"
        elif item.kind == "max":
            values[system] = max(numbers)
        elif item.kind == "cpu":
            values[system] = _cpu_total(rounds, system, item.key) or 0.0
        else:
            values[system] = statistics.median(numbers)
    ratios = per_round_ratios(rounds, item.key)
    a, b = values[SYSTEMS[0]], values[SYSTEMS[1]]
    ratio: float | None = None
    if item.kind == "median":
        ratio = statistics.median(ratios) if ratios else None
    elif isinstance(a, float) and isinstance(b, float) and b > 0:
        ratio = a / b
    spread = (min(ratios), max(ratios)) if ratios else None
    return Row(values, ratio, spread, len(ratios), errors)
