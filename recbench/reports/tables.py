"""The paper-style tables of ``recbench compare`` and their Markdown, CSV and LaTeX renderings.

Each table is built twice from the same numbers: a tidy frame (one row per dataset and method or
sweep point, full precision, separate mean/low/high columns) that goes to CSV for further
analysis, and a display frame (rounded "mean [low, high]" cells laid out like the paper) that
goes to Markdown and LaTeX.  A builder returns a :class:`Table`, or a string saying why there
was nothing to show, so that empty tables are reported instead of written.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import pandas as pd

from recbench import methods as method_registry
from recbench.reports.runs import TRAIN_TIME, References, matching_stage, one_factor
from recbench.reports.stats import Estimate, estimate, relative_percent
from recbench.reports.variants import base_method

#: Families in table order: the method registry's (rule, sequential, LLM baseline, loss).
FAMILY_ORDER = method_registry.FAMILIES
FAMILY_LABELS = {
    "rule": "rule",
    "sequential": "sequential",
    "llm_baseline": "LLM baseline",
    "loss": "loss",
}
DATASET_ORDER = ("lastfm", "goodreads", "steam")
#: The loss family (in the loss registry) of NAPO's ablations: variants that only make sense in
#: Table 3, so Table 2 leaves them out.
ABLATION_FAMILY = "ablation"
#: Table 3 of the paper: NAPO, its ablations (the registry's ablation family, in its order), then
#: the S-DPO family; the paper's row labels (a variant without one is labelled by its key).
ABLATION_LABELS = {
    "napo": "NAPO",
    "sdpo_ns": "S-DPO + NS",
    "napo_ln": "w/ length norm",
    "napo_no_ns": "w/o NS",
    "napo_no_dyn": "w/o dynamic gamma",
    "napo_no_ns_gamma": "w/o NS & gamma",
    "napo_no_ns_dyn": "w/o NS & dynamic gamma",
    "sims_dpo": "SimS-DPO",
    "sdpo": "S-DPO",
}
STUDY_PARAMETERS = ("rho", "alpha")
INTERVAL_NOTE = (
    "mean over seeds with a 95% interval: Student's t over seeds when there are several; "
    "with one seed, the Wilson interval over the test examples (proportions only)"
)
RANKING_MARK = "*"
RANKING_NOTE = (
    f"{RANKING_MARK} ranking-mode HR@1 (the method has no generation mode, "
    "e.g. a sequential recommender ranking the 20 candidates)"
)

PAIRED_MARK = "†"


@dataclass(frozen=True)
class PairedMarks:
    """Which Table 2 values differ from SFT by the paired tests (:mod:`.paired`), and why."""

    tested: frozenset[tuple[str, str, str]]  # (dataset, mode, method) compared with SFT
    survivors: frozenset[tuple[str, str, str]]  # ... whose difference survives
    note: str

    def mark(self, dataset: str, mode: str, method: str) -> str:
        return PAIRED_MARK if (dataset, mode, method) in self.survivors else ""

    def state(self, dataset: str, mode: str, method: str) -> str:
        """The CSV column: "survives", "no" (tested, does not survive) or "" (not tested)."""
        if (dataset, mode, method) in self.survivors:
            return "survives"
        return "no" if (dataset, mode, method) in self.tested else ""


@dataclass
class Table:
    """A rendered-ready table: tidy numbers for CSV, formatted cells for Markdown/LaTeX."""

    name: str  # file stem
    title: str
    data: pd.DataFrame
    display: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    runs: pd.DataFrame = field(default_factory=pd.DataFrame)  # provenance (hardware)


# ------------------------------------------------------------------------------- helpers
def _rank(order: Iterable[str], name: str) -> tuple[int, str]:
    """Position in ``order``; a variant (``sims_dpo[n_neg=19]``) right after its method."""
    order, base = list(order), base_method(name)
    return (order.index(base) if base in order else len(order), name)


def method_order() -> tuple[str, ...]:
    """Every method, then every loss, in its registry's listing order: the order of the tables.

    Methods go by family, ``order`` and name, losses by ``order`` and key (as ``recbench run
    --help`` and ``recbench losses`` list them), so a plugin's method or loss takes the place its
    registration asks for.  A name neither registry knows (say, a plugin not loaded now) goes
    after them, by name.
    """
    import losses  # lazy: it imports torch, which the light helpers of the reports do not need

    return (*method_registry.method_names(), *losses.loss_keys())


def ablation_variants() -> tuple[str, ...]:
    """The registered ablations of NAPO (:data:`ABLATION_FAMILY`), in the loss registry's order."""
    import losses

    return tuple(spec.key for spec in losses.list_specs() if spec.family == ABLATION_FAMILY)


