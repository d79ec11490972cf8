"""Gradients of one SimS-DPO-shaped step on the embedded model, with and without checkpointing.

    python benchmarks/checkpointing_grads.py --examples 8 --n-neg 19

The study profile's micro-batch (8 movielens training examples as the study renders them, the
last 5 history items, n_neg negatives), the embedded SmolLM2-135M with a LoRA adapter whose
weights are set to seeded noise (LoRA's B starts at zero, which would leave A without gradient),
bf16 autocast as the study trains.  The loss is the listwise softmax over the packed scorer's
summed log-probabilities.  Prints the largest absolute and relative (to each tensor's largest
gradient) difference over every adapter weight, and the peak resident memory of each pass.
tests/test_memory.py asserts the same equality on a tiny model; this is the real one.
"""

from __future__ import annotations

import argparse
import resource
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def batch(examples: int, n_neg: int, tokenizer) -> tuple[list, list]:
    from recbench.batches import pick_examples, render
    from recbench.config import PROFILES
    from recbench.data import load_dataset
    from recbench.scoring import encode_pairs

    ds = load_dataset("movielens")
    study = PROFILES["study"]
    picked = pick_examples(ds.examples("train"), examples, 0)
    items = [render(ds, ex, 0, n_neg, history_items=study.history_items) for ex in picked]
    responses = [[it.chosen, *it.rejected[:n_neg]] for it in items]
    return encode_pairs(tokenizer, [it.prompt for it in items], responses, add_bos=False,
                        max_prompt_tokens=study.max_prompt_tokens)  # fmt: skip


def gradients(model, prompts, responses, pad: int) -> dict[str, torch.Tensor]:
    from recbench.scoring import score_responses
    from recbench.trainer import autocast

    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    with autocast("bf16", "cpu"):
        logps = score_responses(model, prompts, responses, pad_token_id=pad).logps
    loss = -(logps[:, 0] - torch.logsumexp(logps, dim=-1)).mean()
    return dict(zip(params, torch.autograd.grad(loss, list(params.values())), strict=True))


def main() -> None:
    from recbench import models
    from recbench.trainer import add_lora, gradient_checkpointing

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=8)
    parser.add_argument("--n-neg", type=int, default=19)
    args = parser.parse_args()
    model, tokenizer = models.load("smollm2-135m")
    model = add_lora(model, r=16, alpha=32, seed=0).train()
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.copy_(torch.randn(p.shape, generator=generator) * 0.01)
    prompts, responses = batch(args.examples, args.n_neg, tokenizer)
    tokens = sum(len(p) + sum(len(r) for r in rs) for p, rs in zip(prompts, responses))
    with gradient_checkpointing(model, True):
        checked = gradients(model, prompts, responses, tokenizer.pad_token_id)
    peak_checked = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    plain = gradients(model, prompts, responses, tokenizer.pad_token_id)
    peak_both = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    absolute = max(float((plain[n] - checked[n]).abs().max()) for n in plain)
    relative = max(float((plain[n] - checked[n]).abs().max() / plain[n].abs().max()) for n in plain)
    print(f"{args.examples} examples, n_neg {args.n_neg}, {tokens} tokens, {len(plain)} adapter "
          f"tensors: max |diff| {absolute:.3g}, max |diff| / max |grad| {relative:.3g}; peak "
          f"RSS {peak_checked:.0f} MB after the checkpointed pass (first), {peak_both:.0f} MB "
          "after the plain one")  # fmt: skip


if __name__ == "__main__":
    main()
