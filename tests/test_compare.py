"""``recbench compare`` on synthetic result records: numbers, intervals, filters, determinism.

Expected values are recomputed here from the synthetic inputs with the textbook formulas (mean,
sample standard deviation, Student's t critical values from printed tables, the Wilson score
interval), independently of ``recbench.reports``.
"""

from __future__ import annotations

import io
import json
import math
import statistics
from pathlib import Path

import pandas as pd
import pytest
from conftest import assert_user_error

from recbench import results
from recbench.errors import UserError
from recbench.reports import compare
from recbench.reports.stats import estimate, t_quantile

HARDWARE = {"machine": "x86_64", "cpu": "x86_64", "cpu_count": 2, "system": "Linux"}
VERSIONS = {"python": "3.11", "recbench": "0.1.0"}
T975 = {1: 12.706204736, 2: 4.302652730, 3: 3.182446305, 4: 2.776445105}  # printed tables
N_TEST = 500
NAPO = {"beta": 1.0, "gamma": 1.0, "alpha": 0.3, "rho": 0.7, "momentum": 0.9}
SDPO = {"beta": 1.0, "gamma": 0.0, "ln": False}

# (dataset, method, family, hparams, seed) -> generation hr@1, valid, pop_bias; ranking hr@1; cost
LASTFM_NAPO_HR1 = [0.50, 0.54, 0.46]
LASTFM_SFT_HR1 = [0.40, 0.42, 0.38]
LASTFM_SASREC_HR1 = [0.30, 0.34, 0.35]
ZERO_SHOT_HR1 = 0.04


def _run(
    store: Path,
    dataset: str,
    method: str,
    family: str,
    seed: int,
    hparams: dict,
    generation: dict | None,
    ranking: dict,
    cost: dict | None = None,
    model: str = "smollm2-135m",
    profile: str = "cpu",
    run_id: str | None = None,
    hardware: dict | None = None,
) -> None:
    run = {
        "run_id": run_id or f"{dataset}-{method}-{profile}-{seed}-{json.dumps(hparams)}",
        "time": "2026-01-01T00:00:00+0000",
        "dataset": dataset,
        "method": method,
        "family": family,
        "model": model,
        "seed": seed,
        "profile": profile,
        "hparams": hparams,
        "settings": {},
        "hardware": hardware or HARDWARE,
        "versions": VERSIONS,
    }
    records = []
    if generation is not None:
        records += results.make_records(
            run, {**generation, "n_examples": N_TEST}, split="test", mode="generation"
        )
    records += results.make_records(
        run, {**ranking, "n_examples": N_TEST}, split="test", mode="ranking"
    )
    if cost:
        records += results.make_records(run, cost, split="train", mode="cost")
    results.append_records(records, store)


def napo_hparams(**changes: object) -> dict:
    return {**NAPO, "n_neg": 3, **changes}


