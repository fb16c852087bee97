"""Questionnaire items that add up to a chosen score, in each instrument's published order."""

from __future__ import annotations

from random import Random
from typing import Any

Item = int | float | None


def spread(total: int, n: int, lo: int, hi: int, rng: Random, moves: int = 4) -> list[int]:
    """`n` integers in [lo, hi] summing to `total`: near-even, then a few units moved between items."""
    if not n * lo <= total <= n * hi:
        raise ValueError(f"cannot spread {total} over {n} items in [{lo}, {hi}]")
    base, extra = divmod(total, n)
    values = [base + (1 if i < extra else 0) for i in range(n)]
    rng.shuffle(values)
    for _ in range(moves):
        i, j = rng.randrange(n), rng.randrange(n)
        if i != j and values[i] > lo and values[j] < hi:
            values[i] -= 1
            values[j] += 1
    return values


def wai_sr(total: int, rng: Random) -> list[Item]:
    """12 WAI-SR items (1..5) summing to `total` (the mean score is total / 12)."""
    return list(spread(total, 12, 1, 5, rng))


def tenths(total_tenths: int, rng: Random, lo: int = 0, hi: int = 100) -> list[Item]:
    """4 visual-analogue items (SRS, ORS) of 0..10 with one decimal, summing to total_tenths / 10."""
    return [v / 10 for v in spread(total_tenths, 4, lo, hi, rng, moves=6)]


def phq9(total: int, item9: int, rng: Random, *, difficulty: bool, missing: bool) -> tuple[list[Item], int]:
    """PHQ-9 items with item 9 as given; returns the items and the total a scorer computes from them.

    With `missing`, one of items 1-8 is null, unless the pro-rated total round(sum * 9 / 8) would land
    on .5 (Python's round and round-half-up disagree there; the simulator never relies on either).
    """
    first8 = spread(total - item9, 8, 0, 3, rng)
    items: list[Item] = [*first8, item9]
    score = total
    if missing:
        for index in rng.sample(range(8), 8):
            rest = total - first8[index]
            if (rest * 9) % 8 != 4:
                items[index] = None
                score = round(rest * 9 / 8)
                break
    if difficulty:
        items.append(rng.randint(0, 3))
    return items, score


def gad7(total: int, rng: Random, *, missing: bool) -> tuple[list[Item], int]:
    """GAD-7 items; returns the items and the (pro-rated when one is missing) total."""
    values = spread(total, 7, 0, 3, rng)
    items: list[Item] = list(values)
    score = total
    if missing:
        for index in rng.sample(range(7), 7):
            rest = total - values[index]
            if (rest * 7) % 6 != 3:
                items[index] = None
                score = round(rest * 7 / 6)
                break
    return items, score


def psq(rupture: int, tension: int, resolution: int) -> list[Item]:
    """The three post-session rupture questions."""
    return [rupture, tension, resolution]


def corrected(items: list[Any], rng: Random, step: float) -> list[Item]:
    """An alliance response with one unit moved between two items (a keying slip fixed); same total."""
    fixed: list[Item] = list(items)
    candidates = [
        (i, j)
        for i in range(len(items))
        for j in range(len(items))
        if i != j and _movable(items[i], items[j], step)
    ]
    if not candidates:
        return fixed
    i, j = rng.choice(candidates)
    a, b = items[i], items[j]
    assert isinstance(a, int | float) and isinstance(b, int | float)
    fixed[i] = round(a - step, 1) if isinstance(a, float) else int(a - step)
    fixed[j] = round(b + step, 1) if isinstance(b, float) else int(b + step)
    return fixed


def _movable(a: Any, b: Any, step: float) -> bool:
    if not isinstance(a, int | float) or not isinstance(b, int | float):
        return False
    high = 5 if isinstance(a, int) else 10
    low = 1 if isinstance(a, int) else 9  # SRS items stay >= 9: a fix must not create an item concern
    return a - step >= low and b + step <= high
