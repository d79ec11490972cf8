"""Benchmark: packed vs plain candidate scoring on the embedded model (opt-in, never in CI).

The product requires the packed scorer to run a forward+backward over one recommendation prompt
(10 history titles, 20 candidates, ~380 tokens) with its 20 candidate responses at least 10x
faster than the plain one-sequence-per-candidate scorer on a 2-core CPU, with the same values
and gradients.  This file measures both and checks agreement on real weights.

Run it with either of::

    PYTHONPATH=. python -m pytest benchmarks/bench_scorer.py --benchmark-enable -s
    PYTHONPATH=. python benchmarks/bench_scorer.py      # prints a short report

The file name does not match pytest's ``test_*.py`` pattern, so ``pytest`` / ``pytest tests``
never collect it (nor does ``pytest benchmarks`` unless ``python_files`` includes ``bench_*.py``);
it runs when named explicitly.  The model comes from one place, :func:`bench_model_path`:
env ``RECBENCH_BENCH_MODEL``, resolved like ``recbench run --model`` by
:func:`recbench.models.resolve` (default ``smollm2-135m``, the embedded model, fetched and
converted into ``$RECBENCH_HOME`` on first use; or a local checkpoint directory with model and
tokenizer; or a hub id in the local Hugging Face cache).  An unusable model fails with
recbench's one-line error; everything is skipped if the resolved path holds no ``config.json``
(a hub id the hub knows but that is not in the local cache).  ``RECBENCH_BENCH_THREADS``
(default 2) sets torch's thread count.

Timings need an otherwise idle machine.  The packed step is a few thousand kernels of about a
millisecond each; when another process occupies a core, every kernel can wait a scheduler time
slice for its second thread, which slows packed far more than plain (whose kernels are ~16x
longer).  The report therefore prints the load average before and after.
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from recbench.scoring import ScoringMode, encode_pairs, score_responses

MODEL_ENV = "RECBENCH_BENCH_MODEL"
DEFAULT_MODEL = "smollm2-135m"  # the embedded model, fetched/converted by recbench.models
THREADS_ENV = "RECBENCH_BENCH_THREADS"
REQUIRED_SPEEDUP = 10.0
#: Parameters whose gradients are compared between the paths (Llama parameter names).
GRAD_PROBES = (
    "model.embed_tokens.weight",  # tied to the LM head in SmolLM2
    "model.layers.0.self_attn.q_proj.weight",
    "model.layers.15.mlp.down_proj.weight",
    "model.layers.29.self_attn.o_proj.weight",
    "model.norm.weight",
)

HISTORY = [
    "The Velvet Lanterns",
    "Mira Castellane",
    "Northbound Echo",
    "Saffron Tides",
    "Jonah Abernathy & The Pale Hours",
    "Glasshouse Atlas",
    "Lumen Drift",
    "The Copper Sparrows",
    "Kestrel Moon",
    "Dalia Ferrante",
]
CANDIDATES = [
    "Hollow Pines",
    "The Midnight Cartographers",
    "Ostara Vale",
    "Cinder & Silk",
    "Rafael Oduya",
    "Paper Satellites",
    "The Lighthouse Keepers",
    "Ivory Static",
    "Wren Halloway",
    "Blue Meridian",
    "Sundown Parade",
    "Tova Lindqvist",
    "The Amber Republic",
    "Quiet Harbour",
    "Neon Orchards",
    "Felix Marchetti Trio",
    "Driftwood Choir",
    "Ember Coast",
    "Solenne",
    "The Static Gardens",
]
GENRES = ["indie folk", "dream pop", "post-rock", "neo-soul", "synthpop"]


def bench_model_path() -> Path:
    """The one place that decides which checkpoint the benchmark uses."""
    from recbench import models

    return Path(models.resolve(os.environ.get(MODEL_ENV, DEFAULT_MODEL)))


def load_bench_model(path: Path) -> tuple[Any, Any]:
    """Load model (fp32, sdpa attention, eval mode) and tokenizer from a plain HF checkpoint."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(
        path, dtype=torch.float32, attn_implementation="sdpa"
    )
    return model.eval(), AutoTokenizer.from_pretrained(path)


