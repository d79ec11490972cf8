"""Paired tests of ``recbench compare``: does method A hit more examples than method B?

Two methods evaluated on the same test examples are compared on those examples, not by their
means alone: the per-example outcomes each evaluation stores (:mod:`recbench.outcomes`) say which
examples each method hit.  A *table* is one dataset, profile (with its evaluation protocol, as
:mod:`~recbench.reports.runs` keeps them apart) and mode (ranking or generation HR@1); the runs
compared are the configurations the headline tables show (:func:`~.runs.choose_references`).

Pairing is by seed: the losses of one seed share that seed's SFT stage, so A's run of seed s is
compared with B's run of seed s, and a method evaluated without a seed (a deterministic rule) is
paired with every seed of the other.  Runs are compared only when they hold outcomes for exactly
the same examples; anything else is left out with a note, never compared on different examples.

Per seed: the difference in hit rate (A - B), the discordant counts (examples only A hit, only B
hit) and the exact McNemar test (statsmodels).  Over seeds: the mean difference and a 95% Student
t interval over the per-seed differences (two seeds or more; one seed is labelled "one training
run", since it says nothing about run-to-run spread).  The McNemar p-values of every seed of every
comparison in a table are adjusted together with Holm's method (statsmodels).

Examples are not always independent: sliding-window data gives one user many test examples
(movielens: 1,000 from 86 of its 94 test users), whose outcomes move together, so McNemar's test,
which counts examples, is then optimistic.  Where the store keeps which user each example belongs to
(:class:`~recbench.outcomes.ExampleUsers`), each seed also gets a test clustered by user: the
per-user sums of (hit A - hit B) under random sign flips (scipy's permutation test; under the null
hypothesis A and B are exchangeable within each user), Holm-adjusted across the table like
McNemar's, and the *design effect*, the variance of the clustered difference over its variance with
independent examples, which divides the examples when the detectable difference is computed.

Decision rule (:data:`RULE`): a comparison *survives* when every seed's Holm-adjusted McNemar
p-value (and, where users are known, every seed's Holm-adjusted user-clustered p-value) is below
0.05 and, with two seeds or more, the 95% interval over seeds excludes 0.  The table that shows
each comparison is written by :mod:`~recbench.reports.paired_report`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import pandas as pd

from recbench import results
from recbench.errors import UserError
from recbench.outcomes import ExampleUsers, Outcomes
from recbench.registry import did_you_mean
from recbench.reports import tables
from recbench.reports.runs import table_order, trained_from_stage
from recbench.reports.significance import (
    ALPHA,
    design_effect,
    holm,
    mcnemar_p,
    seed_interval,
    user_clustered_p,
)
from recbench.reports.stats import Estimate
from recbench.reports.variants import base_method


def reference_method() -> str:
    """The method every other one is compared with by default: the method registry's
    reference (the SFT stage)."""
    from recbench.methods import reference_name

    return reference_name() or "sft"


MODES = ("generation", "ranking")  # table order: the paper's HR@1 first
NO_SEED = -1  # the seed runs.py gives a run recorded without one
ONE_RUN = "one training run"
NO_SEED_RUN = "one run of two seedless methods"  # deterministic: no training run to repeat
RULE = (
    "a difference survives when every seed's exact McNemar p-value and, where the store knows "
    "each example's user, every seed's user-clustered p-value, each Holm-adjusted over all "
    "seeds and comparisons of its dataset, profile and mode, is below 0.05 and, with two or more "
    "seeds, the 95% Student t interval over the per-seed differences excludes 0"
)

log = logging.getLogger(__name__)


# -------------------------------------------------------------------------------- pairs
def parse_pairs(texts: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """``["napo:sdpo"]`` -> (("napo", "sdpo"),), sorted and without repeats; bad text is a
    :class:`UserError` (one line)."""
    pairs = set()
    for text in texts:
        a, colon, b = text.strip().partition(":")
        a, b = a.strip(), b.strip()
        if not colon or not a or not b or ":" in b:
            raise UserError(f"--pair takes two method names as A:B, got '{text}'")
        if a == b:
            raise UserError(f"--pair {text}: a method cannot be compared with itself")
        pairs.add((a, b))
    return tuple(sorted(pairs))


def check_pairs(pairs: Iterable[tuple[str, str]], methods: Iterable[str]) -> None:
    """A method named in ``--pair`` that has no runs in the (filtered) store is a user error."""
    known = sorted(set(methods))
    for a, b in pairs:
        for name in (a, b):
            if name not in known:
                raise UserError(
                    f"--pair {a}:{b}: no runs of method '{name}'{did_you_mean(name, known)}; "
                    f"the store has: {', '.join(known)}"
                )


# ------------------------------------------------------------------------------ outcomes
class OutcomeReader:
    """Reads each outcomes file once per ``compare`` and warns once about each unusable one.

    A missing or changed file (sha256 mismatch) is left out with one warning line naming it, so
    one damaged file costs its run's paired tests, not the whole report.
    """

    def __init__(self, store: Path) -> None:
        self.store = store
        self._cache: dict[tuple[str, str], Outcomes | None] = {}
        self._users: dict[tuple[str, str], ExampleUsers | None] = {}

    def users(self, dataset: str, split: str) -> ExampleUsers | None:
        """The store's map of ``split``'s examples to users, or None (warned once if damaged)."""
        key = (dataset, split)
        if key not in self._users:
            try:
                found = results.read_example_users(self.store, dataset, split)
            except ValueError as exc:
                log.warning("warning: %s; paired tests are not clustered by user", exc)
                found = None
            self._users[key] = found
        return self._users[key]

    def read(self, run_id: str, reference: Mapping[str, object]) -> Outcomes | None:
        key = (str(reference.get("file")), str(reference.get("sha256")))
        if key not in self._cache:
            try:
                found = results.read_outcomes({"run_id": run_id, "outcomes": reference}, self.store)
            except ValueError as exc:
                log.warning("warning: %s; its paired tests are left out", exc)
                found = None
            self._cache[key] = found
        return self._cache[key]


# --------------------------------------------------------------------------- comparisons
@dataclass(frozen=True)
class SeedTest:
    """One seed of a comparison: hit rates on the shared examples and McNemar's test."""

    seed: str  # the seed ("none" for two runs without one)
    examples: int
    a_rate: float
    b_rate: float
    a_only: int  # examples A hit and B missed
    b_only: int  # examples B hit and A missed
    p: float
    p_holm: float = math.nan
    users: int = 0  # users the examples come from (0: not known)
    p_users: float = math.nan  # user-clustered test (NaN: users not known)
    p_users_holm: float = math.nan
    design_effect: float = math.nan

    @property
    def difference(self) -> float:
        return self.a_rate - self.b_rate

    @property
    def significant(self) -> bool:
        """Every test this seed has rejects at the adjusted level."""
        clustered = math.isnan(self.p_users) or self.p_users_holm < ALPHA
        return self.p_holm < ALPHA and clustered


