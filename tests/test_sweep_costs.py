"""A dry run's cost estimates (recbench.sweep_costs) on hand-made cost records."""

from __future__ import annotations

from pathlib import Path

import pytest

from recbench import results
from recbench.config import RunConfig
from recbench.pipeline import sft_stage_dir
from recbench.sweep import SweepSpec, load_experiment, run_experiment, run_sweep
from recbench.sweep_costs import CostBook, duration, run_costs, summary

HERE = {"cpu_model": "Xeon", "cpu_count": 2, "torch_threads": 2, "cpu_bf16": True}
ELSEWHERE = {**HERE, "cpu_model": "EPYC", "cpu_bf16": False}


def cost_records(
    method: str, seed: int, seconds: dict, hardware: dict = HERE, n_neg: int | None = 3,
    dataset: str = "lastfm", family: str = "loss",
) -> list[dict]:  # fmt: skip
    run = {
        "run_id": f"{method}-{seed}-{n_neg}-{hardware['cpu_model']}-{sorted(seconds.items())}",
        "dataset": dataset, "method": method, "family": family, "model": "smollm2-135m",
        "seed": seed, "profile": "study", "hparams": {} if n_neg is None else {"n_neg": n_neg},
        "hardware": hardware, "versions": {},
    }  # fmt: skip
    return results.make_records(run, seconds, split="train", mode="cost")


def config(method: str, seed: int, **changes) -> RunConfig:
    kind = "baseline" if method == "sft" else "loss"
    return RunConfig(dataset="lastfm", profile="study", seed=seed, **{kind: method}, **changes)


SFT_RUN = {"sft_seconds": 1400.0, "eval_ranking_seconds": 800.0, "eval_generation_seconds": 500.0}
SDPO_RUNS = [  # preference + evaluation: 2000 s and 2200 s (median 2100 s = 35 min)
    {"sft_seconds": 1400.0, "preference_seconds": 700.0, "eval_ranking_seconds": 800.0,
     "eval_generation_seconds": 500.0},
    {"sft_seconds": 1400.0, "preference_seconds": 900.0, "eval_ranking_seconds": 800.0,
     "eval_generation_seconds": 500.0},
]  # fmt: skip


@pytest.fixture()
def records() -> list[dict]:
    out = cost_records("sft", 0, SFT_RUN, n_neg=None, family="llm_baseline")
    for seed, seconds in enumerate(SDPO_RUNS):
        out += cost_records("sdpo", seed, seconds)
    # the same run on a slower CPU must not count
    out += cost_records("sdpo", 2, {k: 10 * v for k, v in SDPO_RUNS[0].items()}, ELSEWHERE)
    return out


def test_a_loss_run_pays_its_stages_but_not_the_sft_stage_it_copied(records):
    costs = {(c.method, c.seed, c.hardware[0]): c.seconds for c in run_costs(records)}
    assert costs[("sft", 0, "Xeon")] == pytest.approx(2700.0, abs=1e-9)
    assert costs[("sdpo", 0, "Xeon")] == pytest.approx(2000.0, abs=1e-9)
    assert costs[("sdpo", 1, "Xeon")] == pytest.approx(2200.0, abs=1e-9)


def built(_config: RunConfig) -> bool:
    return True  # every seed's SFT stage is built here


def test_median_of_like_runs_on_this_hardware_and_sft_charged_once_per_seed(records):
    book = CostBook(records, HERE, built)
    # seed 0 has its sft run: the median of the two Xeon S-DPO runs only (the EPYC one is 10x)
    seconds, note = book.estimate(config("sdpo", 0))
    assert seconds == pytest.approx(2100.0, abs=1e-9)
    assert note == "about 35 min, as 2 recorded runs of sdpo n_neg 3"
    # seed 1 has no sft run: one SFT run (2700 s) is added, for its first point only
    seconds, note = book.estimate(config("sdpo", 1))
    assert seconds == pytest.approx(2100.0 + 2700.0, abs=1e-9) and note.endswith("SFT run")
    seconds, _ = book.estimate(config("sdpo", 1))
    assert seconds == pytest.approx(2100.0, abs=1e-9)


