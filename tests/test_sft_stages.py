"""A loss run is recorded with the SFT stage it started from, and is never paired with an
evaluation of another stage trained with the same settings.

The stage cache does not travel between machines, and bf16 kernels differ between CPUs, so a
study continued on another machine retrains a seed's SFT stage into another model.  The store
then holds an evaluation of the old stage under the settings' id; the new stage must be
evaluated and recorded under its own id, and its loss runs name it.  The runs use the tiny
random Llama (``tiny_llm``): every stage of the real pipeline in seconds.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pytest

from recbench import api
from recbench.config import RunConfig

pytestmark = pytest.mark.model


def _run(tiny_llm: Path, store: Path, loss: str) -> dict:
    config = RunConfig(loss=loss, dataset="lastfm", profile="smoke", model=str(tiny_llm),
                       results=store)  # fmt: skip
    return api.run(config)


def _runs(store: Path) -> dict[str, dict]:
    """run id -> (method, sft_weights) of the store's records, read as plain JSON."""
    out = {}
    for line in store.read_text().splitlines():
        record = json.loads(line)
        out[record["run_id"]] = (record["method"], record["settings"].get("sft_weights"))
    return out


def _rewrite_sft_weights(store: Path, value: str | None) -> None:
    """Make the store's SFT evaluation look like another stage's (or a record from before
    stages carried a digest, for ``None``)."""
    lines = []
    for line in store.read_text().splitlines():
        record = json.loads(line)
        if record["method"] == "sft":
            if value is None:
                record["settings"].pop("sft_weights")
            else:
                record["settings"]["sft_weights"] = value
        lines.append(json.dumps(record))
    store.write_text("\n".join(lines) + "\n")


def test_a_loss_run_and_its_sft_evaluation_name_the_same_stage(tiny_llm, recbench_home, tmp_path):
    store = tmp_path / "r.jsonl"
    _run(tiny_llm, store, "dpo")
    runs = _runs(store)
    assert sorted(m for m, _ in runs.values()) == ["dpo", "sft"]
    digests = {w for _, w in runs.values()}
    assert len(digests) == 1
    digest = digests.pop()
    assert isinstance(digest, str) and len(digest) == 16

    # a second loss on the same (cached) stage finds the SFT evaluation: recorded once
    _run(tiny_llm, store, "simpo")
    runs = _runs(store)
    assert sorted(m for m, _ in runs.values()) == ["dpo", "sft", "simpo"]
    assert {w for _, w in runs.values()} == {digest}


def test_a_stage_retrained_on_the_same_machine_is_the_same_stage(tiny_llm, recbench_home, tmp_path):
    """Training is deterministic on one machine: the stage trained again after its cache was
    lost has the same weights, so its recorded evaluation still stands (no second one)."""
    store = tmp_path / "r.jsonl"
    _run(tiny_llm, store, "dpo")
    (stage,) = (recbench_home / "stages").glob("sft-*")
    shutil.rmtree(stage)
    _run(tiny_llm, store, "simpo")
    assert (stage / "final" / "done.json").is_file()  # trained again
    runs = _runs(store)
    assert sorted(m for m, _ in runs.values()) == ["dpo", "sft", "simpo"]
    assert len({w for _, w in runs.values()}) == 1


@pytest.mark.parametrize("recorded", ["0123456789abcdef", None])
def test_another_stage_with_the_same_settings_is_evaluated_under_its_own_id(
    tiny_llm, recbench_home, tmp_path, recorded
):
    store = tmp_path / "r.jsonl"
    _run(tiny_llm, store, "dpo")
    (sft_id,) = [i for i, (m, _) in _runs(store).items() if m == "sft"]
    _rewrite_sft_weights(store, recorded)  # the store's SFT evaluation is of another stage

    with pytest.warns(UserWarning, match=f"not the one evaluated as {sft_id}"):
        _run(tiny_llm, store, "simpo")
    runs = _runs(store)
    (digest,) = {w for m, w in runs.values() if m == "simpo"}
    sft_runs = {i: w for i, (m, w) in runs.items() if m == "sft"}
    assert sft_runs == {sft_id: recorded, f"{sft_id}-w{digest[:8]}": digest}

    # a third loss on the same stage finds that evaluation: no third SFT record
    _run(tiny_llm, store, "sdpo")
    assert sum(1 for m, _ in _runs(store).values() if m == "sft") == 2


@pytest.mark.parametrize("overrides", [{}, {"sft_examples": 12, "history_items": 2}])
def test_a_planner_finds_the_stage_a_run_would_use(tiny_llm, recbench_home, overrides):
    """``sweep --dry-run`` asks where a point's SFT stage is without loading any model."""
    from recbench.pipeline import LLMRun, sft_stage_dir

    config = RunConfig(loss="dpo", profile="smoke", model=str(tiny_llm), seed=3,
                       overrides=overrides).validate()  # fmt: skip
    assert sft_stage_dir(config) == LLMRun.from_config(config).sft_dir


def test_a_stage_retrained_after_its_damaged_final_is_the_stage_a_fresh_training_gives(
    tiny_llm, tmp_path, monkeypatch
):
    """Reading a damaged final loads its intact weights first; undoing that must restore the
    initial adapter (on the CPU a kept state that aliased the parameters followed the load, and
    the stage retrained from the final weights: another model)."""
    stores = {}
    for name in ("fresh", "damaged"):
        home = tmp_path / name / "home"
        monkeypatch.setenv("RECBENCH_HOME", str(home))
        if name == "damaged":  # the fresh run's state, with its stage's final/modules.pt gone
            shutil.copytree(tmp_path / "fresh" / "home", home)
            (stage,) = (home / "stages").glob("sft-*")
            (stage / "final" / "modules.pt").unlink()
        stores[name] = tmp_path / name / "r.jsonl"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "discarding the damaged final"
            _run(tiny_llm, stores[name], "dpo")
    fresh, damaged = ({w for _, w in _runs(stores[n]).values()} for n in ("fresh", "damaged"))
    assert len(fresh) == 1 and damaged == fresh


def test_trainable_state_is_a_copy_not_the_parameters():
    import torch

    from recbench.trainer import trainable_state

    layer = torch.nn.Linear(2, 2)
    kept = trainable_state(layer)
    with torch.no_grad():
        layer.weight.add_(1.0)
    assert not torch.allclose(kept["weight"], layer.weight, atol=0.5)
