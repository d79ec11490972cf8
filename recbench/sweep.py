"""``recbench sweep``: run a grid of ``recbench run`` settings, skipping what is already stored.

A study such as HR@1 across n_neg (Figure 3c) or across rho and alpha (Appendix C) is many runs
of minutes each, and long sweeps get interrupted.  The sweep therefore treats the results store
as its progress record: before each point it asks whether the store records that run, by the
runner's one rule (:func:`recbench.runner.is_recorded`), so re-running the same command resumes
where it stopped.  A failed point is reported and the sweep goes on; every input is
validated before the first run starts, so a typo fails in a second, not after an hour.

Points are ordered seed-major: the whole grid for the first seed comes before any second seed,
so an interrupted sweep leaves complete curves rather than many seeds of a few points.

Several sweeps may share one store (two terminals, two jobs on one machine) without running a
point twice.  Before running a point a sweep takes that point's lock, a ``filelock`` (``flock``)
file under ``$RECBENCH_HOME/locks`` named by the store's path and a digest of the point's
identity (dataset, method, model, profile, seed, every recorded hyper-parameter, the numbers of
examples), and with
the lock held it reads the store again: the other sweep may have just recorded the point.  The
lock is tried without waiting; a point locked by another live sweep is put aside and the sweep
goes on with the rest of the grid, then comes back to the put-aside points in order, waiting for
each lock (``filelock``'s blocking acquire) and re-checking the store once it has it: the point
is then "done" if the other sweep recorded it, and run here if that sweep failed on it or was
killed.  The kernel drops the lock of a killed process, so a stale lock file never blocks anyone;
the lock files are left in place (they are empty) and may be deleted whenever no sweep runs.
Two sweeps share a store's locks when they share ``$RECBENCH_HOME``, as sweeps on one machine do.
A dry run writes nothing; it estimates each point to run from the store's cost records of runs
like it on this hardware (:mod:`recbench.sweep_costs`), and says which of them another sweep is
running now (an existing lock file it cannot take, tried without waiting and let go at once), so
that a plan made while a sweep runs does not count that sweep's work as still to start.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from filelock import FileLock, Timeout

from recbench import locks, pipeline, results, runner, sweep_costs
from recbench.config import RunConfig, parse_value, split_assignments
from recbench.errors import UserError
from recbench.reports.runs import hparams_key

ParamValue = float | int | str | bool
# Options with a name of their own in `recbench run` (everything else goes through --param).
NAMED_PARAMS = ("rho", "alpha", "beta", "gamma")


def parse_list(text: str | None, what: str, cast: Callable[[str], object] = parse_value) -> list:
    """A comma-separated option value as a list without duplicates (order kept)."""
    if text is None:
        return []
    values = []
    for item in text.split(","):
        if not item.strip():
            continue
        try:
            value = cast(item.strip())
        except ValueError:
            raise UserError(f"--{what}: cannot read '{item.strip()}' as a number") from None
        if value not in values:
            values.append(value)
    if not values:
        raise UserError(f"--{what} needs at least one value, e.g. --{what} 1,3,7")
    return values


def parse_param_lists(items: Iterable[str], option: str = "--param") -> dict[str, list[ParamValue]]:
    """``["beta=0.5,1", "ln=true"]`` -> {"beta": [0.5, 1], "ln": [True]} (values as ``--set``)."""
    out: dict[str, list[ParamValue]] = {}
    for key, raw in split_assignments(items, option).items():
        out[key] = parse_list(raw, f"{option.lstrip('-')} {key}")
    return out


#: Axes that set a field of the run's config; any other axis is a hyper-parameter of the loss.
CONFIG_AXES = ("seed", "dataset", "loss", "baseline", "n_neg")


@dataclass(frozen=True)
class SweepSpec:
    """A base run and the axes it varies: every combination of axis values is one run.

    ``base`` is a :class:`RunConfig` exactly as ``recbench run`` builds it (profile, model,
    ``--set`` overrides, ``--aux-checkpoint``, results store...); ``axes`` maps a name to its
    values: one of :data:`CONFIG_AXES` (``loss`` and ``baseline`` may both be axes: the loss
    points, then the baseline points) or a loss hyper-parameter (``rho``, ``beta``...).
    """

    base: RunConfig = field(default_factory=RunConfig)
    axes: Mapping[str, Sequence[ParamValue]] = field(default_factory=dict)

    @classmethod
    def grid(
        cls,
        losses: Sequence[str] = ("napo",),
        datasets: Sequence[str] = ("lastfm",),
        seeds: Sequence[int] = (0,),
        n_negs: Sequence[int] = (),
        params: Mapping[str, Sequence[ParamValue]] | None = None,
        **base: object,
    ) -> SweepSpec:
        """The classic loss grid (losses x datasets x seeds x n_negs x params) over a base run
        built from ``base`` (RunConfig fields)."""
        axes: dict[str, Sequence[ParamValue]] = {
            "seed": tuple(seeds), "dataset": tuple(datasets), "loss": tuple(losses),
        }  # fmt: skip
        if n_negs:
            axes["n_neg"] = tuple(n_negs)
        axes.update(params or {})
        return cls(RunConfig(**base), axes)  # type: ignore[arg-type]

    @property
    def store(self) -> Path:
        return Path(self.base.results) if self.base.results is not None else results.default_store()


@dataclass(frozen=True)
class SweepPoint:
    """One grid point: the run's config, what the sweep sets, and the hparams it will record."""

    config: RunConfig
    swept: dict[str, ParamValue]  # hyper-parameters this sweep sets (n_neg included if given)
    expected: dict[str, object]  # every hyper-parameter the run records (defaults filled in)

    def describe(self) -> str:
        settings = " ".join(f"{k}={v}" for k, v in self.swept.items())
        c = self.config
        return f"{c.dataset} {c.method} seed={c.seed}" + (f" {settings}" if settings else "")