def write_store(store: Path) -> Path:
    """A small store: lastfm with baselines, SFT, NAPO (+ sweeps), S-DPO, an ablation; steam."""
    for seed, value in enumerate(LASTFM_SASREC_HR1):
        _run(
            store,
            "lastfm",
            "sasrec",
            "sequential",
            seed,
            {"hidden_size": 64},
            None,
            {"hr@1": value, "pop_bias": 0.1},
        )
    _run(
        store,
        "lastfm",
        "zero_shot",
        "llm_baseline",
        0,
        {},
        {"hr@1": ZERO_SHOT_HR1, "valid_ratio": 0.3, "pop_bias": 0.5},
        {"hr@1": 0.06},
    )
    for seed, value in enumerate(LASTFM_SFT_HR1):
        _run(
            store,
            "lastfm",
            "sft",
            "llm_baseline",
            seed,
            {},
            {"hr@1": value, "valid_ratio": 0.9, "pop_bias": 0.8 - 0.1 * seed},
            {"hr@1": value + 0.05},
            {"sft_seconds": 100.0 + seed, "peak_memory_mb": 900.0},
        )
    for seed, value in enumerate(LASTFM_NAPO_HR1):
        _run(
            store,
            "lastfm",
            "napo",
            "loss",
            seed,
            napo_hparams(),
            {"hr@1": value, "valid_ratio": 0.95 + 0.01 * seed, "pop_bias": 0.4},
            {"hr@1": value + 0.02},
            {
                "sft_seconds": 100.0,
                "preference_seconds": 200.0 + 10 * seed,
                "peak_memory_mb": 1000.0 + seed,
                "cpu_utilisation": 0.9 - 0.05 * seed,
            },
        )
    for n_neg, value in ((1, 0.44), (7, 0.52)):
        for seed in (0, 1):
            _run(
                store,
                "lastfm",
                "napo",
                "loss",
                seed,
                napo_hparams(n_neg=n_neg),
                {"hr@1": value + 0.01 * seed, "valid_ratio": 0.9, "pop_bias": 0.4},
                {"hr@1": value},
                {
                    "sft_seconds": 100.0,
                    "preference_seconds": 50.0 * n_neg,
                    "peak_memory_mb": 500.0 + 100 * n_neg,
                },
            )
    for rho in (0.1, 0.3):
        _run(
            store,
            "lastfm",
            "napo",
            "loss",
            0,
            napo_hparams(rho=rho),
            {"hr@1": 0.4 + rho / 10, "valid_ratio": 0.9, "pop_bias": 0.4},
            {"hr@1": 0.4},
        )
    # a grid point off both axes: must appear in no study
    _run(
        store,
        "lastfm",
        "napo",
        "loss",
        0,
        napo_hparams(rho=0.1, n_neg=7),
        {"hr@1": 0.99, "valid_ratio": 0.99, "pop_bias": 0.4},
        {"hr@1": 0.99},
    )
    for seed in (0, 1):
        _run(
            store,
            "lastfm",
            "sdpo",
            "loss",
            seed,
            {**SDPO, "n_neg": 3},
            {"hr@1": 0.45 + 0.02 * seed, "valid_ratio": 0.9, "pop_bias": 0.9},
            {"hr@1": 0.47},
            {"sft_seconds": 100.0, "preference_seconds": 300.0, "peak_memory_mb": 1500.0},
        )
    _run(
        store,
        "lastfm",
        "napo_no_ns",
        "loss",
        0,
        {**NAPO, "rho": 0.0, "n_neg": 3},
        {"hr@1": 0.47, "valid_ratio": 0.93, "pop_bias": 0.5},
        {"hr@1": 0.48},
    )
    _run(
        store,
        "steam",
        "sft",
        "llm_baseline",
        0,
        {},
        {"hr@1": 0.30, "valid_ratio": 0.8, "pop_bias": -0.2},
        {"hr@1": 0.33},
    )
    _run(
        store,
        "steam",
        "napo",
        "loss",
        0,
        napo_hparams(),
        {"hr@1": 0.36, "valid_ratio": 0.9, "pop_bias": -0.3},
        {"hr@1": 0.37},
    )
    return store


@pytest.fixture()
def store(tmp_path) -> Path:
    return write_store(tmp_path / "results.jsonl")


def read_csv(path: Path) -> pd.DataFrame:
    text = path.read_text()
    return pd.read_csv(io.StringIO(text), comment="#")


def t_interval(values: list[float]) -> tuple[float, float, float]:
    mean = statistics.fmean(values)
    half = T975[len(values) - 1] * statistics.stdev(values) / math.sqrt(len(values))
    return mean, mean - half, mean + half


def wilson(p: float, n: int, z: float = 1.96) -> tuple[float, float]:
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


def row(frame: pd.DataFrame, **where: object) -> pd.Series:
    mask = pd.Series(True, index=frame.index)
    for key, value in where.items():
        mask &= frame[key] == value
    assert mask.sum() == 1, (where, frame)
    return frame[mask].iloc[0]


# ------------------------------------------------------------------------------- tests
def test_t_quantile_matches_printed_tables():
    for df, expected in T975.items():
        assert t_quantile(0.975, df) == pytest.approx(expected, abs=1e-8)


def test_intervals_of_proportions_stay_within_zero_and_one():
    low_values = [0.0, 0.0, 0.1]
    clipped = estimate(low_values, proportion=True)
    assert clipped.low == 0.0 and clipped.high == pytest.approx(t_interval(low_values)[2])
    assert estimate(low_values).low == pytest.approx(t_interval(low_values)[1])  # not clipped
    assert estimate([float("nan")]) is None


