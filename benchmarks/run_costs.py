"""Every run's cost records, one row per run: what Table 5 averages over seeds.

The per-run cost ranges of docs/study.md (SFT, preference and self-play seconds, evaluation seconds, peak
memory, CPU use) are read from here, straight from a committed store:

    python benchmarks/run_costs.py reports/results/movielens-study.jsonl
    python benchmarks/run_costs.py reports/results/movielens-study.jsonl --method napo_no_ns

A blank cell is a metric the run did not record.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from recbench.results import load_frame

COLUMNS = {
    "sft_seconds": "SFT (s)",
    "preference_seconds": "preference (s)",
    "self_play_seconds": "self-play (s)",  # SPRec's iterations (their SFT and DPO epochs)
    "eval_ranking_seconds": "ranking (s)",
    "eval_generation_seconds": "generation (s)",
    "peak_memory_mb": "peak (MB)",
    "cpu_utilisation": "CPU use",
}


def run_costs(store: Path, methods: list[str] | None = None):
    """One row per run (method, seed, CPU, run id) with its cost metrics as columns."""
    frame = load_frame(store)
    cost = frame[(frame["mode"] == "cost") & frame["metric"].isin(COLUMNS)]
    if methods:
        cost = cost[cost["method"].isin(methods)]
    cpu = cost["hardware"].map(lambda h: h.get("cpu_model", "") if isinstance(h, dict) else "")
    table = (
        cost.assign(cpu=cpu)
        .pivot_table(
            index=["method", "seed", "cpu", "run_id"],
            columns="metric",
            values="value",
            aggfunc="last",
        )
        .reindex(columns=list(COLUMNS))
        .rename(columns=COLUMNS)
    )
    table = table.reset_index().sort_values(["method", "seed", "run_id"])
    return table.astype({"seed": "Int64"})  # rules and released checkpoints have none


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", type=Path, help="a results store (JSON Lines)")
    parser.add_argument("--method", action="append", help="only this method (repeatable)")
    args = parser.parse_args()
    if not args.store.is_file():
        parser.error(f"no results store at {args.store}")
    table = run_costs(args.store, args.method)
    digits = {name: 2 if name == "CPU use" else 1 for name in COLUMNS.values()}
    formatters = {
        name: (lambda v, d=d: "" if math.isnan(v) else f"{v:.{d}f}") for name, d in digits.items()
    }
    print(table.to_string(index=False, formatters=formatters, na_rep=""))


if __name__ == "__main__":
    main()