@dataclass
class Comparison:
    """A against B in one table (dataset, profile, mode), over the seeds they share."""

    dataset: str
    profile: str
    mode: str
    a: str
    b: str
    seeds: list[SeedTest]

    @property
    def label(self) -> str:
        """ "one training run" for one seed: a difference without any run-to-run spread."""
        if len(self.seeds) != 1:
            return ""
        return NO_SEED_RUN if self.seeds[0].seed == _label(NO_SEED) else ONE_RUN

    @property
    def interval(self) -> Estimate:
        return seed_interval([s.difference for s in self.seeds])

    @property
    def survives(self) -> bool:
        """The decision rule of :data:`RULE`."""
        if not all(s.significant for s in self.seeds):
            return False
        est = self.interval
        return len(self.seeds) < 2 or est.low > 0 or est.high < 0

    def shortfalls(self) -> list[str]:
        """Which parts of :data:`RULE` fail, in words (empty when the comparison survives)."""
        if self.survives:
            return []
        failed = {"McNemar": [], "by user": []}
        for s in self.seeds:
            if not s.p_holm < ALPHA:
                failed["McNemar"].append(s.seed)
            if not math.isnan(s.p_users) and not s.p_users_holm < ALPHA:
                failed["by user"].append(s.seed)
        words = [
            f"{test} Holm p >= {ALPHA} on {'seed' if len(seeds) == 1 else 'seeds'} "
            + ", ".join(seeds)
            for test, seeds in failed.items()
            if seeds
        ]
        if len(self.seeds) >= 2 and self.interval.low <= 0 <= self.interval.high:
            words.append("the interval over seeds holds 0")
        return words

    def verdict(self, detectable: float) -> str:
        """ "separated", or why not: "not separated at this power" when every seed's difference
        is smaller than one seed detects (``detectable``; NaN: no difference is detectable),
        else "not separated"."""
        if self.survives:
            return "separated" + (f" ({self.label})" if self.label else "")
        small = math.isnan(detectable) or all(abs(s.difference) < detectable for s in self.seeds)
        return "not separated at this power" if small else "not separated"