def test_main_table_means_intervals_and_relative_improvements(store, tmp_path):
    out = tmp_path / "reports"
    compare(store, out, plots_enabled=False)
    table = read_csv(out / "table2_main.csv")

    napo = row(table, dataset="lastfm", method="napo")
    mean, low, high = t_interval(LASTFM_NAPO_HR1)
    assert napo["hr1_mean"] == pytest.approx(mean, abs=1e-6)
    assert napo["hr1_low"] == pytest.approx(low, abs=1e-6)
    assert napo["hr1_high"] == pytest.approx(high, abs=1e-6)
    assert napo["hr1_interval"] == "t" and napo["seeds"] == 3 and napo["hr1_mode"] == "generation"
    assert napo["ranking_hr1_mean"] == pytest.approx(mean + 0.02, abs=1e-6)
    assert napo["valid_ratio_mean"] == pytest.approx(0.96, abs=1e-6)

    # one seed: Wilson interval over the 500 test examples
    zero = row(table, dataset="lastfm", method="zero_shot")
    lo, hi = wilson(ZERO_SHOT_HR1, N_TEST)
    assert zero["hr1_interval"] == "wilson"
    assert (zero["hr1_low"], zero["hr1_high"]) == (
        pytest.approx(lo, abs=1e-6),
        pytest.approx(hi, abs=1e-6),
    )

    # the sequential baseline has ranking mode only and is the best baseline (0.33 vs SFT 0.40?)
    sasrec = row(table, dataset="lastfm", method="sasrec")
    assert sasrec["hr1_mode"] == "ranking"
    best = max(statistics.fmean(LASTFM_SASREC_HR1), statistics.fmean(LASTFM_SFT_HR1), ZERO_SHOT_HR1)
    assert napo["best_baseline"] == "sft"
    assert napo["rel_best_baseline_pct"] == pytest.approx(100 * (mean - best) / best, abs=1e-4)
    sft_mean = statistics.fmean(LASTFM_SFT_HR1)
    assert napo["rel_sft_pct"] == pytest.approx(100 * (mean - sft_mean) / sft_mean, abs=1e-4)

    # the main table shows NAPO at its defaults only; sweep points and pure ablations stay out
    assert set(table.loc[table["dataset"] == "lastfm", "method"]) == {
        "sasrec",
        "zero_shot",
        "sft",
        "napo",
        "sdpo",
    }
    assert "napo_no_ns" not in set(table["method"])

    markdown = (out / "table2_main.md").read_text()
    assert f"{mean:.4f} [{low:.4f}, {high:.4f}]" in markdown
    assert "0.3300* [" in markdown  # ranking-mode headline is marked
    latex = (out / "table2_main.tex").read_text()
    assert r"\begin{tabular}" in latex and "zero\\_shot" in latex


def test_every_file_is_headed_by_its_command_and_hardware(store, tmp_path):
    out = tmp_path / "reports"
    report = compare(store, out, datasets=["lastfm"])
    command = f"recbench compare --results {store} --out {out} --dataset lastfm"
    expected_hardware = "cpu=x86_64, cpu_count=2, machine=x86_64, system=Linux"
    assert report.written
    for path in report.written:
        if path.suffix == ".png":
            continue  # the header is in the PNG metadata and in the caption file beside it
        text = path.read_text()
        # SVG: in the file's metadata (an XML comment cannot hold the "--" of the options)
        head = text if path.suffix == ".svg" else "\n".join(text.splitlines()[:4])
        assert f"generated by: {command}" in head, path
        assert f"hardware: {expected_hardware}" in text, path
    names = {p.name for p in report.written}
    for stem in (
        "table2_main",
        "table3_ablations",
        "fig3ab_relative_to_sft",
        "fig3c_n_neg",
        "study_rho",
        "table5_training_time",
    ):
        assert {f"{stem}.md", f"{stem}.csv", f"{stem}.tex"} <= names
    for stem in ("fig3a_popularity_bias", "fig3b_hr1_vs_sft", "fig3c_n_neg", "study_rho"):
        assert {f"{stem}.png", f"{stem}.svg", f"{stem}.txt"} <= names
    # alpha was swept at one value only: no study, and the command says so
    assert ("study_alpha", report.skipped[0][1]) in report.skipped
    assert not (out / "study_alpha.md").exists()


