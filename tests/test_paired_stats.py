"""Paired statistics of ``recbench compare`` on hand-made per-example outcomes.

Every expected number is worked out by hand in this file (binomial sums for McNemar's exact test,
Holm's step-down products, Student t intervals from the printed critical value), never taken from
``recbench.reports``.  Outcomes are built so that the discordant counts are known: method hits on
examples are given as index ranges of the 40 test examples ``test:0`` ... ``test:39``.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import pandas as pd
import pytest
from conftest import assert_user_error

from recbench import results
from recbench.outcomes import Outcomes
from recbench.reports import compare
from recbench.reports.paired import Comparison, SeedTest, _default_pairs
from recbench.reports.significance import detectable_difference, holm, mcnemar_p, seed_interval

N = 40
KEYS = [f"test:{i}" for i in range(N)]
T975_2 = 4.302652730  # Student t, 2 degrees of freedom, 97.5% (printed tables)
HARDWARE = {"machine": "x86_64", "cpu": "x86_64", "cpu_count": 2, "system": "Linux"}
VERSIONS = {"python": "3.11", "recbench": "0.1.0"}

# Generation hits per method and seed (indices of the examples hit).
SFT_GEN = set(range(10))  # every seed
NAPO_EXTRA = {0: 12, 1: 13, 2: 14}  # napo hits SFT's 10 and this many more: 0 .. 9 + k
SDPO_GEN = set(range(1, 10)) | {38, 39}  # one of SFT's hits lost, two others gained
# Ranking: examples ranked first.
SFT_RANK = set(range(5))
POP_RANK = set(range(20))  # a deterministic rule baseline, recorded without a seed


def _outcomes(generation: set[int] | None, ranking: set[int]) -> Outcomes:
    rows: dict[str, dict[str, object]] = {}
    for i, key in enumerate(KEYS):
        row: dict[str, object] = {"rank": 1 if i in ranking else 2}
        if generation is not None:
            row.update({"valid": True, "hit": i in generation})
        rows[key] = row
    return Outcomes(rows)


def _add_run(
    store: Path,
    method: str,
    family: str,
    seed: int | None,
    generation: set[int] | None,
    ranking: set[int],
    keep_outcomes: bool = True,
    profile: str = "cpu",
    stage: str | None = None,
    time: str = "2026-01-01T00:00:00+0000",
    train: str | None = None,
) -> None:
    run = {
        "run_id": f"{method}-{profile}-{seed}" + (f"-{stage}" if stage else ""),
        "time": time,
        "dataset": "lastfm",
        "method": method,
        "family": family,
        "model": "rule" if family == "rule" else "smollm2-135m",
        "seed": seed,
        "profile": profile,
        "hparams": {},
        "settings": {
            **({"sft_weights": stage} if stage else {}),
            **({"dataset_files": {"train": train}} if train else {}),
        },
        "hardware": HARDWARE,
        "versions": VERSIONS,
    }
    records = []
    if generation is not None:
        metrics = {"hr@1": len(generation) / N, "valid_ratio": 1.0, "n_examples": N}
        records += results.make_records(run, metrics, split="test", mode="generation")
    metrics = {"hr@1": len(ranking) / N, "n_examples": N}
    records += results.make_records(run, metrics, split="test", mode="ranking")
    outcomes = _outcomes(generation, ranking) if keep_outcomes else None
    results.append_records(records, store, outcomes)


def write_store(store: Path) -> Path:
    for seed in (0, 1, 2):
        _add_run(store, "sft", "llm_baseline", seed, SFT_GEN, SFT_RANK)
        napo = SFT_GEN | set(range(10, 10 + NAPO_EXTRA[seed]))
        _add_run(store, "napo", "loss", seed, napo, SFT_RANK)
        _add_run(store, "sdpo", "loss", seed, SDPO_GEN, SFT_RANK)
        _add_run(store, "dpo", "loss", seed, SFT_GEN, SFT_RANK, keep_outcomes=False)
    _add_run(store, "pop", "rule", None, None, POP_RANK)
    return store


def read_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(path.read_text()), comment="#", dtype=str, keep_default_na=False)


def row(frame: pd.DataFrame, **where: str) -> pd.Series:
    mask = pd.Series(True, index=frame.index)
    for key, value in where.items():
        mask &= frame[key] == value
    assert mask.sum() == 1, (where, frame)
    return frame[mask].iloc[0]


def floats(text: str) -> list[float]:
    return [float(v) for v in text.split(";")]


def binomial_two_sided(k: int, n: int) -> float:
    """2 P(X <= k) for X ~ Binomial(n, 1/2), capped at 1: McNemar's exact p by hand."""
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n)


# ------------------------------------------------------------------------------- units
def test_mcnemar_exact_p_values():
    assert mcnemar_p(10, 2) == pytest.approx(2 * (1 + 12 + 66) / 4096, rel=1e-12)
    assert mcnemar_p(2, 10) == pytest.approx(0.0385742, abs=1e-7)
    assert mcnemar_p(7, 7) == pytest.approx(1.0, abs=1e-12)
    assert mcnemar_p(0, 0) == 1.0
    assert mcnemar_p(5, 0) == pytest.approx(2 / 32, rel=1e-12)


