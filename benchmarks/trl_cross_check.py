"""The ``trl_*`` keys against TRL's own DPOTrainer loss code: max |ours - TRL| per key.

    python benchmarks/trl_cross_check.py

Runs the comparisons of tests/test_losses_trl_field.py (three random float64 batches of 12
pairs at beta 1, 0.1 and 2.5, and the public fixtures FA, FC and FD at beta 1) and prints, per
key, the largest absolute difference over the batch means and every per-example loss.  The
test file holds the comparison and its tolerances; this prints the numbers it bounds.  Needs
the test extras (``trl==1.16.0``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent / "tests"


def _load_checks():
    spec = importlib.util.spec_from_file_location("trl_checks", TESTS / "test_losses_trl_field.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    checks = _load_checks()
    import torch

    print(f"trl {checks.trl.__version__}, torch {torch.__version__}, float64")
    print(f"{'key':<20} {'max |ours - TRL|':>18}  comparisons")
    worst = 0.0
    for key in sorted(checks.CASES):
        diffs = [
            checks.max_abs_diff(key, checks.random_pairs(12, seed, scale), beta)
            for seed, beta, scale in checks.RANDOM_BATCHES
        ]
        diffs += [
            checks.max_abs_diff(key, checks.fixture_pairs(fixture), 1.0)
            for fixture in checks.FIXTURE_NAMES
        ]
        worst = max(worst, *diffs)
        print(f"{key:<20} {max(diffs):>18.2e}  {len(diffs)} batches")
    print(f"{'all keys':<20} {worst:>18.2e}")


if __name__ == "__main__":
    main()
