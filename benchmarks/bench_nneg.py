"""Time and peak memory across the number of negatives (opt-in; never part of the test run).

What it measures, for n_neg in {1, 3, 7, 15, 19}, on real lastfm prompts (rendered and tokenised
exactly as ``recbench run`` does) and a model with the LoRA adapter training uses:

* ``scorer``: forward + backward of the candidate scorer over one micro-batch, ``packed`` (the
  prompt once, all responses after it) versus ``plain`` (one sequence per response);
* ``step``: one optimizer step of the preference stage per loss family -- DPO, SimPO, S-DPO
  (reference log-probs precomputed, as the trainer caches them) and NAPO with in-batch sharing,
  whose pool holds n(1 + K) negatives (the paper's Figure 3c);
* ``eval``: examples per second of ranking (all 20 candidates scored) and generation (greedy, 20
  new tokens), with the product's own evaluation functions;
* ``trl``: one DPO step of TRL's ``DPOTrainer`` next to recbench's DPO step on the same model,
  batch, LoRA and precision (both with precomputed reference log-probs), with and without TRL's
  default gradient checkpointing;
* with ``--checkpointing``, the scorer and step cases again with recbench's gradient
  checkpointing (variants ``packed-gc`` and ``LOSS-gc``; the profile setting
  ``gradient_checkpointing``), and the summary's memory and time ratios with and without it.

Models: ``tiny`` (2 layers, random), ``smollm2-shape`` and ``llama1b-shape`` (random weights of
the embedded model's and a 1B Llama's shapes: time and memory need no trained weights) and
``embedded`` (the real SmolLM2-135M weights).  Peak memory on a GPU is CUDA's allocator peak
during the measured calls; on the CPU every case runs in a fresh child process whose peak
resident memory is reset (``/proc/self/clear_refs``) after set-up, so the number is the step's
own peak, not the model load or an earlier case.  Step memory = peak minus memory before.

Output: one long-format CSV row per (case, metric) with hardware and versions, like the records
of the results store.  Commands (also in benchmarks/README.md)::

    python benchmarks/bench_nneg.py --device cpu --shapes embedded --out benchmarks/results/nneg-cpu.csv
    python benchmarks/bench_nneg.py --device cuda --shapes smollm2-shape,llama1b-shape \
        --out benchmarks/results/nneg-h200.csv
    python benchmarks/bench_nneg.py --summary benchmarks/results/nneg-cpu.csv

``pytest benchmarks/bench_nneg.py --benchmark-enable`` runs a small pytest-benchmark version on
the tiny model.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

N_NEGS = (1, 3, 7, 15, 19)
LOSS_FAMILIES = ("dpo", "simpo", "sdpo", "napo")
#: A scorer or step variant with this suffix runs with recbench's gradient checkpointing.
GC = "-gc"
TOKENIZER_ENV = "RECBENCH_BENCH_TOKENIZER"  # a directory with the SmolLM2 tokenizer files

_COMMON = {"hidden_act": "silu", "rms_norm_eps": 1e-5, "tie_word_embeddings": True,
           "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 2}  # fmt: skip
#: Model shapes (random weights).  The vocabulary is at least the tokenizer's (49,152 ids).
SHAPES: dict[str, dict[str, Any]] = {
    "tiny": {"vocab_size": 49152, "hidden_size": 64, "intermediate_size": 128,
             "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
             "max_position_embeddings": 2048, **_COMMON},
    # SmolLM2-135M-Instruct's config (the embedded model)
    "smollm2-shape": {"vocab_size": 49152, "hidden_size": 576, "intermediate_size": 1536,
                      "num_hidden_layers": 30, "num_attention_heads": 9,
                      "num_key_value_heads": 3, "head_dim": 64,
                      "max_position_embeddings": 8192, "rope_theta": 100000.0, **_COMMON},
    # SmolLM2-360M's config (a second small shape for the memory model)
    "smollm2-360m-shape": {"vocab_size": 49152, "hidden_size": 960, "intermediate_size": 2560,
                           "num_hidden_layers": 32, "num_attention_heads": 15,
                           "num_key_value_heads": 5, "head_dim": 64,
                           "max_position_embeddings": 8192, "rope_theta": 100000.0,
                           **_COMMON},
    # deep and narrow, with a vocabulary none of the fitted shapes has (at least the
    # tokenizer's 49,152 ids): held out of the memory model's fit, to check that it predicts a
    # shape it did not see
    "llama-deep-shape": {"vocab_size": 64000, "hidden_size": 768, "intermediate_size": 2048,
                         "num_hidden_layers": 40, "num_attention_heads": 12,
                         "num_key_value_heads": 12, "head_dim": 64,
                         "max_position_embeddings": 4096, **_COMMON},
    # Llama-3-8B's shapes (8.0B parameters): built on a GPU only (gpu_check.sh)
    "llama8b-shape": {"vocab_size": 128256, "hidden_size": 4096, "intermediate_size": 14336,
                      "num_hidden_layers": 32, "num_attention_heads": 32,
                      "num_key_value_heads": 8, "head_dim": 128,
                      "max_position_embeddings": 8192, "rope_theta": 500000.0,
                      **_COMMON, "tie_word_embeddings": False},
    # Llama-3.2-1B's layer shapes and vocabulary (1.24B parameters)
    "llama1b-shape": {"vocab_size": 128256, "hidden_size": 2048, "intermediate_size": 8192,
                      "num_hidden_layers": 16, "num_attention_heads": 32,
                      "num_key_value_heads": 8, "head_dim": 64,
                      "max_position_embeddings": 8192, "rope_theta": 500000.0, **_COMMON},
}  # fmt: skip
#: Shapes the memory model predicts and this CPU does not build: Llama-2-7B (the paper's
#: model) and Llama-3-8B.
PREDICTED_SHAPES: dict[str, dict[str, Any]] = {
    "llama2-7b": {"vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 11008,
                  "num_hidden_layers": 32, "num_attention_heads": 32,
                  "num_key_value_heads": 32, "tie_word_embeddings": False},
    "llama3-8b": {"vocab_size": 128256, "hidden_size": 4096, "intermediate_size": 14336,
                  "num_hidden_layers": 32, "num_attention_heads": 32,
                  "num_key_value_heads": 8, "tie_word_embeddings": False},
}  # fmt: skip
#: The memory model's measurements: fitted on the first shapes, checked on the last.
MEMORY_FIT_SHAPES = ("smollm2-shape", "smollm2-360m-shape", "llama1b-shape")
MEMORY_CHECK_SHAPE = "llama-deep-shape"


@dataclass(frozen=True)
class Case:
    """One measurement: ``kind`` (scorer/step/eval/trl), its ``variant`` and the model set-up."""

    kind: str
    variant: str
    shape: str
    n_neg: int
    device: str
    batch: int
    precision: str  # fp32 or bf16 (autocast)
    reps: int
    max_prompt_tokens: int = 512
    lora_r: int = 16
    seed: int = 0
    base_dtype: str = "fp32"  # the frozen base: fp32, or bf16 as the paper profile loads it


# ------------------------------------------------------------------------------------ set-up
def tokenizer_path() -> Path:
    configured = os.environ.get(TOKENIZER_ENV)
    if configured:
        return Path(configured)
    from recbench import models

    return Path(models.resolve("smollm2-135m"))


def load_tokenizer() -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tokenizer_path())


def build_model(case: Case) -> torch.nn.Module:
    """The case's model on its device, wrapped in the LoRA adapter training uses."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from recbench.trainer import add_lora

    if case.shape == "embedded":
        from recbench import models

        model, _ = models.load("smollm2-135m")
    else:
        torch.manual_seed(case.seed)
        config = LlamaConfig(**SHAPES[case.shape], attn_implementation="sdpa")
        # a bf16 or 4-bit base is initialised in bf16 on its device: an 8B model in fp32 on
        # the host would take 32 GB and minutes
        dtype = torch.float32 if case.base_dtype == "fp32" else torch.bfloat16
        previous = torch.get_default_dtype()
        torch.set_default_dtype(dtype)
        try:
            with torch.device(case.device):
                model = LlamaForCausalLM(config)
        finally:
            torch.set_default_dtype(previous)
    model.to(case.device)
    if case.base_dtype == "bf16":
        model.to(torch.bfloat16)  # before LoRA: peft keeps its adapters in fp32
    elif case.base_dtype == "nf4":
        model = quantize_nf4(model)
    return add_lora(model, case.lora_r, 2 * case.lora_r, case.seed)


