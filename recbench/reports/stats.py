"""Means and 95% intervals for the report tables, without scipy.

Two kinds of uncertainty appear in the reports.  With several seeds, the spread that matters is
the run-to-run one, so the interval is Student's t over the seed means.  With a single seed there
is no run-to-run spread to measure; for proportions (HR@k, ValidRatio) the test-set sampling error
is still known, so the Wilson interval over the evaluated examples is reported instead, and other
single-seed numbers (times, memory, popularity bias) get no interval at all.

The t quantile is computed here (regularised incomplete beta by continued fraction, then
bisection) because scipy is not a dependency and a table of critical values would cap the number
of seeds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from recbench.metrics import wilson_interval

CONFIDENCE = 0.95
Z_975 = 1.96  # the normal quantile behind the Wilson interval (as in recbench.metrics)


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz's method)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def regularized_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b), the regularised incomplete beta function, for 0 <= x <= 1."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    front = math.exp(log_front)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_continued_fraction(a, b, x) / a
    return 1.0 - front * _beta_continued_fraction(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` degrees of freedom."""
    tail = 0.5 * regularized_beta(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The p-quantile of Student's t (bisection on :func:`t_cdf`; accurate to ~1e-12)."""
    if not 0.0 < p < 1.0 or df <= 0:
        raise ValueError(f"t_quantile needs 0 < p < 1 and df > 0, got p={p}, df={df}")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    low, high = 0.0, 1.0
    while t_cdf(high, df) < p:
        high *= 2.0
    for _ in range(200):
        mid = 0.5 * (low + high)
        if t_cdf(mid, df) < p:
            low = mid
        else:
            high = mid
        if high - low < 1e-13 * max(1.0, high):
            break
    return 0.5 * (low + high)


@dataclass(frozen=True)
class Estimate:
    """A mean over seeds with its 95% interval; ``kind`` says how the interval was obtained."""

    mean: float
    low: float
    high: float
    n: int  # number of seeds
    kind: str  # "t" (over seeds), "wilson" (one seed, over test examples) or "none"

    @property
    def has_interval(self) -> bool:
        return self.kind != "none"


def estimate(
    values: Sequence[float], n_examples: float | None = None, proportion: bool = False
) -> Estimate | None:
    """Mean and 95% interval of per-seed values (NaNs dropped); None when nothing is left.

    ``proportion`` marks values in [0, 1] (HR@k, ValidRatio): their intervals are clipped to it.
    ``n_examples`` (single-seed proportions only) is the number of test examples behind the
    value, used for the Wilson interval.
    """
    clean = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if not clean:
        return None
    n = len(clean)
    mean = math.fsum(clean) / n
    if n >= 2:
        variance = math.fsum((v - mean) ** 2 for v in clean) / (n - 1)
        half = t_quantile(0.5 + CONFIDENCE / 2.0, n - 1) * math.sqrt(variance / n)
        low, high = mean - half, mean + half
        if proportion:  # a symmetric interval can overshoot; a proportion cannot
            low, high = max(0.0, low), min(1.0, high)
        return Estimate(mean, low, high, n, "t")
    if proportion and n_examples and n_examples > 0:
        low, high = wilson_interval(mean * n_examples, n_examples, z=Z_975)
        return Estimate(mean, low, high, 1, "wilson")
    return Estimate(mean, mean, mean, 1, "none")


def relative_percent(value: float | None, reference: float | None, absolute: bool = False) -> float:
    """100 (value - reference) / reference (or / |reference|); NaN when undefined.

    LOSSES.md 9.3 divides HR@1 differences by HR_SFT and popularity-bias differences by |E_SFT|
    (the bias can be negative, and dividing by a negative number would flip the sign).
    """
    if value is None or reference is None or math.isnan(value) or math.isnan(reference):
        return math.nan
    denominator = abs(reference) if absolute else reference
    if denominator == 0:
        return math.nan
    return 100.0 * (value - reference) / denominator
