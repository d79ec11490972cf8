"""The Python API behind every CLI command (the CLI is a thin layer over these functions)."""

from __future__ import annotations

from pathlib import Path

from recbench.config import RunConfig
from recbench.data import catalog, load_dataset
from recbench.data.dataset import Dataset, Example
from recbench.data.prompts import choose_template, render_prompt, render_response


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


def import_dataset(name: str, train: Path, val: Path, test: Path, item_names: Path, **kwargs):
    from recbench.data.importer import import_dataset as _import

    spec = _import(name, {"train": train, "val": val, "test": test}, item_names, **kwargs)
    return load_dataset(spec.name).stats()


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


def run(config: RunConfig) -> dict:
    """Validate, then run: train and evaluate a loss or a baseline, storing result records."""
    config.validate()
    from recbench.runner import execute

    return execute(config)
