"""Robustness (issue 8): bad user input, diverging training, concurrent result writes, determinism.

Every bad input is driven through the real CLI (``python -m recbench.cli``) and must end with one
line on stderr, exit code 2 and no traceback, before any model is loaded or trained.  Training
checks use a tiny random Llama with recbench's own :class:`~recbench.trainer.Stage`, so they run
in seconds without the embedded model.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from conftest import ROOT, assert_user_error
from safetensors.torch import load_file

from recbench import paths, results
from recbench.config import RunConfig
from recbench.data import load_dataset
from recbench.errors import UserError
from recbench.trainer import (
    Stage,
    StageSettings,
    TrainingDivergedError,
    add_lora,
    load_trainable_state,
    trainable_state,
)

CHECKPOINTS = ROOT / "recbench" / "seqrec" / "checkpoints"
SMOKE = ("--profile", "smoke")


def assert_nothing_heavy_started(home: Path) -> None:
    """No LLM was fetched/converted and no training stage or run directory was created."""
    for sub in ("models", "stages", "runs"):
        assert not (home / sub).exists(), f"{sub}/ was created: the check came too late"


# ------------------------------------------------------------------------ bad names and values
def case(args: tuple[str, ...], *needles: str, id: str) -> object:
    """One bad `recbench run` input and the pieces its error line must contain."""
    return pytest.param(args, needles, id=id)


CAVEAT = "default, released, trained"
# fmt: off
BAD_RUN_INPUTS = [
    # unknown names, with "did you mean"
    case(("--loss", "napx"), "unknown loss 'napx'", "did you mean 'napo'", id="loss"),
    case(("--baseline", "sasrex"), "unknown baseline 'sasrex'", "did you mean 'sasrec'",
         id="baseline-sequential"),
    case(("--baseline", "tallrek"), "unknown baseline 'tallrek'", "did you mean 'tallrec'",
         id="baseline-module"),
    case(("--baseline", "zero-shot"), "unknown baseline 'zero-shot'",
         "did you mean 'zero_shot'", id="baseline-llm"),
    # loss hyper-parameters out of range
    case(("--loss", "napo", "--param", "rho=1.5"),
         "loss 'napo': hyper-parameter rho=1.5 is out of range", "expected a number in [0, 1]",
         id="rho-above-1"),
    case(("--loss", "napo", "--param", "rho=-0.1"), "rho=-0.1 is out of range", "[0, 1]",
         id="rho-below-0"),
    case(("--loss", "napo", "--param", "momentum=1"),
         "hyper-parameter momentum=1 is out of range", "expected a number in [0, 1)",
         id="momentum-1"),
    case(("--loss", "napo", "--param", "momentum=-0.5"), "momentum=-0.5 is out of range",
         "[0, 1)", id="momentum-negative"),
    case(("--loss", "dpo", "--param", "beta=-1"),
         "loss 'dpo': hyper-parameter beta=-1 is out of range", "(0, inf)",
         id="beta-negative"),
    case(("--loss", "sdpo", "--param", "beta=0"), "beta=0 is out of range", "(0, inf)",
         id="beta-0"),
    case(("--n-neg", "0"), "--n-neg 0 out of range", "use 1 to 19", id="n-neg-0"),
    case(("--n-neg", "25"), "--n-neg 25 out of range", "19 negatives", id="n-neg-above-19"),
    case(("--set", "n_neg=20"), "--set n_neg 20 out of range", "use 1 to 19", id="set-n-neg-20"),
    # unknown, fixed or malformed loss hyper-parameters
    case(("--loss", "napo", "--param", "foo=1"), "loss 'napo' has no hyper-parameter 'foo'",
         "valid: beta, gamma", id="param-unknown"),
    case(("--loss", "napo", "--param", "momentun=0.5"), "has no hyper-parameter 'momentun'",
         "did you mean 'momentum'", id="param-typo"),
    case(("--loss", "napo", "--param", "margin_mode=xyz"),
         "hyper-parameter margin_mode='xyz' is invalid", "expected one of",
         id="param-bad-choice"),
    case(("--loss", "napo_no_ns", "--param", "rho=0.5"), "loss 'napo_no_ns' fixes rho=0.0",
         id="param-fixed-by-preset"),
    case(("--loss", "dpo", "--param", "beta"), "--param expects KEY=VALUE, got 'beta'",
         id="param-no-value"),
    # --set: unknown keys and bad values
    case(("--set", "lora=8"), "--set: unknown profile setting 'lora'", "did you mean 'lora_r'",
         id="set-unknown-key"),
    case(("--set", "lora_r"), "--set expects KEY=VALUE, got 'lora_r'", id="set-no-value"),
    case(("--set", "lora_r=abc"), "--set lora_r=abc: expected an integer", id="set-not-an-int"),
    case(("--set", "lora_r=8.5"), "--set lora_r=8.5: expected an integer",
         id="set-fractional-int"),
    case(("--set", "sft_learning_rate=fast"), "--set sft_learning_rate=fast: expected a number",
         id="set-not-a-number"),
    case(("--set", "generation=maybe"), "--set generation=maybe: expected true or false",
         id="set-not-a-bool"),
    case(("--set", "precision=fp16"), "--set precision: unknown precision 'fp16'",
         "use auto, fp32, bf16", id="set-precision"),
    case(("--set", "batch_size=0"), "--set batch_size must be at least 1, got 0",
         id="set-batch-size-0"),
    case(("--set", "learning_rate=-1e-4"),
         "--set learning_rate must be a finite number > 0, got -0.0001", id="set-negative-lr"),
    case(("--set", "warmup_ratio=2"), "--set warmup_ratio must be in [0, 1], got 2.0",
         id="set-warmup-ratio"),
    case(("--train-examples", "0"), "--train-examples must be at least 1, got 0",
         id="train-examples-0"),
    case(("--eval-examples", "-3"), "--eval-examples must be at least 1, got -3",
         id="eval-examples-negative"),
    # NAPO's SASRec signals that the run could not get (found before any LLM work)
    case(("--loss", "napo", "--aux-checkpoint", "/nonexistent/sasrec"),
         "--aux-checkpoint /nonexistent/sasrec: no such file or directory", CAVEAT,
         id="aux-missing-dir"),
    case(("--loss", "napo", "--set", "aux_checkpoint=/nonexistent/sasrec"),
         "--aux-checkpoint /nonexistent/sasrec: no such file or directory",
         id="aux-missing-dir-via-set"),
    case(("--loss", "napo", "--dataset", "steam", "--aux-checkpoint",
          str(CHECKPOINTS / "caser_steam.safetensors")),
         "caser_steam.safetensors holds a caser model", "need a SASRec", id="aux-not-sasrec"),
    case(("--loss", "napo", "--dataset", "lastfm", "--aux-checkpoint",
          str(CHECKPOINTS / "sasrec_steam.safetensors")),
         "auxiliary SASRec has 3581 items but lastfm has 4606", id="aux-wrong-dataset"),
    case(("--baseline", "chatrec", "--aux-checkpoint", "/nonexistent/sasrec"),
         "--aux-checkpoint /nonexistent/sasrec: no such file or directory",
         id="aux-missing-dir-for-chatrec"),
    # an option the chosen method does not use is refused, not silently ignored
    case(("--baseline", "llara", "--checkpoint", "released"),
         "llara does not take one", id="checkpoint-for-llm-baseline"),
    case(("--loss", "napo", "--checkpoint", "released"),
         "napo does not take one", id="checkpoint-for-loss"),
    # names used as file names cannot leave their directory
    case(("--dataset", "../lastfm"), "unknown dataset '../lastfm'", "did you mean 'lastfm'",
         id="dataset-path-traversal"),
]
# fmt: on


@pytest.mark.parametrize(("args", "needles"), BAD_RUN_INPUTS)
def test_bad_run_input_is_one_line_exit_2_before_any_work(cli, recbench_home, args, needles):
    result = cli("run", *SMOKE, *args)
    assert_user_error(result, *needles)
    assert_nothing_heavy_started(recbench_home)


def test_unknown_loss_in_losses_command(cli):
    result = cli("losses", "napx")
    assert_user_error(result, "unknown loss 'napx'", "did you mean 'napo'")


def test_unknown_baseline_lists_every_kind_of_baseline(cli):
    line = assert_user_error(cli("run", "--baseline", "nope", *SMOKE), "unknown baseline 'nope'")
    known = line.split("known: ", 1)[1].split(", ")
    expected = {"gru4rec", "caser", "sasrec", "morec", "zero_shot", "sft", "tallrec", "chatrec",
                "llara"}  # fmt: skip
    assert expected <= set(known)


def test_a_methods_own_check_runs_before_any_work(monkeypatch):
    """A registered method's ``check`` fails in the input check, before anything heavy."""
    from recbench import runner
    from recbench.config import RunConfig
    from recbench.methods import METHODS, Method

    class Ghost(Method):
        name, family, summary = "ghost", "rule", "a method that cannot run"

        @classmethod
        def check(cls, config):
            raise UserError(f"ghost needs something {config.dataset} lacks")

        def prepare(self):  # pragma: no cover - must never be reached
            raise AssertionError("ran")

    monkeypatch.setitem(METHODS._items, "ghost", Ghost)
    with pytest.raises(UserError, match="ghost needs something lastfm lacks"):
        runner.execute(RunConfig(baseline="ghost", profile="smoke"))
    with pytest.raises(UserError, match="did you mean 'ghost'"):
        runner.check_inputs(RunConfig(baseline="ghosts", profile="smoke"))