def build_prompt(tokenizer: Any) -> str:
    """A realistic next-artist recommendation prompt in the model's chat format."""
    history = "\n".join(
        f"{n}. {title} ({GENRES[n % len(GENRES)]})" for n, title in enumerate(HISTORY, start=1)
    )
    candidates = "\n".join(f"- {title}" for title in CANDIDATES)
    user = (
        "You are a music recommender. Below is the listening history of a user, oldest first, "
        "with the genre of each artist.\n\n"
        f"Listening history:\n{history}\n\n"
        "Based on this history, which artist will the user listen to next? Pick exactly one "
        "artist from the candidate list below. Consider the genres the user prefers, how their "
        "taste has changed recently, and artists that fans of the same music also enjoy.\n\n"
        f"Candidates:\n{candidates}\n\n"
        "Answer with the name of the artist only, exactly as written in the candidate list."
    )
    messages = [{"role": "user", "content": user}]
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def make_inputs(tokenizer: Any) -> tuple[list[list[int]], list[list[list[int]]]]:
    # the chat template already starts with its own special token, so no extra BOS
    return encode_pairs(tokenizer, [build_prompt(tokenizer)], [CANDIDATES], add_bos=False)


def forward_backward(
    model: Any,
    prompt_ids: list[list[int]],
    response_ids: list[list[list[int]]],
    mode: ScoringMode,
) -> torch.Tensor:
    """One training-like step: score, a softmax-over-candidates loss, backward.  Returns logps."""
    model.zero_grad(set_to_none=True)
    scores = score_responses(model, prompt_ids, response_ids, mode=mode)
    loss = -(scores.logps[:, 0] - torch.logsumexp(scores.logps, dim=-1)).mean()
    # also give every candidate its own gradient weight, so all responses matter
    weights = torch.linspace(0.5, 1.5, scores.logps.shape[1])
    (loss - (scores.logps * weights).sum() * 1e-2).backward()
    return scores.logps.detach()


@dataclass
class Comparison:
    prompt_tokens: int
    response_tokens: list[int]
    packed_s: list[float]  # wall-clock seconds per forward+backward
    plain_s: list[float]
    packed_cpu_s: list[float]  # process CPU seconds (all threads) per forward+backward
    plain_cpu_s: list[float]
    logp_max_abs_diff: float
    logp_max_abs: float
    grad_diffs: dict[str, tuple[float, float]]  # name -> (max abs diff, max abs grad)
    load: tuple[float, float]  # 1-minute load average before and after the measurement

    @property
    def speedup(self) -> float:
        """Median plain wall time over median packed wall time."""
        return statistics.median(self.plain_s) / statistics.median(self.packed_s)

    @property
    def cpu_speedup(self) -> float:
        """The same ratio in CPU time, less sensitive to other processes on the machine."""
        return statistics.median(self.plain_cpu_s) / statistics.median(self.packed_cpu_s)

    def report(self) -> str:
        c = self.response_tokens
        p = self.prompt_tokens
        lines = [
            (
                f"prompt {p} tokens, {len(c)} responses of {min(c)}-{max(c)} tokens "
                f"(sum {sum(c)}); tokens fed: packed {p + sum(c) - len(c)}, "
                f"plain {sum(p + n for n in c)}"
            ),
            (
                f"torch threads {torch.get_num_threads()}, load average before/after "
                f"{self.load[0]:.1f}/{self.load[1]:.1f} (timings are only meaningful when it "
                "stays below the thread count: other processes make each of the many small "
                "packed kernels wait for a descheduled thread)"
            ),
            "packed fwd+bwd wall: " + ", ".join(f"{t:.2f}s" for t in self.packed_s),
            "plain  fwd+bwd wall: " + ", ".join(f"{t:.2f}s" for t in self.plain_s),
            "packed fwd+bwd cpu:  " + ", ".join(f"{t:.2f}s" for t in self.packed_cpu_s),
            "plain  fwd+bwd cpu:  " + ", ".join(f"{t:.2f}s" for t in self.plain_cpu_s),
            (
                f"speedup (median plain / median packed): wall {self.speedup:.1f}x, "
                f"cpu {self.cpu_speedup:.1f}x"
            ),
            (
                f"logps: max |packed - plain| = {self.logp_max_abs_diff:.2e} "
                f"(max |logp| {self.logp_max_abs:.1f})"
            ),
        ]
        for name, (diff, scale) in self.grad_diffs.items():
            lines.append(f"grad {name}: max abs diff {diff:.2e} (max |grad| {scale:.2e})")
        return "\n".join(lines)


