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

An experiment is a file of such grids (``recbench sweep --config FILE.toml``, see
:func:`load_experiment`), so that a study is data to review and rerun rather than a shell loop.
Each ``[[grid]]`` is read into the same :class:`SweepOptions` the command-line options build,
and runs as that one sweep would, in file order, after every grid has been checked.
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import json
import os
import tomllib
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from filelock import FileLock, Timeout

from recbench import locks, pipeline, results, rundir, runner, sweep_costs
from recbench.config import (
    DEFAULT_LOSS,
    RunConfig,
    check_seed,
    parse_assignments,
    parse_value,
    split_assignments,
)
from recbench.errors import UserError
from recbench.output import Output
from recbench.reports.runs import hparams_key

ParamValue = float | int | str | bool
# Options with a name of their own in `recbench run` (everything else goes through --param).
NAMED_PARAMS = ("rho", "alpha", "beta", "gamma")


def parse_list(
    text: str | None,
    what: str,
    cast: Callable[[str], object] = parse_value,
    example: str | None = None,
) -> list:
    """A comma-separated option value as a list without duplicates (order kept); ``example``
    is what the error for an empty value suggests (by default one fitting ``cast``)."""
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
        if example is None:
            values_like = {int: "0,1,2", str: "NAME1,NAME2"}.get(cast, "1,3,7")
            example = f"--{what} {values_like}"
        raise UserError(f"--{what} needs at least one value, e.g. {example}")
    return values


def parse_param_lists(items: Iterable[str], option: str = "--param") -> dict[str, list[ParamValue]]:
    """``["beta=0.5,1", "ln=true"]`` -> {"beta": [0.5, 1], "ln": [True]} (values as ``--set``)."""
    out: dict[str, list[ParamValue]] = {}
    for key, raw in split_assignments(items, option).items():
        out[key] = parse_list(raw, f"{option.lstrip('-')} {key}", example=f"{option} {key}=1,3,7")
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
        stage = " from-this-stage" if c.from_this_stage else ""
        return (
            f"{c.dataset} {c.method} seed={c.seed}" + (f" {settings}" if settings else "") + stage
        )


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
    # in a grid with losses, the negatives, n_neg and hyper-parameter axes are the losses': a
    # baseline beside them is one point, not one per value.  In a grid of baselines alone they
    # can only be meant for the baselines, which take them or refuse them as `recbench run`
    # does (sprec takes --param iterations; a rule refuses --negatives): never silently dropped.
    baselines_alone = all(kind == "baseline" for kind, _ in methods)
    grid = (
        (seed, dataset, kind, method, strategy, n_neg, values)
        for seed, dataset, (kind, method) in itertools.product(seeds, datasets, methods)
        for strategy, n_neg, *values in (
            loss_grid if kind == "loss" or baselines_alone else [(None, None)]
        )
    )
    for seed, dataset, kind, method, strategy, n_neg, values in grid:
        # no values where the axes are not this method's: then nothing is chosen
        chosen = dict(zip(names, values, strict=False))
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


def is_done(
    point: SweepPoint,
    records: Iterable[Mapping[str, object]],
    planned: runner.RunPlan | None = None,
) -> bool:
    """Whether the store already holds a run of this point: the runner's one rule
    (:func:`recbench.runner.is_recorded`), so a sweep and ``recbench run`` always agree.
    ``planned``: the point's plan against these same records, where the caller has made it."""
    records = list(records)
    planned = planned or runner.plan(point.config, records=records)
    return bool(runner.is_recorded(records, planned))


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


