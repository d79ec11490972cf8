"""Paired comparison of two runs' generation answers on the same test examples.

Every LLM run writes ``answers.jsonl`` (one generated answer per test example) in its run
directory.  Methods of one profile answer the same examples, so the difference of their HR@1 can
be judged per example: the exact McNemar test on the discordant pairs and a seeded paired
bootstrap interval of the difference, both much tighter than comparing two independent
intervals.  Usage::

    python benchmarks/paired_generation.py lastfm RUN_DIR_A RUN_DIR_B [RUN_DIR_C ...]

The first directory is the reference; each other one is compared with it.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from math import comb
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from recbench.data import load_dataset
from recbench.metrics import judge_generation

BOOTSTRAP = 10_000


def hits(dataset: str, run_dir: Path) -> dict[str, bool]:
    """Whether each answered test example (by key) names its target, by the protocol's rule."""
    ds = load_dataset(dataset)
    examples = {ex.key: ex for ex in ds.examples("test")}
    out = {}
    for line in (run_dir / "answers.jsonl").read_text().splitlines():
        row = json.loads(line)
        ex = examples[row["key"]]
        titles = [ds.item_names[i] for i in ex.candidates]
        out[row["key"]] = judge_generation(row["answer"], ex.candidates, titles, ex.target).hit
    return out


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts b and c."""
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(comb(n, k) for k in range(min(b, c) + 1)) / 2**n
    return min(1.0, 2 * tail)


def compare(reference: dict[str, bool], other: dict[str, bool], seed: int = 0) -> dict:
    keys = sorted(reference)
    if set(other) != set(keys):
        raise SystemExit("the two runs answered different test examples")
    diffs = [int(other[k]) - int(reference[k]) for k in keys]
    b = sum(d == 1 for d in diffs)  # only the other run is right
    c = sum(d == -1 for d in diffs)  # only the reference is right
    rng = random.Random(seed)
    n = len(diffs)
    boot = sorted(sum(diffs[rng.randrange(n)] for _ in range(n)) / n for _ in range(BOOTSTRAP))
    return {
        "n": n,
        "difference": sum(diffs) / n,
        "interval95": (boot[int(0.025 * BOOTSTRAP)], boot[int(0.975 * BOOTSTRAP) - 1]),
        "only_other": b,
        "only_reference": c,
        "mcnemar_p": mcnemar_exact(b, c),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset")
    parser.add_argument("reference", type=Path)
    parser.add_argument("others", type=Path, nargs="+")
    args = parser.parse_args()
    ref = hits(args.dataset, args.reference)
    print(f"reference {args.reference.name}: HR@1 {sum(ref.values()) / len(ref):.4f}")
    for other_dir in args.others:
        r = compare(ref, hits(args.dataset, other_dir))
        lo, hi = r["interval95"]
        print(
            f"{other_dir.name}: HR@1 difference {r['difference']:+.4f} "
            f"[{lo:+.4f}, {hi:+.4f}] (paired bootstrap), only this run right {r['only_other']}, "
            f"only the reference right {r['only_reference']}, exact McNemar p = "
            f"{r['mcnemar_p']:.3f} (n = {r['n']})"
        )


if __name__ == "__main__":
    main()