def test_a_recorded_seed_whose_stage_is_not_built_here_pays_its_sft_run(records):
    """A committed store carries SFT records but not their stages: on a fresh machine the
    seed's stage is trained (and evaluated) again."""
    book = CostBook(records, HERE, lambda c: c.seed != 0)
    seconds, note = book.estimate(config("sdpo", 0))
    assert seconds == pytest.approx(2100.0 + 2700.0, abs=1e-9) and note.endswith("SFT run")
    seconds, _ = book.estimate(config("napo", 0))  # once per seed
    assert seconds == pytest.approx(2100.0, abs=1e-9)


def test_another_loss_with_the_same_n_neg_stands_in_and_says_so(records):
    book = CostBook(records, HERE, built)
    seconds, note = book.estimate(config("napo", 0))
    assert seconds == pytest.approx(2100.0, abs=1e-9)
    assert "other losses with n_neg 3" in note
    seconds, note = book.estimate(config("sims_dpo", 0, n_neg=19))
    assert seconds is None and note.startswith("no estimate")


def test_nothing_on_this_hardware_gives_no_estimate(records):
    book = CostBook(records, {**HERE, "torch_threads": 1}, built)
    seconds, note = book.estimate(config("sdpo", 0))
    assert seconds is None and "on this hardware" in note


def test_durations_and_the_total_line():
    assert duration(2100) == "35 min" and duration(11520) == "3.2 h"
    assert summary([2100.0, 3000.0]) == (
        "to run: about 85 min by the store's cost records on this hardware"
    )
    assert summary([2100.0, None]).endswith("(1 of 2 points without an estimate)")
    assert summary([None]).startswith("to run: no estimate")
    assert summary([]) == ""


def test_dry_run_prints_each_estimate(tmp_path: Path, recbench_home, records, monkeypatch):
    store = tmp_path / "results.jsonl"
    results.append_records(records, store)
    monkeypatch.setattr(results, "hardware", lambda: dict(HERE))
    spec = SweepSpec.grid(losses=("napo",), datasets=("lastfm",), seeds=(0, 1),
                          profile="study", results=store)  # fmt: skip
    lines: list[str] = []
    # seed 0's stage is built here (a finished stage directory), seed 1's is not
    done = sft_stage_dir(config("napo", 0).validate()) / "final" / "done.json"
    done.parent.mkdir(parents=True)
    done.write_text("{}\n")
    outcome = run_sweep(spec, dry_run=True, report=lines.append)
    assert outcome.count("todo") == 2
    assert lines[0] == (
        "[1/2] lastfm napo seed=0: to run (about 35 min, as 2 recorded runs of other losses "
        "with n_neg 3)"
    )
    assert lines[1].endswith("(about 80 min, as 2 recorded runs of other losses with n_neg 3 "
                             "+ the seed's SFT run)")  # fmt: skip
    # 2100 s + (2100 s + 2700 s) = 6900 s
    assert outcome.estimate() == "to run: about 1.9 h by the store's cost records on this hardware"


def test_an_experiments_grids_charge_a_seeds_sft_run_once(
    tmp_path: Path, recbench_home, records, monkeypatch
):
    """Two grids of one seed (the field study's losses and negatives): the seed's SFT stage is
    trained for the first and serves the second, so only the first pays for it."""
    store = tmp_path / "results.jsonl"
    results.append_records(records, store)
    monkeypatch.setattr(results, "hardware", lambda: dict(HERE))
    experiment = tmp_path / "two.toml"
    experiment.write_text(
        f'[defaults]\ndataset = "lastfm"\nprofile = "study"\nresults = "{store}"\nseed = 1\n'
        '[[grid]]\nname = "losses"\nloss = "napo"\n[[grid]]\nname = "negatives"\n'
        'loss = "sdpo"\nnegatives = "hard"\n'
    )
    lines: list[str] = []
    outcome = run_experiment(load_experiment(experiment), dry_run=True, report=lines.append)
    points = [line for line in lines if line.startswith("[")]
    assert points[0].endswith("+ the seed's SFT run)")  # napo: 2100 s + 2700 s
    assert points[1].endswith("(about 35 min, as 2 recorded runs of sdpo n_neg 3)")
    # 4800 s + 2100 s = 6900 s; charging the SFT run again would make it 9600 s (2.7 h)
    assert outcome.estimate() == "to run: about 1.9 h by the store's cost records on this hardware"
