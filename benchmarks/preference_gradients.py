"""How hard each preference stage pushed: its logged gradient norms against the clipping limit.

The trainer clips every step's gradient to norm 1 (``max_grad_norm``), so a loss whose raw
gradient is larger than 1 at every step moves the weights by the same amount per step as any
other such loss; only a loss whose gradient falls below 1 takes smaller steps.  MPPO is the
field's candidate (docs/losses.md): its reward is a sequence probability, whose gradient fades as
the probability does.  This prints, per run, from the run directory's
``preference/metrics.jsonl`` (one line per optimizer step): the steps, how many were clipped,
the raw norm's range and mean, the mean norm applied after clipping, the mean loss over the
first and the last 10 steps, and the mean chosen reward (for MPPO, which has no reference
model, the summed log-probability of the target title):

    RECBENCH_HOME=/path/with/runs python benchmarks/preference_gradients.py \\
        movielens-mppo-96da997c6010 movielens-sdpo-bcefc3995a4a-wd36d32a9
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from recbench import paths
from recbench.trainer import StageSettings

CLIP: float = StageSettings.max_grad_norm  # the dataclass default every stage trains with


def summary(metrics: Path) -> dict[str, float]:
    """The numbers of one preference stage's step log (see the module docstring)."""
    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    if not rows:
        raise ValueError(f"{metrics}: no steps logged")
    norms = [float(r["grad_norm"]) for r in rows]
    losses = [float(r["loss"]) for r in rows]
    chosen = [float(r["rewards/chosen"]) for r in rows if "rewards/chosen" in r]
    return {
        "steps": len(rows),
        "clipped": sum(n > CLIP for n in norms),
        "norm_min": min(norms),
        "norm_mean": math.fsum(norms) / len(norms),
        "norm_max": max(norms),
        "applied_mean": math.fsum(min(n, CLIP) for n in norms) / len(norms),
        "loss_first10": math.fsum(losses[:10]) / len(losses[:10]),
        "loss_last10": math.fsum(losses[-10:]) / len(losses[-10:]),
        "chosen_mean": math.fsum(chosen) / len(chosen) if chosen else math.nan,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_ids", nargs="+", help="run ids under $RECBENCH_HOME/runs")
    args = parser.parse_args(argv)
    print("run | steps | clipped | raw norm min / mean / max | applied mean | loss first 10 → "
          "last 10 | chosen reward")  # fmt: skip
    for run_id in args.run_ids:
        metrics = paths.home() / "runs" / run_id / "preference" / "metrics.jsonl"
        if not metrics.is_file():
            print(f"error: {metrics} not found", file=sys.stderr)
            return 2
        s = summary(metrics)
        print(f"{run_id} | {s['steps']} | {s['clipped']} | {s['norm_min']:.2f} / "
              f"{s['norm_mean']:.2f} / {s['norm_max']:.2f} | {s['applied_mean']:.3f} | "
              f"{s['loss_first10']:.3f} → {s['loss_last10']:.3f} | {s['chosen_mean']:.3f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