def _exact_mcnemar_power(examples: int, share: float, difference: float, alpha: float) -> float:
    """Power of the exact conditional McNemar test by direct binomial sums: D = n p_d discordant
    examples, each favouring A with probability (1 + d / p_d) / 2; reject where the two-sided
    binomial(D, 1/2) p-value is at most alpha."""
    discordant = round(examples * share)
    favour = (1 + difference / share) / 2

    def pmf(k: int, q: float) -> float:
        return math.comb(discordant, k) * q**k * (1 - q) ** (discordant - k)

    def p_two_sided(k: int) -> float:
        tail = sum(pmf(j, 0.5) for j in range(max(k, discordant - k), discordant + 1))
        return min(1.0, 2 * tail)

    return sum(pmf(k, favour) for k in range(discordant + 1) if p_two_sided(k) <= alpha)


@pytest.mark.parametrize(("examples", "share", "alpha"), [(1000, 0.2, 0.05), (1000, 0.3, 0.005),
                                                          (500, 0.25, 0.05)])  # fmt: skip
def test_detectable_difference_has_the_stated_power(examples, share, alpha):
    d = detectable_difference(examples, share, alpha)
    # worked by hand for the first case: (1.96 sqrt(.2) + 0.8416 sqrt(.2 - d^2)) / sqrt(1000)
    if (examples, share, alpha) == (1000, 0.2, 0.05):
        assert d == pytest.approx(0.0396, abs=2e-4)
    # the normal approximation against the exact test's power, summed here: 80% within 4 points
    assert _exact_mcnemar_power(examples, share, d, alpha) == pytest.approx(0.80, abs=0.04)
    assert _exact_mcnemar_power(examples, share, d / 2, alpha) < 0.4  # half of it: mostly missed
    assert math.isnan(detectable_difference(examples, 0.0))  # nothing discordant: no test


def test_holm_adjustment():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06], rel=1e-12)
    assert holm([0.2, 0.9]) == pytest.approx([0.4, 0.9], rel=1e-12)  # 0.2 x 2; 0.9 x 1
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0], rel=1e-12)  # capped, then monotone
    assert holm([]) == []


def test_interval_over_seed_differences():
    est = seed_interval([0.02, 0.04, 0.06])
    half = T975_2 * 0.02 / math.sqrt(3)
    assert half == pytest.approx(0.049683, abs=1e-6)
    assert est.mean == pytest.approx(0.04, abs=1e-12)
    assert est.low == pytest.approx(0.04 - half, abs=1e-8)
    assert est.high == pytest.approx(0.04 + half, abs=1e-8)
    one = seed_interval([0.1])
    assert one.mean == pytest.approx(0.1) and not one.has_interval


def _seed(seed: str, difference: float, p_holm: float) -> SeedTest:
    return SeedTest(seed, 100, 0.5 + difference, 0.5, 0, 0, p_holm, p_holm)


def test_decision_rule():
    def comparison(*seeds: SeedTest) -> Comparison:
        return Comparison("lastfm", "cpu", "generation", "napo", "sft", list(seeds))

    same_sign = comparison(_seed("0", 0.1, 0.01), _seed("1", 0.12, 0.02), _seed("2", 0.11, 0.01))
    assert same_sign.survives
    one_p_too_high = comparison(_seed("0", 0.1, 0.01), _seed("1", 0.12, 0.06))
    assert not one_p_too_high.survives
    # every p small, but the seeds disagree in sign: the interval over seeds holds 0
    flipping = comparison(_seed("0", 0.3, 0.001), _seed("1", -0.3, 0.001), _seed("2", 0.3, 0.001))
    assert not flipping.survives
    assert comparison(_seed("0", 0.05, 0.04)).survives  # one training run: p alone decides
    assert not comparison(_seed("0", 0.05, 0.05)).survives
    assert comparison(_seed("0", 0.05, 0.04)).label == "one training run"
    assert comparison(_seed("none", 0.05, 0.04)).label == "one run of two seedless methods"
    assert same_sign.label == ""


# --------------------------------------------------------------------------- end to end
@pytest.fixture()
def store(tmp_path) -> Path:
    return write_store(tmp_path / "results.jsonl")