def test_relative_to_sft_follows_the_spec_formulas(store, tmp_path):
    out = tmp_path / "reports"
    compare(store, out, plots_enabled=False)
    table = read_csv(out / "fig3ab_relative_to_sft.csv")
    napo = row(table, dataset="lastfm", method="napo")
    sft_bias = statistics.fmean([0.8, 0.7, 0.6])
    assert napo["rel_pop_bias_pct"] == pytest.approx(100 * (0.4 - sft_bias) / sft_bias, abs=1e-4)
    steam = row(table, dataset="steam", method="napo")
    # a negative SFT bias: divide by its absolute value, so less bias stays negative
    assert steam["rel_pop_bias_pct"] == pytest.approx(100 * (-0.3 + 0.2) / 0.2, abs=1e-4)
    assert steam["rel_hr1_pct"] == pytest.approx(100 * (0.36 - 0.30) / 0.30, abs=1e-4)
    assert "sft" not in set(table["method"]) and "sasrec" not in set(table["method"])
    # the interval behind the Fig. 3b whiskers: t over seeds of each seed's ratio to its SFT
    per_seed = [100 * (a - b) / b for a, b in zip(LASTFM_NAPO_HR1, LASTFM_SFT_HR1, strict=True)]
    _, low, high = t_interval(per_seed)  # 25.0, 28.57, 21.05 percent
    assert napo["rel_hr1_low"] == pytest.approx(low, abs=1e-4)
    assert napo["rel_hr1_high"] == pytest.approx(high, abs=1e-4)
    assert math.isnan(steam["rel_hr1_low"])  # one seed: no interval over seeds


def test_studies_keep_other_hyperparameters_at_their_defaults(store, tmp_path):
    out = tmp_path / "reports"
    compare(store, out, plots_enabled=False)
    n_neg = read_csv(out / "fig3c_n_neg.csv")
    napo = n_neg[(n_neg["dataset"] == "lastfm") & (n_neg["method"] == "napo")]
    assert list(napo["n_neg"]) == [1, 3, 7]
    seven = row(napo, n_neg=7)
    mean, _, high = t_interval([0.52, 0.53])
    assert seven["hr1_mean"] == pytest.approx(mean, abs=1e-6)  # not polluted by the 0.99 point
    assert seven["hr1_high"] == pytest.approx(high, abs=1e-6)
    assert seven["peak_memory_mb_mean"] == pytest.approx(1200.0)
    assert seven["preference_seconds_mean"] == pytest.approx(350.0)
    assert seven["train_seconds_mean"] == pytest.approx(450.0)
    # cost as a ratio to the smallest n_neg within each seed: n_neg 1 ran seeds 0 and 1 only
    three = row(napo, n_neg=3)
    assert three["preference_ratio_seeds"] == 2
    ratios = [200.0 / 50.0, 210.0 / 50.0]
    half = T975[1] * statistics.stdev(ratios) / math.sqrt(2)  # 12.706 * 0.1
    assert three["preference_ratio_mean"] == pytest.approx(4.1, abs=1e-9)
    assert three["preference_ratio_low"] == pytest.approx(4.1 - half, abs=1e-6)
    assert three["preference_ratio_high"] == pytest.approx(4.1 + half, abs=1e-6)
    assert three["memory_ratio_mean"] == pytest.approx((1000 / 600 + 1001 / 600) / 2, abs=1e-9)
    assert seven["preference_ratio_mean"] == pytest.approx(7.0, abs=1e-9)
    assert seven["memory_ratio_mean"] == pytest.approx(2.0, abs=1e-9)
    assert row(napo, n_neg=1)["preference_ratio_mean"] == pytest.approx(1.0, abs=1e-9)
    rho = read_csv(out / "study_rho.csv")
    assert "preference_ratio_mean" not in rho.columns
    assert list(rho["rho"]) == [0.1, 0.3, 0.7]
    assert row(rho, rho=0.1)["hr1_mean"] == pytest.approx(0.41)
    assert row(rho, rho=0.1)["hr1_interval"] == "wilson"  # one seed
    timing = read_csv(out / "table5_training_time.csv")
    napo_time = row(timing, dataset="lastfm", method="napo")
    assert napo_time["train_seconds_mean"] == pytest.approx(310.0)
    assert napo_time["train_seconds_low"] == pytest.approx(t_interval([300, 310, 320])[1])
    # CPU use 0.90, 0.85, 0.80 over the seeds; SFT runs recorded none (blank, not 0)
    assert napo_time["cpu_utilisation_mean"] == pytest.approx(0.85, abs=1e-6)
    assert math.isnan(row(timing, dataset="lastfm", method="sft")["cpu_utilisation_mean"])