@dataclass
class PairedTests:
    """Every comparison of a setting, the notes on what was left out, and the runs used."""

    comparisons: list[Comparison] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    runs: pd.DataFrame = field(default_factory=pd.DataFrame)
    any_outcomes: bool = False
    used: set[str] = field(default_factory=set)  # run ids compared

    def marks(self) -> tables.PairedMarks | None:
        """What Table 2 marks: the methods whose comparison with the reference survives."""
        ref = reference_method()
        against = [c for c in self.comparisons if ref in (c.a, c.b)]
        if not against:
            return None

        def other(c: Comparison) -> tuple[str, str, str]:
            return (c.dataset, c.mode, c.b if c.a == ref else c.a)

        tested = frozenset(other(c) for c in against)
        survivors = frozenset(other(c) for c in against if c.survives)
        note = (
            f"{tables.PAIRED_MARK} differs from {ref} on the same test examples (in the "
            f"HR@1 mode of the cell; see paired_tests): {RULE}"
        )
        return tables.PairedMarks(tested=tested, survivors=survivors, note=note)


def _label(seed: int) -> str:
    return "none" if seed == NO_SEED else str(seed)


#: A method's usable runs: seed -> [(run id, SFT stage)], oldest first.  A seed has several
#: when its SFT stage was trained more than once (on two machines): one evaluation each.
Runs = dict[int, list[tuple[str, str]]]


#: Why two runs of a seed may not share their starting model: "" (they do), "different" (they
#: record two SFT stages of the seed) or "unrecorded" (one run recorded before runs named
#: their stage, the other after: the same stage or another, the store cannot say).
StageMismatch = Literal["", "different", "unrecorded"]

#: The note for the seeds of a comparison whose runs may not share their starting model.
STAGE_NOTES = {
    "different": "the runs started from different SFT stages of the seed (trained twice), so "
    "they share the test examples but not the starting model",
    "unrecorded": "a run does not record the SFT stage it started from (recorded before runs "
    "named it), so the two may not share the starting model (sft_stages: how far two stages "
    "of a seed differ)",
}


def _stage_pair(
    a: list[tuple[str, str]], b: list[tuple[str, str]], staged: bool
) -> tuple[str, str, StageMismatch]:
    """The runs of one seed to compare and whether their SFT stages differ.

    The lists are in table order (:func:`~.runs.table_order`: the run a table shows last).
    Between two methods trained from a seed's SFT stage (``staged``): the last two that
    started from the same stage, else the last of each.  Otherwise (a sequential model
    against SFT, say) the last of each: the run each table shows.
    """
    if not staged:
        return a[-1][0], b[-1][0], ""
    for run_a, stage_a in reversed(a):
        for run_b, stage_b in reversed(b):
            if stage_a == stage_b:  # two unrecorded ones count as one, as before stages had names
                return run_a, run_b, ""
    (run_a, stage_a), (run_b, stage_b) = a[-1], b[-1]
    return run_a, run_b, "different" if stage_a and stage_b else "unrecorded"


def _seed_pairs(a: Runs, b: Runs, staged: bool) -> list[tuple[int, str, str, StageMismatch]]:
    """(seed, run of A, run of B, why their SFT stages may differ): same seed, or every seed
    of one against a seedless other."""
    if set(a) == {NO_SEED}:
        return [(seed, a[NO_SEED][-1][0], runs[-1][0], "") for seed, runs in sorted(b.items())]
    if set(b) == {NO_SEED}:
        return [(seed, runs[-1][0], b[NO_SEED][-1][0], "") for seed, runs in sorted(a.items())]
    common = sorted(a.keys() & b.keys())
    return [(seed, *_stage_pair(a[seed], b[seed], staged)) for seed in common]


def _seed_test(
    seed: int,
    hits_a: Mapping[str, bool],
    hits_b: Mapping[str, bool],
    user_of: Mapping[str, int] | None = None,
) -> SeedTest:
    keys = sorted(hits_a)
    a_only = sum(1 for k in keys if hits_a[k] and not hits_b[k])
    b_only = sum(1 for k in keys if hits_b[k] and not hits_a[k])
    n = len(keys)
    clustered: dict[str, object] = {}
    if user_of is not None:
        per_user: dict[int, int] = {}
        for key in keys:
            user = user_of[key]
            per_user[user] = per_user.get(user, 0) + int(hits_a[key]) - int(hits_b[key])
        sums = list(per_user.values())
        clustered = {
            "users": len(per_user),
            "p_users": user_clustered_p(sums),
            "design_effect": design_effect(sums, a_only + b_only),
        }
    return SeedTest(
        seed=_label(seed),
        examples=n,
        a_rate=sum(1 for k in keys if hits_a[k]) / n,
        b_rate=sum(1 for k in keys if hits_b[k]) / n,
        a_only=a_only,
        b_only=b_only,
        p=mcnemar_p(a_only, b_only),
        **clustered,
    )