def _run_point(
    point: SweepPoint, store: Path, label: str, say: Callable[[str], None], output: Output | None
) -> Outcome:
    """Run one point whose lock is held, unless the store has it by now."""
    if is_done(point, results.read_records(store)):
        say(f"{label}: done (recorded by another sweep meanwhile)")
        return Outcome(point, "done", "recorded by another sweep meanwhile")
    say(f"{label}: running")
    try:
        summary = runner.execute(point.config, progress=True, output=output)
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
    spec: SweepSpec,
    dry_run: bool = False,
    report: Callable[[str], None] | None = None,
    output: Output | None = None,
    sft_charged: set[tuple[str, str, object]] | None = None,
) -> SweepResult:
    """Run every point of the grid not yet in the store through :func:`recbench.api.run`.

    Each point runs under its lock (see the module docstring); points another sweep is running
    are put aside and come back at the end.  Outcomes are listed in grid order either way.
    ``output`` is how each point is watched (progress bars, trackers); a tracker that is not
    installed is refused here, before the first point, rather than by every point.
    """
    if output is not None and not dry_run:
        output.check()
    say = report or (lambda _line: None)
    points = expand(spec)
    store = spec.store
    total = len(points)
    outcomes: dict[int, Outcome] = {}
    put_aside: list[int] = []
    records = results.read_records(store)
    book = None
    if dry_run:
        book = sweep_costs.CostBook(records, results.hardware(), pipeline.sft_stage_built,
                                   set() if sft_charged is None else sft_charged)  # fmt: skip
    for index, point in enumerate(points, 1):
        label = f"[{index}/{total}] {point.describe()}"
        if not dry_run:
            records = results.read_records(store)  # another sweep may have run it meanwhile
        planned = runner.plan(point.config, records=records)
        if is_done(point, records, planned):
            outcomes[index] = Outcome(point, "done", "already in the results store")
            say(f"{label}: done (already in the results store)")
            continue
        if book is not None:
            seconds, note = book.estimate(point.config)
            kept = rundir.progress(planned.run_dir)
            if kept:
                note = f"started, kept: {kept}; {note}"
            if planned.awaits_stage and runner.is_recorded(
                records, replace(planned, awaits_stage=False)
            ):
                note = (f"{note}; the store has this run: whether it is from the stage this "
                        "point trains from is known once that stage is built here")  # fmt: skip
            if running_elsewhere(store, point):
                note = f"another sweep is running it now; {note}"
            stale = runner.recorded_on_other_data(records, planned)
            if stale:  # the store has it, on other split files: those numbers do not count
                note = f"recorded on other data only ({stale[0]}); {note}"
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
            outcomes[index] = _run_point(point, store, label, say, output)
        finally:
            lock.release()
    for index in put_aside:
        point = points[index - 1]
        label = f"[{index}/{total}] {point.describe()}"
        say(f"{label}: waiting for the other sweep running it")
        with _point_lock(store, point):  # blocks until the other sweep lets go of it
            outcomes[index] = _run_point(point, store, label, say, output)
    return SweepResult([outcomes[index] for index in sorted(outcomes)])


# ------------------------------------------------------------------ options and experiment files
@dataclass(frozen=True)
class SweepOptions:
    """The options of one ``recbench sweep`` grid, typed: what the command line gives and what
    each ``[[grid]]`` of an experiment file gives.

    Both readers build this one object and :meth:`to_spec` is the only way from it to a
    :class:`SweepSpec`, so a grid in a file and the same options typed on the command line can
    never plan different points.  An empty tuple means "not given" (no such axis).
    """

    loss: tuple[str, ...] = ()
    baseline: tuple[str, ...] = ()
    dataset: tuple[str, ...] = ("lastfm",)
    model: str = "smollm2-135m"
    profile: str = "cpu"
    seed: tuple[int, ...] = (0,)
    n_neg: tuple[int, ...] = ()
    param: Mapping[str, tuple[ParamValue, ...]] = field(default_factory=dict)
    negatives: tuple[str, ...] = ()
    train_examples: int | None = None
    eval_examples: int | None = None
    checkpoint: str | None = None
    overrides: Mapping[str, ParamValue] = field(default_factory=dict)  # --set
    aux_checkpoint: str | None = None
    results: Path | None = None
    from_this_stage: bool = False

    @classmethod
    def from_command_line(
        cls,
        *,
        loss: str | None = None,
        baseline: str | None = None,
        dataset: str = "lastfm",
        seed: str = "0",
        n_neg: str | None = None,
        param: Sequence[str] = (),
        negatives: str | None = None,
        set_: Sequence[str] = (),
        **plain: object,
    ) -> SweepOptions:
        """The options as ``recbench sweep`` receives them (comma-separated lists, ``KEY=V1,V2``
        axes, ``--set KEY=VALUE``); ``plain`` holds the single-valued ones (model, profile...)."""

        def names(text: str | None, what: str) -> tuple[str, ...]:
            return tuple(parse_list(text, what, str)) if text is not None else ()

        return cls(
            loss=names(loss, "loss"),
            baseline=names(baseline, "baseline"),
            dataset=names(dataset, "dataset"),
            seed=tuple(parse_list(seed, "seed", int)),
            n_neg=tuple(parse_list(n_neg, "n-neg", int)) if n_neg is not None else (),
            param={k: tuple(v) for k, v in parse_param_lists(param).items()},
            negatives=names(negatives, "negatives"),
            overrides=parse_assignments(set_, "--set"),
            **plain,  # type: ignore[arg-type]
        )

    def to_spec(self) -> SweepSpec:
        """The base run and its axes; a grid naming no method trains the default loss."""
        for value in self.seed:  # the grid's checks validate one seed per setting
            check_seed(value)
        axes: dict[str, Sequence[ParamValue]] = {k: tuple(v) for k, v in self.param.items()}
        axes["seed"] = self.seed
        axes["dataset"] = self.dataset
        if self.n_neg:
            axes["n_neg"] = self.n_neg
        if self.negatives:
            axes["negatives"] = self.negatives
        if self.loss or not self.baseline:
            axes["loss"] = self.loss or (DEFAULT_LOSS,)
        if self.baseline:
            axes["baseline"] = self.baseline
        base = RunConfig(
            model=self.model,
            profile=self.profile,
            train_examples=self.train_examples,
            eval_examples=self.eval_examples,
            checkpoint=self.checkpoint,
            aux_checkpoint=self.aux_checkpoint,
            overrides=dict(self.overrides),
            results=self.results,
            from_this_stage=self.from_this_stage,
        )
        return SweepSpec(base, axes)