def test_n_neg_cost_ratios_pair_runs_of_one_seed_on_one_machine(tmp_path):
    """A seed whose two n_neg points ran on different thread counts gives no ratio."""
    store = tmp_path / "store.jsonl"
    one_thread, two_threads = ({**HARDWARE, "torch_threads": n} for n in (1, 2))
    sft = {"sft_seconds": 1000.0}
    points = (  # (n_neg, seed, hardware, preference seconds, peak memory)
        (3, 0, two_threads, 400.0, 6000.0),
        (3, 1, one_thread, 600.0, 6000.0),
        (3, 2, one_thread, 590.0, 6200.0),
        (19, 0, one_thread, 880.0, 8600.0),  # seed 0's n_neg 3 ran with 2 threads: no pair
        (19, 1, one_thread, 900.0, 8400.0),
        (19, 2, one_thread, 885.0, 8680.0),
    )
    for n_neg, seed, hardware, seconds, memory in points:
        _run(
            store,
            "lastfm",
            "sims_dpo",
            "loss",
            seed,
            {"beta": 1.0, "gamma": 0.0, "ln": False, "n_neg": n_neg},
            {"hr@1": 0.1, "valid_ratio": 0.9, "pop_bias": 0.4},
            {"hr@1": 0.1},
            {**sft, "preference_seconds": seconds, "peak_memory_mb": memory},
            hardware=hardware,
        )
    out = tmp_path / "reports"
    compare(store, out, formats="csv,md", plots_enabled=False)
    nineteen = row(read_csv(out / "fig3c_n_neg.csv"), n_neg=19)
    assert nineteen["preference_ratio_seeds"] == 2
    # seeds 1 and 2: 900 / 600 and 885 / 590, both 1.5 (the CSV keeps 6 decimals)
    assert nineteen["preference_ratio_mean"] == pytest.approx(1.5, abs=1e-6)
    assert nineteen["preference_ratio_high"] - nineteen["preference_ratio_low"] == pytest.approx(
        0.0, abs=1e-6
    )
    assert nineteen["memory_ratio_mean"] == pytest.approx((8400 / 6000 + 8680 / 6200) / 2, abs=1e-6)
    # the absolute column averages over every seed, machines mixed
    assert nineteen["preference_seconds_mean"] == pytest.approx((880 + 900 + 885) / 3, abs=1e-5)
    assert "1.50 [1.50, 1.50] (2)" in (out / "fig3c_n_neg.md").read_text()


def test_ablation_table_lists_variants_in_paper_order(store, tmp_path):
    out = tmp_path / "reports"
    compare(store, out, formats="csv,md", plots_enabled=False)
    table = read_csv(out / "table3_ablations.csv")
    assert list(table["dataset"]) == ["lastfm"] * 3 + ["steam"]
    assert list(table["method"]) == ["napo", "napo_no_ns", "sdpo", "napo"]
    assert row(table, method="napo_no_ns")["valid_ratio_mean"] == pytest.approx(0.93)
    assert not (out / "table3_ablations.tex").exists()


def test_filters_restrict_the_report(store, tmp_path):
    out = tmp_path / "reports"
    report = compare(store, out, datasets=["steam"], plots_enabled=False)
    table = read_csv(out / "table2_main.csv")
    assert set(table["dataset"]) == {"steam"}
    skipped = dict(report.skipped)
    assert "table3_ablations" in skipped and "fig3c_n_neg" in skipped


