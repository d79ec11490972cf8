"""``recbench compare``: every paper-style table and plot from the results store, reproducibly.

Reports are meant to be committed next to the results they come from, so each file says how to
regenerate it (the canonical ``recbench compare`` command line) and on which hardware its numbers
were measured, and contains nothing else that changes between two runs (no dates, sorted rows,
pinned plot metadata): running the same command twice gives byte-identical files.

Numbers from different models or profiles are never pooled: when the filtered store holds several
(model, profile) settings, each gets its own sub-directory of the output directory.

Where the store keeps per-example outcomes, the paired tests of :mod:`~recbench.reports.paired`
go to ``paired_tests`` and mark Table 2; a store without them gives the same files as before.
Every directory also gets ``index.html`` (the report as one page for a browser) and
``README.md`` (what it is, its command, its files): :mod:`~recbench.reports.pages`.
Methods with several seeds get ``seed_spread`` (:mod:`~recbench.reports.spread`), and a seed
whose SFT stage was trained on two machines gets ``sft_stages`` (:mod:`~recbench.reports.stages`).
"""

from __future__ import annotations

import errno
import re
import shlex
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from recbench import results
from recbench.errors import UserError
from recbench.reports import (
    cost_table,
    figure3,
    pages,
    paired,
    paired_report,
    parameter_study,
    plots,
    spread,
    stages,
    tables,
    variants,
    writers,
)
from recbench.reports.runs import (
    WITHOUT_LLM,
    Filters,
    choose_references,
    latest_per_point,
    load_runs,
    runs_of_setting,
    settings_of,
)

FORMATS = ("md", "csv", "tex")
# Plots drawn from each table (removed along with it when its data disappears).
PLOTS_OF = {
    "fig3ab_relative_to_sft": ("fig3a_popularity_bias", "fig3b_hr1_vs_sft"),
    "fig3c_n_neg": ("fig3c_n_neg",),
    "study_rho": ("study_rho",),
    "study_alpha": ("study_alpha",),
}
STUDY_TITLES = {
    "n_neg": "HR@1, peak memory and preference-stage time across n_neg",
    "rho": "HR@1 and ValidRatio across the sharing ratio rho",
    "alpha": "HR@1 and ValidRatio across the margin sensitivity alpha",
}


@dataclass
class CompareReport:
    """What ``compare`` did: files written, tables/plots skipped (with why), stale files removed."""

    store: Path
    directories: list[Path] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "store": str(self.store),
            "directories": [str(p) for p in self.directories],
            "written": [str(p) for p in self.written],
            "skipped": [{"name": n, "reason": r} for n, r in self.skipped],
            "removed": [str(p) for p in self.removed],
        }


def parse_formats(text: str | Sequence[str]) -> tuple[str, ...]:
    """``"md,csv"`` -> ("md", "csv") in canonical order; unknown names are a user error."""
    items = text.split(",") if isinstance(text, str) else list(text)
    chosen = {item.strip().lower() for item in items if item.strip()}
    unknown = sorted(chosen - set(FORMATS))
    if unknown or not chosen:
        raise UserError(
            f"unknown table format '{','.join(unknown) or text}'; choose from {','.join(FORMATS)}"
        )
    return tuple(f for f in FORMATS if f in chosen)


def command_line(
    results_path: Path | None,
    out: Path,
    datasets: Sequence[str],
    model: str | None,
    profile: str | None,
    formats: Sequence[str],
    plots_enabled: bool,
    pairs: Sequence[tuple[str, str]] = (),
    shown: Sequence[variants.Variant] = (),
) -> str:
    """The canonical command that regenerates a report (options in a fixed order)."""
    parts = ["recbench", "compare"]
    if results_path is not None:
        parts += ["--results", str(results_path)]
    parts += ["--out", str(out)]
    for dataset in sorted(set(datasets)):
        parts += ["--dataset", dataset]
    if model is not None:
        parts += ["--model", model]
    if profile is not None:
        parts += ["--profile", profile]
    if tuple(formats) != FORMATS:
        parts += ["--format", ",".join(formats)]
    if not plots_enabled:
        parts.append("--no-plots")
    for a, b in sorted(set(pairs)):
        parts += ["--pair", f"{a}:{b}"]
    for variant in shown:
        parts += ["--variant", variant.text]
    return shlex.join(parts)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_.") or "model"