def test_results_path_that_is_a_directory_fails_before_the_run(cli, recbench_home, tmp_path):
    result = cli("run", *SMOKE, "--baseline", "zero_shot", "--results", str(tmp_path))
    assert_user_error(result, f"--results {tmp_path} is a directory", "results.jsonl")
    assert_nothing_heavy_started(recbench_home)


def test_output_dir_that_is_a_file_fails_before_the_run(cli, recbench_home, tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("not a directory\n")
    result = cli("run", *SMOKE, "--loss", "dpo", "--output-dir", str(target))
    assert_user_error(result, f"--output-dir {target} exists and is not a directory")
    assert_nothing_heavy_started(recbench_home)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--baseline", "sasrec", "--checkpoint", "/nonexistent/ckpt"), "checkpoint not found"),
        (
            ("--baseline", "gru4rec", "--checkpoint", "released", "--dataset", "lastfm"),
            "no released gru4rec checkpoint for dataset 'lastfm'",
        ),
    ],
)
def test_baseline_checkpoint_that_cannot_be_loaded(cli, recbench_home, args, needle):
    assert_user_error(cli("run", *SMOKE, *args), needle)


def _write_toy_dataset(directory: Path) -> dict[str, Path]:
    """A valid 30-item dataset in the LLaRA row format (as in tests/test_import.py)."""
    pad = 30  # a candidate set needs 20 items outside each history

    def row(seq: list[int], nxt: int) -> str:
        padded = seq + [pad] * (10 - len(seq))
        return json.dumps({"seq": padded, "len_seq": len(seq), "next": nxt}) + "\n"

    files = {
        "train": row([0, 1, 2], 3) + row([0, 1, 2, 3], 4),
        "val": row([4, 3, 2], 1),
        "test": row([1, 3, 4], 0),
    }
    out = {}
    for split, text in files.items():
        out[split] = directory / f"{split}.jsonl"
        out[split].write_text(text)
    out["names"] = directory / "names.txt"
    out["names"].write_text("".join(f"{i}::Item {i}\n" for i in range(pad)))
    return out