def test_several_profiles_are_never_pooled(store, tmp_path):
    _run(
        store,
        "lastfm",
        "napo",
        "loss",
        0,
        napo_hparams(),
        {"hr@1": 0.1, "valid_ratio": 0.5},
        {"hr@1": 0.1},
        profile="smoke",
    )
    out = tmp_path / "reports"
    report = compare(store, out, plots_enabled=False)
    assert sorted(p.name for p in report.directories) == ["cpu-smollm2-135m", "smoke-smollm2-135m"]
    cpu = read_csv(out / "cpu-smollm2-135m" / "table2_main.csv")
    assert row(cpu, dataset="lastfm", method="napo")["hr1_mean"] == pytest.approx(0.5)
    only_cpu = compare(store, tmp_path / "cpu", profile="cpu", plots_enabled=False)
    assert only_cpu.directories == [tmp_path / "cpu"]


def test_sequential_baselines_join_the_llm_setting_of_their_profile(store, tmp_path):
    """A sequential run's model is its checkpoint: it is listed with the profile's LLM runs
    instead of forming a setting of its own; alone in a profile, it is its own setting."""
    ranking = {"hr@1": 0.33, "pop_bias": 0.1}
    _run(store, "lastfm", "morec", "sequential", 0, {}, None, ranking, model="trained:abc")
    _run(store, "lastfm", "gru4rec", "sequential", 0, {}, None, ranking, model="trained:def",
         profile="smoke")  # fmt: skip
    out = tmp_path / "reports"
    report = compare(store, out, plots_enabled=False)
    assert sorted(p.name for p in report.directories) == ["cpu-smollm2-135m", "smoke-trained_def"]
    cpu = read_csv(out / "cpu-smollm2-135m" / "table2_main.csv")
    assert row(cpu, dataset="lastfm", method="morec")["hr1_mean"] == pytest.approx(0.33)
    assert "model=smollm2-135m" in (out / "cpu-smollm2-135m" / "table2_main.md").read_text()
    smoke = read_csv(out / "smoke-trained_def" / "table2_main.csv")
    assert list(smoke["method"]) == ["gru4rec"]


def test_seed_spread_reports_sd_range_and_sampling_error(store, tmp_path):
    out = tmp_path / "reports"
    compare(store, out, datasets=["lastfm"], plots_enabled=False)
    spread = read_csv(out / "seed_spread.csv")
    # SFT generation HR@1 per seed 0.40, 0.42, 0.38: deviations 0, +0.02, -0.02 from 0.40,
    # SD sqrt(0.0008 / 2) = 0.02, range 0.04, SE sqrt(0.4 * 0.6 / 500) = 0.0219089.
    sft = row(spread, method="sft", mode="generation")
    assert sft["per_seed"] == "0:0.4000 1:0.4200 2:0.3800"
    # (the CSV keeps 6 decimals, hence the tolerance)
    assert sft["hr1_mean"] == pytest.approx(0.40, abs=1e-6)
    assert sft["hr1_sd"] == pytest.approx(0.02, abs=1e-6)
    assert sft["hr1_range"] == pytest.approx(0.04, abs=1e-6)
    assert sft["sampling_se"] == pytest.approx(0.0219089, abs=1e-6)
    assert sft["sd_over_se"] == pytest.approx(0.9128709, abs=1e-6)
    # SASRec ranks only: 0.30, 0.34, 0.35, mean 0.33, SD sqrt((0.0009+0.0001+0.0004)/2).
    sasrec = row(spread, method="sasrec", mode="ranking")
    assert sasrec["hr1_sd"] == pytest.approx(0.0264575, abs=1e-6)
    assert not ((spread["method"] == "sasrec") & (spread["mode"] == "generation")).any()
    assert "zero_shot" not in set(spread["method"])  # one seed: no spread to show
    assert "SD / SE" in (out / "seed_spread.md").read_text()


def test_seed_spread_is_skipped_with_one_seed_per_method(tmp_path):
    store = tmp_path / "one.jsonl"
    _run(
        store,
        "lastfm",
        "sft",
        "llm_baseline",
        0,
        {},
        {"hr@1": 0.4, "valid_ratio": 0.9},
        {"hr@1": 0.4},
    )
    report = compare(store, tmp_path / "out", plots_enabled=False)
    assert ("seed_spread", "no method has two or more seeds") in report.skipped
    assert not (tmp_path / "out" / "seed_spread.md").exists()