def quantize_nf4(model: torch.nn.Module) -> torch.nn.Module:
    """The decoder's linear maps as bitsandbytes 4-bit NormalFloat layers (compute in bf16),
    as ``recbench --set quantization=nf4`` loads a base: the random weights are quantised in
    place, since a random model has no checkpoint to load quantised.  CUDA only."""
    import bitsandbytes as bnb

    for layer in model.model.layers:
        for parent in (layer.self_attn, layer.mlp):
            for name, child in list(parent.named_children()):
                if not isinstance(child, torch.nn.Linear):
                    continue
                quantized = bnb.nn.Linear4bit(
                    child.in_features, child.out_features, bias=child.bias is not None,
                    compute_dtype=torch.bfloat16, quant_type="nf4", device="cpu",
                )  # fmt: skip
                quantized.weight = bnb.nn.Params4bit(
                    child.weight.data.to("cpu", torch.bfloat16), requires_grad=False,
                    quant_type="nf4",
                )  # fmt: skip
                setattr(parent, name, quantized.to(child.weight.device))
    return model


def base_parameters(model: torch.nn.Module) -> int:
    """Parameters of the frozen base (4-bit layers count their logical weights)."""
    total = 0
    for p in model.parameters():
        if p.requires_grad:
            continue
        shape = getattr(p, "quant_state", None)
        total += int(torch.Size(shape.shape).numel()) if shape is not None else p.numel()
    return total


