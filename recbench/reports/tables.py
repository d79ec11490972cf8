"""The paper-style tables of ``recbench compare``: the :class:`Table` they all are, the helpers
they share, Table 2 and Table 3.  Figure 3a/b, the parameter studies, Table 5 and the paired
tests have modules of their own (:mod:`.figure3`, :mod:`.parameter_study`, :mod:`.cost_table`,
:mod:`.paired_report`); :mod:`.writers` renders a table as Markdown, CSV and LaTeX.

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
from recbench.reports.runs import References, matching_stage, stage_sharing, trained_from_stage
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
#: The loss family (in the loss registry) of NAPO's ablations: variants that only make sense in
#: Table 3, so Table 2 leaves them out.
ABLATION_FAMILY = "ablation"
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
POPULARITY = "pop"  # the rule an LLM must beat to have learnt more than item popularity


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
    from recbench import (
        losses,  # lazy: it imports torch, which the light helpers of the reports do not need
    )

    return (*method_registry.method_names(), *losses.loss_keys())


def ablation_variants() -> tuple[str, ...]:
    """The registered ablations of NAPO (:data:`ABLATION_FAMILY`), in the loss registry's order."""
    from recbench import losses

    return tuple(spec.key for spec in losses.list_specs() if spec.family == ABLATION_FAMILY)


def ordered_datasets(names: Iterable[str]) -> list[str]:
    """In the dataset catalog's order (the paper's datasets, then those recbench builds), then
    any other by name."""
    from recbench.data.catalog import REPORT_ORDER

    return sorted(set(names), key=lambda n: _rank(REPORT_ORDER, n))


def _label(method: str) -> str:
    """How the loss registry names a key in tables (the key itself when it is not a loss)."""
    from recbench import losses

    return losses.get_spec(method).display if method in losses.loss_keys() else method


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


def seed_count(runs: pd.DataFrame) -> int:
    return int(runs["seed"].nunique()) if not runs.empty else 0


def reference_notes(refs: References, keys: Iterable[tuple[str, str]]) -> list[str]:
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
        "vs SFT: over the SFT model, 100 (HR - HR_ref) / HR_ref; for a loss, or another "
        "method trained from the SFT stage (SPRec), HR_ref is the mean of the SFT runs it "
        "started from (same seeds, same stages), so an SFT seed without the method does not "
        "enter its comparison"
    )
    for dataset in datasets:
        if dataset in best:
            notes.append(
                f"best baseline on {dataset}: {best[dataset][0]} (HR@1 {best[dataset][1]:.4f})"
            )
    notes += _sft_row_stage_notes(refs)
    notes += _below_popularity_notes(runs, datasets, sft)
    notes += _earlier_movielens_build_notes(runs)
    notes += reference_notes(refs, zip(runs["dataset"], runs["method"], strict=True))
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


def _sft_row_stage_notes(refs: References) -> list[str]:
    """A note per seed whose SFT stage was trained twice (``sft_stages``): which evaluation the
    SFT row shows and how many of the seed's runs started from each, so a reader sees that the
    row follows the runs (:func:`~.runs.table_order`) and is not a choice made by hand."""
    instances = refs.instances.assign(sharing=stage_sharing(refs.instances))
    sft = instances[(instances["method"] == "sft") & (instances["sft_stage"].astype(str) != "")]
    shown = refs.runs[refs.runs["method"] == "sft"]
    notes = []
    for (dataset, seed), group in sft.groupby(["dataset", "seed"], sort=True):
        counts = group.drop_duplicates("sft_stage").set_index("sft_stage")["sharing"]
        row = shown[(shown["dataset"] == dataset) & (shown["seed"] == seed)]
        if len(counts) < 2 or row.empty or row["sft_stage"].iloc[0] not in counts.index:
            continue
        chosen = str(row["sft_stage"].iloc[0])
        others = "; ".join(
            f"stage {stage[:8]} ({int(n)} run{'' if int(n) == 1 else 's'}) compares only "
            "with the runs trained from it"
            for stage, n in counts.drop(chosen).sort_values(ascending=False).items()
        )
        notes.append(
            f"SFT on {dataset}, seed {seed}: its stage was trained twice (sft_stages); the SFT "
            f"row shows stage {chosen[:8]}, which {int(counts[chosen])} of the seed's runs "
            f"started from; {others}"
        )
    return notes


