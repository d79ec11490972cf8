"""The documentation's table of the study's paired tests (``docs/study.md``; in the README until
the README became a user's guide) says what the committed reports say."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest
from conftest import ROOT

PATH = ROOT / "benchmarks" / "study_readme_table.py"
spec = importlib.util.spec_from_file_location("study_readme_table", PATH)
readme_table = importlib.util.module_from_spec(spec)
spec.loader.exec_module(readme_table)


def test_the_study_page_table_matches_the_committed_paired_tests() -> None:
    assert readme_table.main(["--check", str(ROOT / "docs" / "study.md")]) == 0


def _row(**changes: object) -> pd.Series:
    row = {
        "dataset": "movielens",
        "mode": "generation",
        "method_a": "napo",
        "method_b": "sdpo",
        "seeds": 3,
        "diff_mean": 0.012333,
        "diff_low": -0.00291,
        "diff_high": 0.021700,
        "seed_diffs": "0.015000;0.014000;0.008000",
        "seed_p_holm": "0.5226;1;0.000712",
        "seed_p_users_holm": "0.6336;0.04499;nan",
        "detectable_diff": 0.028512,
        "verdict": "not separated at this power",
    }
    return pd.Series({**row, **changes})


def test_a_row_rounds_differences_to_thousandths_and_p_values_to_two_digits() -> None:
    assert readme_table._row(_row()) == (
        "| movielens | generation | napo − sdpo | 3 | +0.012 [−0.003, +0.022] "
        "| +0.015, +0.014, +0.008 | 0.52, 1, 7e-4 | 0.63, 0.045, – | 0.029 "
        "| not separated at this power |"
    )


def test_one_seed_is_one_training_run_without_an_interval() -> None:
    row = _row(seeds=1, diff_mean=0.026, seed_diffs="0.026000", seed_p_holm="0.026")
    row["seed_p_users_holm"] = "0.0812"
    cells = readme_table._row(row).split(" | ")
    assert cells[4:8] == ["+0.026 (one training run)", "+0.026", "0.026", "0.081"]


def test_a_pair_with_nothing_detectable_says_none() -> None:
    cells = readme_table._row(_row(detectable_diff=float("nan"))).split(" | ")
    assert cells[8] == "none"


def test_check_fails_on_a_stale_copy_and_write_repairs_it(tmp_path: Path) -> None:
    readme = tmp_path / "study.md"
    block = readme_table.table()
    readme.write_text(f"intro\n\n{block.replace('not separated', 'separated', 1)}\n\nrest\n")
    assert readme_table.main(["--check", str(readme)]) == 1
    assert readme_table.main(["--write", str(readme)]) == 0
    assert readme.read_text() == f"intro\n\n{block}\n\nrest\n"
    assert readme_table.main(["--check", str(readme)]) == 0


def test_a_page_without_the_markers_is_a_one_line_error(tmp_path: Path) -> None:
    readme = tmp_path / "study.md"
    readme.write_text("no table here\n")
    with pytest.raises(SystemExit, match="has no block between"):
        readme_table.main(["--check", str(readme)])