def ordered_datasets(names: Iterable[str]) -> list[str]:
    return sorted(set(names), key=lambda n: _rank(DATASET_ORDER, n))


def ordered_methods(names: Iterable[str]) -> list[str]:
    order = method_order()
    return sorted(set(names), key=lambda n: _rank(order, n))


def ordered_families(names: Iterable[str]) -> list[str]:
    return sorted(set(names), key=lambda n: _rank(FAMILY_ORDER, n))


def stat(runs: pd.DataFrame, column: str) -> Estimate | None:
    """Estimate of one ``mode:metric`` column over the runs (one per seed) of a point."""
    if column not in runs.columns or runs.empty:
        return None
    mode, _, metric = column.partition(":")
    proportion = metric.startswith("hr@") or metric == "valid_ratio"
    present = runs[column].notna()
    n_examples = None
    n_column = f"{mode}:n_examples"
    if proportion and present.sum() == 1 and n_column in runs.columns:
        n_examples = float(runs.loc[present, n_column].iloc[0])
    return estimate(runs[column].tolist(), n_examples, proportion)


def headline_column(runs: pd.DataFrame) -> str:
    """The paper's HR@1: generation mode where the method generates, else ranking mode."""
    column = "generation:hr@1"
    if column in runs.columns and runs[column].notna().any():
        return column
    return "ranking:hr@1"


def mean_of(est: Estimate | None) -> float:
    return est.mean if est is not None else math.nan


def fields(prefix: str, est: Estimate | None) -> dict[str, object]:
    """Tidy columns of one estimate: mean, 95% bounds, interval kind."""
    if est is None:
        return {
            f"{prefix}_mean": math.nan,
            f"{prefix}_low": math.nan,
            f"{prefix}_high": math.nan,
            f"{prefix}_interval": "",
        }
    low, high = (est.low, est.high) if est.has_interval else (math.nan, math.nan)
    return {
        f"{prefix}_mean": est.mean,
        f"{prefix}_low": low,
        f"{prefix}_high": high,
        f"{prefix}_interval": est.kind,
    }


def cell(est: Estimate | None, digits: int = 4, mark: str = "") -> str:
    """The display cell: mean and [low, high] (mean only without an interval); "" if missing."""
    if est is None or math.isnan(est.mean):
        return ""
    text = f"{est.mean:.{digits}f}{mark}"
    if est.has_interval:
        text += f" [{est.low:.{digits}f}, {est.high:.{digits}f}]"
    return text


def percent_cell(value: float) -> str:
    return "" if value is None or math.isnan(value) else f"{value:+.1f}%"


def _seeds(runs: pd.DataFrame) -> int:
    return int(runs["seed"].nunique()) if not runs.empty else 0


def _reference_notes(refs: References, keys: Iterable[tuple[str, str]]) -> list[str]:
    return [refs.notes[k] for k in sorted(set(keys)) if k in refs.notes]


