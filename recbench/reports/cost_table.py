"""Table 5: training time, peak memory and CPU use per method, over seeds.

The CPU use column says whether a run had its cores: times of a run that shared them are upper
bounds, which is why the table carries it next to the seconds.
"""

from __future__ import annotations

import pandas as pd

from recbench.reports.runs import TRAIN_TIME, References
from recbench.reports.tables import (
    FAMILY_LABELS,
    INTERVAL_NOTE,
    Table,
    cell,
    fields,
    ordered_datasets,
    ordered_families,
    ordered_methods,
    reference_notes,
    seed_count,
    stat,
)


def time_table(refs: References) -> Table | str:
    """Table 5: training time (SFT + preference stage) and peak memory per method."""
    runs = refs.runs
    if TRAIN_TIME not in runs.columns or runs[TRAIN_TIME].isna().all():
        return "no training-time records"
    runs = runs[runs[TRAIN_TIME].notna()]
    tidy_rows, display_rows = [], []
    for dataset in ordered_datasets(runs["dataset"]):
        here = runs[runs["dataset"] == dataset]
        for family in ordered_families(here["family"]):
            for method in ordered_methods(here.loc[here["family"] == family, "method"]):
                group = here[here["method"] == method]
                sft = stat(group, "cost:sft_seconds")
                preference = stat(group, "cost:preference_seconds")
                total = stat(group, TRAIN_TIME)
                memory = stat(group, "cost:peak_memory_mb")
                use = stat(group, "cost:cpu_utilisation")
                tidy_rows.append(
                    {
                        "dataset": dataset,
                        "family": family,
                        "method": method,
                        "seeds": seed_count(group),
                        **fields("sft_seconds", sft),
                        **fields("preference_seconds", preference),
                        **fields("train_seconds", total),
                        **fields("peak_memory_mb", memory),
                        **fields("cpu_utilisation", use),
                    }
                )
                display_rows.append(
                    {
                        "dataset": dataset,
                        "group": FAMILY_LABELS.get(family, family),
                        "method": method,
                        "SFT (s)": cell(sft, 1),
                        "preference (s)": cell(preference, 1),
                        "training (s)": cell(total, 1),
                        "peak memory (MB)": cell(memory, 0),
                        "CPU use": cell(use, 2),
                        "seeds": str(seed_count(group)),
                    }
                )
    notes = [
        INTERVAL_NOTE,
        (
            "training = SFT stage + preference stage of each run (the SFT stage is shared by "
            "the losses of a seed; each run reports the time its stages took to train, not to "
            "load from the cache)"
        ),
        (
            "peak memory: the largest of the processes that trained the run's stages and "
            "evaluated it; runs recorded before 2026-12-04 give the peak of the process that "
            "wrote the record, the evaluation's alone where it loaded its stages"
        ),
        (
            "CPU use: the run's process CPU time over its wall time times its threads (near 1 "
            "when it had its cores, lower when other work shared them; blank for runs recorded "
            "before it was measured): times of a run with low CPU use were slowed by other work"
        ),
    ]
    notes += reference_notes(refs, zip(runs["dataset"], runs["method"], strict=True))
    return Table(
        name="table5_training_time",
        title="Table 5: training time and peak memory per method",
        data=pd.DataFrame(tidy_rows),
        display=pd.DataFrame(display_rows),
        notes=notes,
        runs=runs,
    )
