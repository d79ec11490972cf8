"""What the points of a dry run will cost, from the cost records of runs like them in the store.

``recbench sweep --dry-run`` lists the points still to run; someone planning hours of CPU also
wants to know how many hours.  The store already holds what every finished run cost (its
``cost`` records, seconds per stage), so a point's estimate is the median cost of the stored runs
most like it: same dataset, profile and method (and n_neg, for a loss), measured on hardware like
this process's (CPU model, cores, threads, GPU: a bf16 CPU trains about ten times faster than an
AVX2 one, so another machine's seconds say nothing here).  When the method has no such run, other
losses with the same n_neg stand in for a loss, and the estimate says so.

A loss run trains its seed's SFT stage first unless it is built in ``$RECBENCH_HOME``, and
records that stage, evaluated, as an ``sft`` run unless the store has that very stage's
evaluation.  The stage cache does not travel with a committed store, and a stage retrained on
another CPU is another model that is evaluated anew (:mod:`recbench.pipeline`).  So a loss point
is charged one SFT run (training and evaluation) as well, once per seed, when its seed's stage is
not built here or the store has no ``sft`` run of the seed.  (Retrained on the machine that
recorded it, a stage comes out the same and is not evaluated again: then the charge overestimates
by the evaluation's time.)
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from recbench.config import RunConfig

SFT = "sft"
SFT_STAGE = "sft_seconds"  # a loss run copies its SFT stage's time; only an sft run pays it
HARDWARE_KEYS = ("cpu_model", "cpu_count", "torch_threads", "cpu_bf16", "gpu", "gpu_count")


def hardware_key(hardware: Mapping[str, object] | None) -> tuple:
    """What makes two machines' seconds comparable (see the module docstring)."""
    hardware = hardware or {}
    return tuple(hardware.get(k) for k in HARDWARE_KEYS)


@dataclass(frozen=True)
class RunCost:
    """One stored run's seconds, with what identifies runs like it."""

    dataset: str
    profile: str
    method: str
    family: str
    seed: object
    n_neg: object
    hardware: tuple
    seconds: float  # every recorded stage, the SFT stage only for an sft run


def run_costs(records: Iterable[Mapping[str, object]]) -> list[RunCost]:
    """The cost of every run of the store that has cost records."""
    stages: dict[str, dict[str, float]] = {}
    first: dict[str, Mapping[str, object]] = {}
    for record in records:
        metric, run_id = str(record.get("metric", "")), record.get("run_id")
        if record.get("mode") != "cost" or not metric.endswith("_seconds") or run_id is None:
            continue
        try:
            value = float(record["value"])  # type: ignore[arg-type]
        except (KeyError, TypeError, ValueError):
            continue
        stages.setdefault(str(run_id), {})[metric] = value
        first.setdefault(str(run_id), record)
    costs = []
    for run_id, seconds in stages.items():
        record = first[run_id]
        method = str(record.get("method"))
        paid = {k: v for k, v in seconds.items() if method == SFT or k != SFT_STAGE}
        hparams = record.get("hparams")
        costs.append(
            RunCost(
                dataset=str(record.get("dataset")),
                profile=str(record.get("profile")),
                method=method,
                family=str(record.get("family")),
                seed=record.get("seed"),
                n_neg=hparams.get("n_neg") if isinstance(hparams, Mapping) else None,
                hardware=hardware_key(record.get("hardware")),  # type: ignore[arg-type]
                seconds=sum(paid.values()),
            )
        )
    return costs


def duration(seconds: float) -> str:
    """``2100`` -> "35 min", ``11520`` -> "3.2 h"."""
    minutes = seconds / 60.0
    return f"{minutes:.0f} min" if minutes < 90 else f"{minutes / 60.0:.1f} h"


@dataclass
class CostBook:
    """Estimates the points of one dry run, charging each seed's missing SFT stage once."""

    records: list[Mapping[str, object]]
    hardware: Mapping[str, object]
    #: whether a loss point's SFT stage is built here (sweep: :func:`~.pipeline.sft_stage_built`)
    stage_built: Callable[[RunConfig], bool]
    #: the seeds whose SFT run is charged already: shared by the books of one experiment's
    #: grids, since a stage trained for one grid serves the next
    charged_sft: set[tuple[str, str, object]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._sft_runs = {
            (r.get("dataset"), r.get("profile"), r.get("seed"))
            for r in self.records
            if r.get("method") == SFT
        }
        here = hardware_key(self.hardware)
        self._costs = [c for c in run_costs(self.records) if c.hardware == here]

    def _like(self, config: RunConfig) -> tuple[list[float], str]:
        same = [
            c for c in self._costs if (c.dataset, c.profile) == (config.dataset, config.profile)
        ]
        n_neg = config.settings.n_neg
        method = [c for c in same if c.method == config.method]
        if config.loss is None:
            return [c.seconds for c in method], config.method
        exact = [c for c in method if c.n_neg == n_neg]
        if exact:
            return [c.seconds for c in exact], f"{config.method} n_neg {n_neg}"
        others = [c for c in same if c.family == "loss" and c.n_neg == n_neg]
        return [c.seconds for c in others], f"other losses with n_neg {n_neg}"

    def _sft(self, config: RunConfig) -> float | None:
        """One SFT run's seconds, when this loss point's seed has no sft run yet or its stage
        is not built here (else 0)."""
        key = (config.dataset, config.profile, config.seed)
        if config.loss is None or key in self.charged_sft:
            return 0.0
        if key in self._sft_runs and self.stage_built(config):
            return 0.0
        seconds = [
            c.seconds
            for c in self._costs
            if (c.dataset, c.profile, c.method) == (config.dataset, config.profile, SFT)
        ]
        if not seconds:
            return None
        self.charged_sft.add(key)
        return statistics.median(seconds)

    def estimate(self, config: RunConfig) -> tuple[float | None, str]:
        """Seconds this point will take (None: nothing like it here) and how that was found."""
        if config.method == SFT:
            self._sft_runs.add((config.dataset, config.profile, config.seed))
        seconds, like = self._like(config)
        if not seconds:
            return None, "no estimate: no run like it on this hardware in the store"
        sft = self._sft(config)
        if sft is None:
            return None, "no estimate: its seed's SFT stage has no run on this hardware"
        total = statistics.median(seconds) + sft
        runs = f"{len(seconds)} recorded run{'s' if len(seconds) > 1 else ''} of {like}"
        note = f"about {duration(total)}, as {runs}" + (" + the seed's SFT run" if sft else "")
        return total, note


def summary(estimates: Iterable[float | None]) -> str:
    """The total line of a dry run: what the points to run add up to, and what has no estimate."""
    values = list(estimates)
    known = [v for v in values if v is not None]
    if not values:
        return ""
    if not known:
        return "to run: no estimate (no run like these on this hardware in the store)"
    text = f"to run: about {duration(sum(known))} by the store's cost records on this hardware"
    missing = len(values) - len(known)
    return text + (f" ({missing} of {len(values)} points without an estimate)" if missing else "")


__all__ = ["CostBook", "duration", "run_costs", "summary"]
