"""Fast checks of the sequential baselines: released weights, protocol numbers, training, caches.

The reference outputs come from the original (pickled) models; reproducing them to 1e-4 is what
shows that the re-implemented architectures, including their quirks, are the released ones.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from recbench.baselines import (
    BASELINES,
    CandidateSet,
    Caser,
    GRU4Rec,
    SASRec,
    TrainConfig,
    TrainingRows,
    build_model,
    evaluate_model,
    execute_baseline,
    fit,
    list_baselines,
    load_released,
    load_weights,
    released_names,
    save_weights,
)

from recbench import results
from recbench.data import load_dataset
from recbench.errors import ModelError, UnknownNameError, UserError
from recbench.seqrec.weights import CHECKPOINT_DIR

REFERENCE = Path(__file__).parent / "data" / "reference_outputs.json"
STEAM_HR1 = {"sasrec": 0.4140, "gru4rec": 0.4165, "caser": 0.4477}  # PROVENANCE.md, 1,186 rows


def _reference() -> dict:
    return json.loads(REFERENCE.read_text(encoding="utf-8"))


# --- released checkpoints -------------------------------------------------------------------


def test_reference_copy_matches_shipped_file():
    assert _reference() == json.loads((CHECKPOINT_DIR / "reference_outputs.json").read_text())


@pytest.mark.parametrize("name", sorted(_reference()))
def test_released_checkpoint_reproduces_reference_outputs(name):
    ref = _reference()[name]
    model, _ = load_weights(CHECKPOINT_DIR / f"{name}.safetensors")
    assert not model.training
    with torch.no_grad():
        scores = model(torch.tensor(ref["seq"]), torch.tensor(ref["len_seq"]))
    top = scores.topk(5, dim=1)
    assert top.indices.tolist() == ref["top5_ids"]
    torch.testing.assert_close(top.values, torch.tensor(ref["top5_scores"]), atol=1e-4, rtol=0)
    of_next = scores[torch.arange(len(ref["next"])), torch.tensor(ref["next"])]
    torch.testing.assert_close(of_next, torch.tensor(ref["score_of_next"]), atol=1e-4, rtol=0)


def test_reference_rows_are_the_first_test_examples():
    """The reference rows are the first 12 test rows with len_seq >= 3 (the protocol's rows)."""
    for name, dataset in (("sasrec_lastfm", "lastfm"), ("sasrec_steam", "steam")):
        ref = _reference()[name]
        examples = load_dataset(dataset).examples("test")[:12]
        assert [list(e.seq) for e in examples] == ref["seq"]
        assert [e.target for e in examples] == ref["next"]


@pytest.mark.parametrize("name", released_names())
def test_every_released_checkpoint_loads_strictly(name):
    model, settings = load_weights(CHECKPOINT_DIR / f"{name}.safetensors")
    description = json.loads((CHECKPOINT_DIR / f"{name}.json").read_text())
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert shapes == description["tensors"]
    assert settings["sha256"] and model.padding_id == model.num_items


@pytest.mark.parametrize("name", ["sasrec", "gru4rec", "caser"])
def test_released_steam_hr1_matches_provenance(name, tmp_path):
    from recbench import runner
    from recbench.config import RunConfig

    store = tmp_path / "results.jsonl"
    config = RunConfig(dataset="steam", baseline=name, checkpoint="released", profile="paper",
                       results=store)  # fmt: skip
    metrics = runner.execute(config, progress=False)["evaluation"]["ranking"]
    assert metrics["n_examples"] == 1186
    assert round(metrics["hr@1"], 4) == STEAM_HR1[name]
    assert 0 <= metrics["ndcg@10"] <= 1 and metrics["hr@5"] >= metrics["hr@1"]
    assert np.isfinite(metrics["pop_bias"]) and metrics["pop_bias_n_valid"] == 1186
    records = results.read_records(store)
    by_metric = {r["metric"]: r for r in records if r["mode"] == "ranking"}
    assert by_metric["hr@1"]["value"] == metrics["hr@1"]
    assert by_metric["hr@1"]["method"] == name
    assert by_metric["hr@1"]["family"] == "sequential"
    assert by_metric["hr@1"]["split"] == "test" and by_metric["hr@1"]["mode"] == "ranking"
    assert by_metric["hr@1"]["model"] == f"released:{name}_steam"


def test_missing_released_checkpoint_is_a_one_line_user_error():
    with pytest.raises(ModelError) as info:
        execute_baseline("gru4rec", "lastfm", checkpoint="released")
    message = str(info.value)
    assert "\n" not in message and "steam" in message and "lastfm" in message
    assert isinstance(info.value, UserError)


def test_checkpoint_of_wrong_kind_or_size_is_refused():
    with pytest.raises(ModelError, match="caser model, not sasrec"):
        execute_baseline(
            "sasrec",
            "steam",
            checkpoint=CHECKPOINT_DIR / "caser_steam.safetensors",
        )
    with pytest.raises(ModelError, match="3581 items"):
        execute_baseline(
            "sasrec",
            "lastfm",
            checkpoint=CHECKPOINT_DIR / "sasrec_steam.safetensors",
        )


def test_unknown_names_suggest_the_closest():
    with pytest.raises(UnknownNameError, match="did you mean 'sasrec'"):
        execute_baseline("sasrek", "steam", checkpoint="released")
    with pytest.raises(UserError, match="did you mean 'epochs'"):
        BASELINES.get("caser").train_config(epoch=2)
    assert [b["name"] for b in list_baselines()] == ["gru4rec", "caser", "sasrec"]


def test_training_options_with_a_checkpoint_are_refused():
    with pytest.raises(UserError, match="no effect"):
        execute_baseline("sasrec", "steam", checkpoint="released", epochs=3)


# --- architecture quirks --------------------------------------------------------------------


def _random_batch(num_items: int, lengths: list[int], seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    seq = torch.full((len(lengths), 10), num_items, dtype=torch.long)
    for row, n in enumerate(lengths):
        seq[row, :n] = torch.randint(0, num_items, (n,), generator=gen)
    return seq, torch.tensor(lengths)


def test_sasrec_is_causal_and_ignores_the_padding_row():
    model, _ = load_released("sasrec", "steam")
    seq, lens = _random_batch(model.num_items, [3, 5, 10, 1])
    base = model.represent(seq, lens)
    later = seq.clone()
    later[:, 6:] = 7  # items after position len_seq - 1 (for the short rows) must not matter
    torch.testing.assert_close(model.represent(later, lens)[:2], base[:2])
    with torch.no_grad():
        model.item_embeddings.weight[model.padding_id] += 5.0
    torch.testing.assert_close(model.represent(seq, lens)[:3], base[:3])


def test_sasrec_padded_last_state_is_constant_for_short_sequences():
    """The official NAPO artefact: position T-1 of a short sequence is ln_3 of a zero vector."""
    model, _ = load_released("sasrec", "lastfm")
    seq, lens = _random_batch(model.num_items, [3, 4, 9, 10])
    with torch.no_grad():
        padded = model.represent(seq, lens, state="padded_last")
        last = model.represent(seq, lens, state="last")
    torch.testing.assert_close(padded[0], padded[1])
    torch.testing.assert_close(padded[0], model.ln_3.bias.detach())
    torch.testing.assert_close(padded[3], last[3])
    assert not torch.allclose(last[0], last[1])
    with pytest.raises(ValueError):
        model.represent(seq, lens, state="first")


def test_gru4rec_reads_only_the_first_len_seq_items():
    model, _ = load_released("gru4rec", "steam")
    seq, lens = _random_batch(model.num_items, [3, 6])
    noisy = seq.clone()
    noisy[0, 3:] = 11
    noisy[1, 6:] = 12
    with torch.no_grad():
        torch.testing.assert_close(model(noisy, lens), model(seq, lens))


def test_caser_zeroes_padding_embeddings():
    model, _ = load_released("caser", "steam")
    seq, lens = _random_batch(model.num_items, [3, 10])
    with torch.no_grad():
        before = model(seq, lens)
        model.item_embeddings.weight[model.padding_id] = 3.0
        torch.testing.assert_close(model(seq, lens), before)


@pytest.mark.parametrize(
    ("kind", "config"),
    [
        ("sasrec", {"hidden_size": 32, "num_blocks": 2, "num_heads": 4, "dropout": 0.2}),
        ("gru4rec", {"hidden_size": 24, "num_layers": 2, "dropout": 0.1}),
        ("caser", {"hidden_size": 16, "num_filters": 4, "filter_sizes": [1, 5], "dropout": 0.3}),
    ],
)
def test_sizes_are_configurable_and_round_trip(kind, config, tmp_path):
    torch.manual_seed(0)
    model = build_model(kind, num_items=50, **config)
    seq, lens = _random_batch(50, [1, 3, 10])
    model.eval()
    with torch.no_grad():
        expected = model(seq, lens)
    assert expected.shape == (3, 50)
    save_weights(model, tmp_path, {"note": "test"})
    loaded, settings = load_weights(tmp_path)
    assert settings["note"] == "test" and loaded.config() == model.config()
    with torch.no_grad():
        torch.testing.assert_close(loaded(seq, lens), expected)


def test_multi_head_attention_uses_the_full_hidden_size_scale():
    """With h heads the logits are still divided by sqrt(d), as in the released code."""
    torch.manual_seed(0)
    model = SASRec(20, hidden_size=8, num_heads=2, dropout=0.0).eval()
    x = torch.randn(1, 10, 8)
    attn = model.mh_attn
    q = attn.linear_q(x).view(1, 10, 2, 4).transpose(1, 2)
    k = attn.linear_k(x).view(1, 10, 2, 4).transpose(1, 2)
    v = attn.linear_v(x).view(1, 10, 2, 4).transpose(1, 2)
    logits = q @ k.transpose(-1, -2) / 8**0.5
    logits = logits.masked_fill(torch.ones(10, 10).triu(1).bool(), -(2.0**32) + 1)
    manual = (logits.softmax(-1) @ v).transpose(1, 2).reshape(1, 10, 8) + x
    torch.testing.assert_close(attn(x, x), manual)


def test_model_classes_are_exported():
    assert {SASRec.kind, GRU4Rec.kind, Caser.kind} == {"sasrec", "gru4rec", "caser"}


# --- training -------------------------------------------------------------------------------


@pytest.fixture()
def one_thread():
    """Tiny models train faster on one thread (and stay fast when other processes load the
    cores, where two busy-waiting OpenMP threads made each step ~30x slower)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_data():
    ds = load_dataset("lastfm")
    rows = ds.rows("train")
    train = TrainingRows.from_arrays(rows.seq[:2048], rows.len_seq[:2048], rows.next[:2048])
    val = CandidateSet.from_examples(ds.examples("val")[:150])
    return ds, train, val


@pytest.mark.parametrize("kind", ["sasrec", "gru4rec", "caser"])
def test_training_decreases_loss_and_is_deterministic(kind, tiny_data, one_thread):
    ds, train, val = tiny_data
    config = TrainConfig(
        epochs=3, batch_size=64, lr=3e-3, patience=3, max_steps_per_epoch=8, progress=False
    )

    def run(seed: int):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = build_model(kind, num_items=ds.num_items, hidden_size=16)
        return model, fit(model, train, val, config, seed=seed)

    first, outcome = run(seed=3)
    second, _ = run(seed=3)
    other, _ = run(seed=4)
    losses = [h["loss"] for h in outcome.history]
    assert losses[-1] < losses[0]
    assert outcome.epochs_run == 3 and 1 <= outcome.best_epoch <= 3
    assert outcome.best_val_hr1 == max(h["val_hr@1"] for h in outcome.history)
    for name, tensor in first.state_dict().items():
        assert torch.equal(tensor, second.state_dict()[name]), name
    assert any(not torch.equal(t, other.state_dict()[n]) for n, t in first.state_dict().items())
    # the returned model holds the best-validation state
    assert evaluate_model(first, val)["hr@1"] == outcome.best_val_hr1


def test_training_does_not_touch_the_callers_rng(tiny_data, one_thread):
    ds, train, val = tiny_data
    model = build_model("caser", num_items=ds.num_items, hidden_size=8)
    config = TrainConfig(epochs=1, max_steps_per_epoch=2, progress=False)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    fit(model, train, val, config, seed=0)
    torch.testing.assert_close(torch.rand(3), expected)


def test_early_stopping_keeps_the_best_epoch(tiny_data, one_thread):
    ds, train, val = tiny_data
    model = build_model("gru4rec", num_items=ds.num_items, hidden_size=8)
    # A huge learning rate makes validation collapse after the first epochs.
    config = TrainConfig(
        epochs=30, lr=1.0, patience=2, batch_size=256, max_steps_per_epoch=4, progress=False
    )
    outcome = fit(model, train, val, config, seed=0)
    assert outcome.stopped_by == "patience"
    assert outcome.epochs_run == outcome.best_epoch + 2


def test_a_trained_baseline_is_saved_and_reloads(recbench_home, tmp_path, one_thread):
    store = tmp_path / "results.jsonl"
    out = tmp_path / "model"
    run = execute_baseline(
        "sasrec",
        "lastfm",
        seed=1,
        out_dir=out,
        epochs=1,
        model_overrides={"hidden_size": 16},
        train_overrides={"max_steps_per_epoch": 5, "batch_size": 64},
        max_examples=300,
        progress=False,
    )
    assert (out / "model.safetensors").is_file() and (out / "model.json").is_file()
    saved = json.loads((out / "model.json").read_text())
    assert saved["dataset"] == "lastfm" and saved["seed"] == 1
    assert saved["train"]["max_steps_per_epoch"] == 5 and saved["config"]["hidden_size"] == 16
    assert "test" not in saved["dataset_files"]  # training never reads the test split
    assert run.metrics["n_examples"] == 300
    again = execute_baseline("sasrec", "lastfm", checkpoint=out, max_examples=300).metrics
    assert again["hr@1"] == pytest.approx(run.metrics["hr@1"], abs=0.0)
    from recbench import runner
    from recbench.config import RunConfig

    recorded = runner.execute(RunConfig(dataset="lastfm", baseline="sasrec", checkpoint=str(out),
                                        profile="cpu", results=store), progress=False)  # fmt: skip
    records = results.read_records(store)
    assert {r["metric"] for r in records if r["mode"] == "ranking"} >= {
        "hr@1",
        "ndcg@5",
        "ndcg@10",
        "pop_bias",
    }
    cost = {r["metric"]: r["value"] for r in records if r["mode"] == "cost"}
    assert set(cost) == {
        "train_seconds",  # the given weights' own training, from their settings
        "eval_ranking_seconds",
        "peak_memory_mb",
        "cpu_utilisation",
        "load_average",
        "lock_wait",
    }
    assert 0.0 < cost["cpu_utilisation"] <= 1.5 and cost["load_average"] >= 0.0
    # given weights: no seed drew anything
    assert all(r["run_id"] == recorded["run_id"] and r["seed"] is None for r in records)


# --- NAPO auxiliary signals -----------------------------------------------------------------


def test_run_baseline_from_a_run_config(recbench_home, tmp_path):
    from recbench import runner
    from recbench.config import RunConfig, get_profile

    store = tmp_path / "results.jsonl"
    config = RunConfig(
        dataset="steam", baseline="caser", checkpoint="released", profile="cpu", results=store
    )
    summary = runner.execute(config, progress=False)
    ranking = summary["evaluation"]["ranking"]
    assert ranking["n_examples"] == get_profile("cpu").eval_examples  # the profile's subset
    assert summary["results"] == str(store)
    assert set(summary["timings"]) == {"eval_ranking_seconds"}  # nothing was trained
    assert runner.execute(config, progress=False)["skipped"] == "already recorded"
    records = results.read_records(store)
    assert {r["run_id"] for r in records} == {summary["run_id"]}
    assert {r["profile"] for r in records} == {"cpu"}


def test_smoke_profile_trains_a_baseline_in_seconds(recbench_home, tmp_path, one_thread):
    from recbench import runner
    from recbench.config import RunConfig, get_profile

    config = RunConfig(
        dataset="lastfm",
        baseline="gru4rec",
        profile="smoke",
        output_dir=tmp_path / "gru",
        results=tmp_path / "r.jsonl",
    )
    summary = runner.execute(config, progress=False)
    smoke = get_profile("smoke")
    assert summary["evaluation"]["ranking"]["n_examples"] == smoke.eval_examples
    saved = json.loads((tmp_path / "gru" / "model.json").read_text())
    assert saved["train_rows"] == smoke.train_examples and saved["result"]["epochs_run"] == 1
    assert set(summary["timings"]) == {"train_seconds", "eval_ranking_seconds"}


def test_limited_evaluation_uses_the_llm_pipelines_subset():
    from recbench.batches import EVAL_SEED

    pipeline = pytest.importorskip("recbench.pipeline")
    assert pipeline.EVAL_SEED == EVAL_SEED