# --------------------------------------------------------------------------- Table 2
def main_table(refs: References, paired: PairedMarks | None = None) -> Table | str:
    """Table 2: every method x dataset, HR@1 (generation), ValidRatio, ranking HR@1, gains.

    ``paired`` (when the store has per-example outcomes) marks the HR@1 values whose paired
    comparison with SFT survives; without it the table is exactly what it was before outcomes
    were stored.
    """
    runs = refs.runs[~refs.runs["method"].isin(ablation_variants())]
    if runs.empty:
        return "no runs of baselines or losses"
    datasets = ordered_datasets(runs["dataset"])
    best, sft = _references_per_dataset(runs, datasets)
    stages = refs.instances[refs.instances["method"] == "sft"]
    tidy_rows = [
        _main_tidy_row(runs, dataset, method, best, sft, paired, stages)
        for dataset in datasets
        for method in ordered_methods(runs.loc[runs["dataset"] == dataset, "method"])
    ]
    tidy = _sorted_main(pd.DataFrame(tidy_rows))
    display_rows = [
        _main_display_row(runs, tidy, datasets, family, method, paired)
        for family in ordered_families(tidy["family"])
        for method in ordered_methods(tidy.loc[tidy["family"] == family, "method"])
    ]
    notes = [INTERVAL_NOTE]
    if (tidy["hr1_mode"] == "ranking").any():
        notes.append(RANKING_NOTE)
    if paired is not None:
        notes.append(paired.note)
    notes.append(
        "vs best: relative HR@1 change over the best baseline (rule, sequential or LLM) of the dataset; "
        "vs SFT: over the SFT model, 100 (HR - HR_ref) / HR_ref; for a loss, HR_ref is the "
        "mean of the SFT runs it started from (same seeds, same stages), so an SFT seed "
        "without the loss does not enter its comparison"
    )
    for dataset in datasets:
        if dataset in best:
            notes.append(
                f"best baseline on {dataset}: {best[dataset][0]} (HR@1 {best[dataset][1]:.4f})"
            )
    notes += _reference_notes(refs, zip(runs["dataset"], runs["method"], strict=True))
    return Table(
        name="table2_main",
        title="Table 2: HR@1 and ValidRatio of every method, with relative improvements",
        data=tidy,
        display=pd.DataFrame(display_rows),
        notes=notes,
        runs=runs,
    )


def _references_per_dataset(
    runs: pd.DataFrame, datasets: list[str]
) -> tuple[dict[str, tuple[str, float]], dict[str, float]]:
    """Per dataset: the best baseline (rule, sequential or LLM baseline) and SFT's HR@1."""
    best: dict[str, tuple[str, float]] = {}
    sft: dict[str, float] = {}
    for dataset in datasets:
        here = runs[runs["dataset"] == dataset]
        for method, group in here.groupby("method", sort=True):
            if group["family"].iloc[0] in ("rule", "sequential", "llm_baseline"):
                value = mean_of(stat(group, headline_column(group)))
                if not math.isnan(value) and (dataset not in best or value > best[dataset][1]):
                    best[dataset] = (str(method), value)
            if method == "sft":
                sft[dataset] = mean_of(stat(group, headline_column(group)))
    return best, sft


def _main_tidy_row(
    runs: pd.DataFrame,
    dataset: str,
    method: str,
    best: dict[str, tuple[str, float]],
    sft: dict[str, float],
    paired: PairedMarks | None,
    stages: pd.DataFrame,
) -> dict:
    """One method on one dataset, as Table 2's csv holds it."""
    group = runs[(runs["dataset"] == dataset) & (runs["method"] == method)]
    column = headline_column(group)
    hr1 = stat(group, column)
    best_name, best_value = best.get(dataset, ("", math.nan))
    if group["family"].iloc[0] == "loss":
        rel_sft = relative_to_own_sft(group, stages[stages["dataset"] == dataset], column)
    else:
        rel_sft = relative_percent(mean_of(hr1), sft.get(dataset))
    row = {
        "dataset": dataset,
        "family": group["family"].iloc[0],
        "method": method,
        "seeds": _seeds(group),
        "hr1_mode": column.partition(":")[0],
        **fields("hr1", hr1),
        **fields("valid_ratio", stat(group, "generation:valid_ratio")),
        **fields("ranking_hr1", stat(group, "ranking:hr@1")),
        "best_baseline": best_name,
        "rel_best_baseline_pct": relative_percent(mean_of(hr1), best_value),
        "rel_sft_pct": rel_sft,
    }
    if paired is not None:
        row["hr1_paired_vs_sft"] = paired.state(dataset, column.partition(":")[0], method)
        row["ranking_hr1_paired_vs_sft"] = paired.state(dataset, "ranking", method)
    return row


