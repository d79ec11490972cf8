"""How many SFT examples two builds of a dataset's train split share, per seed.

    python benchmarks/sft_draw_overlap.py --profile study DIR_A DIR_B

DIR_A and DIR_B are two built copies of one dataset (``$RECBENCH_HOME/datasets/NAME``).  A
seed's SFT examples are a seeded shuffle of the train split, cut to the profile's count, so
a split rebuilt with a few rows fewer draws mostly other examples: a stage trained on it is
another sample of the data, not the same training on other hardware.  Prints each build's
train sha256 and, per seed, the examples both draws hold (as a set and at the same position).

The study's seed-0 stage of the field's runs read a split rebuilt without the 8 rows that
val or test also hold; the committed runs read the build before.  To compare the two, build
the earlier split from the commit before the rebuild:

    git worktree add /tmp/before-rebuild 7d28bfc^
    (cd /tmp/before-rebuild && RECBENCH_HOME=/tmp/home-before python -m recbench.cli data build movielens)
    python benchmarks/sft_draw_overlap.py --profile study /tmp/home-before/datasets/movielens \\
        "$RECBENCH_HOME/datasets/movielens"
"""

from __future__ import annotations

import argparse
from pathlib import Path

from recbench.batches import pick_examples
from recbench.config import get_profile
from recbench.data.dataset import Dataset, load_spec


def _draws(directory: Path, count: int, seeds: list[int]) -> tuple[str, dict[int, list]]:
    spec = load_spec(directory)
    examples = Dataset(spec, directory, builtin=False).examples("train")
    draws = {
        seed: [(tuple(e.history), e.target) for e in pick_examples(examples, count, seed)]
        for seed in seeds
    }
    return spec.splits["train"].sha256, draws


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("first", type=Path, help="one build's dataset directory")
    parser.add_argument("second", type=Path, help="the other build's dataset directory")
    parser.add_argument("--profile", default="study", help="whose sft_examples to draw")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    profile = get_profile(args.profile)
    count = profile.sft_examples or profile.train_examples
    first_sha, first = _draws(args.first, count, args.seeds)
    second_sha, second = _draws(args.second, count, args.seeds)
    print(f"train split: {first_sha[:8]} and {second_sha[:8]}; {count} SFT examples per seed")
    for seed in args.seeds:
        a, b = first[seed], second[seed]
        same_place = sum(x == y for x, y in zip(a, b, strict=True))
        print(
            f"seed {seed}: {len(set(a) & set(b))} of {count} shared, {same_place} at the same position"
        )


if __name__ == "__main__":
    main()
