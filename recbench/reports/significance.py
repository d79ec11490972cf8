"""The statistics behind the paired tests of :mod:`~recbench.reports.paired`, on plain numbers.

Kept apart from the pairing of runs so that each can be checked by hand: McNemar's exact test on
the discordant counts, the sign-flip test on per-user sums with its design effect, Holm's
adjustment, the smallest difference a design detects, and the interval over seeds.  Each is a
kept library's implementation (statsmodels, scipy) behind a name that says what it answers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.optimize import brentq
from scipy.stats import norm, permutation_test
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests

from recbench.reports.stats import Estimate, estimate

ALPHA = 0.05
POWER = 0.8  # of the smallest detectable difference each paired test reports
RESAMPLES = 9_999  # sign flips of the user-clustered test (exact when 2^users is fewer)


def mcnemar_p(a_only: int, b_only: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts (1 when there are none).

    Only the discordant examples carry information on which method is better; under the null
    hypothesis each is equally likely to favour either, so the test is binomial(b + c, 1/2).
    """
    if a_only + b_only == 0:
        return 1.0
    return float(mcnemar([[0, a_only], [b_only, 0]], exact=True).pvalue)


def user_clustered_p(differences: Sequence[int]) -> float:
    """Two-sided p-value that A and B hit equally often, from per-user sums of (hit A - hit B).

    Under the null hypothesis the two methods are exchangeable within each user, so each user's
    sum is as likely to be negated: a sign-flip permutation test of the total (scipy, seeded, so
    a report is the same on every run; exact when the users with a non-zero sum are few).
    1 when fewer than two users have one.
    """
    nonzero = np.asarray([d for d in differences if d != 0], dtype=float)
    if len(nonzero) < 2:  # one user's sum and its negation are equally extreme: p = 1
        return 1.0
    result = permutation_test(
        (nonzero,),
        lambda x, axis: np.sum(x, axis=axis),
        permutation_type="samples",
        vectorized=True,
        n_resamples=RESAMPLES,
        rng=np.random.default_rng(0),
    )
    return float(min(1.0, result.pvalue))


def design_effect(differences: Sequence[int], discordant: int) -> float:
    """Variance of the total difference with users as clusters over that with independent
    examples, both under the null hypothesis: sum of squared per-user sums / discordant
    examples.  NaN when nothing is discordant."""
    if discordant <= 0:
        return math.nan
    return math.fsum(float(d) * d for d in differences) / discordant


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values (same order): controls the family-wise error of a whole table."""
    if not pvalues:
        return []
    return [float(p) for p in multipletests(list(pvalues), alpha=ALPHA, method="holm")[1]]


def detectable_difference(
    examples: int, discordant_share: float, alpha: float = ALPHA, power: float = POWER
) -> float:
    """The smallest HR@1 difference a two-sided McNemar test at level ``alpha`` detects with
    probability ``power`` on ``examples`` paired examples, when that share of them is
    discordant (one method hits, the other misses).

    Connor's (1987) normal approximation: n = (z_{1-a/2} sqrt(p_d) + z_power sqrt(p_d - d^2))^2
    / d^2, solved for d with scipy's brentq.  NaN when nothing is discordant.
    """
    if examples < 1 or not 0.0 < discordant_share <= 1.0:
        return math.nan
    z_alpha, z_power = norm.ppf(1.0 - alpha / 2.0), norm.ppf(power)
    p_d = discordant_share

    def excess(d: float) -> float:
        needed = (z_alpha * math.sqrt(p_d) + z_power * math.sqrt(max(p_d - d * d, 0.0))) ** 2
        return needed / (d * d) - examples

    if excess(p_d) > 0:  # even a difference as large as every discordant example is too small
        return math.nan
    return float(brentq(excess, 1e-9, p_d))


def seed_interval(differences: Sequence[float]) -> Estimate:
    """Mean of the per-seed differences with its 95% t interval (none with one seed)."""
    est = estimate(differences)
    if est is None:
        raise ValueError("no per-seed differences")
    return est


__all__ = [
    "ALPHA",
    "POWER",
    "RESAMPLES",
    "design_effect",
    "detectable_difference",
    "holm",
    "mcnemar_p",
    "seed_interval",
    "user_clustered_p",
]