#: Dense bf16 peak FLOP/s by GPU name (vendor datasheets, without sparsity).
GPU_PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12,
                 "L4": 121e12, "A10": 125e12, "RTX 4090": 165e12}  # fmt: skip


def peak_flops(device: str) -> float:
    """The device's dense bf16 peak (NaN when unknown, or on a CPU)."""
    if device != "cuda":
        return float("nan")
    name = torch.cuda.get_device_name(0)
    return next((v for k, v in GPU_PEAK_BF16.items() if k in name), float("nan"))


def build_items(n: int, n_neg: int, seed: int = 0) -> list:
    """``n`` lastfm training examples with ``n_neg`` negatives, as the trainer renders them."""
    from recbench.batches import pick_examples, render
    from recbench.data import load_dataset

    ds = load_dataset("lastfm")
    examples = pick_examples(ds.examples("train"), n, seed)
    return [render(ds, ex, seed, n_neg) for ex in examples]


def encode(tokenizer: Any, items: list, n_neg: int, max_prompt_tokens: int):
    from recbench.scoring import encode_pairs

    responses = [[it.chosen, *it.rejected[:n_neg]] for it in items]
    return encode_pairs(tokenizer, [it.prompt for it in items], responses, add_bos=False,
                        max_prompt_tokens=max_prompt_tokens)  # fmt: skip


def autocast(case: Case):
    enabled = case.precision == "bf16"
    return torch.autocast(device_type=case.device, dtype=torch.bfloat16, enabled=enabled)


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


# ------------------------------------------------------------------------------------ memory
def _status_kb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return float(line.split()[1])
    return float("nan")


def _release_free_heap() -> None:
    """Hand freed heap pages back to the OS, so that memory the set-up freed is not silently
    reused by the measured call (it would then not show in the resident peak)."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class PeakMemory:
    """Peak memory of the measured calls (MB): CUDA allocator peak or reset resident peak."""

    def __init__(self, device: str) -> None:
        self.device = device

    def start(self) -> None:
        if self.device == "cuda":
            synchronize("cuda")
            torch.cuda.reset_peak_memory_stats()
            self.before = torch.cuda.memory_allocated() / 2**20
        else:
            _release_free_heap()
            try:
                Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to VmRSS
                self.reset = True
            except OSError:
                self.reset = False
            self.before = _status_kb("VmRSS") / 1024

    def stop(self) -> dict[str, float]:
        if self.device == "cuda":
            synchronize("cuda")
            peak = torch.cuda.max_memory_allocated() / 2**20
        else:
            peak = _status_kb("VmHWM") / 1024
        out = {"peak_memory_mb": peak, "step_memory_mb": peak - self.before}
        if self.device != "cuda" and not self.reset:
            out["step_memory_mb"] = float("nan")  # the peak may be the model load's
        return out


def timed(fn: Callable[[], Any], case: Case) -> tuple[list[float], dict[str, float]]:
    """One warm-up call, then ``reps`` timed calls; the peak-memory window covers all of them
    (on the CPU the warm-up call is the first to touch its pages, so it must be inside)."""
    memory = PeakMemory(case.device)
    memory.start()
    fn()
    synchronize(case.device)
    seconds = []
    for _ in range(case.reps):
        started = time.perf_counter()
        fn()
        synchronize(case.device)
        seconds.append(time.perf_counter() - started)
    return seconds, memory.stop()


# ------------------------------------------------------------------------------------- cases
def scorer_case(case: Case, model, tokenizer) -> dict[str, float]:
    from recbench.scoring import score_responses

    mode = case.variant.removesuffix(GC)

    items = build_items(case.batch, case.n_neg, case.seed)
    prompt_ids, response_ids = encode(tokenizer, items, case.n_neg, case.max_prompt_tokens)
    model.train()

    def step() -> None:
        model.zero_grad(set_to_none=True)
        with autocast(case):
            scores = score_responses(model, prompt_ids, response_ids, mode=mode)
        loss = -(scores.logps[:, 0] - torch.logsumexp(scores.logps, dim=-1)).mean()
        loss.backward()

    seconds, memory = timed(step, case)
    tokens_fed = sum(
        (len(p) + sum(len(r) for r in rs)) if mode == "packed"
        else sum(len(p) + len(r) for r in rs)
        for p, rs in zip(prompt_ids, response_ids, strict=True)
    )  # fmt: skip
    # the packed scorer's one row per example (prompt, then every response but its last
    # token), padded to the longest: the tokens each layer processes
    longest = max(len(p) + sum(len(r) - 1 for r in rs)
                  for p, rs in zip(prompt_ids, response_ids, strict=True))  # fmt: skip
    return {"seconds": statistics.median(seconds), **memory, "tokens_fed": tokens_fed,
            "padded_tokens": len(prompt_ids) * longest,
            "response_tokens": sum(len(r) for rs in response_ids for r in rs),
            "prompt_tokens_mean": statistics.mean(len(p) for p in prompt_ids),
            "response_tokens_mean": statistics.mean(len(r) for rs in response_ids
                                                    for r in rs)}  # fmt: skip


def _aux_fields(loss, b: int, n: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Random auxiliary signals of the right shapes (their values do not change the cost)."""
    out: dict[str, torch.Tensor] = {}
    if "seq_embeddings" in loss.requires:
        out["seq_embeddings"] = torch.randn(b, 64, generator=generator)
    if "rejected_scores" in loss.requires:
        out["rejected_scores"] = torch.randn(b, n, generator=generator)
    if "receiver_scores" in loss.requires:
        out["receiver_scores"] = torch.rand(b, b, n, generator=generator) * 2 - 1
    return out