def _import_args(name: str, files: dict[str, Path]) -> tuple[str, ...]:
    return ("data", "import", name, "--train", str(files["train"]), "--val", str(files["val"]),
            "--test", str(files["test"]), "--names", str(files["names"]))  # fmt: skip


def test_loss_needing_a_sasrec_that_does_not_exist_for_the_dataset(cli, recbench_home, tmp_path):
    """The smoke profile uses the released SASRec; an imported dataset has none."""
    imported = cli(*_import_args("toy", _write_toy_dataset(tmp_path)))
    assert imported.returncode == 0, imported.stderr
    result = cli("run", *SMOKE, "--loss", "napo", "--dataset", "toy")
    assert_user_error(result, "no released sasrec checkpoint for dataset 'toy'")
    assert_nothing_heavy_started(recbench_home)
    # a loss that needs no SASRec passes the same checks (it would go on to load the model)
    from recbench.runner import check_inputs

    check_inputs(RunConfig(dataset="toy", loss="dpo", profile="smoke"))


@pytest.mark.parametrize("aux", [None, "released", str(CHECKPOINTS / "sasrec_lastfm.safetensors")])
def test_valid_sasrec_choices_pass_the_check_and_load_for_the_run(recbench_home, aux):
    """The early check accepts exactly what ``auxiliary.for_run`` later loads (no training)."""
    from recbench import losses
    from recbench.auxiliary import check_for_run, for_run

    config = RunConfig(dataset="lastfm", loss="napo", profile="smoke", aux_checkpoint=aux)
    ds, loss = load_dataset("lastfm"), losses.get_loss("napo")
    check_for_run(ds, loss, config)
    signals = for_run(ds, loss, config)
    assert signals.model.num_items == ds.num_items and not signals.model.training
    origin = "released" if aux in (None, "released") else aux  # smoke's default is "released"
    assert signals.description.startswith(f"{origin}:")
    # a loss without SASRec inputs is not held to any of this
    check_for_run(ds, losses.get_loss("dpo"), config.with_updates(aux_checkpoint="/nope"))