def test_paired_tests_table_matches_hand_computation(store, tmp_path, cli):
    out = tmp_path / "reports"
    result = cli("compare", "--results", str(store), "--out", str(out), "--no-plots")
    assert result.returncode == 0, result.stderr
    assert "paired_tests.md" in result.stdout and "Traceback" not in result.stderr
    frame = read_csv(out / "paired_tests.csv")
    pairs = list(zip(frame["mode"], frame["method_a"], frame["method_b"], strict=True))
    assert pairs == [
        ("generation", "sdpo", "sft"),
        ("generation", "napo", "sft"),
        ("generation", "napo", "sdpo"),
        ("ranking", "pop", "sft"),
        ("ranking", "sdpo", "sft"),
        ("ranking", "napo", "sft"),
        ("ranking", "napo", "sdpo"),
    ]

    # generation, napo vs sft: napo hits SFT's 10 examples and k more, so b = k, c = 0
    napo = row(frame, mode="generation", method_a="napo", method_b="sft")
    diffs = [k / N for k in (12, 13, 14)]  # 0.300, 0.325, 0.350
    assert floats(napo["seed_diffs"]) == pytest.approx(diffs, abs=1e-6)
    assert napo["seed_a_only"] == "12;13;14" and napo["seed_b_only"] == "0;0;0"
    assert floats(napo["seed_p"]) == pytest.approx([2**-11, 2**-12, 2**-13], rel=1e-5)
    half = T975_2 * 0.025 / math.sqrt(3)  # sample sd of 0.300, 0.325, 0.350 is 0.025
    assert float(napo["diff_mean"]) == pytest.approx(0.325, abs=1e-6)
    assert float(napo["diff_low"]) == pytest.approx(0.325 - half, abs=1e-6)
    assert float(napo["diff_high"]) == pytest.approx(0.325 + half, abs=1e-6)
    assert napo["seeds"] == "3" and napo["seed_list"] == "0;1;2" and napo["label"] == ""

    # napo vs sdpo: napo alone hits example 0 and 10 .. 9+k (1+k), sdpo alone 38 and 39 (2)
    versus = row(frame, mode="generation", method_a="napo", method_b="sdpo")
    assert versus["seed_a_only"] == "13;14;15" and versus["seed_b_only"] == "2;2;2"
    p_versus = [binomial_two_sided(2, n) for n in (15, 16, 17)]
    assert p_versus == pytest.approx([242 / 32768, 274 / 65536, 308 / 131072], rel=1e-12)
    assert floats(versus["seed_p"]) == pytest.approx(p_versus, rel=1e-5)
    sdpo = row(frame, mode="generation", method_a="sdpo", method_b="sft")
    assert sdpo["seed_a_only"] == "2;2;2" and sdpo["seed_b_only"] == "1;1;1"
    assert floats(sdpo["seed_p"]) == pytest.approx([1.0, 1.0, 1.0], abs=1e-12)  # 2 * 4/8

    # Holm over the 9 generation p-values: sorted ascending, times 9, 8, ... (then monotone)
    assert floats(napo["seed_p_holm"]) == pytest.approx(
        [2**-11 * 7, 2**-12 * 8, 2**-13 * 9], rel=1e-5
    )
    assert floats(versus["seed_p_holm"]) == pytest.approx(
        [p_versus[0] * 4, p_versus[1] * 5, p_versus[2] * 6], rel=1e-5
    )
    assert floats(sdpo["seed_p_holm"]) == pytest.approx([1.0, 1.0, 1.0], abs=1e-12)
    assert (napo["survives"], versus["survives"], sdpo["survives"]) == ("yes", "yes", "no")

    # ranking: the seedless rule pairs with every SFT seed; b = 15, c = 0; 12 p-values in all
    pop = row(frame, mode="ranking", method_a="pop", method_b="sft")
    assert pop["seed_list"] == "0;1;2" and pop["seed_a_only"] == "15;15;15"
    assert floats(pop["seed_diffs"]) == pytest.approx([0.375] * 3, abs=1e-6)
    assert floats(pop["seed_p"]) == pytest.approx([2**-14] * 3, rel=1e-5)
    assert floats(pop["seed_p_holm"]) == pytest.approx([2**-14 * 12] * 3, rel=1e-5)
    assert pop["survives"] == "yes"
    same = row(frame, mode="ranking", method_a="napo", method_b="sft")
    assert floats(same["seed_p"]) == pytest.approx([1.0] * 3, abs=1e-12)  # b + c = 0
    assert same["survives"] == "no"

    md = (out / "paired_tests.md").read_text()
    assert "no per-example outcomes for dpo" in md  # dpo was stored without outcomes
    assert "every seed's exact McNemar p-value" in md  # the decision rule in the caption
    assert "dpo" not in set(frame["method_a"]) | set(frame["method_b"])