def step_case(case: Case, model, tokenizer) -> dict[str, float]:
    """One preference optimizer step, as ``recbench.pipeline.LLMRun.preference`` takes it."""
    from recbench.losses import PreferenceBatch
    from recbench.losses.sharing import num_shared_neighbours

    from recbench import losses
    from recbench.scoring import score_responses

    key = case.variant.removesuffix(GC)
    loss = losses.get_loss(key).to(case.device)
    n_used = case.n_neg if loss.uses_all_negatives else 1
    items = build_items(case.batch, case.n_neg, case.seed)
    prompt_ids, response_ids = encode(tokenizer, items, n_used, case.max_prompt_tokens)
    generator = torch.Generator().manual_seed(case.seed)
    fixed = _aux_fields(loss, case.batch, n_used, generator)
    fixed["example_ids"] = torch.arange(case.batch)
    if loss.needs_reference:
        with torch.no_grad(), model.disable_adapter(), autocast(case):
            ref = score_responses(model, prompt_ids, response_ids).logps.float()
        fixed["ref_chosen_logps"], fixed["ref_rejected_logps"] = ref[:, 0], ref[:, 1:]
    fixed = {k: v.to(case.device) for k, v in fixed.items()}
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    model.train()

    def step() -> None:
        with autocast(case):
            scores = score_responses(model, prompt_ids, response_ids)
        batch = PreferenceBatch(
            chosen_logps=scores.logps[:, 0], rejected_logps=scores.logps[:, 1:],
            chosen_lengths=scores.lengths[:, 0].float(),
            rejected_lengths=scores.lengths[:, 1:].float(), **fixed,
        )  # fmt: skip
        loss(batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    seconds, memory = timed(step, case)
    shared = 0
    if "napo" in key:
        shared = num_shared_neighbours(case.batch, loss.hparams.rho)
    tokens_fed = sum(len(p) + sum(len(r) for r in rs)
                     for p, rs in zip(prompt_ids, response_ids, strict=True))  # fmt: skip
    return {"seconds": statistics.median(seconds), **memory, "tokens_fed": tokens_fed,
            "negatives_used": n_used, "equivalent_negatives": n_used * (1 + shared)}  # fmt: skip


def eval_case(case: Case, model, tokenizer) -> dict[str, float]:
    from recbench.data import load_dataset
    from recbench.evaluation import generate_answers, rank_candidates

    ds = load_dataset("lastfm")
    items = build_items(case.batch * (case.reps + 1), 0, case.seed)
    model.eval()
    chunks = [items[i * case.batch : (i + 1) * case.batch] for i in range(case.reps + 1)]
    position = iter(range(len(chunks)))

    def run() -> None:
        chunk = chunks[next(position)]
        with autocast(case):
            if case.variant == "ranking":
                rank_candidates(
                    model,
                    tokenizer,
                    ds,
                    chunk,
                    batch_size=case.batch,
                    max_prompt_tokens=case.max_prompt_tokens,
                    progress=False,
                )
            else:
                generate_answers(model, tokenizer, chunk, batch_size=case.batch,
                                 max_new_tokens=20, max_prompt_tokens=case.max_prompt_tokens,
                                 progress=False)  # fmt: skip

    seconds, memory = timed(run, case)
    return {"seconds": statistics.median(seconds), **memory,
            "examples_per_second": case.batch / statistics.median(seconds)}  # fmt: skip


def trl_case(case: Case, model, tokenizer) -> dict[str, float]:
    """recbench's DPO step (variant ``recbench``) or TRL DPOTrainer's: ``trl`` without gradient
    checkpointing (like recbench), ``trl-gc`` with TRL's default gradient checkpointing."""
    if case.variant == "recbench":
        return step_case(replace(case, variant="dpo", n_neg=1), model, tokenizer)
    import datasets
    from datasets import Dataset
    from transformers import TrainerCallback

    datasets.disable_progress_bars()
    from trl import DPOConfig, DPOTrainer

    base = model.merge_and_unload() if hasattr(model, "merge_and_unload") else model
    items = build_items(case.batch, 1, case.seed)
    rows = [{"prompt": it.prompt, "chosen": it.chosen, "rejected": it.rejected[0]} for it in items]
    steps = case.reps + 1
    seconds: list[float] = []
    memory = PeakMemory(case.device)
    measured: dict[str, float] = {}

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == 0:  # step 0 is the warm-up, timed steps follow
                memory.start()
            synchronize(case.device)
            self.started = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            synchronize(case.device)
            if state.global_step > 1:
                seconds.append(time.perf_counter() - self.started)
            if state.global_step == steps:
                measured.update(memory.stop())

    from peft import LoraConfig

    with tempfile.TemporaryDirectory() as out:
        config = DPOConfig(
            output_dir=out, per_device_train_batch_size=case.batch, max_steps=steps,
            learning_rate=1e-4, lr_scheduler_type="constant", beta=1.0,
            precompute_ref_log_probs=True, max_length=None, save_strategy="no",
            report_to=[], logging_strategy="no", disable_tqdm=True, seed=case.seed,
            bf16=case.precision == "bf16", use_cpu=case.device == "cpu",
            dataloader_num_workers=0, gradient_checkpointing=case.variant == "trl-gc",
        )  # fmt: skip
        lora = LoraConfig(r=case.lora_r, lora_alpha=2 * case.lora_r, lora_dropout=0.0,
                          target_modules="all-linear", task_type="CAUSAL_LM")  # fmt: skip
        trainer = DPOTrainer(
            model=base, args=config, processing_class=tokenizer, peft_config=lora,
            train_dataset=Dataset.from_list(rows * steps), callbacks=[Clock()],
        )  # fmt: skip
        trainer.train()
    return {"seconds": statistics.median(seconds), **measured}


CASES: dict[str, Callable[[Case, Any, Any], dict[str, float]]] = {
    "scorer": scorer_case,
    "step": step_case,
    "eval": eval_case,
    "trl": trl_case,
}


def run_case(case: Case, model=None, tokenizer=None) -> dict[str, float]:
    from recbench.trainer import set_gradient_checkpointing

    torch.manual_seed(case.seed)
    tokenizer = tokenizer or load_tokenizer()
    model = model if model is not None else build_model(case)
    # TRL's "trl-gc" is TRL's own checkpointing, switched on by its trainer
    checkpointing = case.kind in ("scorer", "step") and case.variant.endswith(GC)
    set_gradient_checkpointing(model, checkpointing)
    try:
        values = CASES[case.kind](case, model, tokenizer)
        tokens = values.get("tokens_fed")
        if tokens and values.get("seconds"):
            # a LoRA step costs about 4 FLOPs per frozen parameter and token (forward, and the
            # backward's input gradients; the frozen weights take none); attention's and the
            # recomputation's FLOPs are not counted, as in the usual utilisation figure
            values["tokens_per_second"] = tokens / values["seconds"]
            flops = 4 * base_parameters(model) * tokens / values["seconds"]
            values["flops_fraction"] = flops / peak_flops(case.device)
        return values
    finally:
        model.zero_grad(set_to_none=True)
        set_gradient_checkpointing(model, False)  # the next case on this model decides its own


def run_isolated(case: Case) -> dict[str, float]:
    """Run one case in a fresh Python process (CPU memory isolation)."""
    result = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(asdict(case))],
        capture_output=True, text=True, check=False, cwd=ROOT,
    )  # fmt: skip
    if result.returncode != 0:
        killed = " (killed: out of memory?)" if result.returncode < 0 else ""
        raise RuntimeError(f"exit code {result.returncode}{killed}: {result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


# -------------------------------------------------------------------------------------- grid
def plan(shapes: list[str], device: str, batch: int, precision: str, reps: int,
         n_negs: tuple[int, ...] = N_NEGS, kinds: tuple[str, ...] = tuple(CASES),
         checkpointing: bool = False, base_dtype: str = "fp32") -> list[Case]:  # fmt: skip
    """The grid; ``checkpointing`` adds each scorer (packed) and step case checkpointed."""
    cases = []
    scorers = ("packed", "plain", "packed" + GC) if checkpointing else ("packed", "plain")
    steps = LOSS_FAMILIES + tuple(v + GC for v in LOSS_FAMILIES) if checkpointing else LOSS_FAMILIES
    for shape in shapes:
        common = {"shape": shape, "device": device, "batch": batch, "precision": precision,
                  "reps": reps, "base_dtype": base_dtype}  # fmt: skip
        for n in n_negs:
            if "scorer" in kinds:
                cases += [Case("scorer", v, n_neg=n, **common) for v in scorers]
            if "step" in kinds:
                cases += [Case("step", loss, n_neg=n, **common) for loss in steps]
        if "eval" in kinds:
            cases += [Case("eval", v, n_neg=19, **common) for v in ("ranking", "generation")]
        if "trl" in kinds:
            cases += [Case("trl", v, n_neg=1, **common) for v in ("recbench", "trl", "trl-gc")]
    return cases


def memory_model_cases(device: str, reps: int) -> list[Case]:
    """The memory model's measurements: the packed scorer's forward and backward, with and
    without checkpointing, at micro-batches 1 and 4 (n_neg 3), every fit shape and the held-out
    one; bf16 base and autocast, as a 7B run on a GPU trains."""
    return [
        Case("scorer", variant, shape, 3, device, batch=batch, precision="bf16", reps=reps,
             base_dtype="bf16")
        for shape in (*MEMORY_FIT_SHAPES, MEMORY_CHECK_SHAPE)
        for batch in (1, 4)
        for variant in ("packed", "packed" + GC)
    ]  # fmt: skip


def _measurements(path: Path) -> tuple[list[Any], Any]:
    """The memory model's measurements in a CSV, and the CSV's scorer rows (wide)."""
    import pandas as pd
    from memory_model import Dims, Measurement

    df = pd.read_csv(path)
    df = df[(df.kind == "scorer") & df.variant.isin(["packed", "packed" + GC])]
    wide = df.pivot_table(index=["shape", "batch", "variant"], columns="metric",
                          values="value", aggfunc="first").reset_index()  # fmt: skip
    measured = wide["step_memory_mb"] > 0 if "step_memory_mb" in wide else False
    wide = wide[wide["shape"].isin(list(SHAPES)) & measured].reset_index(drop=True)
    rows = [
        Measurement(Dims.from_config(SHAPES[r.shape]), int(r.padded_tokens),
                    int(r.response_tokens), r.variant.endswith(GC), r.step_memory_mb * 2**20)
        for r in wide.itertuples()
    ]  # fmt: skip
    return rows, wide


def memory_report(path: Path) -> str:
    """The fitted memory model, its errors on the shapes measured, and its 7B predictions."""
    from memory_model import Dims, TokenShape, fit, predict_peak, relative_errors

    from recbench.config import PROFILES

    rows, wide = _measurements(path)
    fitted = [
        m for m, r in zip(rows, wide.itertuples(), strict=True) if r.shape != MEMORY_CHECK_SHAPE
    ]
    model = fit(fitted)
    lines = [f"# memory model from {path}",
             (f"bytes: a={model.a:.2f} per token*layer*d, b={model.b:.2f} per token*layer*f, "
             f"c={model.c:.2f} per response token*V, g={model.g:.2f} per token*layer*d kept "
             "when checkpointed"),
             ("measured vs predicted step memory (MB): shape | batch | checkpointing | "
             "padded tokens | measured | predicted | error")]  # fmt: skip
    for m, r, err in zip(rows, wide.itertuples(), relative_errors(model, rows), strict=True):
        held = " (held out)" if r.shape == MEMORY_CHECK_SHAPE else ""
        predicted = m.step_bytes * (1 + err) / 2**20
        lines.append(f"  {r.shape}{held} | {r.batch} | {'on' if m.checkpointing else 'off'} | "
                     f"{m.padded_tokens} | {m.step_bytes / 2**20:.0f} | {predicted:.0f} | "
                     f"{err:+.1%}")  # fmt: skip
    big = wide[wide.batch == wide.batch.max()]
    prompt, response = big.prompt_tokens_mean.mean(), big.response_tokens_mean.mean()
    padding = (big.padded_tokens / (big.batch * (prompt + 4 * response))).mean()
    tokens = TokenShape(prompt, response, padding)
    paper = PROFILES["paper"]
    lines.append(f"\npredicted peak (GiB) of one preference step, LoRA r={paper.lora_r}, "
                 f"prompts of {prompt:.0f} tokens, responses of {response:.1f} (this "
                 f"tokenizer), padding x{padding:.2f}; GPU allocator slack and CUDA context "
                 "not included")  # fmt: skip
    for name, config in PREDICTED_SHAPES.items():
        dims = Dims.from_config(config)
        for base, checkpointing in (("fp32", False), ("bf16", False), ("bf16", True),
                                    ("nf4", True)):  # fmt: skip
            gc = "checkpointed" if checkpointing else "no checkpointing"
            lines.append(f"{name}, base {base}, {gc}: micro-batch | n_neg 1 3 7 15 19")
            for batch in (1, 2, 4, 8, 16):
                peaks = [predict_peak(model, dims, tokens, batch, n, base, paper.lora_r,
                                      checkpointing) / 2**30 for n in (1, 3, 7, 15, 19)]  # fmt: skip
                lines.append(f"  {batch:>2} | " + " ".join(f"{p:6.1f}" for p in peaks))
    return "\n".join(lines)


def environment(device: str) -> dict[str, str]:
    from recbench.results import versions

    env = {f"version_{k}": v for k, v in versions().items()}
    try:
        import trl

        env["version_trl"] = trl.__version__
    except ImportError:
        env["version_trl"] = ""
    env["hardware"] = (
        torch.cuda.get_device_name(0) if device == "cuda"
        else f"{platform.machine()} CPU, {os.cpu_count()} cores, {torch.get_num_threads()} threads"
    )  # fmt: skip
    return env


def records(case: Case, values: dict[str, float], env: dict[str, str]) -> list[dict]:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    base = {k: v for k, v in asdict(case).items() if k != "seed"}
    return [{**base, "metric": m, "value": v, **env, "time": stamp} for m, v in values.items()]


def _release(models: dict[str, Any], device: str) -> None:
    models.clear()
    if device == "cuda":
        torch.cuda.empty_cache()


def run_grid(cases: list[Case], out: Path, isolate: bool) -> None:
    import pandas as pd
    from tqdm.auto import tqdm

    env = environment(cases[0].device)
    rows: list[dict] = []
    tokenizer = None if isolate else load_tokenizer()
    models: dict[str, Any] = {}
    for case in tqdm(cases, desc="cases"):
        try:
            if isolate:
                values = run_isolated(case)
            else:
                if case.shape not in models:  # one model per shape, built once
                    _release(models, case.device)
                    models[case.shape] = build_model(case)
                values = run_case(case, models[case.shape], tokenizer)
                if case.kind == "trl":  # TRL got the adapter merged away: rebuild next time
                    _release(models, case.device)
        except Exception as error:  # noqa: BLE001 - a failed case is recorded, the grid goes on
            print(f"FAILED {case.kind}/{case.variant} {case.shape} n={case.n_neg}: {error}",
                  file=sys.stderr)  # fmt: skip
            values = {"failed": 1.0}
            _release(models, case.device)  # an out-of-memory case must not starve the next one
        rows += records(case, values, env)
        out.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows).to_csv(out, index=False)  # rewritten after each case: nothing lost
    print(summary(out))


