"""How far is a bf16 policy from its fp32 reference before any preference step?  (issue 15)

The reference log-probs of DPO-style losses are computed once, in fp32, from the SFT model;
the policy is the same model, trained under bf16 autocast when ``precision=bf16`` (the study
profile).  At step 0 the two are the same weights, so every log-ratio log pi - log pi_ref
should be 0; under bf16 it is rounding noise instead.  This script measures that noise on the
first preference examples of a seed's SFT stage (read from $RECBENCH_HOME/stages, or trained):
the per-sequence |log-prob difference| (nats), and the step-0 S-DPO loss with the bf16 policy
against its value log(1 + n_neg) at exactly zero log-ratios.  Preference training moves
log-ratios by about a nat (the S-DPO loss of the study falls from 1.39 to about 0.6), so noise
of a few hundredths of a nat would change no training decision.

    RECBENCH_HOME=... python benchmarks/bench_reference_precision.py --examples 64

Training examples only (the preference set): nothing here looks at validation or test.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch

from recbench import losses
from recbench.config import RunConfig
from recbench.pipeline import LLMRun
from recbench.results import cpu_has_bf16, hardware
from recbench.trainer import autocast


def sdpo_loss(policy: torch.Tensor, reference: torch.Tensor, ids: torch.Tensor) -> float:
    batch = losses.PreferenceBatch(
        chosen_logps=policy[:, 0],
        rejected_logps=policy[:, 1:],
        ref_chosen_logps=reference[:, 0],
        ref_rejected_logps=reference[:, 1:],
        example_ids=ids,
    )
    return float(losses.get_loss("sdpo")(batch).loss)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="movielens")
    parser.add_argument("--examples", type=int, default=64, help="preference examples")
    parser.add_argument("--seed", type=int, default=0, help="the SFT stage's seed")
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args()
    if not cpu_has_bf16():
        raise SystemExit("this CPU has no bf16 instructions: bf16 would be emulated; nothing to do")
    config = RunConfig(
        dataset=args.dataset, loss="sdpo", profile="study", seed=args.seed
    ).validate()
    run = LLMRun.from_config(config)
    run.sft()  # the cached stage when it exists
    run.train_items = items = run.train_items[: args.examples]
    n_neg = run.settings.n_neg
    # the pipeline's own reference computation, as run, and the same under bf16 autocast: what
    # the policy computes at step 0 of a bf16 preference stage (LoRA dropout is 0)
    fp32 = run.policy_logps(run.train_items, n_neg)
    with autocast("bf16", "cpu"):
        bf16 = run.policy_logps(run.train_items, n_neg)
    diff = (bf16 - fp32).abs().flatten().numpy()
    ids = torch.arange(len(items))
    report = {
        "hardware": hardware(),
        "examples": len(items),
        "sequences": int(diff.size),
        "n_neg": n_neg,
        "sft_stage": run.sft_key,
        "abs_logp_diff_mean": float(diff.mean()),
        "abs_logp_diff_median": float(np.median(diff)),
        "abs_logp_diff_p95": float(np.quantile(diff, 0.95)),
        "abs_logp_diff_max": float(diff.max()),
        "abs_logp_fp32_median": float(np.median(fp32.abs().numpy())),
        "sdpo_loss_exact_zero": math.log1p(n_neg),
        "sdpo_loss_fp32_policy": sdpo_loss(fp32, fp32, ids),
        "sdpo_loss_bf16_policy": sdpo_loss(bf16, fp32, ids),
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
