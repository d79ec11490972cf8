"""The one method contract: what every run of ``recbench run`` runs.

A method only trains and scores.  It says what it needs (:attr:`Method.needs`: nothing, a model
to fit, or training stages), gets ready in :meth:`Method.prepare`, and then gives scores of the
20 candidates (:meth:`Method.score`) and/or free-text answers (:meth:`Method.generate`) for the
examples the runner hands it, as lm-evaluation-harness's ``LM`` and RecBole's ``predict`` do.
Everything else about a run -- its identity, skipping a recorded run, its directory, which
examples it is scored on, timing, memory, metrics, outcomes, records and the one append -- is
:mod:`recbench.runner`'s, written once for every method.

Methods are registered classes found by name: the rules, the sequential recommenders, MoRec,
zero-shot, SFT/TALLRec, ChatRec, LLaRA (in ``recbench.baselines``, a plugin of the core's own),
every preference loss (one :class:`Method` per loss key, made by
:func:`recbench.pipeline.loss_method`), and a researcher's plugins.  Nothing in the core lists them.
"""

from __future__ import annotations

from abc import ABC
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from recbench import plugins
from recbench.errors import UserError
from recbench.output import Output
from recbench.registry import Registry

if TYPE_CHECKING:
    from pathlib import Path

    from recbench.config import RunConfig
    from recbench.data.dataset import Dataset, Example

#: The families of methods, in the order tables list them.
FAMILIES = ("rule", "sequential", "llm_baseline", "loss")
#: What a method needs before it can score: nothing, a model it fits, or stages it trains.
NEEDS = ("nothing", "fit", "stages")


@dataclass
class Scores:
    """Scores of each example's candidates, one row per example, in candidate order.

    Higher is better; the arg-max is the recommendation.  ``lengths`` (token counts, LLMs only)
    adds the per-token diagnostic ``hr@1_per_token``; ``reused_seconds`` is added to the time
    this call took: scoring time spent by an earlier, interrupted process whose batches were
    reused, less any time the call spent on work that belongs to another mode (the answers
    that ``generation_from_ranking`` decodes while ranking).
    """

    values: np.ndarray
    lengths: np.ndarray | None = None
    reused_seconds: float = 0.0


@dataclass
class Answers:
    """Free-text answers, one per example, judged by the protocol's generation rule.
    ``reused_seconds``: time spent on them outside this call (an interrupted process, or the
    ranking pass that decoded them)."""

    texts: list[str]
    reused_seconds: float = 0.0


@dataclass
class RunFacts:
    """What a method tells the runner to record about its run, filled in while it works."""

    hparams: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)  # the method's own recorded facts
    model: str | None = None  # what was scored (default: the config's model name)
    timings: dict[str, float] = field(default_factory=dict)  # stage times (seconds)
    stage_peak_mb: float = 0.0  # peak memory of stages trained by other processes
    weights: str | None = None  # digest of trained weights a rerun elsewhere may not reproduce
    extra_modes: dict[str, dict[str, float]] = field(default_factory=dict)  # e.g. chatrec's hint
    summary: dict[str, Any] = field(default_factory=dict)  # shown by the CLI, not recorded


@dataclass
class RunContext:
    """What the runner gives a method: the run's config, data, directory and id, and how the
    run is watched (``output``: its trackers; ``progress`` is its progress bars)."""

    config: RunConfig
    dataset: Dataset
    run_dir: Path
    run_id: str
    progress: bool = True
    output: Output = field(default_factory=Output)

    @property
    def settings(self):
        return self.config.settings


