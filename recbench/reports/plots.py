"""Seaborn figures of ``recbench compare``, rendered byte-for-byte reproducibly.

Reports are committed and must regenerate identically, so every source of variation in
matplotlib's output is pinned: figures are built without pyplot (no global figure state), inside
an ``rc_context`` that fixes the SVG hash salt (element ids), fonts and DPI; the date and creator
entries are dropped from the file metadata; seaborn never estimates intervals itself (its
bootstrap is random) -- the means and 95% intervals come precomputed from the tables.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib as mpl
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

RC = {
    "svg.hashsalt": "recbench-reports",
    "svg.fonttype": "path",
    "font.family": "DejaVu Sans",
    "figure.dpi": 100,
    "savefig.dpi": 120,
    "axes.unicode_minus": False,
}
FORMATS = ("png", "svg")
WHISKERS = (
    "Whiskers: 95% t interval over seeds of each seed's relative difference to that seed's SFT "
    "(none with fewer than two seeds); a whisker that crosses 0 is no evidence of a difference. "
    "Numbers in fig3ab_relative_to_sft."
)


@dataclass
class Plot:
    """A figure to draw: file stem, title, a caption that explains it, and its drawing code."""

    name: str
    title: str
    caption: str
    draw: Callable[[Figure], None]
    size: tuple[float, float]


def _palette(names: Sequence[str]) -> dict[str, tuple]:
    colours = sns.color_palette("colorblind", n_colors=max(1, len(names)))
    return dict(zip(names, colours, strict=False))


def render(plot: Plot, directory: Path, header: list[str]) -> list[Path]:
    """Draw ``plot`` and write PNG, SVG and a caption text file; returns the paths written."""
    description = " | ".join(header)
    written = []
    with mpl.rc_context(RC), sns.axes_style("whitegrid"), sns.plotting_context("paper"):
        mpl.rcParams.update(RC)  # seaborn's style contexts must not override the pinned keys
        figure = Figure(figsize=plot.size, layout="constrained")
        FigureCanvasAgg(figure)
        plot.draw(figure)
        figure.suptitle(plot.title)
        png = directory / f"{plot.name}.png"
        figure.savefig(png, format="png", metadata={"Software": None, "Description": description})
        svg = directory / f"{plot.name}.svg"
        figure.savefig(
            svg,
            format="svg",
            metadata={"Date": None, "Creator": None, "Description": description},
        )
        written += [png, svg]
    caption = directory / f"{plot.name}.txt"
    text = "\n".join([*header, "", plot.title, "", plot.caption]) + "\n"
    caption.write_text(text, encoding="utf-8", newline="\n")
    written.append(caption)
    return written


# ----------------------------------------------------------------------------- figures
def _bars(figure: Figure, data: pd.DataFrame, prefix: str, label: str) -> None:
    """Grouped bars (a group per method, a bar per dataset) of ``{prefix}_pct`` with a whisker
    from ``{prefix}_low`` to ``{prefix}_high`` where the table has that interval.

    Drawn with matplotlib rather than seaborn's barplot so that each whisker sits on its own
    bar; the whisker is drawn as a line, not as a symmetric error, because the interval over
    per-seed ratios need not be centred on the ratio of the means.
    """
    ax = figure.add_subplot()
    methods = list(dict.fromkeys(data["method"]))
    datasets = list(dict.fromkeys(data["dataset"]))
    palette = _palette(datasets)
    width = 0.8 / len(datasets)
    for j, dataset in enumerate(datasets):
        part = data[data["dataset"] == dataset]
        xs = [methods.index(m) - 0.4 + width * (j + 0.5) for m in part["method"]]
        ax.bar(xs, part[f"{prefix}_pct"], width, color=palette[dataset], label=dataset)
        for x, low, high in zip(xs, part[f"{prefix}_low"], part[f"{prefix}_high"], strict=True):
            if pd.notna(low) and pd.notna(high):
                ax.vlines(x, low, high, color="black", linewidth=0.9)
                ax.hlines([low, high], x - width / 4, x + width / 4, color="black", linewidth=0.9)
    if data[[f"{prefix}_low", f"{prefix}_high"]].isna().all(axis=None):
        ax.text(
            0.99, 0.02, "one training run per method: no interval over seeds",
            transform=ax.transAxes, ha="right", va="bottom", fontsize="small", color="dimgray",
        )  # fmt: skip
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(methods)), methods, rotation=30)
    ax.set_xlabel("")
    ax.set_ylabel(label)
    ax.legend(title="dataset")


def relative_plots(tidy: pd.DataFrame) -> list[Plot]:
    """Figure 3a (popularity bias vs SFT) and 3b (HR@1 vs SFT) as grouped bar plots."""
    out = []
    width = max(4.0, 0.6 * tidy["method"].nunique() * max(1, tidy["dataset"].nunique()) + 2)
    bias = tidy.dropna(subset=["rel_pop_bias_pct"])
    if not bias.empty:
        out.append(
            Plot(
                name="fig3a_popularity_bias",
                title="Popularity bias relative to SFT",
                caption="Bars: 100 (E - E_SFT) / |E_SFT| per method and dataset, where E is the mean "
                "popularity bias of valid generated recommendations (docs/data.md); lower is less "
                "popularity-biased. " + WHISKERS,
                draw=lambda f: _bars(f, bias, "rel_pop_bias", "popularity bias vs SFT (%)"),
                size=(width, 3.6),
            )
        )
    hr1 = tidy.dropna(subset=["rel_hr1_pct"])
    if not hr1.empty:
        out.append(
            Plot(
                name="fig3b_hr1_vs_sft",
                title="HR@1 relative to SFT",
                caption="Bars: 100 (HR@1 - HR@1_SFT) / HR@1_SFT per method and dataset "
                "(generation mode). " + WHISKERS,
                draw=lambda f: _bars(f, hr1, "rel_hr1", "HR@1 vs SFT (%)"),
                size=(width, 3.6),
            )
        )
    return out


def _line(ax: Axes, data: pd.DataFrame, x: str, prefix: str, palette: dict, legend: bool) -> None:
    """Mean curve per method with a shaded 95% interval (drawn from the table's bounds)."""
    sns.lineplot(
        data=data,
        x=x,
        y=f"{prefix}_mean",
        hue="method",
        hue_order=list(palette),
        palette=palette,
        marker="o",
        errorbar=None,
        ax=ax,
        legend=legend,
    )
    for method, colour in palette.items():
        part = data[data["method"] == method].sort_values(x)
        bounded = part.dropna(subset=[f"{prefix}_low", f"{prefix}_high"])
        if len(bounded):
            ax.fill_between(
                bounded[x].astype(float),
                bounded[f"{prefix}_low"],
                bounded[f"{prefix}_high"],
                color=colour,
                alpha=0.2,
                linewidth=0,
            )
    values = sorted(set(data[x]))
    ax.set_xticks(values)
    ax.set_xticklabels([_tick(v) for v in values])


def _tick(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def study_plot(tidy: pd.DataFrame, parameter: str, name: str, title: str) -> Plot:
    """Line plots across one hyper-parameter: a row per dataset, a column per measure.

    For n_neg (Figure 3c) the measures are HR@1, peak memory and training time; for rho and
    alpha, HR@1 and ValidRatio.
    """
    if parameter == "n_neg":
        panels = [
            ("hr1", "HR@1"),
            ("peak_memory_mb", "peak memory (MB)"),
            ("preference_seconds", "preference stage (s)"),
        ]
    else:
        panels = [("hr1", "HR@1"), ("valid_ratio", "ValidRatio")]
    datasets = list(dict.fromkeys(tidy["dataset"]))
    palette = _palette(list(dict.fromkeys(tidy["method"])))

    def draw(figure: Figure) -> None:
        axes = figure.subplots(len(datasets), len(panels), squeeze=False)
        for r, dataset in enumerate(datasets):
            data = tidy[tidy["dataset"] == dataset]
            here = {m: c for m, c in palette.items() if m in set(data["method"])}
            for c, (prefix, label) in enumerate(panels):
                ax = axes[r][c]
                shown = data.dropna(subset=[f"{prefix}_mean"])
                if shown.empty:
                    ax.set_axis_off()
                    continue
                legend_here = r == 0 and c == len(panels) - 1
                _line(ax, shown, parameter, prefix, here, legend_here)
                ax.set_xlabel(parameter)
                ax.set_ylabel(label)
                ax.set_title(dataset, fontsize="small")

    caption = (
        f"Mean over seeds across {parameter} (others at the loss defaults); shaded: 95% interval "
        "(t over seeds, or Wilson over test examples for a single seed's HR@1). "
        f"Numbers in {name}."
    )
    if parameter == "n_neg":
        caption += " Peak memory: CUDA allocator peak or the process's peak resident set on CPU."
    size = (3.2 * len(panels) + 1.2, 2.8 * len(datasets) + 0.6)
    return Plot(name=name, title=title, caption=caption, draw=draw, size=size)
