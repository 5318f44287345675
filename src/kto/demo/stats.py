"""Intervals for the demo's accuracies (90% by default, as the paper reports win rates)."""
from __future__ import annotations

import math
from statistics import NormalDist


def z_value(level: float) -> float:
    """Two-sided normal quantile: 1.645 for 90%."""
    return NormalDist().inv_cdf(0.5 + level / 2)


def wilson(k: int, n: int, level: float = 0.9) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion k/n (sensible at 0 and n too)."""
    if n == 0:
        return 0.0, 1.0
    z = z_value(level)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def paired_difference(before: list[bool], after: list[bool], level: float = 0.9) -> tuple[float, float, float]:
    """Accuracy after minus before on the same questions, with a Wald interval for a paired
    difference: d_i = after_i − before_i, mean ± z·sd/√n. Returns (difference, low, high)."""
    n = len(before)
    if n != len(after) or n == 0:
        raise ValueError("before and after must score the same, non-empty list of questions")
    d = [int(a) - int(b) for a, b in zip(after, before)]
    mean = sum(d) / n
    var = sum((x - mean) ** 2 for x in d) / (n - 1) if n > 1 else 0.0
    half = z_value(level) * math.sqrt(var / n)
    return mean, mean - half, mean + half
