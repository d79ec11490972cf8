"""The seed-to-seed spread table: how far one training run of a method lands from another.

Every seed of a study is evaluated on the same test examples, so the spread of a method's HR@1
over seeds is the run-to-run variation of training alone (data order, LoRA initialisation,
sampled negatives).  Next to it the table puts the test-set sampling error of one run,
``sqrt(p (1 - p) / n)``: the uncertainty that comes from which examples were drawn.  Their ratio
says which of the two a study should buy more of: seeds (training runs) or test examples.
"""

from __future__ import annotations

import math
import statistics

import pandas as pd

from recbench.reports.runs import References
from recbench.reports.tables import (
    FAMILY_LABELS,
    Table,
    ordered_datasets,
    ordered_families,
    ordered_methods,
)

MODES = ("generation", "ranking")
NOTES = [
    (
        "per seed: HR@1 of each seed's run on the same test examples; SD: the sample standard "
        "deviation over seeds (n - 1); range: largest minus smallest seed"
    ),
    (
        "sampling SE: sqrt(p (1 - p) / n) at the mean HR@1 p and the n test examples of one run, "
        "the part of one run's uncertainty that comes from the choice of test examples; SD / SE "
        "above 1 means training runs differ by more than the test set can resolve"
    ),
    "only methods with two or more seeds in the configuration Table 2 shows",
]


def _row(dataset: str, mode: str, method: str, family: str, group: pd.DataFrame) -> dict | None:
    column, n_column = f"{mode}:hr@1", f"{mode}:n_examples"
    if column not in group.columns:
        return None
    present = group[group[column].notna()].sort_values("seed")
    if present["seed"].nunique() < 2:
        return None
    values = [float(v) for v in present[column]]
    mean = math.fsum(values) / len(values)
    sd = statistics.stdev(values)
    n = float(present[n_column].min()) if n_column in present.columns else math.nan
    se = math.sqrt(mean * (1.0 - mean) / n) if n > 0 else math.nan
    return {
        "dataset": dataset,
        "mode": mode,
        "family": family,
        "method": method,
        "seeds": len(values),
        "per_seed": " ".join(
            f"{int(s)}:{v:.4f}" for s, v in zip(present["seed"], values, strict=True)
        ),
        "hr1_mean": mean,
        "hr1_sd": sd,
        "hr1_range": max(values) - min(values),
        "n_examples": n,
        "sampling_se": se,
        "sd_over_se": sd / se if se > 0 else math.nan,
    }


def _display(row: dict) -> dict:
    return {
        "dataset": row["dataset"],
        "mode": row["mode"],
        "group": FAMILY_LABELS.get(row["family"], row["family"]),
        "method": row["method"],
        "seeds": str(row["seeds"]),
        "HR@1 per seed": ", ".join(row["per_seed"].split()),
        "mean": f"{row['hr1_mean']:.4f}",
        "SD over seeds": f"{row['hr1_sd']:.4f}",
        "range": f"{row['hr1_range']:.4f}",
        "sampling SE": "" if math.isnan(row["sampling_se"]) else f"{row['sampling_se']:.4f}",
        "SD / SE": "" if math.isnan(row["sd_over_se"]) else f"{row['sd_over_se']:.2f}",
    }


def seed_spread_table(refs: References) -> Table | str:
    """HR@1 per seed, its SD and range over seeds, and one run's sampling SE, per method."""
    runs = refs.runs
    rows = []
    for dataset in ordered_datasets(runs["dataset"]) if not runs.empty else []:
        here = runs[runs["dataset"] == dataset]
        for mode in MODES:
            for family in ordered_families(here["family"]):
                of_family = here[here["family"] == family]
                for method in ordered_methods(of_family["method"]):
                    group = of_family[of_family["method"] == method]
                    row = _row(dataset, mode, method, family, group)
                    if row is not None:
                        rows.append(row)
    if not rows:
        return "no method has two or more seeds"
    shown = runs[runs["seed"].notna()]
    return Table(
        name="seed_spread",
        title="Seed-to-seed spread of HR@1 on the same test examples",
        data=pd.DataFrame(rows),
        display=pd.DataFrame([_display(r) for r in rows]),
        notes=list(NOTES),
        runs=shown,
    )


__all__ = ["seed_spread_table"]
