"""``recbench sweep``: run a grid of ``recbench run`` settings, skipping what is already stored.

A study such as HR@1 across n_neg (Figure 3c) or across rho and alpha (Appendix C) is many runs
of minutes each, and long sweeps get interrupted.  The sweep therefore treats the results store
as its progress record: before each point it checks whether a run with the same dataset, method,
model, profile, seed and hyper-parameters is already there, so re-running the same command
resumes where it stopped.  A failed point is reported and the sweep goes on; every input is
validated before the first run starts, so a typo fails in a second, not after an hour.

Points are ordered seed-major: the whole grid for the first seed comes before any second seed,
so an interrupted sweep leaves complete curves rather than many seeds of a few points.
"""

from __future__ import annotations

import itertools
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from recbench import results
from recbench.config import RunConfig
from recbench.errors import UserError
from recbench.reports.runs import compatible

ParamValue = float | int | str | bool
# Options with a name of their own in `recbench run` (everything else goes through --param).
NAMED_PARAMS = ("rho", "alpha", "beta", "gamma")


def parse_value(raw: str) -> ParamValue:
    """``"true"`` -> True, ``"3"`` -> 3, ``"0.5"`` -> 0.5, anything else stays a string."""
    text = raw.strip()
    if text.lower() in {"true", "false"}:
        return text.lower() == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            continue
    return text


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


def parse_param_lists(items: Iterable[str]) -> dict[str, list[ParamValue]]:
    """``["beta=0.5,1", "ln=true"]`` -> {"beta": [0.5, 1], "ln": [True]}."""
    out: dict[str, list[ParamValue]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--param expects KEY=VALUE[,VALUE...], got '{item}'")
        out[key.strip().replace("-", "_")] = parse_list(raw, f"param {key.strip()}")
    return out


@dataclass(frozen=True)
class SweepSpec:
    """The grid: every combination of the listed values becomes one ``recbench run``."""

    losses: tuple[str, ...] = ("napo",)
    datasets: tuple[str, ...] = ("lastfm",)
    seeds: tuple[int, ...] = (0,)
    n_negs: tuple[int, ...] = ()  # empty: the profile's n_neg
    params: Mapping[str, Sequence[ParamValue]] = field(default_factory=dict)
    model: str = "smollm2-135m"
    profile: str = "cpu"
    train_examples: int | None = None
    eval_examples: int | None = None
    results: Path | None = None

    @property
    def store(self) -> Path:
        return Path(self.results) if self.results is not None else results.default_store()


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


def _expected_hparams(config: RunConfig) -> dict[str, object]:
    """What ``recbench run`` records as hparams: the loss's defaults, overrides, the n_neg used."""
    import losses

    hparams: dict[str, object] = dict(losses.get_spec(config.method).hparams)
    hparams.update(config.loss_params)
    hparams["n_neg"] = config.resolved()["n_neg"]
    return hparams


def expand(spec: SweepSpec, check: bool = True) -> list[SweepPoint]:
    """The grid as run configs (seed-major), each validated before anything runs.

    ``check`` resolves every name and hyper-parameter (dataset, loss, model, ranges) with the
    same checks as ``recbench run``, raising a one-line :class:`UserError` on the first problem.
    """
    from recbench.runner import check_inputs

    if not spec.losses or not spec.datasets or not spec.seeds:
        raise UserError("a sweep needs at least one loss, dataset and seed")
    names = list(spec.params)
    n_negs: Sequence[int | None] = spec.n_negs or (None,)
    points = []
    checked: set[str] = set()
    grid = itertools.product(
        spec.seeds, spec.datasets, spec.losses, n_negs, *(spec.params[k] for k in names)
    )
    for seed, dataset, loss, n_neg, *values in grid:
        params = dict(zip(names, values, strict=True))
        config = RunConfig(
            dataset=dataset,
            loss=loss,
            model=spec.model,
            profile=spec.profile,
            seed=int(seed),
            n_neg=n_neg,
            loss_params=params,
            train_examples=spec.train_examples,
            eval_examples=spec.eval_examples,
            results=spec.results,
        )
        key = repr((dataset, loss, n_neg, sorted(params.items())))
        if check and key not in checked:  # seeds do not change validity
            check_inputs(config)
            checked.add(key)
        swept: dict[str, ParamValue] = {}
        if n_neg is not None:
            swept["n_neg"] = n_neg
        swept.update(params)
        points.append(SweepPoint(config, swept, _expected_hparams(config)))
    return points


def is_done(point: SweepPoint, records: Iterable[Mapping[str, object]]) -> bool:
    """Whether the store already holds a run of this point.

    Matched on dataset, method, model, profile, seed, and the hyper-parameters: every swept one
    must be recorded with the same value, and the others must not contradict the defaults (so
    a stored n_neg=7 run does not count as done for a rho sweep at the default n_neg=3); the
    numbers of training and test examples, where the record's settings state them, too.
    """
    c = point.config
    resolved = c.resolved()
    # a run on another number of training/test examples is another point (when recorded)
    sizes = {k: resolved[k] for k in ("train_examples", "eval_examples")}
    for record in records:
        if (
            record.get("dataset") == c.dataset
            and record.get("method") == c.method
            and record.get("model") == c.model
            and record.get("profile") == c.profile
            and record.get("seed") == c.seed
        ):
            hparams = record.get("hparams") or {}
            settings = record.get("settings") or {}
            if not isinstance(hparams, Mapping) or not isinstance(settings, Mapping):
                continue
            if (
                all(k in hparams for k in point.swept)
                and compatible(hparams, point.expected)
                and compatible(settings, sizes)
            ):
                return True
    return False


@dataclass
class Outcome:
    """What happened to one point: "done" (already stored), "todo" (dry run), "ran", "failed"."""

    point: SweepPoint
    status: str
    detail: str = ""
    traceback: str = ""


@dataclass
class SweepResult:
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    def to_dict(self) -> dict:
        return {
            "points": [
                {"point": o.point.describe(), "status": o.status, "detail": o.detail}
                for o in self.outcomes
            ],
            "counts": {s: self.count(s) for s in ("done", "todo", "ran", "failed")},
        }


def run_sweep(
    spec: SweepSpec, dry_run: bool = False, report: Callable[[str], None] | None = None
) -> SweepResult:
    """Run every point of the grid not yet in the store through :func:`recbench.api.run`."""
    from recbench import api

    say = report or (lambda _line: None)
    points = expand(spec)
    store = spec.store
    total = len(points)
    out = SweepResult()
    records = results.read_records(store)
    for index, point in enumerate(points, 1):
        label = f"[{index}/{total}] {point.describe()}"
        if not dry_run:
            records = results.read_records(store)  # another sweep may have run it meanwhile
        if is_done(point, records):
            out.outcomes.append(Outcome(point, "done", "already in the results store"))
            say(f"{label}: done (already in the results store)")
            continue
        if dry_run:
            out.outcomes.append(Outcome(point, "todo"))
            say(f"{label}: to run")
            continue
        say(f"{label}: running")
        try:
            summary = api.run(point.config)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # noqa: BLE001 - one failed point must not stop the sweep
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            detail = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
            trace = "" if isinstance(exc, UserError) else traceback.format_exc()
            out.outcomes.append(Outcome(point, "failed", detail, trace))
            say(f"{label}: FAILED ({detail})")
            continue
        note = summary.get("skipped", "") if isinstance(summary, Mapping) else ""
        out.outcomes.append(Outcome(point, "ran", str(note)))
        say(f"{label}: finished" + (f" ({note})" if note else ""))
    return out
