"""``--from-this-stage``: a loss run trained again from the SFT stage built here, recorded
beside the store's run of the same settings that another training of the stage gave.

A study continued on another machine retrains a seed's SFT stage into another model (bf16
kernels differ between CPUs).  Its new runs are paired with runs of the same stage, so a loss
run the store holds from the old stage (the committed S-DPO of a seed, say) must be trained
again from the new one to be compared with them, and that run must not replace the old one.
The runs use the tiny random Llama (``tiny_llm``): the real pipeline in seconds.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import assert_user_error
from typer.testing import CliRunner

from recbench import api, journal, paths, pipeline, runner
from recbench.cli import app
from recbench.config import RunConfig
from recbench.sweep import SweepSpec

#: a weights digest no stage of these tests has: the runs "trained on another machine"
ELSEWHERE = "0123456789abcdef"


def _config(tiny_llm: Path, store: Path, **changes) -> RunConfig:
    base = RunConfig(loss="dpo", dataset="lastfm", profile="smoke", model=str(tiny_llm),
                     eval_examples=2, overrides={"generation": False}, results=store)  # fmt: skip
    return replace(base, **changes)


def _runs(store: Path) -> dict[str, tuple[str, str | None]]:
    """run id -> (method, sft_weights) of the store's records, read as plain JSON."""
    out = {}
    for line in store.read_text().splitlines():
        record = json.loads(line)
        out[record["run_id"]] = (record["method"], record["settings"].get("sft_weights"))
    return out


def _as_if_trained_elsewhere(store: Path, name_data: bool = True) -> None:
    """Make every record of the store name another training of the SFT stage (and, with
    ``name_data=False``, name no data files, as records did before they named them)."""
    lines = []
    for line in store.read_text().splitlines():
        record = json.loads(line)
        record["settings"]["sft_weights"] = ELSEWHERE
        if not name_data:
            record["settings"].pop("dataset_files", None)
        lines.append(json.dumps(record))
    store.write_text("\n".join(lines) + "\n")


def _store_must_not_be_read(*_args, **_kwargs):
    raise AssertionError("plan read the store although its caller passed the records")


@pytest.mark.model
def test_a_run_recorded_from_another_stage_is_trained_again_from_this_one(
    tiny_llm, recbench_home, tmp_path, monkeypatch
):
    store = tmp_path / "r.jsonl"
    here = _config(tiny_llm, store, from_this_stage=True)

    # before the stage is built, which run this is waits for it (nothing counts as recorded)
    early = runner.plan(here)
    assert early.awaits_stage and early.stage_weights is None
    first = api.run(here)  # the stage is built on the way; nothing recorded: the usual run
    base_id = first["run_id"]
    assert "-w" not in base_id.rsplit("-", 1)[-1]
    weights = {w for _, w in _runs(store).values()}
    assert len(weights) == 1
    weights_here = weights.pop()

    # the planner reads the built stage's digest from its file, without a model: it must be
    # the digest the run computed from the loaded model
    final = pipeline.sft_stage_dir(here) / "final"
    assert journal.saved_weights_digest(final / "adapter.safetensors") == weights_here
    planned = runner.plan(here)  # recorded from this very stage: the usual run, done
    assert (planned.run_id, planned.base_id, planned.stage_weights) == (
        base_id,
        None,
        weights_here,
    )

    _as_if_trained_elsewhere(store)
    # without the option the store's run counts, whatever stage it came from
    assert api.run(replace(here, from_this_stage=False))["skipped"] == "already recorded"

    own = f"{base_id}-w{weights_here[:8]}"
    # the planner decides from the records its caller passes (a sweep reads the store once)
    # and reads the store only when given none
    with monkeypatch.context() as patched:
        patched.setattr(runner.results, "read_records", _store_must_not_be_read)
        assert runner.plan(here, records=[]).run_id == base_id  # nothing recorded: usual run
    assert runner.plan(here).run_id == own
    with pytest.warns(UserWarning, match=r"trained again on other hardware\?\)"):
        again = api.run(here)  # the records name their data: only the hardware can differ
    assert again["run_id"] == own and "skipped" not in again
    assert "ranking" in again["evaluation"]
    runs = _runs(store)
    assert runs[own] == ("dpo", weights_here)
    assert runs[base_id] == ("dpo", ELSEWHERE)  # the other run stays beside it
    assert Path(again["run_dir"]) == paths.home() / "runs" / own
    assert Path(again["run_dir"]) != Path(first["run_dir"])
    # its SFT evaluation was recorded "elsewhere" too: this stage's is recorded beside it
    assert ("sft", weights_here) in runs.values()

    # recorded now: a third call skips it, under its own id
    third = api.run(here)
    assert third == {"run_id": own, "skipped": "already recorded"}

    # on a machine where the stage is not built yet, which run this is is decided once the
    # stage is trained (the same weights here): the retraining already recorded, not a second
    # record under the other stage's id
    monkeypatch.setenv("RECBENCH_HOME", str(tmp_path / "another-home"))
    assert runner.plan(here).awaits_stage
    lines: list[str] = []  # a dry run says the store's run may be the one
    api.sweep(SweepSpec(here), dry_run=True, report=lines.append)
    assert any("to run" in line and "whether it is from the stage" in line for line in lines)
    assert api.run(here) == {"run_id": own, "skipped": "already recorded"}
    assert sorted(_runs(store)) == sorted(runs)


@pytest.mark.model
def test_a_method_without_prerequisites_builds_the_stage_before_its_id_is_decided(
    tiny_llm, recbench_home, tmp_path, monkeypatch
):
    """``sft`` itself (as SPRec and LLaRA) has no prerequisite run that would build the stage
    first: its id must still be decided from the stage, not from the store alone."""
    store = tmp_path / "r.jsonl"
    sft = _config(tiny_llm, store, loss=None, baseline="sft")
    base_id = api.run(sft)["run_id"]
    (weights_here,) = {w for _, w in _runs(store).values()}
    _as_if_trained_elsewhere(store, name_data=False)

    monkeypatch.setenv("RECBENCH_HOME", str(tmp_path / "another-home"))  # no stage built
    # the store's record names no data files: it may have read another build of the data
    with pytest.warns(UserWarning, match="or data that record does not name"):
        api.run(replace(sft, from_this_stage=True))
    runs = _runs(store)
    own = f"{base_id}-w{weights_here[:8]}"
    assert runs == {base_id: ("sft", ELSEWHERE), own: ("sft", weights_here)}


def test_the_option_is_refused_for_a_method_without_the_stage(cli):
    result = cli("run", "--baseline", "pop", "--dataset", "lastfm", "--profile", "smoke",
                 "--from-this-stage", timeout=120)  # fmt: skip
    assert_user_error(result, "--from-this-stage", "pop is not trained from the SFT stage")


def test_help_explains_the_option():
    for command in ("run", "sweep"):
        result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "400"})
        assert result.exit_code == 0
        assert "--from-this-stage" in result.output and "RUN_ID-wWEIGHTS" in result.output