@dataclass(frozen=True)
class Grid:
    """One ``[[grid]]`` of an experiment file: its label (for messages and ``--grid``) and its
    options."""

    name: str
    options: SweepOptions
    where: str  # "FILE: grid 2 (name)", the prefix of every message about it


def _fail(where: str, key: str, wanted: str, value: object) -> UserError:
    return UserError(f"{where}: '{key}' must be {wanted}, got {value!r}")


def _is_scalar(value: object) -> bool:
    return isinstance(value, str | int | float | bool)


def _listed(value: object, where: str, key: str, kind: type, wanted: str) -> tuple:
    """A value or a list of values of one type, without duplicates (as ``parse_list``): a
    single value is a one-value axis, as ``--seed 0`` is."""
    items = value if isinstance(value, list) else [value]
    if not items:
        raise UserError(f"{where}: '{key}' has no values")
    for item in items:  # bool is an int to Python, never to a grid
        if not isinstance(item, kind) or (kind is int and isinstance(item, bool)):
            raise _fail(where, key, wanted, value)
    return tuple(dict.fromkeys(items))


def _names(value: object, where: str, key: str) -> tuple[str, ...]:
    return _listed(value, where, key, str, "a name or a list of names")


def _integers(value: object, where: str, key: str) -> tuple[int, ...]:
    return _listed(value, where, key, int, "an integer or a list of integers")


def _text(value: object, where: str, key: str) -> str:
    if not isinstance(value, str):
        raise _fail(where, key, "a string", value)
    return value


