"""How a command is watched: how much it prints, and where its training curves go.

``recbench run`` and ``recbench sweep`` take ``--quiet``/``--verbose`` and ``--report-to``; the
CLI turns them into one :class:`Output` and hands it, beside the run's
:class:`~recbench.config.RunConfig`, to the API.  It is deliberately not part of the config: it
changes no number a run computes, so it is neither recorded with a run nor part of its identity
(a run watched through TensorBoard is the same run as one watched through nothing, and a store
holding it says "already recorded" to either).

Verbosity is process-wide by nature (Python's warning filters and the libraries' loggers belong
to the process), so :meth:`Output.configure` is called once by whoever owns the process, the
CLI; the API only reads :attr:`Output.progress` and :attr:`Output.report_to`.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from recbench.errors import UserError
from recbench.registry import did_you_mean

Verbosity = Literal["quiet", "normal", "verbose"]
VERBOSITIES: tuple[str, ...] = get_args(Verbosity)

#: ``--report-to NAME`` -> (modules any one of which makes it usable, the package to install).
#: accelerate drops a tracker whose package is missing with a debug message only, so recbench
#: checks first and says what to install.
TRACKERS: dict[str, tuple[tuple[str, ...], str]] = {
    "tensorboard": (("tensorboard", "tensorboardX"), "tensorboard"),
    "wandb": (("wandb",), "wandb"),
    "mlflow": (("mlflow",), "mlflow"),
}
#: Where a run's trackers write, inside its run directory (``RUN_DIR/trackers/STAGE``).
TRACKER_DIR = "trackers"

_state = {"library_warnings": False}  # set by Output.configure for the whole process


@dataclass(frozen=True)
class Output:
    """``verbosity``: quiet (no progress bars, only the final summary and errors), normal (as
    always), verbose (also per-stage details and the library warnings recbench silences).
    ``report_to``: accelerate trackers that receive every optimizer step's values."""

    verbosity: Verbosity = "normal"
    report_to: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.verbosity not in VERBOSITIES:
            raise UserError(f"unknown verbosity '{self.verbosity}'; use {', '.join(VERBOSITIES)}")
        object.__setattr__(self, "report_to", tuple(dict.fromkeys(self.report_to)))
        for name in self.report_to:
            if name not in TRACKERS:
                raise UserError(
                    f"--report-to: unknown tracker '{name}'{did_you_mean(name, list(TRACKERS))}; "
                    f"use {', '.join(TRACKERS)}"
                )

    @classmethod
    def from_options(cls, quiet: bool, verbose: bool, report_to: Sequence[str] = ()) -> Output:
        """The command line's options: ``--report-to`` repeated or comma-separated."""
        if quiet and verbose:
            raise UserError("--quiet and --verbose exclude each other; give one")
        names = [n.strip() for item in report_to for n in item.split(",") if n.strip()]
        return cls("quiet" if quiet else "verbose" if verbose else "normal", tuple(names))

    @property
    def progress(self) -> bool:
        """Whether progress bars (and progress lines such as "continuing from step N") show."""
        return self.verbosity != "quiet"

    @property
    def quiet(self) -> bool:
        return self.verbosity == "quiet"

    @property
    def verbose(self) -> bool:
        return self.verbosity == "verbose"

    def check(self) -> Output:
        """Refuse, in one line, a tracker whose package is not installed (before any work)."""
        for name in self.report_to:
            modules, package = TRACKERS[name]
            if not any(importlib.util.find_spec(m) is not None for m in modules):
                raise UserError(
                    f"--report-to {name} needs the {package} package, which is not installed: "
                    f"pip install {package}"
                )
        return self

    def accelerator_kwargs(self, run_dir: Path) -> dict[str, object]:
        """What an ``Accelerator`` takes to log to the trackers, under ``RUN_DIR/trackers``
        (nothing when none is asked for: the run's ``metrics.jsonl`` is the record anyway)."""
        if not self.report_to:
            return {}
        return {"log_with": list(self.report_to), "project_dir": str(run_dir / TRACKER_DIR)}

    def configure(self) -> None:
        """Set this process's warnings and loggers to the verbosity (the CLI calls it once).

        Quiet hides library warnings and logs and the hub's download bars; recbench's own
        warnings still show, since they are about the user's files.  Verbose shows every
        warning once, recbench's per-stage details and the libraries' info logs.
        """
        if self.quiet:
            os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
            os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
            warnings.filterwarnings("ignore")
            warnings.filterwarnings("default", module=r"recbench")
            logging.getLogger().setLevel(logging.ERROR)
            logging.getLogger("recbench").setLevel(logging.WARNING)
        elif self.verbose:
            _state["library_warnings"] = True
            os.environ.setdefault("TRANSFORMERS_VERBOSITY", "info")
            warnings.simplefilter("default")
            _log_info_to_stderr()


def tracker_init_kwargs(logging_dir: str | os.PathLike | None) -> dict[str, dict[str, str]]:
    """accelerate's ``init_kwargs`` that keep every tracker's local files in ``logging_dir``
    (``RUN_DIR/trackers``) and name each tracker run after the run (the directory's parent).

    TensorBoard writes there by itself; wandb and mlflow would write ``./wandb`` and the
    artifacts of ``./mlruns`` in whatever directory the command was started from.
    """
    if not logging_dir:
        return {}
    where = str(logging_dir)
    run = Path(where).parent.name
    return {"wandb": {"dir": where, "name": run}, "mlflow": {"logging_dir": where, "run_name": run}}


def library_warnings_shown() -> bool:
    """Whether ``--verbose`` asked for the library warnings that
    :func:`recbench.models.quiet_library_warnings` otherwise silences."""
    return _state["library_warnings"]


def _log_info_to_stderr() -> None:
    """INFO and above of every logger to stderr, once (recbench's details and the libraries')."""
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    if not any(getattr(h, "_recbench", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        handler._recbench = True  # type: ignore[attr-defined]
        root.addHandler(handler)