def test_two_runs_are_byte_identical_including_plots(store, tmp_path):
    out = tmp_path / "reports"
    first = compare(store, out)
    snapshot = {p: p.read_bytes() for p in first.written}
    assert any(p.suffix == ".svg" for p in snapshot) and any(p.suffix == ".png" for p in snapshot)
    second = compare(store, out)
    assert second.written == first.written
    for path, content in snapshot.items():
        assert path.read_bytes() == content, path
    svg = next(p for p in snapshot if p.suffix == ".svg").read_text()
    assert "<dc:date>" not in svg and "2026" not in svg


def test_stale_outputs_of_skipped_tables_are_removed(store, tmp_path):
    out = tmp_path / "reports"
    compare(store, out, plots_enabled=False)
    assert (out / "table3_ablations.md").exists()
    report = compare(store, out, datasets=["steam"], plots_enabled=False)
    assert not (out / "table3_ablations.md").exists()
    assert out / "table3_ablations.md" in report.removed


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"datasets": ["lastfn"]}, "did you mean 'lastfm'"),
        ({"model": "other"}, "no results for model 'other'"),
        ({"profile": "paper"}, "no results for profile 'paper'"),
        ({"formats": "md,pdf"}, "unknown table format 'pdf'"),
    ],
)
def test_filter_mistakes_are_user_errors(store, tmp_path, kwargs, needle):
    with pytest.raises(UserError, match=needle):
        compare(store, tmp_path / "out", **kwargs)


def test_filters_that_match_nothing_together(store, tmp_path):
    _run(
        store,
        "goodreads",
        "sft",
        "llm_baseline",
        0,
        {},
        {"hr@1": 0.1},
        {"hr@1": 0.1},
        profile="smoke",
    )
    with pytest.raises(UserError, match="no results match"):
        compare(store, tmp_path / "out", datasets=["goodreads"], profile="cpu")


def test_cli_compare_and_its_one_line_errors(cli, tmp_path):
    empty = tmp_path / "empty.jsonl"
    result = cli("compare", "--results", str(empty), "--out", str(tmp_path / "r"))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "empty or missing" in result.stderr and "Traceback" not in result.stderr

    store = write_store(tmp_path / "store.jsonl")
    result = cli(
        "compare",
        "--results",
        str(store),
        "--out",
        str(tmp_path / "r"),
        "--dataset",
        "steam",
        "--no-plots",
    )
    assert result.returncode == 0, result.stderr
    assert "table2_main.md" in result.stdout
    assert "skipped table3_ablations" in result.stdout


def test_compare_out_where_a_report_file_is_a_directory_is_a_one_line_error(cli, tmp_path):
    """The permission check before writing cannot see every unwritable place (a report's name
    taken by a directory; root on a read-only pseudo file system): writing says so in one line."""
    store = write_store(tmp_path / "store.jsonl")
    (tmp_path / "r" / "README.md").mkdir(parents=True)
    result = cli("compare", "--results", str(store), "--out", str(tmp_path / "r"), "--no-plots")
    assert_user_error(result, f"cannot write the report to {tmp_path / 'r' / 'README.md'}: Is a")


def test_table2_warns_where_sft_does_not_beat_the_popularity_rule(tmp_path):
    store = tmp_path / "pop.jsonl"
    for dataset, sft_hr1 in (("lastfm", 0.10), ("steam", 0.40)):
        _run(store, dataset, "pop", "rule", 0, {}, None, {"hr@1": 0.25})
        _run(store, dataset, "sft", "llm_baseline", 0, {}, {"hr@1": sft_hr1}, {"hr@1": 0.5})
    compare(store, tmp_path / "out", plots_enabled=False)
    notes = (tmp_path / "out" / "table2_main.md").read_text()
    assert (
        "on lastfm SFT (HR@1 0.1000) does not beat the popularity rule (0.2500): the losses "
        "start from a model that has learnt no more than item popularity"
    ) in notes
    assert "on steam SFT" not in notes  # 0.40 > 0.25: no warning