def _integer(value: object, where: str, key: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _fail(where, key, "an integer", value)
    return value


def _boolean(value: object, where: str, key: str) -> bool:
    if not isinstance(value, bool):
        raise _fail(where, key, "true or false", value)
    return value


def _table(value: object, where: str, key: str) -> dict[str, object]:
    """A TOML table with its keys spelled as ``--set`` and ``--param`` spell them."""
    if not isinstance(value, dict):
        raise _fail(where, key, "a table such as {lora_r = 8}", value)
    return {name.replace("-", "_"): item for name, item in value.items()}


def _axes(value: object, where: str, key: str) -> dict[str, tuple[ParamValue, ...]]:
    """``param = {rho = [0.1, 0.3], ln = true}``: each hyper-parameter's values."""
    out = {}
    for name, values in _table(value, where, key).items():
        items = values if isinstance(values, list) else [values]
        if not items or not all(_is_scalar(v) for v in items):
            raise _fail(where, f"{key}.{name}", "a value or a non-empty list of values", values)
        out[name] = tuple(dict.fromkeys(items))
    return out


def _settings(value: object, where: str, key: str) -> dict[str, ParamValue]:
    """``set = {lora_r = 8, generation = false}``: profile settings, one value each."""
    table = _table(value, where, key)
    for name, item in table.items():
        if not _is_scalar(item):
            raise _fail(where, f"{key}.{name}", "a string, number or boolean", item)
    return table  # type: ignore[return-value]


#: Every key of a ``[[grid]]`` (and of ``[defaults]``): the sweep's options, spelled as on the
#: command line (``n_neg`` or ``n-neg``), with the :class:`SweepOptions` field each one fills.
GRID_KEYS: dict[str, tuple[str, Callable[[object, str, str], object]]] = {
    "loss": ("loss", _names),
    "baseline": ("baseline", _names),
    "dataset": ("dataset", _names),
    "model": ("model", _text),
    "profile": ("profile", _text),
    "seed": ("seed", _integers),
    "n_neg": ("n_neg", _integers),
    "param": ("param", _axes),
    "negatives": ("negatives", _names),
    "train_examples": ("train_examples", _integer),
    "eval_examples": ("eval_examples", _integer),
    "checkpoint": ("checkpoint", _text),
    "set": ("overrides", _settings),
    "aux_checkpoint": ("aux_checkpoint", _text),
    "results": ("results", _text),
    "from_this_stage": ("from_this_stage", _boolean),
}
#: The tables whose keys merge (a grid's ``set`` adds to the defaults' ``set``); any other key
#: of a grid replaces the defaults' value.
MERGED_KEYS = ("param", "set")


def _read_keys(table: object, where: str, named: bool = True) -> dict[str, object]:
    """A grid's (``named``) or the defaults' keys, checked and typed, without ``name``: a name
    labels one grid, so ``[defaults]`` has none."""
    if not isinstance(table, dict):
        raise UserError(f"{where}: must be a table of sweep options, got {table!r}")
    out: dict[str, object] = {}
    for raw, value in table.items():
        key = raw.replace("-", "_")
        if key == "name" and named:
            continue
        if key not in GRID_KEYS:
            known = [*GRID_KEYS, "name"] if named else list(GRID_KEYS)
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f" (keys: {', '.join(GRID_KEYS)})"
            raise UserError(f"{where}: unknown key '{raw}'{hint}")
        if key in out:
            raise UserError(f"{where}: '{key}' given twice (as '{raw}' and another spelling)")
        out[key] = GRID_KEYS[key][1](value, where, raw)
    return out


def _grid(raw: object, index: int, defaults: Mapping[str, object], path: Path) -> Grid:
    """One ``[[grid]]``: the defaults, then its own keys (``set`` and ``param`` merged)."""
    where = f"{path}: grid {index}"
    name = raw.get("name", str(index)) if isinstance(raw, dict) else str(index)
    if not isinstance(name, str) or not name:
        raise _fail(where, "name", "a non-empty string", name)
    where = f"{where} ('{name}')" if name != str(index) else where
    keys = {**defaults}
    for key, value in _read_keys(raw, where).items():
        merged = key in MERGED_KEYS and key in keys
        keys[key] = {**keys[key], **value} if merged else value  # type: ignore[dict-item]
    if "results" in keys:  # as written beside the file, wherever the command runs
        keys["results"] = Path(
            os.path.normpath(path.parent / Path(str(keys["results"])).expanduser())
        )
    fields = {GRID_KEYS[key][0]: value for key, value in keys.items()}
    return Grid(name, SweepOptions(**fields), where)  # type: ignore[arg-type]


def _read_toml(path: Path) -> dict[str, object]:
    """The file's TOML, or a one-line error naming the file (missing, unreadable, not TOML)."""
    if not path.is_file():
        missing = "is not a file" if path.exists() else "does not exist"
        raise UserError(f"--config {path} {missing}")
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path} is not valid TOML: {str(exc).splitlines()[0]}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"--config {path} cannot be read: {exc}") from None


#: The top-level keys of an experiment file.
FILE_KEYS = ("defaults", "grid")