def _timed(fn: Any) -> tuple[float, float, Any]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def compare(model: Any, tokenizer: Any, rounds: int = 1, packed_per_round: int = 2) -> Comparison:
    """Time both paths and compare their values and gradients.

    After one packed warm-up run, each round runs packed, plain, then packed again, so that both
    paths see the same background load when the machine is shared.
    """
    prompt_ids, response_ids = make_inputs(tokenizer)
    params = dict(model.named_parameters())
    times: dict[str, tuple[list[float], list[float]]] = {"packed": ([], []), "plain": ([], [])}
    results: dict[str, tuple[torch.Tensor, dict[str, torch.Tensor]]] = {}

    def run(mode: ScoringMode) -> None:
        wall, cpu, logps = _timed(lambda: forward_backward(model, prompt_ids, response_ids, mode))
        times[mode][0].append(wall)
        times[mode][1].append(cpu)
        results[mode] = (logps, {n: params[n].grad.detach().clone() for n in GRAD_PROBES})

    load_before = os.getloadavg()[0]
    forward_backward(model, prompt_ids, response_ids, "packed")  # warm-up: allocator, kernels
    for _ in range(rounds):
        run("packed")
        run("plain")
        for _ in range(packed_per_round - 1):
            run("packed")
    model.zero_grad(set_to_none=True)

    (packed_logps, packed_grads), (plain_logps, plain_grads) = results["packed"], results["plain"]
    return Comparison(
        prompt_tokens=len(prompt_ids[0]),
        response_tokens=[len(r) for r in response_ids[0]],
        packed_s=times["packed"][0],
        plain_s=times["plain"][0],
        packed_cpu_s=times["packed"][1],
        plain_cpu_s=times["plain"][1],
        logp_max_abs_diff=(packed_logps - plain_logps).abs().max().item(),
        logp_max_abs=plain_logps.abs().max().item(),
        grad_diffs={
            n: (
                (packed_grads[n] - plain_grads[n]).abs().max().item(),
                plain_grads[n].abs().max().item(),
            )
            for n in GRAD_PROBES
        },
        load=(load_before, os.getloadavg()[0]),
    )


def _set_threads() -> None:
    torch.set_num_threads(int(os.environ.get(THREADS_ENV, "2")))


# --------------------------------------------------------------------------------------------
# pytest entry points
# --------------------------------------------------------------------------------------------

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def bench_setup() -> tuple[Any, Any]:
    path = bench_model_path()
    if not (path / "config.json").is_file():
        pytest.skip(f"benchmark model not found at {path} (set {MODEL_ENV})")
    _set_threads()
    return load_bench_model(path)


@pytest.fixture(scope="module")
def comparison(bench_setup: tuple[Any, Any]) -> Comparison:
    result = compare(*bench_setup)
    print("\n" + result.report())
    return result


def test_packed_scoring_speed(benchmark: Any, bench_setup: tuple[Any, Any]) -> None:
    """pytest-benchmark timing of the packed path (the one the product uses)."""
    model, tokenizer = bench_setup
    prompt_ids, response_ids = make_inputs(tokenizer)
    benchmark.pedantic(
        forward_backward,
        args=(model, prompt_ids, response_ids, "packed"),
        rounds=3,
        warmup_rounds=1,
    )


def test_packed_is_at_least_10x_faster(comparison: Comparison) -> None:
    assert comparison.speedup >= REQUIRED_SPEEDUP, comparison.report()


def test_packed_matches_plain_on_embedded_model(comparison: Comparison) -> None:
    assert comparison.logp_max_abs_diff <= 1e-3, comparison.report()
    for name, (diff, scale) in comparison.grad_diffs.items():
        assert diff <= 1e-3 * max(scale, 1.0), f"{name}: {comparison.report()}"


if __name__ == "__main__":
    _set_threads()
    model_path = bench_model_path()
    if not (model_path / "config.json").is_file():
        raise SystemExit(f"benchmark model not found at {model_path} (set {MODEL_ENV})")
    print(compare(*load_bench_model(model_path), rounds=2, packed_per_round=3).report())