def _compare(
    where: str,
    a: str,
    b: str,
    seeds_a: Runs,
    seeds_b: Runs,
    hits: Mapping[str, dict[str, bool]],
    notes: list[str],
    staged: bool = False,
    user_of: Mapping[str, int] | None = None,
) -> tuple[list[SeedTest], set[str]] | None:
    """The per-seed tests of A vs B and the runs behind them, or None (with a note) when they
    cannot be compared.  ``staged``: both methods train from a seed's SFT stage, so runs
    from different stages of a seed are noted."""
    pairs = _seed_pairs(seeds_a, seeds_b, staged)
    if not pairs:
        notes.append(f"{a} vs {b} {where}: no seed in common; not compared")
        return None
    paired = {seed for seed, *_ in pairs}
    alone = sorted((set(seeds_a) | set(seeds_b)) - paired - {NO_SEED})
    if alone:
        listed = ", ".join(_label(s) for s in alone)
        notes.append(f"{a} vs {b} {where}: seed {listed} of one method only, left out")
    for why, says in STAGE_NOTES.items():
        if listed := ", ".join(_label(seed) for seed, _, _, w in pairs if w == why):
            notes.append(f"{a} vs {b} {where}, seed {listed}: {says}")
    tests = []
    for seed, run_a, run_b, _ in pairs:
        hits_a, hits_b = hits[run_a], hits[run_b]
        if set(hits_a) != set(hits_b) or not hits_a:
            only = len(set(hits_a) ^ set(hits_b))
            notes.append(
                f"{a} vs {b} {where}, seed {_label(seed)}: the runs hold outcomes for different "
                f"examples ({len(hits_a)} and {len(hits_b)}, {only} in one only); not compared"
            )
            return None
        tests.append(_seed_test(seed, hits_a, hits_b, user_of))
    return tests, {run for _, run_a, run_b, _ in pairs for run in (run_a, run_b)}


def _default_pairs(methods: Sequence[str]) -> list[tuple[str, str]]:
    """Each method with the reference (SFT); then each loss with the keys its registration
    compares it with (NAPO with S-DPO, DMPO with S-DPO, each NAPO ablation with NAPO: what
    Table 3 asks is whether removing a part of NAPO costs HR@1, a paired question), and each
    other method with the controls its registration names (SPRec with its SFT-only control);
    then each variant with its method's own row (``sdpo[negatives=hard]`` with ``sdpo``: what
    changing that one setting does); then the variants of one method with each other."""
    from recbench import losses
    from recbench.methods import compared_with

    ref = reference_method()
    pairs = [(m, ref) for m in methods if m != ref] if ref in methods else []
    known = set(losses.loss_keys())
    here = [m for m in methods if m in known]
    ablations = [m for m in here if losses.get_spec(m).family == tables.ABLATION_FAMILY]

    def compared(keys: list[str]) -> list[tuple[str, str]]:
        return [(m, b) for m in keys for b in losses.get_spec(m).compared_with if b in methods]

    shown = [(m, base_method(m)) for m in methods if base_method(m) != m]
    variants = [(m, base) for m, base in shown if base in methods]
    # variants of one method with each other (hard with self negatives): runs of one seed that
    # share a stage even where the method's own row started from another training of it
    siblings = [(m, n) for i, (m, base) in enumerate(shown) for n, other in shown[i + 1 :]
                if other == base]  # fmt: skip
    # the other losses' comparisons first, then the ablations' (Table 3's questions)
    losses_pairs = compared([m for m in here if m not in ablations]) + compared(ablations)
    controls = [(m, b) for m in methods if m not in known for b in compared_with(m) if b in methods]
    return pairs + losses_pairs + controls + variants + siblings


