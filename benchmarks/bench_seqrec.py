"""Train GRU4Rec, Caser and SASRec on a dataset's training split and report test HR@1.

Usage (from the project root)::

    python benchmarks/bench_seqrec.py --dataset lastfm --seeds 0 1 2 --threads 2

Each training uses the registry defaults (model selection on the validation split, early
stopping); the test split is only read for the final evaluation.  Wall-clock and CPU seconds are
reported per run because the 10-minute budget is a wall-clock one.  Results are printed as a
table and written to ``benchmarks/seqrec_results.json`` (``--output`` to change).

``OMP_WAIT_POLICY=PASSIVE`` is set (unless already set) before torch is imported: on a machine
where other processes compete for the cores, OpenMP's default busy-waiting made each 2-thread
training step 5-20x slower than with passive waiting.  The setting does not change any result.

Reference numbers (NAPO paper, Table 2, lastfm): GRU4Rec 0.2616, Caser 0.2233, SASRec 0.2233.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from recbench.baselines import execute_baseline

from recbench.data import load_dataset

PAPER_HR1 = {"lastfm": {"gru4rec": 0.2616, "caser": 0.2233, "sasrec": 0.2233}}


def train_and_evaluate(name: str, dataset: str, seed: int, home: Path) -> dict:
    cpu = time.process_time()
    run = execute_baseline(
        name,
        dataset,
        seed=seed,
        out_dir=home / "models" / f"{name}-{dataset}-seed{seed}",
        progress=sys.stderr.isatty(),
    )
    cpu = time.process_time() - cpu
    result = run.settings["result"]
    return {
        "model": name,
        "dataset": dataset,
        "seed": seed,
        "test_hr@1": run.metrics["hr@1"],
        "test_ndcg@10": run.metrics["ndcg@10"],
        "test_pop_bias": run.metrics["pop_bias"],
        "val_hr@1": result["best_val_hr1"],
        "best_epoch": result["best_epoch"],
        "epochs_run": result["epochs_run"],
        "stopped_by": result["stopped_by"],
        "train_seconds": result["seconds"],
        "train_cpu_seconds": result["history"][-1]["cpu_seconds"],
        "total_cpu_seconds": cpu,
        "paper_hr@1": PAPER_HR1.get(dataset, {}).get(name),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="lastfm")
    parser.add_argument("--models", nargs="+", default=["gru4rec", "caser", "sasrec"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--home", type=Path, help="RECBENCH_HOME to use (default: a temp dir)")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "seqrec_results.json")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    home = args.home or Path(tempfile.mkdtemp(prefix="recbench-seqrec-"))
    os.environ["RECBENCH_HOME"] = str(home)
    load_dataset(args.dataset)  # fail early on a bad name

    runs = []
    for name in args.models:
        for seed in args.seeds:
            row = train_and_evaluate(name, args.dataset, seed, home)
            runs.append(row)
            print(
                f"{name:8s} seed {seed}: test HR@1 {row['test_hr@1']:.4f} "
                f"(paper {row['paper_hr@1']}), val {row['val_hr@1']:.4f}, "
                f"NDCG@10 {row['test_ndcg@10']:.4f}, epoch {row['best_epoch']}/"
                f"{row['epochs_run']} ({row['stopped_by']}), {row['train_seconds']:.0f} s "
                f"wall, {row['train_cpu_seconds']:.0f} s CPU",
                flush=True,
            )
    report = {
        "command": " ".join(sys.argv),
        "threads": args.threads,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),
        "runs": runs,
    }
    args.output.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
