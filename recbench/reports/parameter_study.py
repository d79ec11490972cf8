"""HR@1 and cost as one hyper-parameter varies: Figure 3c (``n_neg``) and Appendix C's
``rho``/``alpha`` studies, the other settings at the reference values.
"""

from __future__ import annotations

import pandas as pd

from recbench.reports.runs import TRAIN_TIME, References, one_factor
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
    tidy_rows, display_rows = [], []
    for dataset in ordered_datasets(points["dataset"]):
        for method in ordered_methods(points.loc[points["dataset"] == dataset, "method"]):
            here = points[(points["dataset"] == dataset) & (points["method"] == method)]
            for value in sorted(set(here["value"])):
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