def _hardware(runs: pd.DataFrame) -> str:
    return "; ".join(sorted(set(runs["hardware"]))) if not runs.empty else "unknown"


def _write(path: Path, text: str) -> Path:
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)
    return path


def _remove_stale(paths: Iterable[Path], report: CompareReport) -> None:
    for path in paths:
        if path.is_file():
            path.unlink()
            report.removed.append(path)


def compare(
    results_path: Path | None = None,
    out: Path = Path("reports"),
    datasets: Sequence[str] = (),
    model: str | None = None,
    profile: str | None = None,
    formats: str | Sequence[str] = FORMATS,
    plots_enabled: bool = True,
    pairs: Sequence[str] = (),
    variant_texts: Sequence[str] = (),
) -> CompareReport:
    """Write the tables (and plots) for the filtered store into ``out``; see the module doc.

    ``pairs`` (``"A:B"`` strings) replace the default paired comparisons (every method vs sft,
    napo vs sdpo, NAPO's ablations vs napo); a method they name must have runs in the filtered
    store.  ``variant_texts`` (``"METHOD:KEY=VALUE,..."``) add configurations as rows of their
    own (:mod:`~recbench.reports.variants`); ``--pair`` may name them by label.  Loss runs on
    another negatives strategy than the default are such rows without being asked for
    (``sdpo[negatives=hard]``, :func:`~recbench.reports.variants.strategy_variants`).
    """
    chosen_formats = parse_formats(formats)
    chosen_pairs = paired.parse_pairs(pairs)
    shown = variants.parse_variants(variant_texts)
    datasets = tuple(sorted({d.strip() for item in datasets for d in item.split(",") if d.strip()}))
    results.check_store_path(results_path, writing=False)  # a folder or device: say so
    store = Path(results_path) if results_path is not None else results.default_store()
    runs = load_runs(store, Filters(datasets=datasets, model=model, profile=profile))
    variants.add_variants(runs, shown)  # the user's variants: each must name runs
    automatic = variants.strategy_variants(runs, shown)  # not on the command line: from the store
    labels = variants.add_variants(runs, (*shown, *automatic), strict=False)["method"]
    paired.check_pairs(chosen_pairs, labels)
    command = command_line(
        results_path,
        out,
        datasets,
        model,
        profile,
        chosen_formats,
        plots_enabled,
        chosen_pairs,
        shown,
    )
    report = CompareReport(store=store)
    reader = paired.OutcomeReader(store)
    settings = settings_of(runs)
    for setting_model, setting_profile in settings:
        directory = Path(out)
        if len(settings) > 1:
            directory = directory / f"{_slug(setting_profile)}-{_slug(setting_model)}"
        subset = runs_of_setting(runs, setting_model, setting_profile)
        prefix = "" if len(settings) == 1 else f"{directory.name}/"
        try:
            _write_setting(
                subset,
                directory,
                prefix,
                command,
                chosen_formats,
                plots_enabled,
                report,
                reader,
                chosen_pairs,
                (*shown, *automatic),
            )
        except OSError as exc:
            if exc.errno not in UNWRITABLE:
                raise  # a full disk keeps the CLI's own message; anything else is a bug
            where = exc.filename or directory
            raise UserError(f"cannot write the report to {where}: {exc.strerror}") from None
    return report


#: Errors that say the report's place cannot be written (a path a user chose), not a bug:
#: the permission check before writing cannot see all of them (root passes ``os.access`` on a
#: read-only pseudo file system; a file's name may already be taken by a directory).
UNWRITABLE = frozenset(
    {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOENT, errno.ENOTDIR, errno.EISDIR}
)


