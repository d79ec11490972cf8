"""Means and 95% intervals for the report tables.

Two kinds of uncertainty appear in the reports.  With several seeds, the spread that matters is
the run-to-run one, so the interval is Student's t over the seed means.  With a single seed there
is no run-to-run spread to measure; for proportions (HR@k, ValidRatio) the test-set sampling error
is still known, so the Wilson interval over the evaluated examples is reported instead, and other
single-seed numbers (times, memory, popularity bias) get no interval at all.

The t quantile comes from scipy (a dependency for the paired tests of
:mod:`~recbench.reports.paired`), not from a hand-rolled incomplete beta function: one
implementation, tested by its maintainers, for every interval the reports print.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy.stats import t as student_t

from recbench.metrics import wilson_interval

CONFIDENCE = 0.95
Z_975 = 1.96  # the normal quantile behind the Wilson interval (as in recbench.metrics)


def t_quantile(p: float, df: float) -> float:
    """The p-quantile of Student's t with ``df`` degrees of freedom (scipy.stats.t)."""
    if not 0.0 < p < 1.0 or df <= 0:
        raise ValueError(f"t_quantile needs 0 < p < 1 and df > 0, got p={p}, df={df}")
    return float(student_t.ppf(p, df))


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

    docs/data.md ('Metrics') divides HR@1 differences by HR_SFT and popularity-bias differences by |E_SFT|
    (the bias can be negative, and dividing by a negative number would flip the sign).
    """
    if value is None or reference is None or math.isnan(value) or math.isnan(reference):
        return math.nan
    denominator = abs(reference) if absolute else reference
    if denominator == 0:
        return math.nan
    return 100.0 * (value - reference) / denominator
