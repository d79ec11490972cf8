"""The study page's field table (issue 35) says what the committed reports say, one row per
method of the field's experiment file, with "not run yet" where nothing is recorded."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))  # field_table imports study_readme_table
spec = importlib.util.spec_from_file_location("field_table", ROOT / "benchmarks" / "field_table.py")
field_table = importlib.util.module_from_spec(spec)
spec.loader.exec_module(field_table)


def test_the_study_page_field_table_matches_the_committed_reports() -> None:
    assert field_table.main(["--check", str(ROOT / "docs" / "study.md")]) == 0


def test_the_rows_are_the_experiment_files_methods_in_its_order(tmp_path: Path) -> None:
    experiment = tmp_path / "field.toml"
    experiment.write_text(
        '[defaults]\ndataset = "lastfm"\nprofile = "smoke"\n'
        '[[grid]]\nname = "a"\nloss = ["dmpo", "beta_dpo"]\n'
        '[[grid]]\nname = "b"\nloss = "sdpo"\nnegatives = ["random", "hard", "self"]\n'
        '[[grid]]\nname = "c"\nbaseline = "sprec"\n'
        '[[grid]]\nname = "d"\nseed = 1\nloss = ["dmpo"]\n'
    )
    assert field_table.field_methods(experiment) == [
        "dmpo", "beta_dpo", "sdpo", "sdpo[negatives=hard]", "sdpo[negatives=self]", "sprec"]  # fmt: skip


def _table2(**changes: object) -> pd.DataFrame:
    line = {"method": "dmpo", "seeds": 1, "hr1_mean": 0.362, "hr1_low": 0.3328,
            "hr1_high": 0.39234, "valid_ratio_mean": 0.972, "ranking_hr1_mean": 0.37,
            "ranking_hr1_low": 0.3406, "ranking_hr1_high": 0.4004}  # fmt: skip
    return pd.DataFrame([{**line, **changes}])


def _tests() -> pd.DataFrame:
    rows = [("generation", "sft", 0.003, 0.03218, "not separated at this power"),
            ("ranking", "sft", 0.004, 0.0302, "not separated at this power"),
            ("generation", "sdpo", -0.011, 0.06869, "not separated at this power"),
            ("ranking", "sdpo", -0.0094, float("nan"), "separated")]  # fmt: skip
    columns = ("mode", "method_b", "diff_mean", "detectable_diff", "verdict")
    return pd.DataFrame([{"method_a": "dmpo", **dict(zip(columns, r, strict=True))} for r in rows])


def test_a_row_shows_the_runs_numbers_and_each_comparison_in_both_modes() -> None:
    assert field_table.row("dmpo", _table2(), _tests()) == (
        "| dmpo | 1 | 0.362 [0.333, 0.392] | 0.972 | 0.370 [0.341, 0.400] | "
        "− sft: +0.003 / +0.004 (detectable 0.032 / 0.030), not separated at this power; "
        "− sdpo: −0.011 / −0.009 (detectable 0.069 / –), not separated at this power / separated |"
    )


def test_a_method_without_runs_says_so_and_no_validity_reads_as_a_dash() -> None:
    assert field_table.row("mppo", _table2(), _tests()) == "| mppo | 0 | not run yet | | | |"
    cells = field_table.row("dmpo", _table2(valid_ratio_mean=float("nan")), _tests()).split(" | ")
    assert cells[3] == "–"


def test_a_page_without_the_markers_is_an_error(tmp_path: Path) -> None:
    page = tmp_path / "study.md"
    page.write_text("nothing here\n")
    with pytest.raises(SystemExit, match="has no block between"):
        field_table.main(["--check", str(page)])