def load_experiment(path: Path) -> list[Grid]:
    """An experiment file (TOML) as its grids, in file order; every mistake is one line naming
    the file, the grid and the key, before anything runs.

    The file holds ``[[grid]]`` tables whose keys are the sweep's options (``loss``, ``seed``,
    ``set``...; lists where the command line takes comma-separated values) and an optional
    ``name``; ``[defaults]`` holds options every grid starts from.  ``results`` is relative to
    the file's folder, so the file means the same store from any working directory.
    """
    data = _read_toml(path)
    unknown = [key for key in data if key not in FILE_KEYS]
    if unknown:
        raise UserError(f"{path}: unknown top-level key '{unknown[0]}' (an experiment file has "
                        "[defaults] and [[grid]] tables)")  # fmt: skip
    defaults = _read_keys(data.get("defaults", {}), f"{path}: [defaults]", named=False)
    raw_grids = data.get("grid")
    if not isinstance(raw_grids, list) or not raw_grids:
        raise UserError(f"{path}: no [[grid]] tables; an experiment is a list of grids")
    grids = [_grid(raw, i, defaults, path) for i, raw in enumerate(raw_grids, 1)]
    names = [grid.name for grid in grids]
    twice = next((name for name in names if names.count(name) > 1), None)
    if twice is not None:
        raise UserError(f"{path}: two grids are named '{twice}'; names pick grids (--grid)")
    return grids


def select(
    grids: Sequence[Grid],
    path: Path,
    names: Sequence[str] = (),
    seeds: Sequence[int] = (),
    datasets: Sequence[str] = (),
) -> list[Grid]:
    """The grids named in ``names`` (all when empty), each cut to the given seeds and datasets:
    how one job takes a share of an experiment (``--seed 1`` beside ``--seed 2``).  Selecting
    nothing at all is an error: a typo must not look like a finished experiment."""
    unknown = [name for name in names if name not in {grid.name for grid in grids}]
    if unknown:
        known = ", ".join(grid.name for grid in grids)
        raise UserError(f"--grid {unknown[0]}: {path} has no such grid (grids: {known})")
    chosen = []
    for grid in grids:
        options = grid.options
        if names and grid.name not in names:
            continue
        if seeds:
            options = replace(options, seed=tuple(s for s in options.seed if s in seeds))
        if datasets:
            options = replace(options, dataset=tuple(d for d in options.dataset if d in datasets))
        if options.seed and options.dataset:
            chosen.append(replace(grid, options=options))
    if not chosen:
        raise UserError(f"{path}: no grid has the selected grids, seeds and datasets"
                        + _absent(grids, names, seeds, datasets))  # fmt: skip
    return chosen


def _absent(
    grids: Sequence[Grid], names: Sequence[str], seeds: Sequence[int], datasets: Sequence[str]
) -> str:
    """Which selected seed or dataset no grid (of the named ones) has, with what they have: a
    typo or an out-of-range seed is named, not left to a reader to find."""
    named = [grid for grid in grids if not names or grid.name in names]
    for what, wanted, attribute in (("--seed", seeds, "seed"), ("--dataset", datasets, "dataset")):
        held = sorted({value for grid in named for value in getattr(grid.options, attribute)})
        missing = [value for value in wanted if value not in held]
        if missing and len(missing) == len(wanted):
            return f" ({what} {missing[0]}: the grids have {', '.join(map(str, held))})"
    return ""


def plan(
    grids: Sequence[Grid], check: bool = True
) -> list[tuple[Grid, SweepSpec, list[SweepPoint]]]:
    """Every grid's spec and points, validated before anything runs; a mistake names its grid."""
    planned = []
    for grid in grids:
        try:
            spec = grid.options.to_spec()
            planned.append((grid, spec, expand(spec, check=check)))
        except UserError as exc:
            located = UserError(f"{grid.where}: {exc}")
            located.exit_code = exc.exit_code
            raise located from None
    return planned


def run_experiment(
    grids: Sequence[Grid],
    dry_run: bool = False,
    report: Callable[[str], None] | None = None,
    output: Output | None = None,
) -> SweepResult:
    """Run the grids in order, each exactly as ``recbench sweep`` runs one (stored points
    skipped, locks, dry run), after validating all of them."""
    if output is not None and not dry_run:
        output.check()
    say = report or (lambda _line: None)
    planned = plan(grids)
    outcomes: list[Outcome] = []
    charged: set[tuple[str, str, object]] = set()  # a dry run charges a seed's SFT run once
    for index, (grid, spec, points) in enumerate(planned, 1):
        count = f"{len(points)} point" + ("" if len(points) == 1 else "s")
        say(f"grid {index}/{len(planned)} '{grid.name}': {count} -> {spec.store}")
        ran = run_sweep(spec, dry_run=dry_run, report=say, output=output, sft_charged=charged)
        outcomes += ran.outcomes
    return SweepResult(outcomes)