# ----------------------------------------------------------------------------------- summary
def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b > 0 else "n/a"


def _checkpointing_lines(wide: Any) -> list[str]:
    """Checkpointed over plain, per case: time and step memory ratios (what it costs, what it
    saves), for every scorer and step case measured both ways."""
    import pandas as pd

    lines = []
    for kind, variant, n in wide.index:
        if kind not in ("scorer", "step") or not variant.endswith(GC):
            continue
        plain = (kind, variant.removesuffix(GC), n)
        if plain not in wide.index:
            continue
        on, off = wide.loc[(kind, variant, n)], wide.loc[plain]
        if any(pd.isna(row.get("seconds")) for row in (on, off)):
            continue  # a failed case (out of memory) has nothing to compare
        if not lines:
            lines.append("gradient checkpointing, on / off: case | n_neg | s on | s off | "
                         "time ratio | step MB on | step MB off | memory ratio")  # fmt: skip
        lines.append(
            f"  {kind} {plain[1]} | {n} | {on.seconds:.3f} | {off.seconds:.3f} | "
            f"{_ratio(on.seconds, off.seconds)} | {on.step_memory_mb:.0f} | "
            f"{off.step_memory_mb:.0f} | {_ratio(on.step_memory_mb, off.step_memory_mb)}"
        )
    return lines