def own_sft_means(group: pd.DataFrame, stages: pd.DataFrame, column: str) -> tuple[float, float]:
    """A loss's mean ``column`` and that of the SFT runs it started from, over its seeds that
    have the SFT run of their stage (:func:`~.runs.matching_stage`); NaNs when none has.

    Comparing with SFT's mean over all its seeds would set one seed of a loss against
    another seed's SFT: training runs differ by more than 1,000 test examples resolve.
    """
    ours, theirs = [], []
    if column in stages.columns:
        for _, run in group.dropna(subset=[column]).iterrows():
            partner = matching_stage(run, stages.dropna(subset=[column]))
            if partner is not None:
                ours.append(float(run[column]))
                theirs.append(float(partner[column]))
    if not ours:
        return math.nan, math.nan
    return math.fsum(ours) / len(ours), math.fsum(theirs) / len(theirs)


def relative_to_own_sft(
    group: pd.DataFrame, stages: pd.DataFrame, column: str, absolute: bool = False
) -> float:
    """100 (x - SFT) / SFT for a loss against the SFT runs it started from (own_sft_means)."""
    return relative_percent(*own_sft_means(group, stages, column), absolute)


def _sorted_main(tidy: pd.DataFrame) -> pd.DataFrame:
    """Datasets in the paper's order, then families, then the registries' method order."""
    order = method_order()
    keys = {
        "_dataset_rank": [_rank(DATASET_ORDER, d) for d in tidy["dataset"]],
        "_family_rank": [_rank(FAMILY_ORDER, f) for f in tidy["family"]],
        "_method_rank": [_rank(order, m) for m in tidy["method"]],
    }
    tidy = tidy.assign(**keys).sort_values(list(keys))
    return tidy.drop(columns=list(keys)).reset_index(drop=True)


_MAIN_CELLS = ("HR@1", "Valid", "HR@1 (rank)", "vs best", "vs SFT", "seeds")


def _main_display_row(
    runs: pd.DataFrame,
    tidy: pd.DataFrame,
    datasets: list[str],
    family: str,
    method: str,
    paired: PairedMarks | None,
) -> dict[str, object]:
    """One method's row of the displayed Table 2: its cells on every dataset."""
    row: dict[str, object] = {"group": FAMILY_LABELS.get(family, family), "method": method}
    for dataset in datasets:
        match = runs[(runs["dataset"] == dataset) & (runs["method"] == method)]
        found = tidy[(tidy["dataset"] == dataset) & (tidy["method"] == method)]
        if found.empty:
            row.update({f"{dataset} {c}": "" for c in _MAIN_CELLS})
            continue
        t = found.iloc[0]
        mark = RANKING_MARK if t["hr1_mode"] == "ranking" else ""
        rank_mark = ""
        if paired is not None:
            mark += paired.mark(dataset, t["hr1_mode"], method)
            rank_mark = paired.mark(dataset, "ranking", method)
        row[f"{dataset} HR@1"] = cell(stat(match, headline_column(match)), mark=mark)
        row[f"{dataset} Valid"] = cell(stat(match, "generation:valid_ratio"))
        row[f"{dataset} HR@1 (rank)"] = cell(stat(match, "ranking:hr@1"), mark=rank_mark)
        row[f"{dataset} vs best"] = percent_cell(t["rel_best_baseline_pct"])
        row[f"{dataset} vs SFT"] = percent_cell(t["rel_sft_pct"])
        row[f"{dataset} seeds"] = str(t["seeds"])
    return row


