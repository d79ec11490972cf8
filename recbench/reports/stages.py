"""The SFT stages table: one seed's SFT stage trained twice, on two machines, compared.

The stage cache stays on the machine that built it, so a study continued elsewhere trains a
seed's SFT stage again: same settings, order and initialisation, other bf16 kernels.  The
pipeline evaluates such a stage anew (its weights differ) and compare keeps both evaluations
(:mod:`~recbench.reports.runs`).  Set side by side on the same test examples they measure what
the hardware alone does to one training run: how many examples change from hit to miss, and
whether HR@1 moves by more than chance (exact McNemar).  A study that mixes machines across
seeds carries this in its seed-to-seed spread; this table shows how large it is.

Only where both trainings read the same train split.  A dataset rebuilt in between (a fixed
split rule) is another file, and the seeded draw of SFT examples from another file is mostly
other examples: such a row measures the data and the hardware together.  Each row says which
train split each record states, so the table cannot pass one off as the other.
"""

from __future__ import annotations

import math

import pandas as pd

from recbench.reports import paired
from recbench.reports.runs import References, chronological
from recbench.reports.significance import mcnemar_p
from recbench.reports.tables import Table, ordered_datasets

MODES = ("generation", "ranking")
NOTES = [
    (
        "each row: the SFT stage of one seed, trained twice with the same settings, order and "
        "initialisation on two machines (a stage cache does not travel), each evaluated on the "
        "same test examples; first = the earlier evaluation"
    ),
    (
        "train split: the sha256 of the training file each record states; where the two "
        "differ, the seeded SFT examples differ too and the row measures data and hardware "
        "together; not recorded: a record written before records named their files"
    ),
    (
        "changed: share of examples hit by one stage only; first only / second only: their "
        "counts, with the exact two-sided McNemar p-value (not adjusted: descriptive)"
    ),
]


def _hits(run: pd.Series, mode: str, reader: paired.OutcomeReader) -> dict[str, bool] | None:
    references = run["outcomes"]
    reference = references.get(mode) if isinstance(references, dict) else None
    found = reader.read(str(run["run_id"]), reference) if reference else None
    return found.hits(mode) if found is not None else None


def _rows(dataset: str, seed: int, runs: pd.DataFrame, reader: paired.OutcomeReader) -> list:
    first, rows = runs.iloc[0], []
    for _, later in runs.iloc[1:].iterrows():
        for mode in MODES:
            a, b = _hits(first, mode, reader), _hits(later, mode, reader)
            if a is None or b is None or set(a) != set(b) or not a:
                continue
            a_only = sum(1 for k in a if a[k] and not b[k])
            b_only = sum(1 for k in a if b[k] and not a[k])
            n = len(a)
            rows.append(
                {
                    "dataset": dataset,
                    "seed": seed,
                    "mode": mode,
                    "first_machine": first["machine"],
                    "second_machine": later["machine"],
                    "first_stage": first["sft_stage"] or "(not recorded)",
                    "second_stage": later["sft_stage"],
                    "first_train": first["train_sha256"],
                    "second_train": later["train_sha256"],
                    "examples": n,
                    "first_hr1": sum(a.values()) / n,
                    "second_hr1": sum(b.values()) / n,
                    "difference": (b_only - a_only) / n,
                    "first_only": a_only,
                    "second_only": b_only,
                    "changed_share": (a_only + b_only) / n,
                    "p": mcnemar_p(b_only, a_only),
                }
            )
    return rows


def _display(row: dict) -> dict:
    return {
        "dataset": row["dataset"],
        "seed": str(row["seed"]),
        "mode": row["mode"],
        "first (machine)": row["first_machine"],
        "second (machine)": row["second_machine"],
        "train split": _train_split(row["first_train"], row["second_train"]),
        "HR@1 first, second": f"{row['first_hr1']:.4f}, {row['second_hr1']:.4f}",
        "second - first": f"{row['difference']:+.4f}",
        "changed": f"{100 * row['changed_share']:.1f}%",
        "first only / second only": f"{row['first_only']}/{row['second_only']}",
        "McNemar p": f"{row['p']:.4f}" if row["p"] >= 1e-4 else f"{row['p']:.1e}",
    }


def _train_split(first: str, second: str) -> str:
    """``same (f740be24)``, ``dd8d3ca6 -> f740be24``, or ``not recorded -> f740be24``."""
    if first and first == second:
        return f"same ({first[:8]})"
    return f"{first[:8] or 'not recorded'} → {second[:8] or 'not recorded'}"


def sft_stages_table(refs: References, reader: paired.OutcomeReader) -> Table | str:
    """Each seed whose SFT stage has evaluations of two or more trainings, compared."""
    sft = refs.instances[refs.instances["method"] == paired.reference_method()]
    rows: list[dict] = []
    for dataset in ordered_datasets(sft["dataset"]) if not sft.empty else []:
        here = sft[sft["dataset"] == dataset]
        for seed, group in here.groupby("seed", sort=True):
            if group["sft_stage"].nunique() >= 2:
                ordered = chronological(group)
                rows += _rows(dataset, int(seed), ordered, reader)
    if not rows:
        return "no seed has SFT evaluations of two trainings of its stage"
    used = sft[sft["run_id"].isin(_run_ids(sft, rows))]
    changed = [r["changed_share"] for r in rows]
    notes = [*NOTES, f"changed, over the rows: {100 * math.fsum(changed) / len(changed):.1f}%"]
    return Table(
        name="sft_stages",
        title="One seed's SFT stage trained on two machines: the same test examples",
        data=pd.DataFrame(rows),
        display=pd.DataFrame([_display(r) for r in rows]),
        notes=notes,
        runs=used,
    )


def _run_ids(sft: pd.DataFrame, rows: list[dict]) -> set[str]:
    seeds = {(r["dataset"], r["seed"]) for r in rows}
    keep = [(d, int(s)) in seeds for d, s in zip(sft["dataset"], sft["seed"], strict=True)]
    return set(sft.loc[keep, "run_id"])


__all__ = ["sft_stages_table"]
