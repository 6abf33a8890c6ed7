"""The statistics of a study: mean and standard deviation over seeds, a paired t-interval per
budget, and the crossover of two fitted scaling curves.

- `spread`: mean and sample standard deviation (n - 1 in the denominator; None for one value).
- `paired`: the differences a - b over the seeds both have, their mean and the two-sided
  Student-t confidence interval mean +- t(1 - alpha/2, n - 1) * sd / sqrt(n) (None below two
  pairs). The t quantile is computed here (the regularised incomplete beta function by its
  continued fraction, inverted by bisection), so no statistics package is needed.
- `loglinear_fit` and `crossover`: bpb = alpha + beta * log10(C), least squares over every cell
  of an arm (C: training FLOPs); two fitted lines meet at log10(C*) = (alpha_a - alpha_b) /
  (beta_b - beta_a). A log-linear fit needs two budgets, where a power law with an offset
  (a * C^-b + c) would need four to be determined with one to spare; the tiny studies have three.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def spread(values: list[float]) -> tuple[float, float | None]:
    """(mean, sample standard deviation, None for a single value)."""
    if not values:
        raise ValueError("no values")
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return mean, math.sqrt(var)


def _betacf(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        for num in (m * (b - m) * x / ((qam + m2) * (a + m2)),
                    -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with `df` degrees of freedom."""
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The t with P(T <= t) = p (bisection on the CDF, to 1e-10)."""
    if not 0.0 < p < 1.0:
        raise ValueError("p must lie in (0, 1)")
    lo, hi = -1e6, 1e6
    while hi - lo > 1e-10 * max(1.0, abs(lo)):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if t_cdf(mid, df) < p else (lo, mid)
    return 0.5 * (lo + hi)


@dataclass(frozen=True)
class Paired:
    """a - b over the seeds both arms ran."""

    seeds: tuple[int, ...]
    mean: float
    low: float | None
    high: float | None
    """The confidence interval (None with fewer than two pairs)."""
    level: float


def paired(a: dict[int, float], b: dict[int, float], level: float = 0.95) -> Paired | None:
    """The paired difference a - b over common seeds with its t-interval; None if none shared."""
    seeds = tuple(sorted(set(a) & set(b)))
    if not seeds:
        return None
    diffs = [a[s] - b[s] for s in seeds]
    mean, sd = spread(diffs)
    if sd is None:
        return Paired(seeds, mean, None, None, level)
    half = t_quantile(0.5 + level / 2, len(diffs) - 1) * sd / math.sqrt(len(diffs))
    return Paired(seeds, mean, mean - half, mean + half, level)


@dataclass(frozen=True)
class Fit:
    """bpb = alpha + beta * log10(C)."""

    alpha: float
    beta: float

    def __call__(self, c: float) -> float:
        return self.alpha + self.beta * math.log10(c)


def loglinear_fit(points: list[tuple[float, float]]) -> Fit | None:
    """Least squares of bpb on log10(C) over (C, bpb) points; None with fewer than two distinct C."""
    xs = [math.log10(c) for c, _ in points]
    if len(set(xs)) < 2:
        return None
    ys = [y for _, y in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    beta = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    return Fit(my - beta * mx, beta)


def meeting_point(a: Fit, b: Fit) -> float | None:
    """The C where the two fitted lines meet (None when they are parallel)."""
    if a.beta == b.beta:
        return None
    exponent = (a.alpha - b.alpha) / (b.beta - a.beta)
    return 10**exponent if abs(exponent) < 300 else None


def crossover(a: Fit, b: Fit, low: float, high: float) -> float | None:
    """The C in [low, high] where the two fitted lines meet, or None (parallel or outside)."""
    c = meeting_point(a, b)
    return c if c is not None and low <= c <= high else None
