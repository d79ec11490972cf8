"""Figure 3a/b as a table: popularity bias and HR@1 of the generating methods relative to SFT.

A loss is set against the SFT runs of its own seeds and stages (:func:`~.tables.own_sft_means`),
and its interval over seeds is the interval of the per-seed relative differences.
"""

from __future__ import annotations

import math

import pandas as pd

from recbench.reports.runs import References, matching_stage, trained_from_stage
from recbench.reports.stats import Estimate, estimate, relative_percent
from recbench.reports.tables import (
    INTERVAL_NOTE,
    Table,
    cell,
    fields,
    mean_of,
    ordered_datasets,
    ordered_methods,
    own_sft_means,
    percent_cell,
    reference_notes,
    relative_to_own_sft,
    seed_count,
    stat,
)


def relative_to_sft_table(refs: References) -> Table | str:
    """Figure 3a/b as a table: popularity bias and HR@1 of generating methods relative to SFT."""
    runs = refs.runs
    if "generation:hr@1" not in runs.columns:
        return "no generation-mode results"
    tidy_rows, used = [], []
    skipped_datasets = []
    for dataset in ordered_datasets(runs["dataset"]):
        here = runs[runs["dataset"] == dataset]
        sft_runs = here[here["method"] == "sft"]
        sft_stages = refs.instances[
            (refs.instances["dataset"] == dataset) & (refs.instances["method"] == "sft")
        ]
        if sft_runs.empty or sft_runs["generation:hr@1"].isna().all():
            skipped_datasets.append(dataset)
            continue
        sft_hr1 = stat(sft_runs, "generation:hr@1")
        sft_bias = stat(sft_runs, "generation:pop_bias")
        for method in ordered_methods(here["method"]):
            group = here[here["method"] == method]
            if method == "sft" or group["generation:hr@1"].isna().all():
                continue
            hr1 = stat(group, "generation:hr@1")
            bias = stat(group, "generation:pop_bias")
            used += [group, sft_runs]
            tidy_rows.append(
                {
                    "dataset": dataset,
                    "family": group["family"].iloc[0],
                    "method": method,
                    "seeds": seed_count(group),
                    "sft_seeds": seed_count(sft_runs),
                    **fields("hr1", hr1),
                    "sft_hr1_mean": _sft_mean(group, sft_stages, sft_hr1, "hr@1"),
                    "rel_hr1_pct": _vs_sft(group, sft_stages, hr1, sft_hr1, "hr@1"),
                    **_bounds("rel_hr1", relative_over_seeds(group, sft_stages, "generation:hr@1")),
                    **fields("pop_bias", bias),
                    "sft_pop_bias_mean": _sft_mean(group, sft_stages, sft_bias, "pop_bias"),
                    "rel_pop_bias_pct": _vs_sft(group, sft_stages, bias, sft_bias, "pop_bias"),
                    **_bounds(
                        "rel_pop_bias",
                        relative_over_seeds(group, sft_stages, "generation:pop_bias", True),
                    ),
                }
            )
    if not tidy_rows:
        return "no generation-mode runs beside an SFT run of the same dataset"
    tidy = pd.DataFrame(tidy_rows)
    display = pd.DataFrame(
        {
            "dataset": tidy["dataset"],
            "method": tidy["method"],
            "HR@1": [cell(_est(r, "hr1")) for _, r in tidy.iterrows()],
            "SFT HR@1": [f"{v:.4f}" for v in tidy["sft_hr1_mean"]],
            "HR@1 vs SFT": [_relative_cell(r, "rel_hr1") for _, r in tidy.iterrows()],
            "pop. bias": [cell(_est(r, "pop_bias")) for _, r in tidy.iterrows()],
            "SFT pop. bias": [
                "" if math.isnan(v) else f"{v:.4f}" for v in tidy["sft_pop_bias_mean"]
            ],
            "bias vs SFT": [_relative_cell(r, "rel_pop_bias") for _, r in tidy.iterrows()],
            "seeds": [str(v) for v in tidy["seeds"]],
        }
    )
    notes = [
        INTERVAL_NOTE,
        (
            "generation mode; popularity bias E[LogPop(rec) - mean LogPop(history)] over valid "
            "outputs (docs/data.md); HR@1 vs SFT = 100 (HR - HR_SFT) / HR_SFT, "
            "bias vs SFT = 100 (E - E_SFT) / |E_SFT| (lower: less popularity-biased); relative "
            "numbers compare the means over seeds, for a loss (or SPRec: any method trained from the "
            "SFT stage) with the SFT runs it started from "
            "(its seeds' stages: SFT columns show their mean); [low, high]: 95% t interval over the seeds "
            "both have of each seed's relative difference to that seed's SFT (they share its "
            "SFT stage), none with fewer than two such seeds"
        ),
    ]
    if skipped_datasets:
        notes.append("no SFT generation run for: " + ", ".join(skipped_datasets))
    notes += reference_notes(refs, zip(tidy["dataset"], tidy["method"], strict=True))
    return Table(
        name="fig3ab_relative_to_sft",
        title="Figure 3a/b: popularity bias and HR@1 relative to SFT",
        data=tidy,
        display=display,
        notes=notes,
        runs=pd.concat(used, ignore_index=True).drop_duplicates("run_id"),
    )


