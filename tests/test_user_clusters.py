"""Paired tests clustered by user: the users map, the sign-flip test, the design effect.

Expected values are worked out by hand in the comments (sign flips enumerated on paper, sums of
squares), not taken from the code under test.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import assert_user_error

from recbench import results
from recbench.outcomes import ExampleUsers, Outcomes
from recbench.reports import compare
from recbench.reports.significance import design_effect, user_clustered_p


# ------------------------------------------------------------------------------ the test
def test_sign_flip_p_values_by_hand():
    # sums 3, 1, 2: the 8 sign patterns give totals 6, 2, 4, 0, 0, -4, -2, -6; |total| >= 6 in 2
    assert user_clustered_p([3, 1, 2]) == pytest.approx(0.25, abs=1e-12)
    assert user_clustered_p([3, 0, 1, 0, 2]) == pytest.approx(0.25, abs=1e-12)  # zeros: no info
    # twelve users, all +1: only all-plus and all-minus reach |12| of 4,096 patterns
    assert user_clustered_p([1] * 12) == pytest.approx(2 / 4096, abs=1e-12)
    # one user holds every discordant example: its sign alone decides, p = 2/2
    assert user_clustered_p([10]) == pytest.approx(1.0, abs=1e-12)
    assert user_clustered_p([0, 0]) == 1.0


def test_sign_flip_with_many_users_is_seeded_and_close_to_the_normal_approximation():
    sums = [1, 1, 2, -1, 1, 0, 3, 1, -1, 1, 2, 1, 1, -2, 1, 1, 1, 2, 1, 1]  # 19 non-zero
    first, second = user_clustered_p(sums), user_clustered_p(sums)
    assert first == second  # seeded: a report does not change between two runs
    # normal approximation: z = 17 / sqrt(sum of squares 41) = 2.655, two-sided p = 0.0079
    assert first == pytest.approx(0.0079, abs=0.004)


def test_design_effect_by_hand():
    # per-user sums 2, -1, 0 from 5 discordant examples: (4 + 1 + 0) / 5
    assert design_effect([2, -1, 0], 5) == pytest.approx(1.0, abs=1e-12)
    # one user holding all 3 discordant examples, all one way: 9 / 3
    assert design_effect([3], 3) == pytest.approx(3.0, abs=1e-12)
    assert np.isnan(design_effect([0], 0))


# ---------------------------------------------------------------------------- users map
def test_user_of_and_round_trip():
    users = ExampleUsers("d", "test", "ab" * 32, examples=10, starts=(0, 4, 6))
    assert [users.user_of(f"test:{i}") for i in (0, 3, 4, 5, 6, 9)] == [0, 0, 1, 1, 2, 2]
    assert users.user_of("test:10") is None and users.user_of("val:1") is None
    assert ExampleUsers.from_json(users.to_json()) == users
    broken = json.loads(users.to_json())
    broken["starts"] = [0, 6, 4]
    with pytest.raises(ValueError, match="starts must ascend"):
        ExampleUsers.from_json(json.dumps(broken).encode())


def test_store_keeps_one_map_per_split(tmp_path):
    store = tmp_path / "r.jsonl"
    users = ExampleUsers("lastfm", "test", "ab" * 32, examples=10, starts=(0, 4))
    assert results.write_example_users(store, users) == results.users_path(store, "lastfm", "test")
    assert results.write_example_users(store, users) is None  # the same map: nothing to do
    other = ExampleUsers("lastfm", "test", "cd" * 32, examples=10, starts=(0, 5))
    with pytest.raises(ValueError, match="another lastfm test file"):
        results.write_example_users(store, other)
    assert results.read_example_users(store, "lastfm", "test") == users
    assert results.read_example_users(store, "lastfm", "val") is None


# ------------------------------------------------------------------------ in the report
N = 40
KEYS = [f"test:{i}" for i in range(N)]


def _add(store: Path, method: str, seed: int, hits: set[int], split_sha: str | None) -> None:
    run = {
        "run_id": f"{method}-{seed}",
        "time": "2026-01-01T00:00:00+0000",
        "dataset": "lastfm",
        "method": method,
        "family": "loss" if method != "sft" else "llm_baseline",
        "model": "smollm2-135m",
        "seed": seed,
        "profile": "cpu",
        "hparams": {},
        "settings": {"dataset_files": {"test": split_sha}} if split_sha else {},
        "hardware": {"machine": "x86_64", "cpu": "x86_64", "cpu_count": 2, "system": "Linux"},
        "versions": {"python": "3.11", "recbench": "0.1.0"},
    }
    rows = {k: {"rank": 1 if i in hits else 2} for i, k in enumerate(KEYS)}
    metrics = {"hr@1": len(hits) / N, "n_examples": N}
    records = results.make_records(run, metrics, split="test", mode="ranking")
    results.append_records(records, store, Outcomes(rows))


def _store(tmp_path: Path, split_sha: str | None = None) -> Path:
    # four users of 10 examples each; on every seed A hits all of user 0's examples and SFT
    # none, elsewhere both hit the same 5: 10 discordant examples, all one user's
    store = tmp_path / "results.jsonl"
    for seed in (0, 1):
        _add(store, "sft", seed, set(range(10, 15)), split_sha)
        _add(store, "napo", seed, set(range(15)), split_sha)
    return store


def _tests(out: Path) -> pd.Series:
    text = (out / "paired_tests.csv").read_text()
    frame = pd.read_csv(io.StringIO(text), comment="#", dtype=str, keep_default_na=False)
    assert len(frame) == 1
    return frame.iloc[0]


def test_clustering_by_user_can_overturn_mcnemar(tmp_path):
    store = _store(tmp_path)
    compare(store, tmp_path / "plain", plots_enabled=False)
    plain = _tests(tmp_path / "plain")
    # McNemar: 10 vs 0 discordant, p = 2 / 2^10 per seed; Holm over 2 seeds doubles the smaller
    assert plain["seed_p"] == "0.00195312;0.00195312" and plain["survives"] == "yes"
    assert plain["seed_users"] == "" and plain["design_effect"] == ""

    users = ExampleUsers("lastfm", "test", "ab" * 32, examples=N, starts=(0, 10, 20, 30))
    results.write_example_users(store, users)
    compare(store, tmp_path / "clustered", plots_enabled=False)
    clustered = _tests(tmp_path / "clustered")
    # by user: one non-zero sum (+10), whose sign flip is all there is: p = 1
    assert clustered["seed_users"] == "4;4" and clustered["seed_p_users"] == "1;1"
    assert float(clustered["design_effect"]) == pytest.approx(10.0, abs=1e-9)  # 10^2 / 10
    assert clustered["survives"] == "no"
    # the detectable difference is computed on 40 / 10 effective examples: none is detectable
    assert clustered["detectable_diff"] in ("", "nan")
    assert "| none |" in (tmp_path / "clustered" / "paired_tests.md").read_text()


def test_a_map_of_another_split_file_is_not_used(tmp_path):
    store = _store(tmp_path, split_sha="cd" * 32)
    users = ExampleUsers("lastfm", "test", "ab" * 32, examples=N, starts=(0, 10, 20, 30))
    results.write_example_users(store, users)
    compare(store, tmp_path / "r", plots_enabled=False)
    row = _tests(tmp_path / "r")
    assert row["seed_users"] == "" and row["survives"] == "yes"
    assert (
        "users map was made from another test file"
        in (tmp_path / "r" / "paired_tests.md").read_text()
    )


def test_runs_keep_the_users_map_and_the_command_fills_older_stores(cli, tmp_path):
    store = tmp_path / "results.jsonl"
    ran = cli("run", "--baseline", "pop", "--dataset", "lastfm", "--results", str(store))
    assert ran.returncode == 0, ran.stderr[-2000:]
    kept = results.read_example_users(store, "lastfm", "test")
    assert kept is not None and len(kept.starts) == 122 and kept.examples == 2495

    results.users_path(store, "lastfm", "test").unlink()  # a store from before maps were kept
    made = cli("data", "users", "lastfm", "--results", str(store))
    assert made.returncode == 0 and made.stdout.startswith("kept: "), made.stderr
    assert results.read_example_users(store, "lastfm", "test") == kept
    again = cli("data", "users", "lastfm", "--results", str(store))
    assert again.stdout.startswith("already kept: ")

    missing = cli("data", "users", "lastfm", "--results", str(tmp_path / "none.jsonl"))
    assert_user_error(missing, "no results store at")
    bad = cli("data", "users", "lastfm", "--results", str(store), "--split", "tset")
    assert_user_error(bad, "unknown split 'tset'")
    other = cli("data", "users", "movielens", "--results", str(store))
    assert_user_error(other, "holds no run scored on movielens's test split", "lastfm test")
    assert not results.users_path(store, "movielens", "test").exists()