def expand(spec: SweepSpec, check: bool = True) -> list[SweepPoint]:
    """The grid as run configs (seed-major), each validated before anything runs.

    ``check`` resolves every name and hyper-parameter (dataset, loss, model, ranges) with the
    same checks as ``recbench run``, raising a one-line :class:`UserError` on the first problem.
    """
    axes = dict(spec.axes)
    if any(not values for values in axes.values()):
        empty = next(name for name, values in axes.items() if not values)
        raise UserError(f"sweep axis '{empty}' has no values")
    methods = [("loss", v) for v in axes.pop("loss", ())]
    methods += [("baseline", v) for v in axes.pop("baseline", ())]
    if not methods:
        base = spec.base
        methods = [("baseline", base.baseline)] if base.baseline else [("loss", base.loss)]
    seeds = axes.pop("seed", (spec.base.seed,))
    datasets = axes.pop("dataset", (spec.base.dataset,))
    n_negs = axes.pop("n_neg", (None,))
    strategies = axes.pop("negatives", (None,))
    names = list(axes)  # the loss hyper-parameters
    points = []
    checked: set[str] = set()
    loss_grid = list(itertools.product(strategies, n_negs, *(axes[k] for k in names)))
    grid = (
        (seed, dataset, kind, method, strategy, n_neg, values)
        for seed, dataset, (kind, method) in itertools.product(seeds, datasets, methods)
        # a baseline has no negatives or loss hyper-parameters: one point, not one per value
        for strategy, n_neg, *values in (loss_grid if kind == "loss" else [(None, None)])
    )
    for seed, dataset, kind, method, strategy, n_neg, values in grid:
        chosen = dict(zip(names, values, strict=True)) if kind == "loss" else {}
        params = {**spec.base.loss_params, **chosen}
        config = replace(
            spec.base,
            dataset=dataset,
            loss=method if kind == "loss" else None,
            baseline=method if kind == "baseline" else None,
            seed=int(seed),
            n_neg=spec.base.n_neg if n_neg is None else n_neg,
            negatives=spec.base.negatives if strategy is None else str(strategy),
            loss_params=params,
            resume="auto",  # a point a killed sweep left half-trained is continued, not refused
        )
        key = repr((dataset, kind, method, strategy, n_neg, sorted(params.items())))
        if check and key not in checked:  # seeds do not change validity
            runner.check_inputs(config)
            checked.add(key)
        swept: dict[str, ParamValue] = {}
        if strategy is not None:
            swept["negatives"] = str(strategy)
        if n_neg is not None:
            swept["n_neg"] = n_neg
        swept.update(chosen)
        points.append(SweepPoint(config, swept, runner.expected_hparams(config)))
    return points


def is_done(point: SweepPoint, records: Iterable[Mapping[str, object]]) -> bool:
    """Whether the store already holds a run of this point: the runner's one rule
    (:func:`recbench.runner.is_recorded`), so a sweep and ``recbench run`` always agree."""
    return bool(runner.is_recorded(records, runner.plan(point.config)))


@dataclass
class Outcome:
    """What happened to one point: "done" (already stored), "todo" (dry run), "ran", "failed"."""

    point: SweepPoint
    status: str
    detail: str = ""
    traceback: str = ""
    seconds: float | None = None  # a dry run's estimate for a point to run (None: unknown)


