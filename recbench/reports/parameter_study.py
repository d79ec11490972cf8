"""HR@1 and cost as one hyper-parameter varies: Figure 3c (``n_neg``) and Appendix C's
``rho``/``alpha`` studies, the other settings at the reference values.
"""

from __future__ import annotations

import pandas as pd

from recbench.reports.runs import TRAIN_TIME, References, one_factor
from recbench.reports.stats import Estimate, estimate
from recbench.reports.tables import (
    INTERVAL_NOTE,
    RANKING_MARK,
    RANKING_NOTE,
    Table,
    cell,
    fields,
    headline_column,
    ordered_datasets,
    ordered_methods,
    seed_count,
    stat,
)


def study_table(runs: pd.DataFrame, refs: References, parameter: str) -> Table | str:
    """HR@1 (and cost) as one hyper-parameter varies, the others at the reference values.

    ``n_neg`` is Figure 3c (HR@1, peak memory, training time); ``rho``/``alpha`` are the
    Appendix C studies (HR@1, ValidRatio).
    """
    losses_only = runs[runs["family"] == "loss"]
    if losses_only.empty:
        return "no loss runs"
    points = one_factor(losses_only, refs, parameter)
    curves = []
    for (_, _), group in points.groupby(["dataset", "method"], sort=True):
        if group["value"].nunique() >= 2:
            curves.append(group)
    if not curves:
        return f"no loss with runs at two or more values of {parameter} (others at defaults)"
    points = pd.concat(curves, ignore_index=True)
    cost = parameter == "n_neg"
    ratio_columns = (
        ("preference_ratio", "preference vs smallest", "cost:preference_seconds"),
        ("memory_ratio", "memory vs smallest", "cost:peak_memory_mb"),
    )
    tidy_rows, display_rows = [], []
    for dataset in ordered_datasets(points["dataset"]):
        for method in ordered_methods(points.loc[points["dataset"] == dataset, "method"]):
            here = points[(points["dataset"] == dataset) & (points["method"] == method)]
            values = sorted(set(here["value"]))
            smallest = here[here["value"] == values[0]]
            for value in values:
                group = here[here["value"] == value]
                column = headline_column(group)
                hr1 = stat(group, column)
                mark = RANKING_MARK if column.startswith("ranking") else ""
                tidy = {
                    "dataset": dataset,
                    "method": method,
                    parameter: value,
                    "seeds": seed_count(group),
                    "hr1_mode": column.partition(":")[0],
                    **fields("hr1", hr1),
                }
                shown = {
                    "dataset": dataset,
                    "method": method,
                    parameter: str(value),
                    "HR@1": cell(hr1, mark=mark),
                }
                if cost:
                    memory = stat(group, "cost:peak_memory_mb")
                    preference = stat(group, "cost:preference_seconds")
                    total = stat(group, TRAIN_TIME)
                    tidy.update(
                        {
                            **fields("peak_memory_mb", memory),
                            **fields("preference_seconds", preference),
                            **fields("train_seconds", total),
                        }
                    )
                    shown.update(
                        {
                            "peak memory (MB)": cell(memory, 0),
                            "preference (s)": cell(preference, 1),
                            "training (s)": cell(total, 1),
                        }
                    )
                    for prefix, label, column in ratio_columns:
                        ratio = paired_ratio(group, smallest, column)
                        tidy.update(fields(prefix, ratio))
                        tidy[f"{prefix}_seeds"] = ratio.n if ratio else 0
                        shown[label] = cell(ratio, 2) + (f" ({ratio.n})" if ratio else "")
                else:
                    valid = stat(group, "generation:valid_ratio")
                    tidy.update(fields("valid_ratio", valid))
                    shown["Valid"] = cell(valid)
                shown["seeds"] = str(seed_count(group))
                tidy_rows.append(tidy)
                display_rows.append(shown)
    tidy_frame = pd.DataFrame(tidy_rows)
    notes = [
        INTERVAL_NOTE,
        (
            f"each curve varies {parameter} with every other hyper-parameter at the loss's "
            "defaults (the profile's n_neg); other sweep points are left out"
        ),
    ]
    if (tidy_frame["hr1_mode"] == "ranking").any():
        notes.append(RANKING_NOTE)
    if cost:
        notes.append(
            "peak memory: CUDA allocator peak on a GPU, peak resident set of the run's process "
            "on the CPU; preference: the preference-optimisation stage; training: SFT + "
            "preference stage"
        )
        notes.append(
            "vs smallest: this n_neg's preference time (peak memory) over the smallest n_neg's, "
            "per seed where both ran on the same machine and threads (the seeds counted in "
            "brackets), mean and 95% interval over those seeds: a ratio within one seed's stage "
            "and machine, where the absolute columns also average over machines and loads"
        )
        name, title = "fig3c_n_neg", "Figure 3c: HR@1, peak memory and training time across n_neg"
    else:
        name, title = f"study_{parameter}", f"HR@1 and ValidRatio across {parameter}"
    return Table(
        name=name,
        title=title,
        data=tidy_frame,
        display=pd.DataFrame(display_rows),
        notes=notes,
        runs=points,
    )


def paired_ratio(runs: pd.DataFrame, base: pd.DataFrame, column: str) -> Estimate | None:
    """``column`` of each run over the same seed's ``base`` run on the same machine.

    Times from different machines or thread counts are not comparable, and one seed's two
    runs share the SFT stage; so the ratio is taken within a seed and a machine only, and the
    interval is over those ratios.  None when no seed has both (or the column is missing).
    """
    if column not in runs.columns or column not in base.columns:
        return None
    keys = ["seed", "machine"]
    pairs = runs[[*keys, column]].merge(base[[*keys, column]], on=keys, suffixes=("", "_base"))
    pairs = pairs.dropna()
    pairs = pairs[pairs[f"{column}_base"] > 0]
    if pairs.empty:
        return None
    return estimate((pairs[column] / pairs[f"{column}_base"]).tolist())