def _cells(markdown: str) -> dict[str, dict[str, str]]:
    lines = [line for line in markdown.splitlines() if line.startswith("| ")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    table = {}
    for line in lines[1:]:
        cells = dict(zip(header, (c.strip() for c in line.strip("|").split("|")), strict=True))
        table[cells["method"]] = cells
    return table


def test_table2_marks_exactly_the_surviving_differences(store, tmp_path):
    out = tmp_path / "reports"
    compare(store, out, plots_enabled=False)
    text = (out / "table2_main.md").read_text()
    cells = _cells(text)
    marked = {
        (method, column)
        for method, row_cells in cells.items()
        for column, value in row_cells.items()
        if "\u2020" in value
    }
    assert marked == {
        ("napo", "lastfm HR@1"),
        ("pop", "lastfm HR@1"),
        ("pop", "lastfm HR@1 (rank)"),
    }
    assert cells["pop"]["lastfm HR@1"].startswith("0.5000*\u2020 ")
    assert "\u2020 differs from sft" in text
    frame = read_csv(out / "table2_main.csv")
    assert row(frame, method="napo")["hr1_paired_vs_sft"] == "survives"
    assert row(frame, method="sdpo")["hr1_paired_vs_sft"] == "no"
    assert row(frame, method="dpo")["hr1_paired_vs_sft"] == ""  # no outcomes: not tested
    assert row(frame, method="pop")["ranking_hr1_paired_vs_sft"] == "survives"


def test_two_compare_runs_are_byte_identical(store, tmp_path):
    out = tmp_path / "reports"
    first = compare(store, out, plots_enabled=False)
    snapshot = {p: p.read_bytes() for p in first.written}
    assert out / "paired_tests.tex" in snapshot
    second = compare(store, out, plots_enabled=False)
    assert second.written == first.written
    for path, content in snapshot.items():
        assert path.read_bytes() == content, path


def test_one_seed_is_labelled_one_training_run(tmp_path):
    store = tmp_path / "one.jsonl"
    _add_run(store, "sft", "llm_baseline", 0, SFT_GEN, SFT_RANK)
    _add_run(store, "napo", "loss", 0, SFT_GEN | set(range(10, 16)), SFT_RANK)  # b=6, c=0
    out = tmp_path / "reports"
    compare(store, out, plots_enabled=False)
    napo = row(read_csv(out / "paired_tests.csv"), mode="generation", method_a="napo")
    assert napo["label"] == "one training run" and napo["seeds"] == "1"
    assert napo["diff_low"] == "" and napo["diff_high"] == ""  # no interval over seeds
    assert floats(napo["seed_p"]) == pytest.approx([2 / 64], rel=1e-5)
    # the generation table holds this one p-value (ranking is a table of its own)
    assert floats(napo["seed_p_holm"]) == pytest.approx([2 / 64], rel=1e-5)
    assert napo["survives"] == "yes"  # p alone decides with one seed
    assert "+0.1500 (one training run)" in (out / "paired_tests.md").read_text()


def test_store_without_outcomes_writes_no_paired_tests(tmp_path):
    store = tmp_path / "plain.jsonl"
    for seed in (0, 1):
        _add_run(store, "sft", "llm_baseline", seed, SFT_GEN, SFT_RANK, keep_outcomes=False)
        _add_run(store, "napo", "loss", seed, SFT_GEN, SFT_RANK, keep_outcomes=False)
    out = tmp_path / "reports"
    report = compare(store, out, plots_enabled=False)
    assert not list(out.glob("paired_tests.*"))
    assert any(name == "paired_tests" for name, _ in report.skipped)
    text = (out / "table2_main.md").read_text()
    assert "\u2020" not in text
    assert "paired" not in (out / "table2_main.csv").read_text()


def test_runs_on_different_examples_are_never_compared(tmp_path):
    store = tmp_path / "mixed.jsonl"
    _add_run(store, "sft", "llm_baseline", 0, SFT_GEN, SFT_RANK)
    _add_run(store, "sdpo", "loss", 0, SDPO_GEN, SFT_RANK)
    _add_run(store, "napo", "loss", 0, SFT_GEN | {20}, SFT_RANK)  # a file of its own (sha256)
    path = results.outcomes_path(store, "napo-cpu-0")
    lines = path.read_text().splitlines()[:-1]  # napo's outcomes lack one example
    path.write_text("\n".join(lines) + "\n")
    record = next(r for r in results.read_records(store) if r["run_id"] == "napo-cpu-0")
    store.write_text(
        store.read_text().replace(record["outcomes"]["sha256"], results.sha256(path.read_bytes()))
    )
    out = tmp_path / "reports"
    compare(store, out, plots_enabled=False)
    frame = read_csv(out / "paired_tests.csv")
    assert set(zip(frame["mode"], frame["method_a"], strict=True)) == {
        ("generation", "sdpo"),
        ("ranking", "sdpo"),
    }
    md = (out / "paired_tests.md").read_text()
    assert (
        "napo vs sft on lastfm (generation), seed 0: the runs hold outcomes for different "
        "examples (39 and 40, 1 in one only); not compared"
    ) in md
    assert "napo vs sdpo on lastfm (ranking), seed 0: the runs hold outcomes" in md


def test_changed_outcomes_file_is_left_out_with_one_warning(store, tmp_path, cli):
    path = results.outcomes_path(store, "napo-cpu-1")
    path.write_text(path.read_text().replace('"hit": false', '"hit": true', 1))
    out = tmp_path / "reports"
    result = cli("compare", "--results", str(store), "--out", str(out), "--no-plots")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1, result.stderr
    assert str(path) in warnings[0] and "sha256" in warnings[0]
    frame = read_csv(out / "paired_tests.csv")
    napo = row(frame, mode="generation", method_a="napo", method_b="sft")
    assert napo["seed_list"] == "0;2"  # seed 1 of napo left out, the others still compared
    assert floats(napo["seed_diffs"]) == pytest.approx([12 / N, 14 / N], abs=1e-6)
    md = (out / "paired_tests.md").read_text()
    assert "napo on lastfm (generation): no usable outcomes for seed 1" in md


def test_default_pairs_set_each_napo_ablation_against_napo():
    methods = ["sft", "sdpo", "napo", "napo_no_ns", "napo_no_dyn", "dpo"]
    assert _default_pairs(methods) == [
        ("sdpo", "sft"),
        ("napo", "sft"),
        ("napo_no_ns", "sft"),
        ("napo_no_dyn", "sft"),
        ("dpo", "sft"),
        ("napo", "sdpo"),
        ("napo_no_ns", "napo"),
        ("napo_no_dyn", "napo"),
    ]
    assert _default_pairs(["sft", "napo_no_ns"]) == [("napo_no_ns", "sft")]  # no napo run


def test_default_pairs_set_the_field_losses_against_what_they_modify_and_variants_against_their_row():
    methods = ["sft", "dpo", "sdpo", "dmpo", "beta_dpo", "dynamicpo_sdpo", "mppo",
               "trl_hinge", "sdpo[negatives=hard]", "sdpo[negatives=self]", "sprec"]  # fmt: skip
    pairs = _default_pairs(methods)
    assert pairs[: len(methods) - 1] == [(m, "sft") for m in methods[1:]]
    assert pairs[len(methods) - 1 :] == [
        ("dmpo", "sdpo"),  # DMPO and DynamicPO-S-DPO, MPPO: listwise, as S-DPO
        ("beta_dpo", "dpo"),  # beta-DPO: DPO with an adaptive beta
        ("dynamicpo_sdpo", "sdpo"),
        ("mppo", "sdpo"),
        ("trl_hinge", "dpo"),  # TRL's loss types: pairwise variants of DPO
        ("sdpo[negatives=hard]", "sdpo"),  # a strategy against S-DPO's own random negatives
        ("sdpo[negatives=self]", "sdpo"),
        ("sdpo[negatives=hard]", "sdpo[negatives=self]"),  # and the strategies with each other
    ]
    # without the row a pair needs, no pair; variants of other methods are not siblings
    assert _default_pairs(["sft", "dmpo", "sdpo[negatives=hard]", "sims_dpo[n_neg=19]"]) == [
        ("dmpo", "sft"), ("sdpo[negatives=hard]", "sft"), ("sims_dpo[n_neg=19]", "sft")]  # fmt: skip
    assert _default_pairs(["sdpo[negatives=hard]", "sdpo[negatives=self]"]) == [
        ("sdpo[negatives=hard]", "sdpo[negatives=self]")]  # fmt: skip


def test_default_pairs_set_a_method_against_the_control_its_registration_names():
    # SPRec's registration names its SFT-only control: what self-play adds is a paired question
    assert _default_pairs(["sft", "sprec", "sprec_sft"]) == [
        ("sprec", "sft"), ("sprec_sft", "sft"), ("sprec", "sprec_sft")]  # fmt: skip
    assert _default_pairs(["sft", "sprec"]) == [("sprec", "sft")]  # no control run, no pair
    assert _default_pairs(["sprec_sft", "sprec"]) == [("sprec", "sprec_sft")]


def test_pair_option_replaces_the_defaults(store, tmp_path, cli):
    out = tmp_path / "reports"
    result = cli(
        "compare", "--results", str(store), "--out", str(out), "--no-plots", "--pair", "napo:sdpo"
    )
    assert result.returncode == 0, result.stderr
    frame = read_csv(out / "paired_tests.csv")
    assert set(zip(frame["method_a"], frame["method_b"], strict=True)) == {("napo", "sdpo")}
    assert "--pair napo:sdpo" in (out / "paired_tests.md").read_text().splitlines()[0]
    assert "\u2020" not in (out / "table2_main.md").read_text()  # nothing compared with sft


@pytest.mark.parametrize(
    ("pair", "needles"),
    [
        ("napo:sdpoo", ("no runs of method 'sdpoo'", "did you mean 'sdpo'")),
        ("napo", ("--pair takes two method names as A:B",)),
        ("napo:napo", ("cannot be compared with itself",)),
    ],
)
def test_pair_mistakes_are_one_line_errors(store, tmp_path, cli, pair, needles):
    result = cli("compare", "--results", str(store), "--out", str(tmp_path / "r"), "--pair", pair)
    assert_user_error(result, *needles)
    assert not (tmp_path / "r").exists()


# ------------------------------------------------------------ two SFT stages of one seed
LATER = "2026-01-02T00:00:00+0000"


def test_each_loss_is_paired_with_the_sft_stage_it_started_from(tmp_path):
    """Seed 0's SFT stage was trained twice (on two machines): sdpo started from the first
    (recorded before stages carried a digest), dpo from the second.  Each is compared with
    the evaluation of its own stage; tables show the latest SFT evaluation."""
    store = tmp_path / "two-stages.jsonl"
    _add_run(store, "sft", "llm_baseline", 0, SFT_GEN, SFT_RANK)  # hits 0..9
    _add_run(store, "sdpo", "loss", 0, SDPO_GEN, SFT_RANK)  # 1..9, 38, 39
    new_sft = set(range(5))  # the second stage hits 0..4 (and ranks 0..2 first)
    _add_run(store, "sft", "llm_baseline", 0, new_sft, set(range(3)), stage="b2", time=LATER)
    dpo = new_sft | {20, 21, 22}
    _add_run(store, "dpo", "loss", 0, dpo, SFT_RANK, stage="b2", time=LATER)
    _add_run(store, "gru4rec", "sequential", 0, None, set(range(8)))  # ranks 0..7 first
    # napo started from a third stage, named like dpo's but another
    _add_run(store, "napo", "loss", 0, new_sft, SFT_RANK, stage="c3", time=LATER)
    out = tmp_path / "reports"
    pairs = ["sdpo:sft", "dpo:sft", "dpo:sdpo", "gru4rec:sft", "napo:dpo"]
    compare(store, out, plots_enabled=False, pairs=pairs)
    frame = read_csv(out / "paired_tests.csv")
    # a model that has no SFT stage is compared with the SFT run Table 2 shows, the latest
    gru4rec = row(frame, mode="ranking", method_a="gru4rec", method_b="sft")
    assert (gru4rec["seed_a_only"], gru4rec["seed_b_only"]) == ("5", "0")

    sdpo = row(frame, mode="generation", method_a="sdpo", method_b="sft")
    # vs its own stage (0..9): sdpo alone hits 38, 39; SFT alone hits 0
    assert (sdpo["seed_a_only"], sdpo["seed_b_only"]) == ("2", "1")
    assert floats(sdpo["seed_diffs"]) == pytest.approx([1 / N], abs=1e-9)
    dpo_sft = row(frame, mode="generation", method_a="dpo", method_b="sft")
    # vs its own stage (0..4): dpo alone hits 20..22, SFT alone nothing (against the first
    # stage it would have been 3 / 5)
    assert (dpo_sft["seed_a_only"], dpo_sft["seed_b_only"]) == ("3", "0")
    assert floats(dpo_sft["seed_diffs"]) == pytest.approx([3 / N], abs=1e-9)

    text = (out / "paired_tests.md").read_text()
    # both named, and not the same: different stages; one unnamed: the store cannot say
    assert "napo vs dpo on lastfm (generation), seed 0: the runs started from different SFT" in text
    assert ("dpo vs sdpo on lastfm (generation), seed 0: a run does not record the SFT stage "
            "it started from") in text  # fmt: skip
    assert "dpo vs sdpo on lastfm (generation), seed 0: the runs started from" not in text
    assert "sdpo vs sft on lastfm (generation), seed 0: the runs started from" not in text
    assert "sdpo vs sft on lastfm (generation), seed 0: a run does not record" not in text
    # Table 2 shows one SFT run per seed, the latest stage's: 5 of 40, not 10 nor their mean
    main = read_csv(out / "table2_main.csv")
    sft_row = row(main, method="sft")
    assert float(sft_row["hr1_mean"]) == pytest.approx(5 / N, abs=1e-9)
    # vs SFT: each loss against the stage it started from: sdpo 11 vs 10 hits (+10%), dpo 8
    # vs 5 (+60%); against the SFT run Table 2 shows, sdpo would read 11 vs 5 (+120%)
    assert float(row(main, method="sdpo")["rel_sft_pct"]) == pytest.approx(10.0, abs=1e-9)
    assert float(row(main, method="dpo")["rel_sft_pct"]) == pytest.approx(60.0, abs=1e-9)


def test_table2_keeps_the_sft_run_the_seeds_runs_started_from_when_a_later_one_arrives(
    tmp_path,
):
    """A later study retrains seed 0's SFT stage (another machine) and records its evaluation
    before any run trained from it: Table 2 keeps the stage that dpo and sdpo started from."""
    store = tmp_path / "two-stages.jsonl"
    _add_run(store, "sft", "llm_baseline", 0, SFT_GEN, SFT_RANK, stage="a1")  # 10 hits
    _add_run(store, "sdpo", "loss", 0, SDPO_GEN, SFT_RANK, stage="a1")
    _add_run(store, "dpo", "loss", 0, SDPO_GEN, SFT_RANK, stage="a1")
    _add_run(store, "sft", "llm_baseline", 0, set(range(5)), SFT_RANK, stage="b2", time=LATER)
    out = tmp_path / "reports"
    compare(store, out, plots_enabled=False, pairs=["sdpo:sft"])
    main = read_csv(out / "table2_main.csv")
    assert float(row(main, method="sft")["hr1_mean"]) == pytest.approx(10 / N, abs=1e-9)
    # once more runs start from the new stage than from the old one, the table follows them
    for method in ("napo", "simpo", "sims_dpo"):
        _add_run(store, method, "loss", 0, SDPO_GEN, SFT_RANK, stage="b2", time=LATER)
    compare(store, tmp_path / "later", plots_enabled=False, pairs=["sdpo:sft"])
    later = read_csv(tmp_path / "later" / "table2_main.csv")
    assert float(row(later, method="sft")["hr1_mean"]) == pytest.approx(5 / N, abs=1e-9)


def test_a_method_that_names_its_sft_stage_compares_with_that_stage_like_a_loss(tmp_path):
    """SPRec is a method, not a loss, but it trains from the seed's SFT stage and records it:
    its "vs SFT", Figure 3 and paired tests use that stage's evaluation, not the SFT row."""
    store = tmp_path / "two-stages.jsonl"
    for method, family in (("sft", "llm_baseline"), ("sdpo", "loss"), ("dpo", "loss")):
        _add_run(store, method, family, 0, SFT_GEN, SFT_RANK, stage="a1")  # the table's stage
    _add_run(store, "sft", "llm_baseline", 0, set(range(5)), SFT_RANK, stage="b2", time=LATER)
    sprec = set(range(5)) | {20, 21, 22}  # 8 hits: 3 more than its own stage, 2 fewer than a1's
    _add_run(store, "sprec", "llm_baseline", 0, sprec, SFT_RANK, stage="b2", time=LATER)
    out = tmp_path / "reports"
    compare(store, out, plots_enabled=False)
    main = read_csv(out / "table2_main.csv")
    assert float(row(main, method="sft")["hr1_mean"]) == pytest.approx(10 / N, abs=1e-9)
    # 100 (8 - 5) / 5 against its own stage; against the SFT row it would read -20
    assert float(row(main, method="sprec")["rel_sft_pct"]) == pytest.approx(60.0, abs=1e-9)
    figure = row(read_csv(out / "fig3ab_relative_to_sft.csv"), method="sprec")
    assert float(figure["rel_hr1_pct"]) == pytest.approx(60.0, abs=1e-9)
    tests = read_csv(out / "paired_tests.csv")
    paired = row(tests, mode="generation", method_a="sprec", method_b="sft")
    # only sprec hits 20..22; against the a1 stage SFT alone would hit 5..9
    assert (paired["seed_a_only"], paired["seed_b_only"]) == ("3", "0")


def test_table2_names_the_stage_its_sft_row_shows_when_a_seed_has_two(tmp_path):
    """The SFT row follows the stage most of the seed's runs started from; the note says which,
    with the counts, and flips with them (a later study adding runs on a retrained stage)."""
    store = tmp_path / "two-stages.jsonl"
    for method in ("sft", "sdpo", "dpo"):
        _add_run(store, method, "llm_baseline" if method == "sft" else "loss", 0, SFT_GEN,
                 SFT_RANK, stage="aaaaaaaa1")  # fmt: skip
    _add_run(store, "sft", "llm_baseline", 0, set(range(5)), SFT_RANK, stage="bbbbbbbb2",
             time=LATER)  # fmt: skip
    _add_run(store, "napo", "loss", 0, SFT_GEN, SFT_RANK, stage="bbbbbbbb2", time=LATER)
    out = tmp_path / "reports"
    compare(store, out, plots_enabled=False)
    text = (out / "table2_main.md").read_text()
    assert (
        "SFT on lastfm, seed 0: its stage was trained twice (sft_stages); the SFT row shows "
        "stage aaaaaaaa, which 3 of the seed's runs started from; stage bbbbbbbb (2 runs) "
        "compares only with the runs trained from it"
    ) in text
    assert float(row(read_csv(out / "table2_main.csv"), method="sft")["hr1_mean"]) == (
        pytest.approx(10 / N, abs=1e-9)
    )
    for method in ("simpo", "sims_dpo"):  # two more runs on the second stage: it is shown
        _add_run(store, method, "loss", 0, SFT_GEN, SFT_RANK, stage="bbbbbbbb2", time=LATER)
    compare(store, out, plots_enabled=False)
    assert (
        "the SFT row shows stage bbbbbbbb, which 4 of the seed's runs"
        in (out / "table2_main.md").read_text()
    )
    assert float(row(read_csv(out / "table2_main.csv"), method="sft")["hr1_mean"]) == (
        pytest.approx(5 / N, abs=1e-9)
    )
    single = tmp_path / "one-stage.jsonl"
    _add_run(single, "sft", "llm_baseline", 0, SFT_GEN, SFT_RANK, stage="aaaaaaaa1")
    compare(single, tmp_path / "single", plots_enabled=False)
    assert "trained twice" not in (tmp_path / "single" / "table2_main.md").read_text()


T975_1 = 12.70620474  # Student t, 1 degree of freedom, 97.5% (printed tables)


def test_figure3_intervals_pair_each_seed_with_its_own_sft_stage(tmp_path):
    store = tmp_path / "two-stages.jsonl"
    _add_run(store, "sft", "llm_baseline", 0, SFT_GEN, SFT_RANK)  # the first stage: 10 hits
    _add_run(store, "sft", "llm_baseline", 0, set(range(5)), SFT_RANK, stage="b2", time=LATER)
    _add_run(store, "dpo", "loss", 0, set(range(8)), SFT_RANK, stage="b2", time=LATER)
    _add_run(store, "sft", "llm_baseline", 1, SFT_GEN, SFT_RANK, stage="c1", time=LATER)
    _add_run(store, "dpo", "loss", 1, set(range(12)), SFT_RANK, stage="c1", time=LATER)
    out = tmp_path / "reports"
    compare(store, out, plots_enabled=False)
    dpo = row(read_csv(out / "fig3ab_relative_to_sft.csv"), method="dpo")
    # per seed, 100 (dpo - own SFT) / own SFT: seed 0 8 vs 5 hits (+60), seed 1 12 vs 10 (+20);
    # mean 40, sample sd 20 sqrt(2); against the first stage seed 0 would be -20
    half = T975_1 * 20 * math.sqrt(2) / math.sqrt(2)
    assert float(dpo["rel_hr1_low"]) == pytest.approx(40 - half, abs=1e-4)
    assert float(dpo["rel_hr1_high"]) == pytest.approx(40 + half, abs=1e-4)


def test_sft_stages_table_sets_one_seeds_two_stages_side_by_side(tmp_path):
    store = tmp_path / "two-stages.jsonl"
    _add_run(store, "sft", "llm_baseline", 0, SFT_GEN, SFT_RANK)  # hits 0..9
    _add_run(store, "sft", "llm_baseline", 0, set(range(5)), SFT_RANK, stage="b2", time=LATER)
    _add_run(store, "sft", "llm_baseline", 1, SFT_GEN, SFT_RANK, stage="c1", time=LATER)
    out = tmp_path / "reports"
    compare(store, out, plots_enabled=False)
    frame = read_csv(out / "sft_stages.csv")
    assert list(zip(frame["seed"], frame["mode"], strict=True)) == [
        ("0", "generation"),
        ("0", "ranking"),
    ]  # seed 1 has one stage: no row
    generation = row(frame, mode="generation")
    # examples 5..9 are hit by the first stage only: 5 of 40 changed, McNemar 2 (1/2)^5
    assert (generation["first_only"], generation["second_only"]) == ("5", "0")
    assert float(generation["changed_share"]) == pytest.approx(5 / N, abs=1e-9)
    assert float(generation["difference"]) == pytest.approx(-5 / N, abs=1e-9)
    assert float(generation["p"]) == pytest.approx(2 / 32, rel=1e-9)
    assert generation["first_stage"] == "(not recorded)" and generation["second_stage"] == "b2"
    ranking = row(frame, mode="ranking")  # the same ranking hits: nothing changed
    assert float(ranking["changed_share"]) == 0.0 and float(ranking["p"]) == 1.0


def test_sft_stages_table_says_which_train_split_each_training_read(tmp_path):
    """A stage trained again on a rebuilt train split draws other SFT examples: the row
    must say so, not pass the difference off as the hardware's."""
    store = tmp_path / "rebuilt.jsonl"
    old, new = "dd8d3ca6" + "0" * 56, "f740be24" + "1" * 56
    _add_run(store, "sft", "llm_baseline", 0, SFT_GEN, SFT_RANK)  # states no train file
    _add_run(store, "sft", "llm_baseline", 0, SFT_GEN, SFT_RANK, stage="b2", time=LATER,
             train=new)  # fmt: skip
    _add_run(store, "sft", "llm_baseline", 1, SFT_GEN, SFT_RANK, stage="c1", train=old)
    _add_run(store, "sft", "llm_baseline", 1, SFT_GEN, SFT_RANK, stage="c2", time=LATER,
             train=new)  # fmt: skip
    _add_run(store, "sft", "llm_baseline", 2, SFT_GEN, SFT_RANK, stage="d1", train=new)
    _add_run(store, "sft", "llm_baseline", 2, SFT_GEN, SFT_RANK, stage="d2", time=LATER,
             train=new)  # fmt: skip
    out = tmp_path / "reports"
    compare(store, out, plots_enabled=False)
    text = (out / "sft_stages.md").read_text()
    lines = [line for line in text.splitlines() if line.startswith("| lastfm | ")]
    by_seed = {line.split(" | ")[1]: line for line in lines if "| generation |" in line}
    assert "| not recorded → f740be24 |" in by_seed["0"]
    assert "| dd8d3ca6 → f740be24 |" in by_seed["1"]
    assert "| same (f740be24) |" in by_seed["2"]
    assert "measures data and hardware together" in text


def test_vs_sft_sets_a_loss_against_the_sft_seeds_it_has(tmp_path):
    """SFT has seeds 0 and 1, the loss only seed 0: its gain is over seed 0's SFT, not over
    the mean of both SFT seeds (one seed of a loss against another seed's SFT)."""
    store = tmp_path / "uneven.jsonl"
    _add_run(store, "sft", "llm_baseline", 0, SFT_GEN, SFT_RANK)  # 10 of 40
    _add_run(store, "sft", "llm_baseline", 1, set(range(6)), SFT_RANK)  # 6 of 40
    _add_run(store, "sdpo", "loss", 0, SFT_GEN, SFT_RANK)  # 10 of 40: the same as its SFT
    out = tmp_path / "reports"
    compare(store, out, plots_enabled=False)
    main = read_csv(out / "table2_main.csv")
    assert float(row(main, method="sdpo")["rel_sft_pct"]) == pytest.approx(0.0, abs=1e-9)
    figure = read_csv(out / "fig3ab_relative_to_sft.csv")
    sdpo = row(figure, method="sdpo")
    assert float(sdpo["rel_hr1_pct"]) == pytest.approx(0.0, abs=1e-9)
    assert float(sdpo["sft_hr1_mean"]) == pytest.approx(10 / N, abs=1e-9)  # not 8 of 40


def _clustered(seed: str, difference: float, p_holm: float, p_users_holm: float) -> SeedTest:
    return SeedTest(
        seed, 100, 0.5 + difference, 0.5, 0, 0, p_holm, p_holm, 10, p_users_holm, p_users_holm, 1.0
    )


def test_verdict_says_which_part_of_the_rule_fails():
    def comparison(*seeds: SeedTest) -> Comparison:
        return Comparison("movielens", "study", "generation", "napo", "sdpo", list(seeds))

    # three seeds of 0.10, 0.12, 0.11: t interval 0.11 +- 4.30 * 0.01 / sqrt(3) excludes 0
    survivor = comparison(_seed("0", 0.1, 0.01), _seed("1", 0.12, 0.02), _seed("2", 0.11, 0.01))
    assert survivor.verdict(0.03) == "separated" and survivor.shortfalls() == []
    assert comparison(_seed("0", 0.1, 0.01)).verdict(0.03) == "separated (one training run)"

    # every seed below the detectable 0.03 and no test surviving: a matter of power
    weak = comparison(_seed("0", 0.015, 0.46), _seed("1", 0.014, 0.62), _seed("2", 0.008, 1.0))
    assert weak.verdict(0.03) == "not separated at this power"
    assert weak.shortfalls() == ["McNemar Holm p >= 0.05 on seeds 0, 1, 2"]
    # seed 1 as large as the design detects, yet its test fails: not a matter of power alone
    assert weak.verdict(0.0145) == "not separated"
    assert weak.verdict(math.nan) == "not separated at this power"  # nothing is detectable

    # McNemar survives everywhere; seed 2's users do not, and the seeds disagree in sign
    mixed = comparison(
        _clustered("0", 0.05, 0.001, 0.01),
        _clustered("1", -0.05, 0.001, 0.02),
        _clustered("2", 0.05, 0.001, 0.2),
    )
    assert mixed.shortfalls() == [
        "by user Holm p >= 0.05 on seed 2",
        "the interval over seeds holds 0",
    ]
    assert mixed.verdict(0.03) == "not separated"
