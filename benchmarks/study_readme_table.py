"""The documentation's table of the study's paired tests, written from the committed reports.

The study's page of the documentation (``docs/study.md``; the table lived in the README before
the README became a user's guide, hence this script's name) quotes every comparison of
``reports/<dataset>-study/paired_tests.csv`` (the file ``recbench compare`` writes from the
committed store).  Holm's adjustment runs over all the comparisons of a table, so each run that
joins the store moves the adjusted p-values of every other comparison: a hand-copied table goes
stale without anyone noticing.  This script writes the table between the page's markers, and
``--check`` (run by tests/test_readme_study_table.py) fails when the page's copy differs from
what the committed reports say.

    python benchmarks/study_readme_table.py --write docs/study.md
    python benchmarks/study_readme_table.py --check docs/study.md
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
DATASETS = ("movielens", "lastfm")
BEGIN = (
    "<!-- study-paired-tests: begin "
    "(python benchmarks/study_readme_table.py --write docs/study.md) -->"
)
PER_SEED = ("seed_diffs", "seed_p_holm", "seed_p_users_holm")  # one seed reads as a float
END = "<!-- study-paired-tests: end -->"
HEADER = (
    "| dataset | mode | A − B | seeds | HR@1 A − B [95% over seeds] | per seed | "
    "McNemar Holm p | by user Holm p | detectable (80%) | verdict |\n"
    "|---|---|---|---|---|---|---|---|---|---|"
)


def _signed(value: float) -> str:
    return f"{value:+.3f}".replace("-", "−")


def _p(value: str) -> str:
    """An adjusted p-value to two significant digits, in exponent form below 0.001."""
    number = float(value)
    if math.isnan(number):
        return "–"
    return f"{number:.2g}" if number >= 0.001 else f"{number:.0e}".replace("e-0", "e-")


def _seeds(cell: str, format_one: Callable[[str], str]) -> str:
    return ", ".join(format_one(part) for part in cell.split(";"))


def _row(row: pd.Series) -> str:
    difference = _signed(row["diff_mean"])
    if row["seeds"] > 1:
        difference += f" [{_signed(row['diff_low'])}, {_signed(row['diff_high'])}]"
    else:
        difference += " (one training run)"
    cells = [
        row["dataset"],
        row["mode"],
        f"{row['method_a']} − {row['method_b']}",
        str(row["seeds"]),
        difference,
        _seeds(row["seed_diffs"], lambda part: _signed(float(part))),
        _seeds(row["seed_p_holm"], _p),
        _seeds(row["seed_p_users_holm"], _p),
        _detectable(row["detectable_diff"]),
        row["verdict"],
    ]
    return "| " + " | ".join(cells) + " |"


def _detectable(value: float) -> str:
    """NaN: the pair disagrees on too few examples for any difference to reach 80% power."""
    return "none" if math.isnan(value) else f"{value:.3f}"


def table(root: Path = ROOT) -> str:
    """The page's block: markers, the table, and the command each dataset's report came from."""
    lines = [BEGIN, HEADER]
    sources = []
    for dataset in DATASETS:
        path = root / "reports" / f"{dataset}-study" / "paired_tests.csv"
        if path.exists():
            frame = pd.read_csv(path, comment="#", dtype=dict.fromkeys(PER_SEED, str))
            lines += [_row(row) for _, row in frame.iterrows()]
            sources.append(f"`{path.relative_to(root)}`")
    lines += ["", f"From {', '.join(sources)}.", END]
    return "\n".join(lines)


def page_block_main(
    argv: list[str] | None, doc: str, begin: str, end: str, block: Callable[[], str], what: str
) -> int:
    """``--write PAGE`` puts ``block()`` between the page's markers; ``--check PAGE`` exits 1
    when the page's copy differs, naming ``what`` and the command that repairs it (the
    ``--write`` of the script whose ``doc`` this is)."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write", type=Path, metavar="PAGE", help="replace the block in it")
    action.add_argument("--check", type=Path, metavar="PAGE", help="exit 1 if it is stale")
    args = parser.parse_args(argv)
    page = args.write or args.check
    text = page.read_text()
    start, stop = text.find(begin), text.find(end)
    if start < 0 or stop < start:
        raise SystemExit(f"error: the page has no block between {begin!r} and {end!r}")
    fresh = text[:start] + block() + text[stop + len(end) :]
    if args.write:
        page.write_text(fresh)
        return 0
    if fresh != text:
        script = next(line.split()[1] for line in doc.splitlines() if "--write" in line)
        print(f"{page}: {what} is stale; run python {script} --write {page}")
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    return page_block_main(
        argv, __doc__, BEGIN, END, table, "its table of the study's paired tests"
    )


if __name__ == "__main__":
    sys.exit(main())
