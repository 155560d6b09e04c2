"""Intervals for success rates, so tables say which differences the data can tell apart.

Two sources of noise, two intervals:
- over episodes: a success rate from n episodes of one trained model gets a Wilson score
  interval (well behaved at 0 and 1 and for small n, unlike the normal approximation);
- over training seeds: the mean of k seeds' success rates gets a Student-t interval on the
  seed means, which carries the variation between trained models (larger than the episode noise
  in this project: float-level changes flip whole pushed episodes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from scipy import stats as _stats


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float
    kind: str
    """'wilson' (episodes), 't' (over seeds) or 't+wilson' (the wider of the two)."""

    def separated_from(self, other: "Interval") -> bool:
        """True when the two intervals do not overlap."""
        return self.low > other.high or other.low > self.high

    def text(self, digits: int = 2) -> str:
        return f"{self.estimate:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


def wilson(successes: int, n: int, confidence: float = 0.95) -> Interval:
    """Wilson score interval of a binomial proportion (successes of n episodes)."""
    if n <= 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n and n > 0, got {successes} of {n}")
    z = _stats.norm.ppf(0.5 + confidence / 2)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # Wilson's interval always contains p; clamping to it drops rounding error (0 of 50 gave a
    # lower bound of 7e-18 above the estimate, and a negative error bar that matplotlib refuses).
    return Interval(p, min(p, max(0.0, centre - half)), max(p, min(1.0, centre + half)), "wilson")


def across_seeds(rates: Sequence[float], confidence: float = 0.95) -> Interval:
    """Student-t interval of the mean of per-seed success rates, clipped to [0, 1]; needs 2+ seeds."""
    k = len(rates)
    if k < 2:
        raise ValueError("an interval across seeds needs at least 2 seeds")
    mean = sum(rates) / k
    sd = math.sqrt(sum((r - mean) ** 2 for r in rates) / (k - 1))
    half = _stats.t.ppf(0.5 + confidence / 2, k - 1) * sd / math.sqrt(k)
    return Interval(mean, max(0.0, mean - half), min(1.0, mean + half), "t")


def success_interval(per_seed: Sequence[tuple[int, int]], confidence: float = 0.95) -> Interval:
    """The interval a table shows for a cell: with 2+ seeds the wider of the Student-t interval
    over seeds and the Wilson interval over all their episodes (seeds that happen to agree must not
    hide the episode noise); with one seed, Wilson over its episodes.

    per_seed: (successes, episodes) of each training seed."""
    pooled = wilson(sum(s for s, _ in per_seed), sum(n for _, n in per_seed), confidence)
    if len(per_seed) < 2:
        return pooled
    seeds = across_seeds([s / n for s, n in per_seed], confidence)
    return Interval(seeds.estimate, min(seeds.low, pooled.low), max(seeds.high, pooled.high), "t+wilson")


def apart_in_every_seed(a: Sequence[tuple[int, int]], b: Sequence[tuple[int, int]], confidence: float = 0.95) -> bool:
    """Weaker evidence than separated intervals, for the 2-3 seeds CPU studies can afford: every seed
    of `a` scored above every seed of `b`, and the Wilson intervals over their pooled episodes do not
    overlap.

    Why: with k seeds the Student-t factor is 12.7 (k = 2) or 4.3 (k = 3), so a cell whose seeds
    spread at all gets a seed interval covering much of [0, 1] (with 2 seeds, often all of it), and
    only gaps far larger than that spread separate. The pooled
    Wilson interval alone would ignore the spread between training runs; asking that no seed of `a`
    falls to any seed of `b` as well keeps a single lucky run from deciding. (With 3 seeds against 3,
    that order alone has probability 1/20 if the methods were the same.)

    a, b: (successes, episodes) per training seed."""
    if not a or not b:
        return False
    if min(s / n for s, n in a) <= max(s / n for s, n in b):
        return False
    pooled_a = wilson(sum(s for s, _ in a), sum(n for _, n in a), confidence)
    pooled_b = wilson(sum(s for s, _ in b), sum(n for _, n in b), confidence)
    return pooled_a.low > pooled_b.high