def _vs_sft(
    group: pd.DataFrame,
    stages: pd.DataFrame,
    ours: Estimate | None,
    sft: Estimate | None,
    metric: str,
) -> float:
    """Figure 3's relative change of a generation metric: a method trained from the seeds' SFT
    stages (:func:`~.runs.trained_from_stage`) against the SFT runs it started from, any other
    method against SFT's mean (bias over |bias|, docs/data.md)."""
    absolute = metric == "pop_bias"
    if trained_from_stage(group):
        return relative_to_own_sft(group, stages, f"generation:{metric}", absolute)
    return relative_percent(mean_of(ours), mean_of(sft), absolute)


def _sft_mean(group: pd.DataFrame, stages: pd.DataFrame, sft: Estimate | None, metric: str):
    """The SFT value Figure 3 sets a method against (see :func:`_vs_sft`)."""
    if trained_from_stage(group):
        return own_sft_means(group, stages, f"generation:{metric}")[1]
    return mean_of(sft)


def relative_over_seeds(
    group: pd.DataFrame, sft_runs: pd.DataFrame, column: str, absolute: bool = False
) -> Estimate | None:
    """The t interval over seeds of 100 (x_s - SFT_s) / SFT_s, paired by seed s.

    A method's seed-s run starts from seed s's SFT stage, so the per-seed relative differences
    are the paired quantities; SFT_s is the evaluation of the very stage the run started from
    when ``sft_runs`` holds several of one seed (:func:`~.runs.matching_stage`).  None with
    fewer than two seeds that both have.
    """
    if column not in group.columns or column not in sft_runs.columns:
        return None
    theirs = sft_runs.dropna(subset=[column])
    relative = []
    for _, run in group.dropna(subset=[column]).sort_values("seed").iterrows():
        partner = matching_stage(run, theirs)  # the evaluation of the stage it started from
        if partner is not None:
            relative.append(relative_percent(run[column], partner[column], absolute))
    if len(relative) < 2:
        return None
    return estimate(relative)


def _bounds(prefix: str, est: Estimate | None) -> dict[str, float]:
    if est is None:
        return {f"{prefix}_low": math.nan, f"{prefix}_high": math.nan}
    return {f"{prefix}_low": est.low, f"{prefix}_high": est.high}


def _relative_cell(row: pd.Series, prefix: str) -> str:
    text = percent_cell(row[f"{prefix}_pct"])
    low, high = row[f"{prefix}_low"], row[f"{prefix}_high"]
    if text and not (math.isnan(low) or math.isnan(high)):
        text += f" [{low:+.1f}%, {high:+.1f}%]"
    return text


def _est(row: pd.Series, prefix: str) -> Estimate | None:
    """Rebuild an estimate from tidy columns (for display cells)."""
    mean = row[f"{prefix}_mean"]
    if mean is None or math.isnan(mean):
        return None
    kind = row[f"{prefix}_interval"] or "none"
    low, high = row[f"{prefix}_low"], row[f"{prefix}_high"]
    if kind == "none":
        low = high = mean
    return Estimate(float(mean), float(low), float(high), 0, kind)
