"""The field's table (issue 35) on the study page, written from the committed movielens reports.

One row per method of ``benchmarks/experiments/field_study.toml`` (a loss, a loss on a negatives
strategy as ``sdpo[negatives=hard]``, a baseline), in the file's order: its seeds, HR@1 in
generation with its 95% interval, ValidRatio, HR@1 in ranking, and its default paired tests
(against SFT, and against the loss it modifies or the loss on random negatives): the difference
in generation / ranking, the difference each test could detect, and the verdict.  A method with no recorded run says so, so the table
shows how far the study has run.  Everything comes from ``reports/movielens-study/table2_main.csv``
and ``paired_tests.csv``; ``--check`` (tests/test_field_table.py) fails when the page's copy
differs from them.

    python benchmarks/field_table.py --write docs/study.md
    python benchmarks/field_table.py --check docs/study.md
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
from study_readme_table import _signed, page_block_main

ROOT = Path(__file__).resolve().parent.parent
EXPERIMENT = ROOT / "benchmarks" / "experiments" / "field_study.toml"
REPORT = ROOT / "reports" / "movielens-study"
BEGIN = "<!-- study-field-table: begin (python benchmarks/field_table.py --write docs/study.md) -->"
END = "<!-- study-field-table: end -->"
HEADER = (
    "| method | seeds | HR@1 generation [95%] | ValidRatio | HR@1 ranking | paired tests: "
    "A − B in generation / ranking (detectable), verdict |\n|---|---|---|---|---|---|"
)


def field_methods(path: Path = EXPERIMENT) -> list[str]:
    """The methods the experiment file runs, as the reports label them, in the file's order."""
    from recbench.sweep import load_experiment

    labels: list[str] = []
    for grid in load_experiment(path):
        options = grid.options
        for method in (*options.loss, *options.baseline):
            strategies = options.negatives if method in options.loss else ()
            for strategy in strategies or (None,):
                label = (
                    method if strategy in (None, "random") else f"{method}[negatives={strategy}]"
                )
                if label not in labels:
                    labels.append(label)
    return labels


def _interval(row: pd.Series, prefix: str) -> str:
    return f"{row[f'{prefix}_mean']:.3f} [{row[f'{prefix}_low']:.3f}, {row[f'{prefix}_high']:.3f}]"


def _tests(tests: pd.DataFrame, method: str) -> str:
    """Each default comparison of ``method``: B, the differences in both modes, the verdict(s)."""
    mine = tests[tests["method_a"] == method]
    parts = []
    for other in dict.fromkeys(mine["method_b"]):
        pair = mine[mine["method_b"] == other].set_index("mode")
        modes = ("generation", "ranking")
        diffs = " / ".join(
            _signed(pair.loc[mode, "diff_mean"]) if mode in pair.index else "–" for mode in modes
        )
        detectable = " / ".join(
            f"{pair.loc[mode, 'detectable_diff']:.3f}"
            if mode in pair.index and pd.notna(pair.loc[mode, "detectable_diff"])
            else "–"
            for mode in modes
        )
        verdicts = list(dict.fromkeys(pair["verdict"]))
        parts.append(f"− {other}: {diffs} (detectable {detectable}), {' / '.join(verdicts)}")
    return "; ".join(parts) or "–"


def row(method: str, table2: pd.DataFrame, tests: pd.DataFrame) -> str:
    """One method's line of the table ("not run yet" where the store has no run of it)."""
    found = table2[table2["method"] == method]
    if found.empty:
        return f"| {method} | 0 | not run yet | | | |"
    line = found.iloc[0]
    valid = f"{line['valid_ratio_mean']:.3f}" if pd.notna(line["valid_ratio_mean"]) else "–"
    cells = [method, str(line["seeds"]), _interval(line, "hr1"), valid,
             _interval(line, "ranking_hr1"), _tests(tests, method)]  # fmt: skip
    return "| " + " | ".join(cells) + " |"


def table(root: Path = ROOT) -> str:
    """The page's block: markers, the table and where its numbers come from."""
    report = root / REPORT.relative_to(ROOT)
    table2 = pd.read_csv(report / "table2_main.csv", comment="#")
    tests = pd.read_csv(report / "paired_tests.csv", comment="#")
    table2 = table2[table2["dataset"] == "movielens"]
    tests = tests[tests["dataset"] == "movielens"]
    rows = [
        row(method, table2, tests) for method in field_methods(root / EXPERIMENT.relative_to(ROOT))
    ]
    source = f"`{(report / 'table2_main.csv').relative_to(root)}`, `{(report / 'paired_tests.csv').relative_to(root)}`"
    note = (
        f"From {source}. Intervals: Student's t over seeds, or with one seed the Wilson interval "
        "over the 1,000 test examples; verdicts as in the paired tests below (Holm over every "
        "comparison of the study's mode). Detectable: the difference one seed's test would "
        "separate with 80% power at the strictest Holm level; about twice the usual where the "
        "two runs started from two trainings of the seed's SFT stage (`paired_tests.md` notes "
        "those seeds)."
    )
    return "\n".join([BEGIN, HEADER, *rows, "", note, END])


def main(argv: list[str] | None = None) -> int:
    return page_block_main(argv, __doc__, BEGIN, END, table, "its field table")


if __name__ == "__main__":
    sys.exit(main())
