"""Markdown tables and a figure from the n_neg benchmark's CSVs (``benchmarks/bench_nneg.py``).

    python benchmarks/nneg_report.py benchmarks/results/nneg-*.csv --out reports/bench-nneg

For every CSV: ``<stem>.md`` (scorer packed vs plain, training step per loss with NAPO's
equivalent negatives, evaluation throughput, recbench vs TRL) and ``<stem>.png/svg`` (memory and
time across n_neg), each headed by this command and the hardware the CSV records; then
``index.html`` and ``README.md`` for the folder (:mod:`recbench.reports.pages`).  Output is
byte-identical for the same CSVs (figures through :func:`recbench.reports.plots.render`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from recbench.reports import pages, plots

ABOUT = (
    "Memory and time of recbench's candidate scorer and of one preference step as the number of "
    "negatives grows, with evaluation throughput and one DPO step against TRL: measured by "
    "`benchmarks/bench_nneg.py`, one section per CSV it wrote."
)


def _wide(df: pd.DataFrame) -> pd.DataFrame:
    keys = ["shape", "kind", "variant", "n_neg"]
    wide = df.pivot_table(index=keys, columns="metric", values="value", aggfunc="first")
    return wide.reset_index()


def _fmt(value: float, digits: int = 3) -> str:
    return "failed" if pd.isna(value) else f"{value:.{digits}f}"


def _share(fraction: float) -> str:
    """A fraction of the device's peak in %; n/a where the peak is unknown (a CPU)."""
    return "n/a" if pd.isna(fraction) else f"{100 * fraction:.1f}"


def _times(ratio: float) -> str:
    return "failed" if pd.isna(ratio) else f"{ratio:.1f}x"


def _row(cells: pd.DataFrame, variant: str) -> pd.Series:
    """The measurements of one variant; all NaN when the case failed (e.g. out of memory)."""
    found = cells[cells["variant"] == variant]
    if len(found):
        return found.iloc[0]
    return pd.Series({c: float("nan") for c in cells.columns})


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def markdown(df: pd.DataFrame, header: list[str]) -> str:
    wide = _wide(df)
    first = df.iloc[0]
    out = [f"<!-- {line} -->" for line in header]
    out += [
        "",
        f"### n_neg benchmark: {first['hardware']}",
        "",
        (
            f"Micro-batch of {first['batch']} lastfm training examples, {first['precision']}, "
            f"LoRA r={first['lora_r']}, median of {first['reps']} timed calls after one warm-up; "
            "memory = peak during the calls minus memory before (the step's own memory)."
        ),
    ]
    failed = df[df["metric"] == "failed"]
    for shape, part in wide.groupby("shape", sort=False):
        out += ["", f"#### {shape}", ""]
        for _, case in failed[failed["shape"] == shape].iterrows():
            out.append(f"Failed (the process was killed, out of memory): {case['kind']} "
                       f"{case['variant']} at n_neg={case['n_neg']}.")  # fmt: skip
            out.append("")
        scorer = part[part["kind"] == "scorer"]
        if len(scorer):
            rows = []
            for n, cell in scorer.groupby("n_neg"):
                packed = _row(cell, "packed")
                plain = _row(cell, "plain")
                rows.append([
                    str(n), _fmt(packed["seconds"]), _fmt(plain["seconds"]),
                    _times(plain["seconds"] / packed["seconds"]),
                    _fmt(packed["step_memory_mb"], 0), _fmt(plain["step_memory_mb"], 0),
                    _times(plain["step_memory_mb"] / packed["step_memory_mb"]),
                ])  # fmt: skip
            out += ["Scorer forward + backward, packed vs plain:", ""]
            out += _table(["n_neg", "packed s", "plain s", "plain / packed time", "packed MB",
                           "plain MB", "plain / packed memory"], rows)  # fmt: skip
            base = scorer[(scorer["variant"] == "packed") & (scorer["n_neg"] == 1)]
            top = scorer[(scorer["variant"] == "packed") & (scorer["n_neg"] == 15)]
            if len(base) and len(top):
                b, t = base.iloc[0], top.iloc[0]
                ratio = (
                    f"Packed at n_neg=15 relative to n_neg=1: time "
                    f"{t['seconds'] / b['seconds']:.2f}x, memory "
                    f"{t['step_memory_mb'] / b['step_memory_mb']:.2f}x."
                )
                out += ["", ratio]
        steps = part[part["kind"] == "step"]
        # throughput columns where the CSV has them (benchmarks/gpu_check.sh writes them)
        rates = "tokens_per_second" in steps.columns and steps["tokens_per_second"].notna().any()
        if len(steps):
            rows = []
            for (loss, n), cell in steps.groupby(["variant", "n_neg"], sort=False):
                c = cell.iloc[0]
                rows.append([loss, str(n), str(int(c["negatives_used"])),
                             str(int(c["equivalent_negatives"])), _fmt(c["seconds"]),
                             _fmt(c["step_memory_mb"], 0)])  # fmt: skip
                if rates:
                    rows[-1] += [_fmt(c["tokens_per_second"], 0),
                                 _share(c.get("flops_fraction", float("nan")))]  # fmt: skip
            note = (
                "One preference optimizer step (scorer + loss + backward + AdamW); NAPO shares "
                "the negatives of K = floor((b-1)·ρ) neighbours (ρ = 0.7), so K = 0 at b = 2:"
            )
            out += ["", note, ""]
            columns = ["loss", "n_neg", "negatives scored", "equivalent negatives n(1+K)",
                       "seconds", "step MB"]  # fmt: skip
            if rates:
                columns += ["tokens / s", "% of dense bf16 peak (4 FLOPs per parameter-token)"]
            out += _table(columns, rows)
        evals = part[part["kind"] == "eval"]
        if len(evals):
            rows = [[v, _fmt(c["examples_per_second"], 2), _fmt(c["step_memory_mb"], 0)]
                    for v, c in evals.set_index("variant").iterrows()]  # fmt: skip
            out += ["", "Evaluation throughput (20 candidates; generation: greedy, 20 new tokens):",
                    ""]  # fmt: skip
            out += _table(["mode", "examples / s", "peak MB over memory before"], rows)
        trl = part[part["kind"] == "trl"].set_index("variant")
        if "recbench" in trl.index:
            r = trl.loc["recbench"]
            rows = []
            for variant in ("trl", "trl-gc"):
                if variant in trl.index:
                    t = trl.loc[variant]
                    rows.append([variant, _fmt(t["seconds"]), _fmt(t["step_memory_mb"], 0),
                                 _fmt(t["seconds"] / r["seconds"], 2) + "x",
                                 _fmt(t["step_memory_mb"] / r["step_memory_mb"], 2) + "x"])  # fmt: skip
            rows.insert(0, ["recbench", _fmt(r["seconds"]), _fmt(r["step_memory_mb"], 0), "1x",
                            "1x"])  # fmt: skip
            title = (
                "One DPO step, recbench vs TRL DPOTrainer (same model, batch, LoRA; "
                "trl-gc = TRL's default gradient checkpointing):"
            )
            out += ["", title, ""]
            out += _table(["trainer", "seconds", "step MB", "time vs recbench",
                           "memory vs recbench"], rows)  # fmt: skip
    return "\n".join(out) + "\n"