@pytest.mark.parametrize("name", ["..", "../evil", "a/b", "/abs", ".hidden", "x" * 65, "a b"])
def test_dataset_import_names_cannot_traverse_paths(cli, recbench_home, tmp_path, name):
    result = cli(*_import_args(name, _write_toy_dataset(tmp_path)))
    assert_user_error(result, "invalid dataset name")
    assert not (recbench_home / "datasets").exists() or not any(
        (recbench_home / "datasets").iterdir()
    )
    for escaped in ("evil", "evil.importing"):  # where datasets/../evil would have landed
        assert not (recbench_home / escaped).exists()


def test_names_used_in_run_ids_and_file_names_are_safe():
    """Run ids and cache directories are built from dataset, loss and baseline names."""
    from recbench import losses
    from recbench.data import builtin_names
    from recbench.runner import baseline_names

    for name in [*losses.loss_keys(), *baseline_names(), *builtin_names()]:
        assert paths.safe_name(name) == name
    longest = max([*losses.loss_keys(), *baseline_names()], key=len)
    run_id = f"{max(builtin_names(), key=len)}-{longest}-{'0' * 12}"  # as recbench.pipeline
    assert paths.safe_name(run_id) == run_id
    for bad in ("..", "../x", "a/b", "", "a\x00b", "x" * 65):
        with pytest.raises(UserError, match="invalid"):
            paths.safe_name(bad)


# --------------------------------------------------------------------- training with a tiny Llama
VOCAB, N_ITEMS, SEQ = 61, 12, 9


def tiny_model(lora_seed: int) -> torch.nn.Module:
    """A 2-layer random Llama (the "pretrained" base, fixed) with a seeded LoRA adapter."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
    )  # fmt: skip
    torch.manual_seed(1234)
    return add_lora(LlamaForCausalLM(config), r=4, alpha=8, seed=lora_seed)


def token_data() -> torch.Tensor:
    return torch.randint(3, VOCAB, (N_ITEMS, SEQ), generator=torch.Generator().manual_seed(7))


def lm_step(model: torch.nn.Module, data: torch.Tensor):
    """The step function of an SFT-like stage: mean next-token NLL of the rows."""

    def step(rows: list[int]):
        ids = data[rows]
        return model(input_ids=ids, labels=ids).loss, {}

    return step


def settings(seed: int = 0, name: str = "sft") -> StageSettings:
    return StageSettings(
        name=name, epochs=1, learning_rate=5e-2, batch_size=2, grad_accum=1, warmup_ratio=0.0,
        seed=seed, checkpoint_every=1,
    )  # fmt: skip


@pytest.fixture(scope="module")
def accelerator():
    from accelerate import Accelerator

    return Accelerator(cpu=True)


def logged_steps(stage_dir: Path) -> list[dict]:
    """The stage's per-step log, without the process's resident memory (``rss_mb``): that
    describes the process the step ran in, not the training, and differs between two runs."""
    lines = (stage_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "rss_mb"} for line in lines]


class NanGradient(torch.autograd.Function):
    """Zero in the forward pass, NaN in the backward pass: a finite loss with poisoned grads."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.shape = x.shape
        return x.sum() * 0.0

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return torch.full(ctx.shape, float("nan"))


