"""The table the `study` profile's settings were chosen from (validation split only).

Every run of ``reports/results/movielens-study-validation.jsonl`` (made by
``OMP_NUM_THREADS=1 recbench sweep --config benchmarks/experiments/study_validation.toml``) was scored on the same 500 validation examples.  Runs of
one method that differ only in ``--set`` settings are one column each here (``recbench compare``
would keep only the latest of them).  For each run: its settings, ranking HR@1 with a 95% Wilson
interval over the examples, and the paired difference from the pop rule and from the first SFT
variant with exact McNemar p-values, Holm-adjusted over the table.

    python benchmarks/study_validation_table.py --out reports/movielens-study-validation
"""

from __future__ import annotations

import argparse
from pathlib import Path

from recbench import results
from recbench.metrics import wilson_interval
from recbench.reports import pages
from recbench.reports.runs import describe_hardware
from recbench.reports.significance import holm, mcnemar_p

ROOT = Path(__file__).resolve().parent.parent
STORE = Path("reports/results/movielens-study-validation.jsonl")
SHOWN = ("sft_learning_rate", "history_items", "sft_examples")
TITLE = "Validation runs that chose the study profile's settings (movielens, seed 0)"
ABOUT = (
    "Rule baselines and SFT variants scored on the same 500 movielens validation examples, never "
    "test; the `study` profile's settings were read off this table."
)


def _runs(store: Path) -> list[dict]:
    runs = []
    for record in results.read_records(store):
        if record["mode"] == "ranking" and record["metric"] == "hr@1":
            overrides = (
                record["settings"]["config"]["overrides"] if record["method"] == "sft" else {}
            )
            label = record["method"] + "".join(
                f" {k}={overrides[k]}" for k in SHOWN if k in overrides
            )
            if record["family"] != "rule":  # trained in fp32 on one CPU, bf16 on another
                label += f" ({record['settings']['precision']}, {_cpu(record['hardware'])})"
            outcomes = results.read_outcomes(record, store)
            runs.append({"label": label, "hits": outcomes.hits("ranking"), "run": record["run_id"]})
    return runs


def _cpu(hardware: dict) -> str:
    """The CPU a run trained on, in a word: records before cpu_model existed were on the AVX2
    machine of the first validation runs."""
    if hardware.get("cpu_bf16"):
        return "bf16 CPU"
    return "AVX2 CPU" if "cpu_bf16" not in hardware else "CPU without bf16"


def _paired(a: dict, b: dict) -> tuple[str, float]:
    """The paired difference as "+d (A only/B only)" and its exact McNemar p-value."""
    if set(a["hits"]) != set(b["hits"]):
        raise SystemExit(f"{a['label']} and {b['label']} were scored on different examples")
    a_only = sum(a["hits"][k] and not b["hits"][k] for k in a["hits"])
    b_only = sum(b["hits"][k] and not a["hits"][k] for k in a["hits"])
    diff = (a_only - b_only) / len(a["hits"])
    return f"{diff:+.3f} ({a_only}/{b_only})", mcnemar_p(a_only, b_only)


def table(store: Path) -> list[str]:
    """The validation table as markdown lines."""
    runs = _runs(store)
    pop = next(r for r in runs if r["label"] == "pop")
    sfts = [r for r in runs if r["label"].startswith("sft")]
    first = sfts[0] if sfts else None
    cells, pvalues = [], []
    for run in runs:
        hits = list(run["hits"].values())
        low, high = wilson_interval(sum(hits), len(hits))
        row: list[object] = [run["label"], f"{sum(hits) / len(hits):.3f} [{low:.3f}, {high:.3f}]"]
        for reference in (pop, first):
            if reference is None or reference is run:
                row += ["", None]
                continue
            diff, p = _paired(run, reference)
            row += [diff, len(pvalues)]  # the p-value's index, adjusted below
            pvalues.append(p)
        cells.append(row)
    adjusted = holm(pvalues)
    lines = [
        (
            f"Validation runs of `{store.name}`: ranking HR@1 on the same {len(pop['hits'])} "
            "validation examples (movielens, seed 0), with the paired difference from the pop rule "
            "and from the first SFT variant (in brackets: examples only this run hits / only the other "
            "hits); exact McNemar p-values, Holm-adjusted over the table."
        ),
        "",
        (
            f"| run | HR@1 [95% Wilson] | vs pop | Holm p | vs {first['label'] if first else '-'} "
            "| Holm p |"
        ),
        "|---|---|---|---|---|---|",
    ]
    for row in cells:
        shown = [str(row[0]), str(row[1])]
        for diff, index in ((row[2], row[3]), (row[4], row[5])):
            shown += [str(diff), "" if index is None else f"{adjusted[index]:.3g}"]
        lines.append("| " + " | ".join(shown) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=STORE)
    parser.add_argument("--out", type=Path, required=True, help="folder for validation.md")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    store = args.results.resolve().relative_to(ROOT) if args.results.is_absolute() else args.results
    command = f"python benchmarks/study_validation_table.py --results {store} --out {args.out}"
    text = "\n".join([f"<!-- generated by: {command} -->", "", *table(args.results)]) + "\n"
    path = args.out / "validation.md"
    path.write_text(text)
    document = pages.document(path, "Ranking HR@1 of every validation run", _hardware(args.results))
    pages.write_script_pages(args.out, command, TITLE, ABOUT, [document])


def _hardware(store: Path) -> str:
    """Every machine the runs were scored on, as ``recbench compare`` lists them."""
    machines = {describe_hardware(r.get("hardware")) for r in results.read_records(store)}
    return "; ".join(sorted(machines))


if __name__ == "__main__":
    main()