@dataclass
class SweepResult:
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    def estimate(self) -> str:
        """A dry run's total for the points to run ("" when none is left)."""
        return sweep_costs.summary(o.seconds for o in self.outcomes if o.status == "todo")

    def to_dict(self) -> dict:
        return {
            "points": [
                {
                    "point": o.point.describe(),
                    "status": o.status,
                    "detail": o.detail,
                    **({"estimated_seconds": o.seconds} if o.status == "todo" else {}),
                }
                for o in self.outcomes
            ],
            "counts": {s: self.count(s) for s in ("done", "todo", "ran", "failed")},
        }


def point_digest(point: SweepPoint) -> str:
    """A short digest of what makes a point a point (the same in every sweep that has it)."""
    c = point.config
    identity = {
        "dataset": c.dataset,
        "method": c.method,
        "model": c.model,
        "profile": c.profile,
        "seed": c.seed,
        "hparams": hparams_key(point.expected),
        "sizes": {k: getattr(c.settings, k) for k in ("train_examples", "eval_examples")},
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def lock_path(store: Path, point: SweepPoint) -> Path:
    """The lock file a sweep holds while it runs ``point`` into ``store``: under
    ``$RECBENCH_HOME/locks``, named by the store's resolved path and the point, so that nothing
    is written beside a store (committed stores stay free of lock files)."""
    return locks.lock_path(store.with_name(f"{store.name}.sweep-{point_digest(point)}"))


#: How often a sweep waiting for another sweep's point checks the lock again (seconds).
LOCK_POLL_SECONDS = 0.5


def _point_lock(store: Path, point: SweepPoint) -> FileLock:
    return FileLock(lock_path(store, point), poll_interval=LOCK_POLL_SECONDS)


def running_elsewhere(store: Path, point: SweepPoint) -> bool:
    """Whether another live sweep holds ``point``'s lock now.  Creates no lock file: where none
    exists no sweep has ever held it."""
    if not lock_path(store, point).exists():
        return False
    probe = _point_lock(store, point)
    try:
        probe.acquire(blocking=False)
    except Timeout:
        return True
    probe.release()
    return False


def _run_point(point: SweepPoint, store: Path, label: str, say: Callable[[str], None]) -> Outcome:
    """Run one point whose lock is held, unless the store has it by now."""
    if is_done(point, results.read_records(store)):
        say(f"{label}: done (recorded by another sweep meanwhile)")
        return Outcome(point, "done", "recorded by another sweep meanwhile")
    say(f"{label}: running")
    try:
        summary = runner.execute(point.config, progress=True)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - one failed point must not stop the sweep
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        detail = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
        trace = "" if isinstance(exc, UserError) else traceback.format_exc()
        say(f"{label}: FAILED ({detail})")
        return Outcome(point, "failed", detail, trace)
    note = summary.get("skipped", "") if isinstance(summary, Mapping) else ""
    say(f"{label}: finished" + (f" ({note})" if note else ""))
    return Outcome(point, "ran", str(note))


def run_sweep(
    spec: SweepSpec, dry_run: bool = False, report: Callable[[str], None] | None = None
) -> SweepResult:
    """Run every point of the grid not yet in the store through :func:`recbench.api.run`.

    Each point runs under its lock (see the module docstring); points another sweep is running
    are put aside and come back at the end.  Outcomes are listed in grid order either way.
    """
    say = report or (lambda _line: None)
    points = expand(spec)
    store = spec.store
    total = len(points)
    outcomes: dict[int, Outcome] = {}
    put_aside: list[int] = []
    records = results.read_records(store)
    book = None
    if dry_run:
        book = sweep_costs.CostBook(records, results.hardware(), pipeline.sft_stage_built)
    for index, point in enumerate(points, 1):
        label = f"[{index}/{total}] {point.describe()}"
        if not dry_run:
            records = results.read_records(store)  # another sweep may have run it meanwhile
        if is_done(point, records):
            outcomes[index] = Outcome(point, "done", "already in the results store")
            say(f"{label}: done (already in the results store)")
            continue
        if book is not None:
            seconds, note = book.estimate(point.config)
            if running_elsewhere(store, point):
                note = f"another sweep is running it now; {note}"
            outcomes[index] = Outcome(point, "todo", note, seconds=seconds)
            say(f"{label}: to run ({note})")
            continue
        lock = _point_lock(store, point)
        try:
            lock.acquire(blocking=False)
        except Timeout:
            put_aside.append(index)
            say(f"{label}: another sweep is running it; coming back to it at the end")
            continue
        try:
            outcomes[index] = _run_point(point, store, label, say)
        finally:
            lock.release()
    for index in put_aside:
        point = points[index - 1]
        label = f"[{index}/{total}] {point.describe()}"
        say(f"{label}: waiting for the other sweep running it")
        with _point_lock(store, point):  # blocks until the other sweep lets go of it
            outcomes[index] = _run_point(point, store, label, say)
    return SweepResult([outcomes[index] for index in sorted(outcomes)])