def _diverging_step(model, data, bad_step: int, kind: str, snapshot: dict):
    """``lm_step`` that goes wrong at call ``bad_step`` (NaN loss or NaN gradients)."""
    good = lm_step(model, data)
    calls = {"n": 0}

    def step(rows: list[int]):
        calls["n"] += 1
        loss, info = good(rows)
        if calls["n"] == bad_step:
            snapshot.update(trainable_state(model))  # the weights after step bad_step - 1
            if kind == "loss":
                return loss * float("nan"), info
            param = next(p for p in model.parameters() if p.requires_grad)
            return loss + NanGradient.apply(param), info
        return loss, info

    return step


@pytest.mark.parametrize("kind", ["loss", "gradient"])
def test_nan_stops_training_and_keeps_the_last_good_checkpoint(tmp_path, accelerator, kind):
    bad_step = 4
    data = token_data()
    model = tiny_model(0)
    snapshot: dict[str, torch.Tensor] = {}
    stage = Stage(tmp_path / "stage", settings(), accelerator)
    with pytest.raises(TrainingDivergedError) as caught:
        stage.fit(model, N_ITEMS, _diverging_step(model, data, bad_step, kind, snapshot),
                  progress=False)  # fmt: skip
    error = caught.value
    assert error.exit_code == 1 and isinstance(error, UserError)
    message = str(error)
    assert "\n" not in message
    assert f"sft: non-finite {kind} at optimizer step {bad_step}" in message
    assert f"the last good checkpoint (step {bad_step - 1}) is kept in" in message

    checkpoint = tmp_path / "stage" / "checkpoint"
    state = json.loads((checkpoint / "state.json").read_text())
    assert state["step"] == bad_step - 1 and state["seconds"] >= 0.0
    assert not (tmp_path / "stage" / "final").exists()
    saved = load_file(str(checkpoint / "adapter.safetensors"))
    assert saved.keys() == snapshot.keys()
    for name, tensor in saved.items():
        assert torch.isfinite(tensor).all(), name
        assert torch.equal(tensor, snapshot[name]), name
    assert [e["step"] for e in logged_steps(tmp_path / "stage")] == list(range(1, bad_step))

    # the checkpoint loads into a fresh model, and --resume continues from it to the same
    # weights as a run that never diverged
    fresh = tiny_model(0)
    load_trainable_state(fresh, checkpoint / "adapter.safetensors")
    for name, tensor in trainable_state(fresh).items():
        assert torch.equal(tensor, snapshot[name]), name
    Stage(tmp_path / "stage", settings(), accelerator).fit(
        fresh, N_ITEMS, lm_step(fresh, data), resume=True, progress=False
    )
    assert [e["step"] for e in logged_steps(tmp_path / "stage")] == list(range(1, 7))
    clean = tiny_model(0)
    Stage(tmp_path / "clean", settings(), accelerator).fit(
        clean, N_ITEMS, lm_step(clean, data), progress=False
    )
    resumed_state, clean_state = trainable_state(fresh), trainable_state(clean)
    assert all(torch.equal(resumed_state[n], clean_state[n]) for n in clean_state)


def test_a_continued_stage_reports_the_time_of_all_its_steps(tmp_path, accelerator):
    """Stopped after step 3 of 6 and continued, the stage's seconds cover all 6 steps: each
    step sleeps 0.1 s, so at least 0.6 s (the continued part alone would be about 0.3 s).  Its
    peak memory is the larger of the two processes': the checkpoint's is raised to a value this
    process never reaches, standing for a first process that needed more."""
    data, model = token_data(), tiny_model(0)

    def slow(step_fn):
        def step(rows: list[int]):
            time.sleep(0.1)
            return step_fn(rows)

        return step

    stage = Stage(tmp_path / "stage", settings(), accelerator)
    with pytest.raises(TrainingDivergedError):  # stands for a kill after the checkpoint of step 3
        stage.fit(model, N_ITEMS, slow(_diverging_step(model, data, 4, "loss", {})),
                  progress=False)  # fmt: skip
    state = json.loads((tmp_path / "stage" / "checkpoint" / "state.json").read_text())
    assert state["step"] == 3 and state["seconds"] >= 0.3 and state["peak_memory_mb"] > 1
    state_path = tmp_path / "stage" / "checkpoint" / "state.json"
    state_path.write_text(json.dumps({**state, "peak_memory_mb": 987654.0}) + "\n")
    fresh = tiny_model(0)
    summary = Stage(tmp_path / "stage", settings(), accelerator).fit(
        fresh, N_ITEMS, slow(lm_step(fresh, data)), resume=True, progress=False
    )
    assert summary["resumed_at_step"] == 3 and summary["seconds"] >= 0.6
    assert summary["peak_memory_mb"] == pytest.approx(987654.0, abs=1e-6)
    again = Stage(tmp_path / "stage", settings(), accelerator).fit(
        fresh, N_ITEMS, slow(lm_step(fresh, data)), progress=False
    )  # the finished stage: its summary, as recorded
    assert again["seconds"] == pytest.approx(summary["seconds"], abs=1e-9)