def _table(
    runs: pd.DataFrame,
    dataset: str,
    mode: str,
    reader: OutcomeReader,
    pairs: Sequence[tuple[str, str]],
    out: PairedTests,
) -> list[Comparison]:
    """The comparisons of one table (dataset, mode of the setting's profile), Holm-adjusted."""
    column = f"{mode}:hr@1"
    ordered = table_order(runs)  # stages shared by a seed's runs counted over every method
    here = ordered[(ordered["dataset"] == dataset) & ordered[column].notna()]
    where = f"on {dataset} ({mode})"
    seeds: dict[str, Runs] = {}  # method -> seed -> runs with usable outcomes
    hits: dict[str, dict[str, bool]] = {}
    without: list[str] = []
    for method in tables.ordered_methods(here["method"]):
        usable: Runs = {}
        missing: list[int] = []
        group = here[here["method"] == method]  # the run a table shows last
        for run_id, seed, references, stage in zip(
            group["run_id"], group["seed"], group["outcomes"], group["sft_stage"], strict=True
        ):
            reference = references.get(mode) if isinstance(references, dict) else None
            found = reader.read(str(run_id), reference) if reference else None
            if found is None:
                missing.append(int(seed))
                continue
            out.any_outcomes = True
            usable.setdefault(int(seed), []).append((str(run_id), str(stage)))
            hits[str(run_id)] = found.hits(mode)
        if not usable:
            without.append(method)
        elif missing:
            listed = ", ".join(_label(s) for s in sorted(set(missing) - set(usable)))
            if listed:
                out.notes.append(f"{method} {where}: no usable outcomes for seed {listed}")
        if usable:
            seeds[method] = usable
    if without and seeds:
        out.notes.append(f"{dataset} ({mode}): no per-example outcomes for {', '.join(without)}")
    profile = str(here["profile"].iloc[0]) if len(here) else ""
    user_of = _users_of_examples(here, dataset, hits, reader, out.notes)
    # the methods trained from a seed's SFT stage (the losses, SPRec), and the stage's own
    # evaluation
    from_stage = {m for m, group in here.groupby("method") if trained_from_stage(group)}
    from_stage.add(reference_method())
    comparisons = []
    for a, b in pairs or _default_pairs(list(seeds)):
        if a not in seeds or b not in seeds:
            continue
        staged = {a, b} <= from_stage
        compared = _compare(where, a, b, seeds[a], seeds[b], hits, out.notes, staged, user_of)
        if compared is not None:
            comparisons.append(Comparison(dataset, profile, mode, a, b, compared[0]))
            out.used.update(compared[1])
    tests = [s for c in comparisons for s in c.seeds]
    adjusted = iter(holm([s.p for s in tests]))
    clustered = [s.p_users for s in tests if not math.isnan(s.p_users)]
    adjusted_users = iter(holm(clustered))
    for comparison in comparisons:
        comparison.seeds = [
            replace(
                s,
                p_holm=next(adjusted),
                p_users_holm=math.nan if math.isnan(s.p_users) else next(adjusted_users),
            )
            for s in comparison.seeds
        ]
    return comparisons


def _users_of_examples(
    here: pd.DataFrame,
    dataset: str,
    hits: Mapping[str, Mapping[str, bool]],
    reader: OutcomeReader,
    notes: list[str],
) -> dict[str, int] | None:
    """Example key -> user for the table's examples, from the store's users map if it has one
    that fits: made from the split file the runs that record its sha256 were scored on, and
    covering every example."""
    keys = {key for run_hits in hits.values() for key in run_hits}
    splits = {key.partition(":")[0] for key in keys}
    if len(splits) != 1:
        return None
    split = splits.pop()
    users = reader.users(dataset, split)
    if users is None:
        return None
    recorded = {str(sha) for sha in here["split_sha256"] if sha}
    if recorded - {users.split_sha256}:
        notes.append(
            f"{dataset}: the store's users map was made from another {split} file than its "
            "runs were scored on; no user-clustered tests"
        )
        return None
    found = {key: users.user_of(key) for key in keys}
    user_of = {key: user for key, user in found.items() if user is not None}
    if len(user_of) < len(found):
        notes.append(
            f"{dataset}: the store's users map does not cover every {split} example; no "
            "user-clustered tests"
        )
        return None
    return user_of


def paired_tests(
    runs: pd.DataFrame, reader: OutcomeReader, pairs: Sequence[tuple[str, str]] = ()
) -> PairedTests:
    """The comparisons of ``pairs`` in every table (default: every method vs sft, napo vs
    sdpo, NAPO's ablations vs napo).

    ``runs`` are the reference runs of one setting (:attr:`References.instances`: one
    configuration per method, one run per seed and SFT stage); a loss run is paired with the
    SFT evaluation of the stage it started from.
    """
    out = PairedTests()
    for dataset in tables.ordered_datasets(runs["dataset"]):
        for mode in MODES:
            if f"{mode}:hr@1" in runs.columns:
                out.comparisons += _table(runs, dataset, mode, reader, pairs, out)
    out.runs = runs[runs["run_id"].isin(out.used)]
    return out


__all__ = [
    "RULE",
    "Comparison",
    "OutcomeReader",
    "PairedTests",
    "SeedTest",
    "check_pairs",
    "paired_tests",
    "parse_pairs",
]
