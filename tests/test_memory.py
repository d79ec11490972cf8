"""Memory (issue 36): gradient checkpointing as a setting, and the allocator the CLI runs under.

Checkpointing recomputes each decoder layer's activations in the backward instead of keeping
them; it may change memory and time, never what is trained.  So the gradients of one packed
scorer loss are compared with and without it on a tiny random Llama with LoRA (both attention
implementations the packed scorer takes, fp32 and bf16 autocast), and a checkpointed stage is
compared with an unchecked one.  Each test also checks that checkpointing really ran (a layer's
MLP runs twice per step), so that equal gradients cannot come from a setting that did nothing.

The allocator's decision is a pure function of the environment and the libraries found, tested
here without executing anything; one subprocess checks that ``recbench --help`` runs with
``RECBENCH_ALLOCATOR=system`` and one, where an allocator is installed, that the re-executed
process really has it loaded.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import ROOT, run_cli

from recbench import allocator
from recbench.config import PROFILES, RunConfig
from recbench.errors import UserError
from recbench.scoring import score_responses
from recbench.trainer import (
    Stage,
    StageSettings,
    add_lora,
    autocast,
    gradient_checkpointing,
    is_gradient_checkpointing,
    set_gradient_checkpointing,
    trainable_state,
)

#: Gradients with and without checkpointing, relative to the largest gradient of the tensor.
#: On the CPU the recomputation runs the same kernels on the same inputs and the measured
#: difference is 0 (fp32 and bf16 alike); the tolerance leaves room for a backend that picks
#: another kernel for the recomputation, far below what a wrong recomputation (another mask,
#: another position, no autocast) gives.
GRAD_RTOL = 1e-5
#: Weights after two checkpointed and two plain optimizer steps, same scale.
WEIGHT_RTOL = 1e-5


def _model(tiny_llm: Path, impl: str = "sdpa") -> torch.nn.Module:
    """The tiny Llama with LoRA; LoRA's B starts at zero, which would leave A without gradient,
    so every adapter weight is set to seeded noise first."""
    from recbench import models

    model, _ = models.load(str(tiny_llm), attn_implementation=impl)
    model = add_lora(model, r=4, alpha=8, seed=0)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.copy_(torch.randn(p.shape, generator=generator) * 0.05)
    return model.train()


def _batch(vocab: int, seed: int = 0) -> tuple[list[list[int]], list[list[list[int]]]]:
    """Four prompts of different lengths with 3-5 responses each (as with n_neg 2-4)."""
    generator = torch.Generator().manual_seed(seed)

    def ids(n: int) -> list[int]:
        return torch.randint(3, vocab, (n,), generator=generator).tolist()

    prompts = [ids(n) for n in (21, 9, 30, 14)]
    responses = [[ids(n) for n in lengths]
                 for lengths in ((4, 2, 6), (3, 3, 5, 1), (7, 2, 2, 4, 3), (2, 5, 3))]  # fmt: skip
    return prompts, responses


def _loss(model, prompts, responses) -> torch.Tensor:
    """A listwise softmax loss (S-DPO's shape): every response's score matters."""
    logps = score_responses(model, prompts, responses, pad_token_id=0).logps
    return -(logps[:, 0] - torch.logsumexp(logps, dim=-1)).mean()


class MlpCalls:
    """Counts the runs of the first decoder layer's MLP: 2 per step when it is recomputed.

    It wraps ``forward`` rather than registering a hook: the recomputation does not run the
    module's forward hooks.
    """

    def __init__(self, model) -> None:
        mlp = model.get_base_model().get_decoder().layers[0].mlp
        self.count = 0
        forward = mlp.forward

        def counted(*args, **kwargs):
            self.count += 1
            return forward(*args, **kwargs)

        mlp.forward = counted


def _grads(model, prompts, responses, precision: str) -> dict[str, torch.Tensor]:
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    with autocast(precision, "cpu"):
        loss = _loss(model, prompts, responses)
    return dict(zip(params, torch.autograd.grad(loss, list(params.values())), strict=True))


def _max_relative_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """max over tensors of max|a - b| / max|a| (each tensor at its own scale)."""
    return max(float((a[n] - b[n]).abs().max() / a[n].abs().max().clamp_min(1e-30)) for n in a)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("impl", ["sdpa", "eager"])
def test_checkpointing_gives_the_gradients_of_the_packed_scorer_without_it(
    tiny_llm, impl, precision
):
    model = _model(tiny_llm, impl)
    prompts, responses = _batch(model.config.vocab_size)
    calls = MlpCalls(model)
    plain = _grads(model, prompts, responses, precision)
    assert calls.count == 1 and not is_gradient_checkpointing(model)

    calls.count = 0
    with gradient_checkpointing(model, True):
        assert is_gradient_checkpointing(model)
        checkpointed = _grads(model, prompts, responses, precision)
    assert calls.count == 2, "the layer was not recomputed: checkpointing did not run"
    assert not is_gradient_checkpointing(model)  # left as found

    assert plain.keys() == checkpointed.keys() and len(plain) == 4 * 7  # 2 layers x 7 linears
    assert all(g.abs().max() > 0 for g in plain.values())  # every adapter weight is checked
    diff = _max_relative_diff(plain, checkpointed)
    print(f"{impl} {precision}: max |diff| / max |grad| = {diff:.3g}")
    assert diff <= GRAD_RTOL, diff


class HeadCalls:
    """Counts the LM head's runs (a forward hook does not see checkpoint recomputation, so
    the head's ``forward`` is wrapped, as :class:`MlpCalls` does)."""

    def __init__(self, model) -> None:
        head = model.get_base_model().get_output_embeddings()
        self.count = 0
        forward = head.forward

        def counted(*args, **kwargs):
            self.count += 1
            return forward(*args, **kwargs)

        head.forward = counted


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_checkpointed_head_in_chunks_gives_the_gradients_of_one_head(
    tiny_llm, precision, monkeypatch
):
    """With the decoder checkpointed, the packed scorer's LM head runs over checkpointed
    chunks of response tokens.  The batch has 52 response tokens; chunks of 8 make 7 head runs
    in the forward and 7 again in the backward, against 1 without checkpointing."""
    from recbench import scoring

    model = _model(tiny_llm)
    prompts, responses = _batch(model.config.vocab_size)
    assert sum(len(r) for rs in responses for r in rs) == 52
    heads = HeadCalls(model)
    plain = _grads(model, prompts, responses, precision)
    assert heads.count == 1

    monkeypatch.setattr(scoring, "HEAD_CHUNK_TOKENS", 8)
    heads.count = 0
    with gradient_checkpointing(model, True):
        chunked = _grads(model, prompts, responses, precision)
    assert heads.count == 2 * 7, heads.count
    diff = _max_relative_diff(plain, chunked)
    print(f"{precision}: chunked head, max |diff| / max |grad| = {diff:.3g}")
    assert diff <= GRAD_RTOL, diff

    heads.count = 0  # no gradient taken (the reference pass, evaluation): one plain head run
    with gradient_checkpointing(model, True), torch.no_grad():
        score_responses(model, prompts, responses, pad_token_id=0)
    assert heads.count == 1


def _stage_settings(checkpointing: bool) -> StageSettings:
    return StageSettings(
        name="preference", epochs=1, learning_rate=1e-2, batch_size=2, grad_accum=1,
        warmup_ratio=0.0, seed=0, checkpoint_every=10, gradient_checkpointing=checkpointing,
    )  # fmt: skip


def _fit(tiny_llm: Path, tmp: Path, checkpointing: bool) -> tuple[dict, dict, int, bool]:
    from accelerate import Accelerator

    model = _model(tiny_llm)
    prompts, responses = _batch(model.config.vocab_size)
    before = trainable_state(model)
    calls = MlpCalls(model)
    active: list[bool] = []

    def step(rows: list[int]):
        active.append(is_gradient_checkpointing(model))
        return _loss(model, [prompts[i] for i in rows], [responses[i] for i in rows]), {}

    stage = Stage(tmp, _stage_settings(checkpointing), Accelerator(cpu=True))
    stage.fit(model, len(prompts), step, progress=False)
    assert not is_gradient_checkpointing(model)  # the trained model is evaluated as before
    return before, trainable_state(model), calls.count, all(active) and len(active) == 2


def test_a_checkpointed_stage_trains_the_weights_an_unchecked_one_does(tiny_llm, tmp_path):
    start, checkpointed, calls, active = _fit(tiny_llm, tmp_path / "on", True)
    assert active and calls == 2 * 2  # two steps, each layer run twice
    _, plain, plain_calls, plain_active = _fit(tiny_llm, tmp_path / "off", False)
    assert plain_calls == 2 and not plain_active

    moved = max(float((checkpointed[n] - start[n]).abs().max()) for n in start)
    assert moved > 1e-3, moved  # it trains: lr 1e-2 moves the weights by about that much
    assert _max_relative_diff(plain, checkpointed) <= WEIGHT_RTOL


def test_checkpointing_a_model_that_cannot_be_checkpointed_is_one_line():
    with pytest.raises(UserError, match="does not support gradient checkpointing"):
        set_gradient_checkpointing(torch.nn.Linear(2, 2), True)
    set_gradient_checkpointing(torch.nn.Linear(2, 2), False)  # off is always possible


def test_the_setting_is_a_profile_field_on_where_memory_is_the_constraint():
    # the paper's settings on a GPU, and the CPU study, whose SimS-DPO runs with 19 negatives
    # must fit two to a 24 GB machine
    assert PROFILES["paper"].gradient_checkpointing and PROFILES["study"].gradient_checkpointing
    config = RunConfig(profile="smoke", overrides={"gradient_checkpointing": "false"})
    assert config.validate().settings.gradient_checkpointing is False
    with pytest.raises(UserError, match="expected true or false"):
        RunConfig(profile="smoke", overrides={"gradient_checkpointing": "maybe"}).validate()


def test_the_sft_stage_key_does_not_depend_on_checkpointing():
    """Checkpointing changes how the gradients are computed, not what they are: an SFT stage
    trained either way is the same stage, shared by runs with either setting."""
    from recbench import pipeline
    from recbench.data import load_dataset

    ds = load_dataset("lastfm")
    keys = {
        pipeline.identity.digest(pipeline.stage_identity(
            RunConfig(profile="smoke", overrides={"gradient_checkpointing": on}), ds))
        for on in (True, False)
    }  # fmt: skip
    assert len(keys) == 1


# ------------------------------------------------------------------------------ allocator
FOUND = {"tcmalloc": "/usr/lib/libtcmalloc_minimal.so.4", "jemalloc": "/usr/lib/libjemalloc.so.2"}


@pytest.mark.parametrize(
    ("env", "found", "loaded", "expected"),
    [
        ({}, FOUND, (), "tcmalloc"),  # auto: tcmalloc first
        ({"RECBENCH_ALLOCATOR": "auto"}, {"jemalloc": FOUND["jemalloc"]}, (), "jemalloc"),
        ({}, {}, (), None),  # nothing installed: the system's, silently
        ({"RECBENCH_ALLOCATOR": "system"}, FOUND, (), None),
        ({"RECBENCH_ALLOCATOR": "JEMALLOC"}, FOUND, (), "jemalloc"),
        ({"RECBENCH_ALLOCATOR": " tcmalloc "}, FOUND, (), "tcmalloc"),
        ({allocator.REEXECUTED_ENV: "tcmalloc"}, FOUND, (), None),  # at most once
        ({}, FOUND, ("jemalloc",), None),  # already under one (the user's LD_PRELOAD)
    ],
)
def test_the_allocator_chosen_from_the_environment_and_the_libraries(env, found, loaded, expected):
    choice = allocator.choose(env, found, loaded)
    assert (choice and choice.name) == expected
    if choice is not None:
        assert choice.env["LD_PRELOAD"] == found[expected]
        assert choice.env[allocator.REEXECUTED_ENV] == expected


def test_the_preload_keeps_the_users_and_the_allocator_is_tuned_unless_the_user_did():
    tc = allocator.choose({"LD_PRELOAD": "/opt/mine.so"}, FOUND)
    assert tc is not None and tc.env["LD_PRELOAD"] == f"{FOUND['tcmalloc']}:/opt/mine.so"
    assert int(tc.env["TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD"]) >= 2**40  # no stderr lines
    je = allocator.choose({"RECBENCH_ALLOCATOR": "jemalloc"}, FOUND)
    assert je is not None and "dirty_decay_ms:-1" in je.env["MALLOC_CONF"]  # purging off
    mine = allocator.choose({"RECBENCH_ALLOCATOR": "jemalloc", "MALLOC_CONF": "narenas:2"}, FOUND)
    assert mine is not None and "MALLOC_CONF" not in mine.env  # the user's own is kept


@pytest.mark.parametrize("value", ["tcmalloc", "jemalloc"])
def test_an_allocator_asked_for_by_name_and_missing_is_one_line(value):
    with pytest.raises(UserError, match=f"apt-get install {allocator.INSTALL[value]}"):
        allocator.choose({"RECBENCH_ALLOCATOR": value}, {})


def test_an_unknown_allocator_is_one_line():
    with pytest.raises(UserError, match="RECBENCH_ALLOCATOR=glibc: unknown allocator"):
        allocator.choose({"RECBENCH_ALLOCATOR": "glibc"}, FOUND)


CLI_FILE = ROOT / "recbench" / "cli.py"


@pytest.mark.parametrize(
    ("argv", "again"),
    [
        (["/venv/bin/python3", "/venv/bin/recbench", "run", "--loss", "dpo"], True),
        (["python", "-X", "importtime", "-m", "recbench.cli", "sweep", "--loss", "dpo"], True),
        (["python", str(CLI_FILE), "run", "--baseline", "pop"], True),
        # commands that train nothing are not worth a second start
        (["/venv/bin/python3", "/venv/bin/recbench", "--help"], False),
        (["python", "-m", "recbench.cli", "compare", "--results", "r.jsonl"], False),
        (["python", str(CLI_FILE), "data", "list"], False),
        (["python", "-c", "from recbench.cli import main; main()"], False),  # its state is lost
        (["python", "-m", "pytest", "tests"], False),  # main() called in a test
        (["python", "-m", "recbench.sweep"], False),
        (["python", "/somewhere/else.py"], False),
        (["python"], False),
    ],
)
def test_only_the_recbench_command_is_executed_again(argv, again):
    assert allocator.command_line(argv, CLI_FILE) == (argv if again else None)


def test_recbench_help_runs_on_the_system_allocator():
    result = run_cli("--help", env={"RECBENCH_ALLOCATOR": "system"}, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "recbench" in result.stdout and result.stderr == ""


def test_an_unknown_allocator_stops_the_command_with_one_line():
    result = run_cli("data", "list", env={"RECBENCH_ALLOCATOR": "glibc"}, timeout=120)
    assert result.returncode == 2 and result.stderr.startswith("error: RECBENCH_ALLOCATOR=glibc")


@pytest.mark.skipif(not allocator.find_libraries(), reason="no tcmalloc or jemalloc installed")
def test_the_reexecuted_process_runs_under_the_allocator(tmp_path):
    """Where one is installed: the exec really preloads it, once."""
    probe = (
        "from recbench import allocator; import os; "
        "print(sorted(allocator.loaded_allocators()), os.environ['RECBENCH_ALLOCATOR_PRELOADED'])"
    )
    code = (
        "import sys\nfrom recbench import allocator\n"
        f"allocator.reexecute([sys.executable, '-c', {probe!r}])\nprint('not re-executed')\n"
    )
    env = {k: v for k, v in os.environ.items()
           if k not in (allocator.ENV, allocator.REEXECUTED_ENV, "LD_PRELOAD")}  # fmt: skip
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=env, cwd=ROOT, timeout=120, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    name = next(n for n in allocator.PREFERENCE if n in allocator.find_libraries())
    assert result.stdout.strip() == f"['{name}'] {name}", result.stdout


# ------------------------------------------------------------- the base's dtype, 4-bit
def test_a_bf16_base_is_loaded_in_bf16_and_trains_fp32_adapters(tiny_llm, recbench_home):
    """``base_dtype=bf16``: the frozen weights are bf16 (half the bytes), the LoRA adapters and
    their optimizer state stay fp32 (peft up-casts them), and the SFT stage trains."""
    from recbench import pipeline

    config = RunConfig(loss="dpo", profile="smoke", model=str(tiny_llm),
                       overrides={"base_dtype": "bf16", "precision": "bf16"}).validate()  # fmt: skip
    run = pipeline.LLMRun.from_config(config)
    assert run.base_dtype == "bf16"
    summary = run.sft()
    assert summary["steps"] == 2
    frozen = {p.dtype for p in run.model.parameters() if not p.requires_grad}
    trained = {p.dtype for p in run.model.parameters() if p.requires_grad}
    assert frozen == {torch.bfloat16} and trained == {torch.float32}
    ident = pipeline.stage_identity(config, run.ds)
    assert ident["base_dtype"] == "bf16"


def test_the_base_dtype_is_in_the_stage_key_only_when_not_fp32(recbench_home):
    """An fp32 base is what every stage was trained on before the setting existed: its key
    does not name it, so cached stages and recorded runs stay found."""
    from recbench import pipeline
    from recbench.data import load_dataset

    ds = load_dataset("lastfm")
    fp32 = pipeline.stage_identity(RunConfig(loss="dpo", profile="smoke").validate(), ds)
    assert "base_dtype" not in fp32 and "quantization" not in fp32
    # the paper profile follows its precision: bf16 where it trains in bf16
    assert PROFILES["paper"].base_dtype == "auto" and PROFILES["study"].base_dtype == "fp32"
    assert pipeline._base_dtype("auto", "bf16") == "bf16"
    assert pipeline._base_dtype("auto", "fp32") == "fp32"


def test_a_bf16_base_under_fp32_training_is_one_line():
    from recbench import pipeline

    with pytest.raises(UserError, match="base_dtype=bf16 with precision=fp32"):
        pipeline._base_dtype("bf16", "fp32")


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without a GPU")
def test_nf4_without_bitsandbytes_or_a_gpu_stops_with_one_line(cli):
    result = cli("run", "--loss", "dpo", "--profile", "smoke", "--set", "quantization=nf4")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "quantization=nf4 needs" in lines[0], result.stderr