def test_nan_before_the_first_checkpoint_says_there_is_none(tmp_path, accelerator):
    data = token_data()
    model = tiny_model(0)
    stage = Stage(tmp_path / "stage", settings(), accelerator)
    with pytest.raises(TrainingDivergedError, match="non-finite loss at optimizer step 1; no "
                       "checkpoint was written yet"):  # fmt: skip
        stage.fit(model, N_ITEMS, _diverging_step(model, data, 1, "loss", {}), progress=False)
    assert not (tmp_path / "stage" / "checkpoint").exists()


def test_cli_reports_divergence_as_one_line_with_exit_code_1(monkeypatch, capsys):
    from recbench import cli

    def diverge(**_typer_options) -> None:
        raise TrainingDivergedError("preference: non-finite loss at optimizer step 3; ...")

    monkeypatch.setattr(cli, "app", diverge)
    with pytest.raises(SystemExit) as caught:
        cli.main()
    assert caught.value.code == 1
    err = capsys.readouterr().err
    assert err == "error: preference: non-finite loss at optimizer step 3; ...\n"


# ----------------------------------------------------------------------------- determinism
def _train(tmp_path: Path, accelerator, seed: int, tag: str) -> tuple[dict, list[dict]]:
    model = tiny_model(seed)
    stage = Stage(tmp_path / tag, settings(seed), accelerator)
    stage.fit(model, N_ITEMS, lm_step(model, token_data()), progress=False)
    return trainable_state(model), logged_steps(tmp_path / tag)


def test_same_seed_gives_bitwise_identical_training(tmp_path, accelerator):
    first_weights, first_log = _train(tmp_path, accelerator, 0, "a")
    other_weights, other_log = _train(tmp_path, accelerator, 1, "b")  # moves the global RNGs
    torch.rand(17)  # and so does anything else a process may do in between
    again_weights, again_log = _train(tmp_path, accelerator, 0, "c")

    assert len(first_log) == 6
    assert first_log == again_log  # losses, grad norms and learning rates, exactly
    assert first_weights.keys() == again_weights.keys()
    assert all(torch.equal(first_weights[n], again_weights[n]) for n in first_weights)
    # a different seed changes the LoRA init and the batch order, hence everything
    assert [e["loss"] for e in first_log] != [e["loss"] for e in other_log]
    assert not all(torch.equal(first_weights[n], other_weights[n]) for n in first_weights)