# --------------------------------------------------------------------------- Table 3
def ablation_table(refs: References) -> Table | str:
    """Table 3: NAPO against its ablations and the S-DPO family, HR@1 and ValidRatio."""
    variants = ablation_variants()
    rows = ("napo", *variants, "sims_dpo", "sdpo")
    runs = refs.runs[refs.runs["method"].isin(rows)]
    if not runs["method"].isin(variants).any():
        return "no NAPO ablation runs (sdpo_ns, napo_ln, napo_no_ns, napo_no_dyn, ...)"
    datasets = ordered_datasets(runs["dataset"])
    tidy_rows, display_rows = [], []
    methods = [m for m in rows if m in set(runs["method"])]
    for dataset in datasets:
        for method in methods:
            group = runs[(runs["dataset"] == dataset) & (runs["method"] == method)]
            if group.empty:
                continue
            column = headline_column(group)
            tidy_rows.append(
                {
                    "dataset": dataset,
                    "method": method,
                    "variant": ABLATION_LABELS.get(method, method),
                    "seeds": _seeds(group),
                    "hr1_mode": column.partition(":")[0],
                    **fields("hr1", stat(group, column)),
                    **fields("valid_ratio", stat(group, "generation:valid_ratio")),
                }
            )
    ranking_used = False
    for method in methods:
        row: dict[str, object] = {"variant": ABLATION_LABELS.get(method, method), "method": method}
        for dataset in datasets:
            group = runs[(runs["dataset"] == dataset) & (runs["method"] == method)]
            column = headline_column(group)
            mark = RANKING_MARK if column.startswith("ranking") and not group.empty else ""
            ranking_used = ranking_used or bool(mark)
            row[f"{dataset} HR@1"] = cell(stat(group, column), mark=mark)
            row[f"{dataset} Valid"] = cell(stat(group, "generation:valid_ratio"))
            row[f"{dataset} seeds"] = str(_seeds(group)) if not group.empty else ""
        display_rows.append(row)
    notes = [INTERVAL_NOTE] + ([RANKING_NOTE] if ranking_used else [])
    notes += _reference_notes(refs, zip(runs["dataset"], runs["method"], strict=True))
    return Table(
        name="table3_ablations",
        title="Table 3: NAPO ablations, HR@1 and ValidRatio",
        data=pd.DataFrame(tidy_rows),
        display=pd.DataFrame(display_rows),
        notes=notes,
        runs=runs,
    )


# ------------------------------------------------------------------------- Figure 3a/b
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
                    "seeds": _seeds(group),
                    "sft_seeds": _seeds(sft_runs),
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
            "outputs (LOSSES.md 9.3); HR@1 vs SFT = 100 (HR - HR_SFT) / HR_SFT, "
            "bias vs SFT = 100 (E - E_SFT) / |E_SFT| (lower: less popularity-biased); relative "
            "numbers compare the means over seeds, for a loss with the SFT runs it started from "
            "(its seeds' stages: SFT columns show their mean); [low, high]: 95% t interval over the seeds "
            "both have of each seed's relative difference to that seed's SFT (they share its "
            "SFT stage), none with fewer than two such seeds"
        ),
    ]
    if skipped_datasets:
        notes.append("no SFT generation run for: " + ", ".join(skipped_datasets))
    notes += _reference_notes(refs, zip(tidy["dataset"], tidy["method"], strict=True))
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
    """Figure 3's relative change of a generation metric: a loss against the SFT runs it
    started from, any other method against SFT's mean (bias over |bias|, LOSSES.md 9.3)."""
    absolute = metric == "pop_bias"
    if group["family"].iloc[0] == "loss":
        return relative_to_own_sft(group, stages, f"generation:{metric}", absolute)
    return relative_percent(mean_of(ours), mean_of(sft), absolute)


