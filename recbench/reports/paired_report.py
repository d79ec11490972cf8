"""The ``paired_tests`` table: each comparison of :mod:`~recbench.reports.paired` as a row.

Kept apart from the pairing so that what a row says (the difference and its interval, the
adjusted p-values, the design effect, the smallest detectable difference, the verdict and why)
reads in one place; the statistics themselves are in :mod:`~recbench.reports.significance`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import pandas as pd

from recbench.reports import tables
from recbench.reports.paired import RULE, Comparison, PairedTests
from recbench.reports.significance import ALPHA, RESAMPLES, detectable_difference


def _mean_design_effect(c: Comparison) -> float:
    known = [s.design_effect for s in c.seeds if not math.isnan(s.design_effect)]
    return math.fsum(known) / len(known) if known else math.nan


def _detectable(c: Comparison, tests_in_table: int, effect: float) -> float:
    examples = math.fsum(s.examples for s in c.seeds) / len(c.seeds)
    share = math.fsum((s.a_only + s.b_only) / s.examples for s in c.seeds) / len(c.seeds)
    # the design effect (NaN: users unknown) never below 1: clustering may not add power
    effective = examples / (1.0 if math.isnan(effect) else max(1.0, effect))
    return detectable_difference(round(effective), share, ALPHA / max(1, tests_in_table))


def _signed(value: float) -> str:
    return f"{value:+.4f}"


def _p(value: float) -> str:
    return f"{value:.4f}" if value >= 1e-4 else f"{value:.1e}"


def _joined(values: Iterable[object], fmt: str = "") -> str:
    return ";".join(format(v, fmt) for v in values)


def paired_table(tests: PairedTests) -> tables.Table | str:
    """The ``paired_tests`` table (a reason string when there is nothing to show)."""
    if not tests.any_outcomes:
        return "no per-example outcomes in the store (runs recorded before they were kept)"
    if not tests.comparisons:
        why = f" ({'; '.join(tests.notes)})" if tests.notes else ""
        return f"no two methods with per-example outcomes on the same dataset and mode{why}"
    tidy_rows, display_rows = [], []
    per_table: dict[tuple[str, str, str], int] = {}
    for c in tests.comparisons:
        key = (c.dataset, c.profile, c.mode)
        per_table[key] = per_table.get(key, 0) + len(c.seeds)
    for c in tests.comparisons:
        est = c.interval
        n = len(c.seeds)
        effect = _mean_design_effect(c)
        detectable = _detectable(c, per_table[(c.dataset, c.profile, c.mode)], effect)
        clustered = all(not math.isnan(s.p_users) for s in c.seeds)
        verdict, why = c.verdict(detectable), "; ".join(c.shortfalls())
        low, high = (est.low, est.high) if n >= 2 else (math.nan, math.nan)
        tidy_rows.append(
            {
                "dataset": c.dataset,
                "profile": c.profile,
                "mode": c.mode,
                "method_a": c.a,
                "method_b": c.b,
                "seeds": n,
                "label": c.label,
                "seed_list": _joined(s.seed for s in c.seeds),
                "examples": _joined(s.examples for s in c.seeds),
                "a_hr1_mean": math.fsum(s.a_rate for s in c.seeds) / n,
                "b_hr1_mean": math.fsum(s.b_rate for s in c.seeds) / n,
                "diff_mean": est.mean,
                "diff_low": low,
                "diff_high": high,
                "seed_diffs": _joined((s.difference for s in c.seeds), ".6f"),
                "seed_a_only": _joined(s.a_only for s in c.seeds),
                "seed_b_only": _joined(s.b_only for s in c.seeds),
                "seed_p": _joined((s.p for s in c.seeds), ".6g"),
                "seed_p_holm": _joined((s.p_holm for s in c.seeds), ".6g"),
                "seed_users": _joined(s.users for s in c.seeds) if clustered else "",
                "seed_p_users": _joined((s.p_users for s in c.seeds), ".6g") if clustered else "",
                "seed_p_users_holm": (
                    _joined((s.p_users_holm for s in c.seeds), ".6g") if clustered else ""
                ),
                "design_effect": effect,
                "survives": "yes" if c.survives else "no",
                "verdict": verdict,
                "why": why,
                "detectable_diff": detectable,
            }
        )
        difference = _signed(est.mean)
        difference += f" [{_signed(low)}, {_signed(high)}]" if n >= 2 else f" ({c.label})"
        display_rows.append(
            {
                "dataset": c.dataset,
                "profile": c.profile,
                "mode": c.mode,
                "A": c.a,
                "B": c.b,
                "seeds": str(n),
                "HR@1 A - B": difference,
                "per seed": ", ".join(_signed(s.difference) for s in c.seeds),
                "A only / B only": ", ".join(f"{s.a_only}/{s.b_only}" for s in c.seeds),
                "McNemar p": ", ".join(_p(s.p) for s in c.seeds),
                "Holm p": ", ".join(_p(s.p_holm) for s in c.seeds),
                "users": ", ".join(str(s.users) for s in c.seeds) if clustered else "",
                "by-user Holm p": (
                    ", ".join(_p(s.p_users_holm) for s in c.seeds) if clustered else ""
                ),
                "design effect": "" if math.isnan(effect) else f"{effect:.2f}",
                "detectable (80%)": "none" if math.isnan(detectable) else f"{detectable:.4f}",
                "verdict": verdict,
                "why": why,
            }
        )
    notes = [
        RULE,
        (
            "A - B: difference in HR@1 on the examples both runs evaluated, per seed and its mean "
            "over seeds with a 95% Student t interval over seeds (one seed: one training run, no "
            "interval); A only / B only: examples one method hit and the other missed, the "
            "counts of the exact two-sided McNemar test (p = 1 when both are 0)"
        ),
        (
            "pairing: same seed (the losses of a seed share its SFT stage) and, where a seed's "
            "SFT stage was trained twice (on two machines), the same stage: a loss run is "
            "compared with the evaluation of the very model it started from; a method without "
            "seeds (deterministic) is paired with every seed of the other; runs: the "
            "configuration Table 2 shows"
        ),
        (
            "users, by-user Holm p, design effect (where the store knows each example's user, "
            "`recbench data users`): the users the examples come from; the two-sided sign-flip "
            f"permutation test of the per-user sums of (hit A - hit B) (scipy, {RESAMPLES:,} "
            "seeded resamples, exact with few users), Holm-adjusted like McNemar's; the "
            "variance of the summed difference with users as clusters over that with "
            "independent examples (sum of squared per-user sums / discordant examples; mean "
            "over seeds): above 1, examples of one user move together and McNemar's p is "
            "optimistic"
        ),
        (
            "detectable (80%): the smallest HR@1 difference one seed's exact McNemar test finds "
            "with 80% power at the strictest Holm level of its table (0.05 / tests in the table), "
            "given the comparison's mean discordant share and examples, the examples divided by "
            "the design effect where it is known and above 1 (Connor's normal approximation); a "
            "difference below it that does not survive is 'not separated at this power', not "
            "'equal'; none: the two disagree on so few examples that not even a difference as "
            "large as all of them reaches that power"
        ),
        (
            "verdict: separated (the rule holds), not separated at this power (it fails and "
            "every seed's difference is below what one seed detects), not separated (it fails "
            "although some seed's difference is as large as that: the seeds or the tests "
            "disagree); why: the parts of the rule that fail"
        ),
        *tests.notes,
    ]
    return tables.Table(
        name="paired_tests",
        title="Paired tests: HR@1 differences on the same test examples",
        data=pd.DataFrame(tidy_rows),
        display=pd.DataFrame(display_rows),
        notes=notes,
        runs=tests.runs,
    )


__all__ = ["paired_table"]