def _write_setting(
    runs: pd.DataFrame,
    directory: Path,
    prefix: str,
    command: str,
    formats: Sequence[str],
    plots_enabled: bool,
    report: CompareReport,
    reader: paired.OutcomeReader,
    pairs: Sequence[tuple[str, str]],
    shown: Sequence[variants.Variant],
) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    report.directories.append(directory)
    # variants join the per-method tables; the one-factor studies keep the runs as recorded
    refs = choose_references(variants.add_variants(runs, shown, strict=False))
    tests = paired.paired_tests(refs.instances, reader, pairs)
    runs = latest_per_point(runs)  # other SFT stages' evaluations serve the pairing only
    llm_runs = runs[~runs["family"].isin(WITHOUT_LLM)]
    named = llm_runs if len(llm_runs) else runs
    model, profile = str(named["model"].iloc[0]), str(named["profile"].iloc[0])
    page = pages.Page(command, model, profile, _hardware(runs))
    builders: list[tuple[str, Callable[[], tables.Table | str]]] = [
        ("table2_main", lambda: tables.main_table(refs, tests.marks())),
        ("table3_ablations", lambda: tables.ablation_table(refs)),
        ("fig3ab_relative_to_sft", lambda: figure3.relative_to_sft_table(refs)),
        ("fig3c_n_neg", lambda: parameter_study.study_table(runs, refs, "n_neg")),
        ("study_rho", lambda: parameter_study.study_table(runs, refs, "rho")),
        ("study_alpha", lambda: parameter_study.study_table(runs, refs, "alpha")),
        ("table5_training_time", lambda: cost_table.time_table(refs)),
        ("paired_tests", lambda: paired_report.paired_table(tests)),
        ("seed_spread", lambda: spread.seed_spread_table(refs)),
        ("sft_stages", lambda: stages.sft_stages_table(refs, reader)),
    ]
    for name, build in builders:
        built = build()
        plot_names = PLOTS_OF.get(name, ())
        if isinstance(built, str):
            report.skipped.append((prefix + name, built))
            page.skipped.append((name, built))
            stale = [directory / f"{name}.{fmt}" for fmt in formats]
            if plots_enabled:
                stale += [
                    directory / f"{p}.{ext}" for p in plot_names for ext in (*plots.FORMATS, "txt")
                ]
            _remove_stale(stale, report)
            continue
        header = [
            f"generated by: {command}",
            f"setting: model={model}, profile={profile}",
            f"hardware: {_hardware(built.runs)}",
        ]
        section = pages.Section(built, [], _hardware(built.runs))
        page.sections.append(section)
        for fmt in formats:
            text = writers.WRITERS[fmt](built, header)
            report.written.append(_write(directory / f"{name}.{fmt}", text))
            section.files.append(f"{name}.{fmt}")
        if plots_enabled and plot_names:
            figures = _figures(name, built)
            drawn = {figure.name for figure in figures}
            for figure in figures:
                written = plots.render(figure, directory, header)
                report.written += written
                section.figures.append(
                    pages.figure_of(figure.name, figure.title, figure.caption, written)
                )
            for missing in plot_names:
                if missing not in drawn:
                    report.skipped.append((prefix + missing, "no finite values to plot"))
                    page.skipped.append((missing, "no finite values to plot"))
                    _remove_stale(
                        [directory / f"{missing}.{ext}" for ext in (*plots.FORMATS, "txt")], report
                    )
    # the browsable page and the folder's README: what is here and how to make it again
    report.written += pages.write_pages(directory, page)


def _figures(name: str, table: tables.Table) -> list[plots.Plot]:
    if name == "fig3ab_relative_to_sft":
        return plots.relative_plots(table.data)
    parameter = name.removeprefix("study_") if name.startswith("study_") else "n_neg"
    return [plots.study_plot(table.data, parameter, name, STUDY_TITLES[parameter])]