def test_result_records_hold_the_seed_and_every_setting_to_repeat_the_run(tmp_path):
    """The records ``recbench run`` writes rebuild the exact RunConfig and resolved settings."""
    from recbench.pipeline import LLMRun

    config = RunConfig(
        dataset="lastfm", loss="napo", profile="smoke", seed=7, n_neg=5,
        loss_params={"rho": 0.3, "beta": 2.0}, train_examples=16, eval_examples=4,
        aux_checkpoint="released", overrides={"lora_r": 8, "sft_learning_rate": 1e-3},
        output_dir=tmp_path / "run", results=tmp_path / "results.jsonl",
    )  # fmt: skip
    from recbench import runner
    from recbench.methods import Method, RunContext

    run = LLMRun.from_config(config)  # what an LLM run records needs no model
    run.precision, run.timings = "fp32", {"sft_seconds": 1.0}
    run.sft_weights = "0123456789abcdef"
    run.stage_peak = 987654.0  # a stage trained by a process that needed more than this one
    plan = runner.plan(config)
    method = object.__new__(plan.method)  # the loss's method, without building its engine
    Method.__init__(method, RunContext(config, run.ds, plan.run_dir, "rid"))
    run.record_facts(method.facts)
    hparams = {"rho": 0.3, "beta": 2.0, "n_neg": 5}
    method.facts.hparams = hparams
    evaluation = {"ranking": {"hr@1": 0.25}}
    rows = runner._records(plan, method, "rid", evaluation, dict(method.facts.timings),
                           results.LoadMeter())  # fmt: skip
    stored = results.append_records(rows, tmp_path / "results.jsonl")
    records = results.read_records(stored)
    assert {r["metric"] for r in records} >= {
        "hr@1",
        "sft_seconds",
        "peak_memory_mb",
        "cpu_utilisation",
        "load_average",
    }
    peak = next(r["value"] for r in records if r["metric"] == "peak_memory_mb")
    assert peak == pytest.approx(987654.0, abs=1e-6)  # the run's peak covers its stages
    for record in records:
        assert record["seed"] == 7 and record["dataset"] == "lastfm"
        assert record["profile"] == "smoke" and record["model"] == "smollm2-135m"
        assert record["hparams"] == hparams
        assert record["versions"]["torch"] and record["hardware"]["cpu_count"]
        saved = dict(record["settings"]["config"])
        for key in ("output_dir", "results"):
            saved[key] = Path(saved[key])
        rebuilt = RunConfig(**saved)
        assert rebuilt == config  # every field of the run, seed included, round-trips
        assert replace(rebuilt, output_dir=None, results=None).resolved() == config.resolved()
        # the resolved settings are stored too, with the precision actually used for "auto"
        expected = {**config.resolved(), "precision": "fp32"}
        assert {k: record["settings"][k] for k in expected} == expected
        # and the files trained and scored on, which a store's users map is checked against
        files = {split: run.ds.split_spec(split).sha256 for split in ("train", "test")}
        assert record["settings"]["dataset_files"] == files


# ------------------------------------------------------------------- concurrent result writes
WRITER = """
import sys, time
from pathlib import Path
from recbench.results import append_records

store, tag, runs, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
while not go.exists():
    time.sleep(0.001)
pad = tag * 6000  # each record is larger than a pipe buffer, each run ~18 kB
for i in range(runs):
    append_records(
        [{"run_id": f"{tag}-{i}", "metric": f"m{j}", "value": float(j), "pad": pad}
         for j in range(3)],
        store,
    )
"""


def test_concurrent_writers_lose_nothing_and_write_no_partial_lines(tmp_path):
    store, go, runs = tmp_path / "results.jsonl", tmp_path / "go", 150
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(store), tag, str(runs), str(go)],
                         cwd=ROOT, stderr=subprocess.PIPE, text=True)
        for tag in ("a", "b")
    ]  # fmt: skip
    time.sleep(0.5)  # both interpreters are up and waiting
    go.touch()
    reads = 0
    while any(w.poll() is None for w in writers):  # a reader never sees a partial line either
        results.read_records(store)
        reads += 1
    for writer in writers:
        assert writer.wait() == 0, writer.stderr.read()
    assert reads > 0

    lines = store.read_bytes().split(b"\n")
    assert lines[-1] == b""  # ends with a newline: the last write was complete
    records = [json.loads(line) for line in lines[:-1]]
    assert len(records) == 2 * runs * 3
    run_ids = [r["run_id"] for r in records]
    assert sorted(set(run_ids)) == sorted(f"{t}-{i}" for t in "ab" for i in range(runs))
    # each run's records are adjacent and complete: one locked write per run
    for start in range(0, len(records), 3):
        block = records[start : start + 3]
        assert {r["run_id"] for r in block} == {block[0]["run_id"]}
        assert [r["metric"] for r in block] == ["m0", "m1", "m2"]
        assert all(r["pad"] == r["run_id"][0] * 6000 for r in block)
    # the two writers really did interleave (otherwise this test proves nothing)
    tags = [rid[0] for rid in run_ids[::3]]
    switches = sum(a != b for a, b in itertools.pairwise(tags))
    assert switches >= 2, "the writers ran one after the other; make the test longer"