def summary(path: Path) -> str:
    """Ratios the issue asks for: n_neg=15 vs 1, packed vs plain, recbench vs TRL."""
    import pandas as pd

    df = pd.read_csv(path)
    lines = [f"# {path} ({df['hardware'].iloc[0]})"]
    for shape, part in df.groupby("shape", sort=False):
        wide = part.pivot_table(index=["kind", "variant", "n_neg"], columns="metric",
                                values="value", aggfunc="first")  # fmt: skip
        lines.append(f"\n## {shape}")
        if ("scorer", "packed", 1) in wide.index:
            lines.append("scorer fwd+bwd: n_neg | packed s | plain s | plain/packed time | "
                         "packed MB | plain MB | plain/packed memory")  # fmt: skip
            for n in sorted(part["n_neg"].unique()):
                if ("scorer", "packed", n) not in wide.index:
                    continue
                pk, pl = wide.loc[("scorer", "packed", n)], wide.loc[("scorer", "plain", n)]
                lines.append(
                    f"  {n:>2} | {pk.seconds:.3f} | {pl.seconds:.3f} | {_ratio(pl.seconds, pk.seconds)}"
                    f" | {pk.step_memory_mb:.0f} | {pl.step_memory_mb:.0f} | "
                    f"{_ratio(pl.step_memory_mb, pk.step_memory_mb)}"
                )
            if ("scorer", "packed", 15) in wide.index:
                a, b = wide.loc[("scorer", "packed", 15)], wide.loc[("scorer", "packed", 1)]
                lines.append(f"  packed n_neg=15 / n_neg=1: time {_ratio(a.seconds, b.seconds)}, "
                             f"memory {_ratio(a.step_memory_mb, b.step_memory_mb)}")  # fmt: skip
        steps = part[(part.kind == "step") & (part.metric.isin(["seconds", "step_memory_mb"]))]
        if len(steps):
            lines.append("train step (s / step MB) by n_neg:")
            for loss, sub in steps.groupby("variant", sort=False):
                cells = []
                for n, cell in sub.groupby("n_neg"):
                    m = dict(zip(cell.metric, cell.value, strict=True))
                    cells.append(f"{n}: {m['seconds']:.3f}s/{m['step_memory_mb']:.0f}MB")
                lines.append(f"  {loss:>6}: " + ", ".join(cells))
        lines += _checkpointing_lines(wide)
        for variant in ("ranking", "generation"):
            if ("eval", variant, 19) in wide.index:
                eps = wide.loc[("eval", variant, 19)].examples_per_second
                lines.append(f"eval {variant}: {eps:.2f} examples/s")
        for trl_variant in ("trl", "trl-gc"):
            if ("trl", trl_variant, 1) not in wide.index or (
                "trl",
                "recbench",
                1,
            ) not in wide.index:
                continue
            t, r = wide.loc[("trl", trl_variant, 1)], wide.loc[("trl", "recbench", 1)]
            lines.append(f"DPO step: {trl_variant} {t.seconds:.3f}s / {t.step_memory_mb:.0f}MB, "
                         f"recbench {r.seconds:.3f}s / {r.step_memory_mb:.0f}MB -> TRL/recbench "
                         f"time {_ratio(t.seconds, r.seconds)}, memory "
                         f"{_ratio(t.step_memory_mb, r.step_memory_mb)}")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--shapes", default="tiny", help="comma-separated: " + ", ".join(
        [*SHAPES, "embedded"]))  # fmt: skip
    parser.add_argument("--kinds", default=",".join(CASES), help="scorer,step,eval,trl")
    parser.add_argument("--n-neg", default=",".join(map(str, N_NEGS)))
    parser.add_argument("--batch", type=int, default=4, help="examples per micro-batch")
    parser.add_argument("--precision", default=None, help="fp32 or bf16 (default: bf16 on cuda)")
    parser.add_argument("--reps", type=int, default=3, help="timed repetitions after a warm-up")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (CPU)")
    parser.add_argument("--checkpointing", action="store_true",
                        help="also run the scorer and step cases with gradient checkpointing")  # fmt: skip
    parser.add_argument("--isolate", action=argparse.BooleanOptionalAction, default=None,
                        help="one child process per case (default: on for cpu)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=None, help="CSV to write")
    parser.add_argument("--summary", type=Path, default=None, help="print ratios of a CSV")
    parser.add_argument("--base-dtype", default="fp32", choices=("fp32", "bf16", "nf4"),
                        help="the frozen base: fp32 (the CPU profiles), bf16 (the paper "
                        "profile on a GPU) or nf4 (bitsandbytes 4-bit, CUDA only)")  # fmt: skip
    parser.add_argument("--memory-model", action="store_true",
                        help="measure the memory model's shapes (bf16 base, 1 and 4 examples, "
                        "with and without checkpointing) into --out, then print its fit and "
                        "its 7B predictions")  # fmt: skip
    parser.add_argument("--memory-report", type=Path, default=None,
                        help="print the memory model fitted to a CSV of --memory-model")  # fmt: skip
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:
        print(json.dumps(run_case(Case(**json.loads(args.child)))))
        return
    if args.summary:
        print(summary(args.summary))
        return
    if args.memory_report:
        print(memory_report(args.memory_report))
        return
    if args.memory_model:
        out = args.out or ROOT / "benchmarks" / "results" / f"memory-model-{args.device}.csv"
        isolate = args.device == "cpu" if args.isolate is None else args.isolate
        run_grid(memory_model_cases(args.device, args.reps), out, isolate)
        print(memory_report(out))
        return
    precision = args.precision or ("bf16" if args.device == "cuda" else "fp32")
    isolate = args.device == "cpu" if args.isolate is None else args.isolate
    cases = plan(args.shapes.split(","), args.device, args.batch, precision, args.reps,
                 tuple(int(n) for n in args.n_neg.split(",")), tuple(args.kinds.split(",")),
                 args.checkpointing, args.base_dtype)  # fmt: skip
    out = args.out or ROOT / "benchmarks" / "results" / f"nneg-{args.device}.csv"
    run_grid(cases, out, isolate)


# ------------------------------------------------------------------------------ pytest entry
def test_packed_scorer_step_tiny(benchmark: Any) -> None:
    """pytest-benchmark: one packed fwd+bwd at n_neg=15 on the tiny model (CPU)."""
    case = Case("scorer", "packed", "tiny", 15, "cpu", batch=2, precision="fp32", reps=1)
    tokenizer, model = load_tokenizer(), build_model(case)
    result = benchmark.pedantic(run_case, args=(case, model, tokenizer), rounds=2)
    assert result["seconds"] > 0


if __name__ == "__main__":
    main()