def _sft_mean(group: pd.DataFrame, stages: pd.DataFrame, sft: Estimate | None, metric: str):
    """The SFT value Figure 3 sets a method against (see :func:`_vs_sft`)."""
    if group["family"].iloc[0] == "loss":
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


# -------------------------------------------------------------------------- studies
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
                    "seeds": _seeds(group),
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
                shown["seeds"] = str(_seeds(group))
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


# --------------------------------------------------------------------------- Table 5
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
                        "seeds": _seeds(group),
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
                        "seeds": str(_seeds(group)),
                    }
                )
    notes = [
        INTERVAL_NOTE,
        (
            "training = SFT stage + preference stage of each run (the SFT stage is shared "
            "between losses with the same settings, so a run that reused a cached SFT reports "
            "its load time)"
        ),
        (
            "CPU use: the run's process CPU time over its wall time times its threads (near 1 "
            "when it had its cores, lower when other work shared them; blank for runs recorded "
            "before it was measured): times of a run with low CPU use were slowed by other work"
        ),
    ]
    notes += _reference_notes(refs, zip(runs["dataset"], runs["method"], strict=True))
    return Table(
        name="table5_training_time",
        title="Table 5: training time and peak memory per method",
        data=pd.DataFrame(tidy_rows),
        display=pd.DataFrame(display_rows),
        notes=notes,
        runs=runs,
    )


# ---------------------------------------------------------------------------- writers
def _md_escape(text: object) -> str:
    return str(text).replace("|", "\\|")


def to_markdown(table: Table, header: list[str]) -> str:
    lines = [f"<!-- {line} -->" for line in header]
    lines += ["", f"### {table.title}", ""]
    columns = list(table.display.columns)
    lines.append("| " + " | ".join(_md_escape(c) for c in columns) + " |")
    lines.append("|" + "|".join("---" for _ in columns) + "|")
    for _, row in table.display.iterrows():
        lines.append("| " + " | ".join(_md_escape(row[c]) or "–" for c in columns) + " |")
    if table.notes:
        lines.append("")
        lines += [f"- {note}" for note in table.notes]
    return "\n".join(lines) + "\n"


def to_csv(table: Table, header: list[str]) -> str:
    lines = [f"# {line}" for line in header] + [f"# note: {note}" for note in table.notes]
    body = table.data.to_csv(index=False, lineterminator="\n", float_format="%.6f")
    return "\n".join(lines) + "\n" + body


_TEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def tex_escape(text: object) -> str:
    return "".join(_TEX_SPECIAL.get(ch, ch) for ch in str(text))


def to_latex(table: Table, header: list[str]) -> str:
    """A booktabs table (needs \\usepackage{booktabs}); notes go under the tabular."""
    columns = list(table.display.columns)
    lines = [f"% {line}" for line in header]
    lines += [
        r"\begin{table}[t]",
        r"\centering",
        r"\footnotesize",
        rf"\caption{{{tex_escape(table.title)}}}",
        rf"\label{{tab:{table.name.replace('_', '-')}}}",
        r"\begin{tabular}{" + "l" * min(2, len(columns)) + "r" * max(0, len(columns) - 2) + "}",
        r"\toprule",
        " & ".join(tex_escape(c) for c in columns) + r" \\",
        r"\midrule",
    ]
    for _, row in table.display.iterrows():
        lines.append(" & ".join(tex_escape(row[c]) or "--" for c in columns) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    for note in table.notes:
        lines.append(r"\par\smallskip\raggedright " + tex_escape(note))
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


WRITERS = {"md": to_markdown, "csv": to_csv, "tex": to_latex}