class Method(ABC):
    """A registered method; the runner makes one per run with that run's :class:`RunContext`.

    Subclasses set the class attributes and override :meth:`score` and/or :meth:`generate`;
    :meth:`prepare` trains or fits what :attr:`needs` says; the class methods are cheap checks
    that run before any model loads.
    """

    name: ClassVar[str]
    family: ClassVar[str]
    summary: ClassVar[str]
    needs: ClassVar[str] = "nothing"
    takes_checkpoint: ClassVar[bool] = False
    order: ClassVar[int] = 1000  # position in listings and tables (built-ins first)
    #: The method every other one is compared with by default (the SFT stage): the reports'
    #: paired tests and "vs SFT" columns ask the registry which one it is.
    reference: ClassVar[bool] = False
    #: Methods its runs are also paired with by default (a control or ablation of it, as a
    #: loss's ``compared_with``): what the method adds over that control is a paired question.
    compared_with: ClassVar[tuple[str, ...]] = ()

    def __init__(self, run: RunContext) -> None:
        self.run = run
        self.facts = RunFacts()

    # ------------------------------------------------------------- before any work (cheap)
    @classmethod
    def check(cls, config: RunConfig) -> None:
        """Every cheap check (names, ranges, files it needs), raising one-line user errors."""
        if config.loss_params:
            raise UserError(
                f"{cls.name} takes no --param (got {', '.join(sorted(config.loss_params))})"
            )

    @classmethod
    def defining_settings(cls, config: RunConfig, ds: Dataset) -> dict[str, Any]:
        """The settings the run's numbers depend on, beyond the data, model and method name
        (which the runner adds).  Default: every resolved setting and parameter; a method that
        reads fewer narrows it, so that runs differing only in what it ignores are one run."""
        del ds
        settings = config.settings.identity_settings()
        return {"settings": settings, "params": dict(config.loss_params),
                "seed": cls.recorded_seed(config), "checkpoint": config.checkpoint,
                "aux_checkpoint": config.aux_checkpoint}  # fmt: skip

    @classmethod
    def recorded_seed(cls, config: RunConfig) -> int | None:
        """The seed its records carry: None for a method whose result no seed changes."""
        return config.seed

    @classmethod
    def prerequisites(cls, config: RunConfig) -> list[RunConfig]:
        """Runs recorded before this one, once each (a loss run: its SFT stage's evaluation)."""
        del config
        return []

    # -------------------------------------------------------------------------- the work
    def prepare(self) -> None:
        """Train or fit what the method needs (nothing by default)."""

    def score(self, examples: Sequence[Example]) -> Scores | None:
        """Scores of every candidate of each example (None: the method only generates)."""
        del examples
        return None

    def generate(self, examples: Sequence[Example]) -> Answers | None:
        """Free-text answers to each example's prompt (None: the method only ranks)."""
        del examples
        return None


MethodClass = type[Method]
METHODS: Registry[MethodClass] = Registry("baseline")


def register_method(cls: MethodClass) -> MethodClass:
    """Class decorator registering a :class:`Method` under ``cls.name`` (``--baseline NAME``)."""
    for attribute in ("name", "family", "summary"):
        if not isinstance(getattr(cls, attribute, None), str):
            raise TypeError(f"method {cls.__name__}: set the class attribute '{attribute}'")
    if cls.family not in FAMILIES:
        raise ValueError(
            f"method '{cls.name}': unknown family '{cls.family}' (use {', '.join(FAMILIES)})"
        )
    if cls.needs not in NEEDS:
        raise ValueError(f"method '{cls.name}': needs must be one of {', '.join(NEEDS)}")
    if "\n" in cls.summary:
        raise ValueError(f"method '{cls.name}': summary must be one line")
    METHODS.add(cls.name, cls)
    return cls


def get_method(name: str) -> MethodClass:
    """The method registered as ``name`` (plugins loaded first); unknown names: "did you mean"."""
    plugins.load_plugins()  # the installed ones (entry points); idempotent
    return METHODS.get(name)


def method_names() -> list[str]:
    """Every registered method, in listing order (family, then ``order``, then name)."""
    plugins.load_plugins()
    specs = [METHODS.get(name) for name in METHODS.names()]
    specs.sort(key=lambda s: (FAMILIES.index(s.family), s.order, s.name))
    return [s.name for s in specs]


def reference_name() -> str | None:
    """The registered method marked :attr:`Method.reference`, if any."""
    return next((n for n in method_names() if METHODS.get(n).reference), None)


def compared_with(name: str) -> tuple[str, ...]:
    """The registered method's own default comparisons; () for a name that is no method."""
    plugins.load_plugins()
    return METHODS.get(name).compared_with if name in METHODS else ()


def check_checkpoint(config: RunConfig, method: MethodClass) -> None:
    """``--checkpoint`` only for methods that take one."""
    if config.checkpoint is None or method.takes_checkpoint:
        return
    takers = [n for n in method_names() if METHODS.get(n).takes_checkpoint]
    raise UserError(
        f"--checkpoint selects a baseline's weights ({', '.join(takers)}); "
        f"{config.method} does not take one"
    )
