"""``recbench compare --variant``: a second configuration of a method as a row of its own.

The store is hand-made: SFT, SimS-DPO at its default 3 negatives and SimS-DPO with 19, two seeds
each, with known hits; the expected counts below are read off those sets, not computed by the
code under test.
"""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest
from conftest import assert_user_error

from recbench import results
from recbench.errors import UserError
from recbench.outcomes import Outcomes
from recbench.reports import compare
from recbench.reports.variants import base_method, parse_variants

N = 40
KEYS = [f"test:{i}" for i in range(N)]
SFT = set(range(10))
SIMS3 = set(range(12))  # SFT's 10 and 2 more
SIMS19 = set(range(2, 18))  # SFT's 10 less 2, and 8 more: 8 only here, 2 only in SFT
HARDWARE = {"machine": "x86_64", "cpu": "x86_64", "cpu_count": 2, "system": "Linux"}
DEFAULTS = {"beta": 1.0, "gamma": 0.0, "ln": False}  # sims_dpo's registered hyper-parameters


def _add(store: Path, method: str, family: str, seed: int, hits: set[int], hparams: dict) -> None:
    run = {
        "run_id": f"{method}-{hparams.get('n_neg', 0)}-{hparams.get('negatives')}-{seed}",
        "time": "2026-01-01T00:00:00+0000",
        "dataset": "lastfm",
        "method": method,
        "family": family,
        "model": "smollm2-135m",
        "seed": seed,
        "profile": "cpu",
        "hparams": hparams,
        "settings": {},
        "hardware": HARDWARE,
        "versions": {"python": "3.11", "recbench": "0.1.0"},
    }
    rows = {
        k: {"rank": 1 if i in hits else 2, "valid": True, "hit": i in hits}
        for i, k in enumerate(KEYS)
    }
    records = []
    for mode in ("generation", "ranking"):
        metrics = {"hr@1": len(hits) / N, "n_examples": N}
        if mode == "generation":
            metrics["valid_ratio"] = 1.0
        records += results.make_records(run, metrics, split="test", mode=mode)
    results.append_records(records, store, Outcomes(rows))


@pytest.fixture()
def store(tmp_path: Path) -> Path:
    path = tmp_path / "results.jsonl"
    for seed in (0, 1):
        _add(path, "sft", "llm_baseline", seed, SFT, {})
        _add(path, "sims_dpo", "loss", seed, SIMS3, {**DEFAULTS, "n_neg": 3})
        _add(path, "sims_dpo", "loss", seed, SIMS19, {**DEFAULTS, "n_neg": 19})
    return path


def _csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(path.read_text()), comment="#", dtype=str, keep_default_na=False)


def test_parse_variants_canonical_and_sorted():
    parsed = parse_variants(["sims_dpo: n_neg = 19", "napo:rho=0.5,ln=true", "sims_dpo:n_neg=19"])
    assert [v.label for v in parsed] == ["napo[ln=true,rho=0.5]", "sims_dpo[n_neg=19]"]
    assert parsed[0].settings == (("ln", True), ("rho", 0.5))
    assert parsed[1].text == "sims_dpo:n_neg=19"
    assert base_method("sims_dpo[n_neg=19]") == "sims_dpo" and base_method("sft") == "sft"


def test_variant_is_a_row_of_its_own_paired_with_sft_and_with_its_method(store, tmp_path):
    out = tmp_path / "with"
    compare(store, out, plots_enabled=False, variant_texts=["sims_dpo:n_neg=19"])
    header = (out / "table2_main.md").read_text().splitlines()[0]
    assert "--variant sims_dpo:n_neg=19" in header  # the committed command regenerates it

    table = _csv(out / "table2_main.csv")
    assert list(table["method"]) == ["sft", "sims_dpo", "sims_dpo[n_neg=19]"]
    hr = dict(zip(table["method"], table["hr1_mean"].astype(float), strict=True))
    assert hr["sims_dpo"] == pytest.approx(12 / N, abs=1e-9)
    assert hr["sims_dpo[n_neg=19]"] == pytest.approx(16 / N, abs=1e-9)

    tests = _csv(out / "paired_tests.csv")
    generation = tests[(tests["mode"] == "generation")]
    pairs = list(zip(generation["method_a"], generation["method_b"], strict=True))
    assert pairs == [("sims_dpo", "sft"), ("sims_dpo[n_neg=19]", "sft"),
                     ("sims_dpo[n_neg=19]", "sims_dpo")]  # fmt: skip
    nineteen = generation[generation["method_a"] == "sims_dpo[n_neg=19]"]
    vs_sft = nineteen[nineteen["method_b"] == "sft"].iloc[0]
    assert vs_sft["seed_a_only"] == "8;8" and vs_sft["seed_b_only"] == "2;2"
    # 19 negatives alone hit 12..17 (6); 3 negatives alone hit 0 and 1 (2)
    vs_three = nineteen[nineteen["method_b"] == "sims_dpo"].iloc[0]
    assert vs_three["seed_a_only"] == "6;6" and vs_three["seed_b_only"] == "2;2"
    three = generation[generation["method_a"] == "sims_dpo"].iloc[0]
    assert three["seed_a_only"] == "2;2" and three["seed_b_only"] == "0;0"