def figure(df: pd.DataFrame, stem: str) -> plots.Plot:
    wide = _wide(df)
    scorer = wide[wide["kind"] == "scorer"]
    steps = wide[(wide["kind"] == "step") & wide["variant"].isin(["dpo", "sdpo", "napo"])]

    def draw(fig) -> None:
        import seaborn as sns

        left, right = fig.subplots(1, 2)
        sns.lineplot(data=scorer, x="n_neg", y="step_memory_mb", hue="shape", style="variant",
                     markers=True, ax=left, errorbar=None)  # fmt: skip
        left.set(yscale="log", xlabel="negatives per example", ylabel="scorer step memory (MB)",
                 title="packed vs plain scorer")  # fmt: skip
        sns.lineplot(data=steps, x="n_neg", y="step_memory_mb", hue="shape", style="variant",
                     markers=True, ax=right, errorbar=None)  # fmt: skip
        right.set(yscale="log", xlabel="negatives per example", ylabel="training step memory (MB)",
                  title="DPO / S-DPO / NAPO step")  # fmt: skip

    return plots.Plot(
        name=stem,
        title=f"Memory across n_neg ({df['hardware'].iloc[0]})",
        caption=(
            "Left: forward+backward memory of the candidate scorer, packed (prompt once) vs "
            "plain (one sequence per response). Right: memory of one preference step; DPO "
            "scores one negative whatever n_neg is; NAPO shares negatives in the batch at the "
            "cost of S-DPO (its pool is n(1+K), see the table)."
        ),
        draw=draw,
        size=(10.0, 4.0),
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("csvs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "bench-nneg")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    shown = [p.as_posix() for p in args.csvs]
    out_shown = args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out
    command = f"python benchmarks/nneg_report.py {' '.join(shown)} --out {out_shown}"
    documents = []
    for path in args.csvs:
        df = pd.read_csv(path)
        hardware = df["hardware"].iloc[0]
        header = [f"generated by: {command}", f"from: {path.as_posix()}", f"hardware: {hardware}"]
        table = args.out / f"{path.stem}.md"
        table.write_text(markdown(df, header), encoding="utf-8")
        drawn = figure(df, path.stem)
        written = plots.render(drawn, args.out, header)
        shown = pages.figure_of(drawn.name, drawn.title, drawn.caption, written)
        title = f"{path.name}: {hardware}"
        documents.append(pages.document(table, title, hardware, [shown]))
        print(f"wrote {args.out / path.stem}.md/.png/.svg")
    pages.write_script_pages(args.out, command, "n_neg benchmark", ABOUT, documents)
    print(f"wrote {args.out / pages.INDEX} and {args.out / pages.README}")


if __name__ == "__main__":
    main()
