"""For one training example: the negatives each strategy picks, and the scores behind the pick.

    python benchmarks/negatives_example.py --dataset lastfm --profile smoke --example 0

Prints the example's history and target, then, for every registered strategy, the n negatives
it picks with the reason each was picked: the training popularity (``popular``), the auxiliary
SASRec's score (``hard``), the SFT model's summed log-probability (``self``: the SFT stage of
the profile and seed is trained first when it is not cached), or the draw (``random``,
``catalog``).  Nothing is recorded.
"""

from __future__ import annotations

import argparse

import numpy as np

from recbench import negatives
from recbench.config import RunConfig
from recbench.pipeline import LLMRun


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="lastfm")
    parser.add_argument("--profile", default="smoke")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--example", type=int, default=0, help="position in the run's order")
    args = parser.parse_args()
    config = RunConfig(loss="sdpo", dataset=args.dataset, profile=args.profile,
                       seed=args.seed).validate()  # fmt: skip
    llm = LLMRun.from_config(config, progress=False)
    llm.sft()  # the cached stage when it exists: what `self` ranks with
    item = llm.train_items[args.example]
    example, names, n = item.example, llm.ds.item_names, config.settings.n_neg
    popularity = llm.ds.popularity()
    sasrec = llm.sasrec_scores([example])[0]  # the very scores `hard` reads
    policy = llm.policy_scores([example])[0]  # the very scores `self` reads
    print(f"example {example.key}: history {[names[i] for i in example.history]}")
    print(f"target: {names[example.target]}")
    context = negatives.NegativeContext(llm.ds, config.seed, lambda _: sasrec[None],
                                        lambda _: policy[None])  # fmt: skip
    for key in negatives.strategy_keys():
        (picked,) = negatives.get_strategy(key)().pick(context, [example], n)
        print(f"\n{key}: {negatives.get_strategy(key).summary}")
        for item_id in picked:
            why = ""
            if item_id in example.candidates:
                at = example.candidates.index(item_id)
                ranks = {"popular": popularity[item_id], "hard": sasrec[at], "self": policy[at]}
                why = f"pop {ranks['popular']}, SASRec {ranks['hard']:.3f}, SFT logp {ranks['self']:.2f}"
            else:
                why = "outside the prompt's candidates"
            print(f"  {names[item_id]:<45.45} {why}")
    others = [c for c in example.candidates if c != example.target]
    print(f"\n(of {len(others)} non-target candidates; mean SFT logp "
          f"{np.mean([policy[example.candidates.index(c)] for c in others]):.2f})")  # fmt: skip


if __name__ == "__main__":
    main()
