"""Groups of seeds, and whether a difference between two is real: runs that share their whole
configuration but the seed (app/models.py `group_key`) form a group; its figures are the
mean and sample standard deviation over its finished runs; two groups compare by the
difference of their mean best accuracy with its 95% confidence interval (Welch's t, which
does not assume equal variances), "within seed noise" when that interval contains 0.

    summary([0.9768, 0.9771, 0.9760])        # Stat(n=3, mean=..., std=...)
    verdict(a_best_accs, b_best_accs)         # Verdict(diff=..., low=..., high=..., text=...)
"""

import math
import statistics
from dataclasses import dataclass


@dataclass(frozen=True)
class Stat:
    n: int
    mean: float | None
    std: float | None     # sample standard deviation; None below 2 values
    min: float | None
    max: float | None


def summary(values: list[float | None]) -> Stat:
    xs = [v for v in values if v is not None and math.isfinite(v)]
    if not xs:
        return Stat(0, None, None, None, None)
    return Stat(len(xs), statistics.fmean(xs), statistics.stdev(xs) if len(xs) > 1 else None, min(xs), max(xs))


@dataclass(frozen=True)
class Verdict:
    diff: float | None       # mean(b) - mean(a), as a fraction (0.0012 = 0.12 points)
    low: float | None        # 95% confidence interval of diff
    high: float | None
    df: float | None         # Welch-Satterthwaite degrees of freedom
    p_value: float | None
    real: bool | None        # the interval excludes 0; None when it cannot be computed
    text: str


def _points(x: float) -> str:
    return f"{x * 100:+.2f}"


def verdict(a: list[float | None], b: list[float | None], confidence: float = 0.95) -> Verdict:
    """Is group b's mean best accuracy different from group a's, beyond seed noise?"""
    xs, ys = ([v for v in g if v is not None and math.isfinite(v)] for g in (a, b))
    if len(xs) < 2 or len(ys) < 2:
        diff = statistics.fmean(ys) - statistics.fmean(xs) if xs and ys else None
        return Verdict(diff, None, None, None, None, None,
                       f"not enough seeds to tell: {len(xs)} and {len(ys)} finished runs; "
                       "each group needs at least 2 (3 or more for a useful interval)")
    diff = statistics.fmean(ys) - statistics.fmean(xs)
    if statistics.stdev(xs) == 0 and statistics.stdev(ys) == 0:
        real = diff != 0
        return Verdict(diff, diff, diff, None, None, real,
                       "identical results in every seed" if not real else
                       f"{_points(diff)} points in every seed (no seed noise at all)")
    from scipy import stats  # imported on first use: a second of start-up the server needn't pay

    test = stats.ttest_ind(ys, xs, equal_var=False)
    interval = test.confidence_interval(confidence)
    low, high = float(interval.low), float(interval.high)
    real = not (low <= 0 <= high)
    span = f"{_points(diff)} points, {confidence:.0%} CI [{_points(low)}, {_points(high)}]"
    text = (f"{'better' if diff > 0 else 'worse'}: {span}" if real else f"within seed noise: {span}")
    return Verdict(diff, low, high, float(test.df), float(test.pvalue), real, text)