def _below_popularity_notes(
    runs: pd.DataFrame, datasets: list[str], sft: dict[str, float]
) -> list[str]:
    """A warning per dataset where SFT does not beat the popularity rule: every loss there starts
    from a model that has learnt no more than which items are popular, which a reader of the
    loss rows should know before reading them."""
    notes = []
    for dataset in datasets:
        pop = runs[(runs["dataset"] == dataset) & (runs["method"] == POPULARITY)]
        if dataset not in sft or math.isnan(sft[dataset]) or pop.empty:
            continue
        pop_hr1 = mean_of(stat(pop, headline_column(pop)))
        if sft[dataset] <= pop_hr1:
            notes.append(
                f"on {dataset} SFT (HR@1 {sft[dataset]:.4f}) does not beat the popularity rule "
                f"({pop_hr1:.4f}): the losses start from a model that has learnt no more than "
                "item popularity"
            )
    return notes


def _earlier_movielens_build_notes(runs: pd.DataFrame) -> list[str]:
    """A note when movielens runs used the build whose names were not unique: their
    generation-mode numbers include candidate lists no answer could get right, which a reader
    comparing them with later runs should know.  Decided from the records (dataset, split file,
    time; :func:`recbench.data.movielens.on_earlier_build`), so it reads the same everywhere."""
    from recbench.data import movielens  # the builder's facts; imported only when tabulating

    earlier = [
        movielens.on_earlier_build(dataset, sha, time)
        for dataset, sha, time in zip(
            runs["dataset"], runs["split_sha256"], runs["time"], strict=True
        )
    ]
    count, total = sum(earlier), int((runs["dataset"] == movielens.NAME).sum())
    if not count:
        return []
    which = f"all {total}" if count == total else f"{count} of the {total}"
    since = movielens.UNIQUE_NAMES_SINCE[:10]
    note = (
        f"{which} {movielens.NAME} runs here used the build before item names were unique "
        f"(recorded before {since}): {movielens.EARLIER_BUILD_CHANGES}"
    )
    return [note]


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
    if trained_from_stage(group):
        rel_sft = relative_to_own_sft(group, stages[stages["dataset"] == dataset], column)
    else:
        rel_sft = relative_percent(mean_of(hr1), sft.get(dataset))
    row = {
        "dataset": dataset,
        "family": group["family"].iloc[0],
        "method": method,
        "seeds": seed_count(group),
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
    from recbench.data.catalog import REPORT_ORDER

    order = method_order()
    keys = {
        "_dataset_rank": [_rank(REPORT_ORDER, d) for d in tidy["dataset"]],
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
    """Table 3: NAPO against its ablations and the S-DPO family, HR@1 and ValidRatio; its
    rows are the losses the registry places in it (``ablation_row``), in that order."""
    from recbench import losses

    variants = ablation_variants()
    placed = [s for s in losses.list_specs() if s.ablation_row is not None]
    rows = tuple(s.key for s in sorted(placed, key=lambda s: s.ablation_row))
    runs = refs.runs[refs.runs["method"].isin(rows)]
    if not runs["method"].isin(variants).any():
        return f"no NAPO ablation runs ({', '.join(variants[:4])}, ...)"
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
                    "variant": _label(method),
                    "seeds": seed_count(group),
                    "hr1_mode": column.partition(":")[0],
                    **fields("hr1", stat(group, column)),
                    **fields("valid_ratio", stat(group, "generation:valid_ratio")),
                }
            )
    ranking_used = False
    for method in methods:
        row: dict[str, object] = {"variant": _label(method), "method": method}
        for dataset in datasets:
            group = runs[(runs["dataset"] == dataset) & (runs["method"] == method)]
            column = headline_column(group)
            mark = RANKING_MARK if column.startswith("ranking") and not group.empty else ""
            ranking_used = ranking_used or bool(mark)
            row[f"{dataset} HR@1"] = cell(stat(group, column), mark=mark)
            row[f"{dataset} Valid"] = cell(stat(group, "generation:valid_ratio"))
            row[f"{dataset} seeds"] = str(seed_count(group)) if not group.empty else ""
        display_rows.append(row)
    notes = [INTERVAL_NOTE] + ([RANKING_NOTE] if ranking_used else [])
    notes += reference_notes(refs, zip(runs["dataset"], runs["method"], strict=True))
    return Table(
        name="table3_ablations",
        title="Table 3: NAPO ablations, HR@1 and ValidRatio",
        data=pd.DataFrame(tidy_rows),
        display=pd.DataFrame(display_rows),
        notes=notes,
        runs=runs,
    )