def test_variant_is_shown_once_where_its_method_has_no_default_run(tmp_path):
    path = tmp_path / "nineteen.jsonl"
    for seed in (0, 1):
        _add(path, "sft", "llm_baseline", seed, SFT, {})
        _add(path, "sims_dpo", "loss", seed, SIMS19, {**DEFAULTS, "n_neg": 19})
    out = tmp_path / "out"
    compare(path, out, plots_enabled=False, variant_texts=["sims_dpo:n_neg=19"])
    assert list(_csv(out / "table2_main.csv")["method"]) == ["sft", "sims_dpo[n_neg=19]"]
    assert "no run at the default" not in (out / "table2_main.md").read_text()
    tests = _csv(out / "paired_tests.csv")
    assert set(tests["method_a"]) == {"sims_dpo[n_neg=19]"}
    # without the variant, the method's row shows the 19-negative runs with a note saying so
    compare(path, tmp_path / "plain", plots_enabled=False)
    plain = (tmp_path / "plain" / "table2_main.md").read_text()
    assert "sims_dpo on lastfm: no run at the default hyper-parameters; shown: n_neg=19" in plain


def test_variant_leaves_the_one_factor_study_as_recorded(store, tmp_path):
    compare(store, tmp_path / "plain", plots_enabled=False)
    compare(store, tmp_path / "with", plots_enabled=False, variant_texts=["sims_dpo:n_neg=19"])
    plain, shown = (_csv(tmp_path / d / "fig3c_n_neg.csv") for d in ("plain", "with"))
    assert list(shown["method"]) == list(plain["method"]) == ["sims_dpo", "sims_dpo"]
    assert list(shown["n_neg"]) == list(plain["n_neg"]) == ["3", "19"]


def test_pair_may_name_a_variant(store, tmp_path):
    out = tmp_path / "r"
    compare(
        store,
        out,
        plots_enabled=False,
        pairs=["sims_dpo[n_neg=19]:sims_dpo"],
        variant_texts=["sims_dpo:n_neg=19"],
    )
    tests = _csv(out / "paired_tests.csv")
    assert set(zip(tests["method_a"], tests["method_b"], strict=True)) == {
        ("sims_dpo[n_neg=19]", "sims_dpo")
    }
    row = tests[tests["mode"] == "generation"].iloc[0]
    # 19 negatives alone hit 12..17 (6); 3 negatives alone hit 0 and 1 (2)
    assert row["seed_a_only"] == "6;6" and row["seed_b_only"] == "2;2"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("sims_dpo", "--variant takes METHOD:KEY=VALUE"),
        ("sims_dpo:n_neg", "--variant takes METHOD:KEY=VALUE"),
        ("simsdpo:n_neg=19", "did you mean 'sims_dpo'"),
        ("sims_dpo:nneg=19", "has no hyper-parameter 'nneg'"),
        ("sims_dpo:n_neg=7", "no run of sims_dpo has these hyper-parameters"),
        ("sims_dpo:n_neg=3", "defaults, which its own row already shows"),
    ],
)
def test_variant_mistakes_are_user_errors(store, tmp_path, text, needle):
    with pytest.raises(UserError, match=needle.replace("[", r"\[")):
        compare(store, tmp_path / "r", plots_enabled=False, variant_texts=[text])
    assert not (tmp_path / "r").exists()


def test_variant_mistake_on_the_command_line_is_one_line(store, tmp_path, cli):
    result = cli(
        "compare", "--results", str(store), "--out", str(tmp_path / "r"), "--variant", "x:n=1"
    )
    assert_user_error(result, "--variant x:n=1", "no runs of method 'x'")


HARD = set(range(3, 15))  # SFT's 10 less 0..2 (3 only in SFT), and 10..14 (5 only here)


@pytest.fixture()
def strategy_store(tmp_path: Path) -> Path:
    """SFT, S-DPO on its default random negatives, S-DPO on ``hard`` negatives (sdpo has
    sims_dpo's hyper-parameters, ``DEFAULTS``), two seeds each."""
    path = tmp_path / "strategies.jsonl"
    for seed in (0, 1):
        _add(path, "sft", "llm_baseline", seed, SFT, {})
        _add(path, "sdpo", "loss", seed, SIMS3, {**DEFAULTS, "n_neg": 3, "negatives": "random"})
        _add(path, "sdpo", "loss", seed, HARD, {**DEFAULTS, "n_neg": 3, "negatives": "hard"})
    return path


@pytest.mark.parametrize("asked", [False, True])
def test_a_negatives_strategy_is_a_row_of_its_own_without_being_asked_for(
    strategy_store, tmp_path, asked
):
    out = tmp_path / "r"
    given = ["sdpo:negatives=hard"] if asked else []
    compare(strategy_store, out, plots_enabled=False, variant_texts=given)
    header = (out / "table2_main.md").read_text().splitlines()[0]
    assert ("--variant" in header) == asked  # the store alone regenerates the automatic one

    table = _csv(out / "table2_main.csv")
    assert list(table["method"]) == ["sft", "sdpo", "sdpo[negatives=hard]"]
    hr = dict(zip(table["method"], table["hr1_mean"].astype(float), strict=True))
    assert hr["sdpo"] == pytest.approx(12 / N, abs=1e-9)
    assert hr["sdpo[negatives=hard]"] == pytest.approx(12 / N, abs=1e-9)

    tests = _csv(out / "paired_tests.csv")
    generation = tests[tests["mode"] == "generation"]
    pairs = list(zip(generation["method_a"], generation["method_b"], strict=True))
    assert pairs == [("sdpo", "sft"), ("sdpo[negatives=hard]", "sft"),
                     ("sdpo[negatives=hard]", "sdpo")]  # fmt: skip
    hard = generation[generation["method_a"] == "sdpo[negatives=hard]"]
    vs_random = hard[hard["method_b"] == "sdpo"].iloc[0]
    # hard alone hits 12..14 (3); random alone hits 0..2 (3)
    assert vs_random["seed_a_only"] == "3;3" and vs_random["seed_b_only"] == "3;3"
    vs_sft = hard[hard["method_b"] == "sft"].iloc[0]
    assert vs_sft["seed_a_only"] == "5;5" and vs_sft["seed_b_only"] == "3;3"
