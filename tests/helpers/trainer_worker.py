"""Trains a tiny random Llama with NAPO for two steps through recbench's Stage.

Run as one process (``python trainer_worker.py OUT 4``) or as several under torch's launcher
(``torchrun --nproc_per_node 2 trainer_worker.py OUT 2``: per-process batch 2, same global
batch of 4).  Rank 0 writes the final LoRA weights and the per-step losses to OUT, so a test can
check that one and two processes train identically.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from accelerate import Accelerator
from transformers import LlamaConfig, LlamaForCausalLM

from recbench import losses
from recbench.scoring import score_responses
from recbench.trainer import Stage, StageSettings, add_lora

N_ITEMS, N_NEG, VOCAB = 8, 3, 97


def main(out: Path, per_process_batch: int) -> None:
    accelerator = Accelerator(cpu=True)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
    )  # fmt: skip
    model = add_lora(LlamaForCausalLM(config), r=4, alpha=8, seed=0)
    gen = torch.Generator().manual_seed(1)
    prompts = [torch.randint(3, VOCAB, (int(n),), generator=gen).tolist()
               for n in torch.randint(5, 12, (N_ITEMS,), generator=gen)]  # fmt: skip
    responses = [
        [torch.randint(3, VOCAB, (int(n),), generator=gen).tolist() + [2]
         for n in torch.randint(1, 4, (1 + N_NEG,), generator=gen)]
        for _ in range(N_ITEMS)
    ]  # fmt: skip
    embeddings = torch.randn(N_ITEMS, 6, generator=gen)
    owner_scores = torch.randn(N_ITEMS, N_NEG, generator=gen)
    loss_module = losses.get_loss("napo")
    step_losses: list[float] = []

    def step(rows: list[int]):
        scores = score_responses(model, [prompts[i] for i in rows], [responses[i] for i in rows])
        batch = losses.PreferenceBatch(
            chosen_logps=scores.logps[:, 0],
            rejected_logps=scores.logps[:, 1:],
            seq_embeddings=embeddings[rows],
            rejected_scores=owner_scores[rows],
            example_ids=torch.tensor(rows),
        )
        result = loss_module(losses.gather_batch(batch))
        step_losses.append(float(result.loss))
        return result.loss, {"gamma": float(result.metrics["gamma"])}

    settings = StageSettings(
        name="napo", epochs=1, learning_rate=1e-2, batch_size=per_process_batch, grad_accum=1,
        warmup_ratio=0.0, seed=0,
    )  # fmt: skip
    stage = Stage(out / f"stage-{accelerator.num_processes}", settings, accelerator)
    stage.fit(model, N_ITEMS, step, extra={"loss": loss_module}, progress=False)
    if accelerator.is_main_process:
        weights = {n: p.detach().tolist() for n, p in model.named_parameters() if p.requires_grad}
        payload = {"losses": step_losses, "M_run": float(loss_module.M_run), "weights": weights}
        (out / f"result-{accelerator.num_processes}.json").write_text(json.dumps(payload))
    accelerator.wait_for_everyone()


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
