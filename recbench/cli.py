"""The ``recbench`` command line: a thin typer layer over :mod:`recbench.api`.

User mistakes (unknown names, bad values, missing files) end with one line on stderr and exit
code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno
import json
import sys
from importlib import metadata
from pathlib import Path
from typing import Annotated

import typer

from recbench import api, plugins
from recbench.config import (
    DEFAULT_LOSS,
    PROFILES,
    RunConfig,
    check_output_path,
    check_seed,
    parse_assignments,
)
from recbench.errors import UserError
from recbench.output import TRACKER_DIR, TRACKERS, Output

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


def installed_version() -> str:
    """The installed distribution's version, read from its metadata.

    The metadata, not ``recbench.__version__``, is what pip and a bug report agree on; a source
    tree that was never installed says so instead of guessing.
    """
    try:
        return metadata.version("recbench")
    except metadata.PackageNotFoundError:
        return "unknown (not installed; `pip install -e .` in the repository)"


def _print_version(value: bool) -> None:
    """Eager ``--version``: print and stop before any subcommand is required or run."""
    if value:
        typer.echo(f"recbench {installed_version()}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the installed recbench version and exit.",
        ),
    ] = False,
) -> None:
    """recbench: compare preference-optimisation losses for LLM recommenders on real data."""


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


@data_app.command("users")
def data_users(
    name: Annotated[str, typer.Argument(help="Dataset the store's runs were scored on.")],
    results: Annotated[
        Path | None,
        typer.Option(help="Results store (default: the one `recbench run` writes)."),
    ] = None,
    split: Annotated[str, typer.Option(help="Split the runs were scored on.")] = "test",
) -> None:
    """Keep which user each example belongs to beside a results store (runs do it themselves).

    Sliding-window data gives one user many examples whose outcomes move together; with this map
    `recbench compare` adds a paired test clustered by user.  Needed once for a store filled by
    a recbench that did not keep it.
    """
    path, written = api.keep_example_users(name, results, split)
    typer.echo(f"{'kept' if written else 'already kept'}: {path}")


@data_app.command("audit")
def data_audit(
    name: Annotated[str, typer.Argument(help="Dataset name (built-in, built or imported).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Check a dataset's splits: shared users, leaked rows, item order, popularity."""
    report = api.audit_dataset(name)
    if as_json:
        _echo_json(report)
        return
    typer.echo(f"audit of dataset '{report['dataset']}'")
    typer.echo(f"{'check':<20} {'value':>7}  {'threshold':<35} {'verdict':<8} detail")
    for check in report["checks"]:
        value = "n/a" if check["value"] is None else f"{check['value']:.4f}"
        verdict = "FLAGGED" if check["flagged"] else "ok"
        typer.echo(
            f"{check['name']:<20} {value:>7}  {check['threshold']:<35} {verdict:<8} "
            f"{check['detail']}"
        )
    flagged = [c["name"] for c in report["checks"] if c["flagged"]]
    typer.echo(f"flagged: {', '.join(flagged) if flagged else 'none'}")


@data_app.command("show")
def data_show(
    name: Annotated[str, typer.Argument(help="Dataset name.")],
    split: Annotated[str, typer.Option(help="Split to show: train, val or test.")] = "test",
    count: Annotated[int, typer.Option(help="Number of examples.")] = 1,
    seed: Annotated[int, typer.Option(help="Seed of the template draw.")] = 0,
) -> None:
    """Print the prompts, candidates and targets of the first examples of a split."""
    if count < 1:
        raise UserError(f"--count must be at least 1, got {count}")
    check_seed(seed)
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


@data_app.command("build")
def data_build(
    name: Annotated[str, typer.Argument(help="Dataset to build: movielens (ML-100K).")],
    wheel: Annotated[
        Path | None,
        typer.Option(help="A local recbole-1.2.1 wheel, for machines that cannot reach PyPI."),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option(help="Replace a dataset of that name that recbench did not build.")
    ] = False,
) -> None:
    """Build a dataset recbench may not ship from its public source, into $RECBENCH_HOME."""
    info = api.build_dataset(name, wheel=wheel, overwrite=overwrite)
    typer.echo(f"built '{name}': {info['items']:,} items, {_fmt(info['users'])} users")
    for split, s in info["splits"].items():
        typer.echo(f"  {split}: {s['rows']:,} rows, {s['rows_len_seq_ge_3']:,} with len_seq>=3")


@data_app.command("fetch")
def data_fetch(
    name: Annotated[str, typer.Argument(help="Dataset whose full training split to fetch: steam.")],
    file: Annotated[
        Path | None,
        typer.Option(
            help="A copy of steam/train_data.df downloaded by hand, for machines that cannot "
            "reach the Hugging Face hub (checked against the same sha256)."
        ),
    ] = None,
) -> None:
    """Fetch the full training split of a built-in dataset (steam ships a 1,000-row sample).

    steam: `steam/train_data.df` of the LLaRA authors' Hugging Face dataset joyliao7777/LLaRA,
    checked against its recorded size and sha256 before it is read, converted to JSON Lines
    under $RECBENCH_HOME/fetched/steam; the built-in steam then trains on it (its val and test
    are the shipped ones) and its runs get other ids.  `recbench data info steam` says which
    training split is in use.
    """
    info = api.fetch_dataset(name, file=file)
    train = info["splits"]["train"]
    typer.echo(
        f"fetched: '{name}' now trains on {train['rows']:,} rows "
        f"({train['rows_len_seq_ge_3']:,} with len_seq>=3)"
    )
    typer.echo(f"  {train['note']}")


# ---------------------------------------------------------------------------------- model
@model_app.command("fetch")
def model_fetch(
    name: Annotated[str, typer.Argument(help="Embedded model name.")] = "smollm2-135m",
    force: Annotated[bool, typer.Option(help="Fetch and convert again.")] = False,
) -> None:
    """Fetch an embedded model from PyPI and convert it once into a plain checkpoint."""
    path = api.fetch_model(name, force=force)
    typer.echo(f"{name}: ready at {path}")


#: ``--plugin`` of run, sweep, losses and compare (loaded first, after $RECBENCH_PLUGINS).
PluginOption = Annotated[
    list[str] | None,
    typer.Option(
        "--plugin",
        metavar="PATH_OR_MODULE",
        help="Load a plugin first: a .py file or a module name that registers losses or methods "
        "(repeatable; also $RECBENCH_PLUGINS and the 'recbench.plugins' entry points).",
        show_default=False,
    ),
]


# --------------------------------------------------------------------------------- losses
@app.command("losses")
def losses_command(
    key: Annotated[str | None, typer.Argument(help="Show one loss in detail.")] = None,
    plugin: PluginOption = None,
) -> None:
    """List the registered losses with their hyper-parameters, reference model, extra inputs and
    source (or detail one: `losses KEY`, with each hyper-parameter's range and meaning)."""
    plugins.load_plugins(plugin or [])
    from recbench import losses

    def inputs(spec: losses.LossSpec) -> str:
        extra = spec.requires - losses.BASE_FIELDS - losses.REFERENCE_FIELDS
        reference = "yes" if spec.needs_reference else "no"
        return f"reference model: {reference}; extra inputs: {', '.join(sorted(extra)) or 'none'}"

    if key is None:
        pad = " " * 18
        for spec in losses.list_specs():
            params = ", ".join(f"{k}={v}" for k, v in spec.hparams.items())
            origin = losses.loss_origin(spec.key)
            suffix = f"  [plugin: {origin.name}]" if origin is not None else ""
            typer.echo(f"{spec.key:<17} {spec.summary}{suffix}")
            typer.echo(f"{pad}{params}")
            typer.echo(f"{pad}{inputs(spec)}")
            typer.echo(f"{pad}source: {spec.source}")
        return
    spec = losses.get_spec(key)
    typer.echo(f"{spec.key}: {spec.summary}\n")
    origin = losses.loss_origin(key)
    if origin is not None:
        where = f"{origin.origin}; {origin.path}, sha256 {origin.sha256}"
        typer.echo(f"plugin: {origin.name} ({where})\n")
    typer.echo(spec.description.strip() + "\n")
    typer.echo(f"label: {spec.display}; family: {spec.family}")
    typer.echo(f"source: {spec.source}")
    compared = ", ".join(["sft", *spec.compared_with])
    typer.echo(f"paired tests by default (recbench compare): against {compared}")
    typer.echo(inputs(spec))
    typer.echo("needs: " + ", ".join(sorted(spec.requires)) + "\n")
    typer.echo("hyper-parameters (default; valid range; meaning):")
    for name, value in spec.hparams.items():
        fixed = "; fixed by this key" if name in spec.fixed else ""
        typer.echo(f"  {name} = {value}  ({spec.hparam_ranges[name]}{fixed})")
        typer.echo(f"      {spec.hparam_docs[name]}")


@app.command("methods")
def methods_command(plugin: PluginOption = None) -> None:
    """List every method `recbench run` runs, by family, with where it comes from: the
    baselines (`--baseline NAME`) and the losses (`--loss KEY`)."""
    plugins.load_plugins(plugin or [])
    for row in api.list_methods():
        origin = f"  [plugin: {row['plugin']}]" if row["plugin"] else ""
        typer.echo(f"{row['family']:<13} {row['option']:<11} {row['name']:<17} "
                   f"{row['summary']}{origin}")  # fmt: skip
    from recbench import negatives

    for key in negatives.strategy_keys():
        strategy = negatives.get_strategy(key)
        origin = negatives.NEGATIVES.origin(key)
        suffix = f"  [plugin: {origin.name}]" if origin else ""
        typer.echo(f"{'negatives':<13} {'--negatives':<11} {key:<17} {strategy.summary}{suffix}")


# ------------------------------------------------------------------------------------ run
#: Options that mean the same in `run` and `sweep`, defined once.
ModelOption = Annotated[
    str, typer.Option(help="smollm2-135m (embedded), a local directory or a hub id.")
]
ProfileOption = Annotated[
    str,
    typer.Option(
        help="Run size: " + "; ".join(f"{p.name}: {p.summary}" for p in PROFILES.values())
    ),
]
ParamOption = Annotated[
    list[str] | None,
    typer.Option(
        help="A hyper-parameter of the loss (or method), KEY=VALUE, e.g. beta=0.5; repeatable. "
        "`recbench losses KEY` lists them with defaults and ranges."
    ),
]
ParamListOption = Annotated[
    list[str] | None,
    typer.Option(
        "--param",
        help="A hyper-parameter axis, KEY=V1,V2,... (e.g. rho=0.1,0.3,0.5); repeatable. "
        "`recbench losses KEY` lists a loss's hyper-parameters.",
    ),
]
TrainExamplesOption = Annotated[
    int | None, typer.Option(help="Training examples (default from the profile).")
]
EvalExamplesOption = Annotated[
    int | None, typer.Option(help="Test examples evaluated (default from the profile).")
]
CheckpointOption = Annotated[
    str | None, typer.Option(help="Baselines: 'released' or a checkpoint directory.")
]
SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="Override a profile setting, KEY=VALUE (e.g. sft_learning_rate=1e-3, lora_r=8, "
        "max_prompt_tokens=256, precision=bf16); repeatable.",
    ),
]
AuxCheckpointOption = Annotated[
    str | None,
    typer.Option(
        help="SASRec behind NAPO's sharing and margin: default, released, trained or a "
        "checkpoint directory (default: the profile's choice)."
    ),
]
NegativesOption = Annotated[
    str,
    typer.Option(
        help="How a loss's negatives are picked among the items the prompt does not ask for: "
        "random (the default: uniformly from the 19 other candidates), popular, hard (the "
        "auxiliary SASRec's favourites), self (the policy's own favourites when the preference "
        "stage starts), catalog (outside the prompt); `recbench methods` lists them.",
    ),
]
NegativesListOption = Annotated[
    str | None,
    typer.Option(
        "--negatives",
        help="Negative strategies, comma-separated (an axis of the grid), e.g. random,hard.",
    ),
]
ResultsOption = Annotated[
    Path | None, typer.Option(help="Results store (JSON Lines) to check and append records to.")
]
FromThisStageOption = Annotated[
    bool,
    typer.Option(
        "--from-this-stage",
        help="Train from the SFT stage built in $RECBENCH_HOME even where the results store "
        "records this run trained from another training of that stage (other weights: a stage "
        "trained again on another CPU); the run is then trained again and recorded beside the "
        "other as RUN_ID-wWEIGHTS, so that it pairs with the other runs from this stage. Only "
        "for methods trained from the SFT stage (the losses, sft, sprec, llara).",
    ),
]


#: How a command is watched (one :class:`recbench.output.Output`); none changes a result.
QuietOption = Annotated[
    bool,
    typer.Option(
        "--quiet",
        "-q",
        help="Print only the final summary and errors: no progress bars, no per-stage or "
        "per-point lines, no library warnings.",
    ),
]
VerboseOption = Annotated[
    bool,
    typer.Option(
        "--verbose",
        "-v",
        help="Also print each stage's details (steps, batch, learning rate, directory, time, "
        "peak memory) and the library warnings and info logs recbench hides by default.",
    ),
]
ReportToOption = Annotated[
    list[str] | None,
    typer.Option(
        "--report-to",
        metavar="TRACKER",
        help=f"Also send the training curves (every optimizer step's loss, grad_norm, lr, "
        f"rss_mb and the loss's own values, as in the stage's metrics.jsonl) to an accelerate "
        f"tracker: {', '.join(TRACKERS)} (repeatable; each needs its package installed; logs "
        f"under RUN_DIR/{TRACKER_DIR}). Off by default; changes no result and no run id.",
        show_default=False,
    ),
]


def _output(quiet: bool, verbose: bool, report_to: list[str] | None = None) -> Output:
    """The command's :class:`Output`, with this process's warnings and logs set to match (the
    CLI owns the process; the API only reads the object)."""
    output = Output.from_options(quiet, verbose, report_to or [])
    output.configure()
    return output


@app.command("run")
def run_command(
    loss: Annotated[
        str | None,
        typer.Option(
            help=f"Loss key (see `recbench losses`; default {DEFAULT_LOSS}).", show_default=False
        ),
    ] = None,
    baseline: Annotated[
        str | None,
        typer.Option(help="Run a baseline instead of a loss (e.g. sasrec); not with --loss."),
    ] = None,
    dataset: Annotated[str, typer.Option(help="Dataset name (see `recbench data list`).")] = (
        "lastfm"
    ),
    model: ModelOption = "smollm2-135m",
    profile: ProfileOption = "cpu",
    seed: Annotated[int, typer.Option(help="Seed of every random choice in the run.")] = 0,
    n_neg: Annotated[
        int | None, typer.Option(help="Negatives per example (1-19; default from the profile).")
    ] = None,
    param: ParamOption = None,
    negatives: NegativesOption = "random",
    train_examples: TrainExamplesOption = None,
    eval_examples: EvalExamplesOption = None,
    checkpoint: CheckpointOption = None,
    set_: SetOption = None,
    aux_checkpoint: AuxCheckpointOption = None,
    output_dir: Annotated[
        Path | None, typer.Option(help="Run directory (default under $RECBENCH_HOME/runs).")
    ] = None,
    results: ResultsOption = None,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted run.")] = False,
    rerun: Annotated[
        bool,
        typer.Option(
            help="Run again although the results store records this run (its records are added "
            "beside the earlier ones; reports take the latest)."
        ),
    ] = False,
    from_this_stage: FromThisStageOption = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the full summary as JSON.")
    ] = False,
    quiet: QuietOption = False,
    verbose: VerboseOption = False,
    report_to: ReportToOption = None,
    plugin: PluginOption = None,
) -> None:
    """Train and evaluate a method (a loss: SFT, then preference optimisation), and store the
    results; a run the store already records is skipped (`already recorded: RUN_ID`).

    A loss's hyper-parameters are set with `--param KEY=VALUE` (repeatable); `recbench losses
    KEY` lists each one with its default, range and meaning.  Profile settings are set with
    `--set KEY=VALUE`."""
    output = _output(quiet, verbose, report_to)
    plugins.load_plugins(plugin or [])
    if loss is not None and baseline is not None:
        raise UserError(
            f"--loss {loss} and --baseline {baseline} exclude each other: a run trains a loss "
            "or runs a baseline; give one"
        )
    params = parse_assignments(param or [], "--param")
    config = RunConfig(
        dataset=dataset,
        loss=None if baseline is not None else (DEFAULT_LOSS if loss is None else loss),
        baseline=baseline,
        model=model,
        profile=profile,
        seed=seed,
        n_neg=n_neg,
        loss_params=params,
        negatives=negatives,
        train_examples=train_examples,
        eval_examples=eval_examples,
        checkpoint=checkpoint,
        aux_checkpoint=aux_checkpoint,
        overrides=parse_assignments(set_ or [], "--set"),
        output_dir=output_dir,
        results=results,
        resume=resume,
        rerun=rerun,
        from_this_stage=from_this_stage,
    )
    summary = api.run(config, output)
    if as_json:
        _echo_json(summary)
        return
    _print_run_summary(summary)


#: Metrics the run summary prints (the results store holds them all).
SHOWN_METRICS = ("hr@1", "valid_ratio", "ndcg@10", "pop_bias")


def _print_run_summary(summary: dict) -> None:
    if "skipped" in summary:
        typer.echo(f"already recorded: {summary.get('run_id', '')} (--rerun runs it again)")
        return
    typer.echo(f"run {summary.get('run_id', '')}")
    # every method's test metrics: the SFT stage's (when evaluated) and the run's own
    stages = [("sft", summary.get("sft_eval")), ("final", summary.get("evaluation"))]
    if not any(evaluation for _, evaluation in stages):
        typer.echo("  no test metrics in this run's summary")
    for label, evaluation in stages:
        for mode, values in (evaluation or {}).items():
            shown = ", ".join(
                f"{k}={v:.4f}" for k, v in values.items()
                if k in SHOWN_METRICS and isinstance(v, int | float)
            )  # fmt: skip
            typer.echo(f"  {label:<5} {mode:<10} {shown}  (n={int(values.get('n_examples', 0))})")
    seconds = {
        k.removesuffix("_seconds"): v
        for k, v in (summary.get("timings") or {}).items()
        if k.endswith("_seconds") and isinstance(v, int | float)
    }
    if seconds:
        typer.echo("  seconds: " + ", ".join(f"{k}={v:.1f}" for k, v in seconds.items()))
    if summary.get("results"):
        typer.echo(f"  results appended to {summary['results']}")
    if summary.get("note"):
        typer.echo(f"  note: {summary['note']}")


# -------------------------------------------------------------------------------- compare
@app.command("compare")
def compare_command(
    results: Annotated[
        Path | None, typer.Option(help="Results store (default: the one `recbench run` writes).")
    ] = None,
    out: Annotated[Path, typer.Option(help="Directory the tables and plots go to.")] = Path(
        "reports"
    ),
    dataset: Annotated[
        list[str] | None, typer.Option(help="Only these datasets (repeat or comma-separate).")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Only runs of this model.")] = None,
    profile: Annotated[str | None, typer.Option(help="Only runs of this profile.")] = None,
    formats: Annotated[
        str, typer.Option("--format", help="Table formats, comma-separated: md, csv, tex.")
    ] = "md,csv,tex",
    plots: Annotated[bool, typer.Option(help="Also draw the plots (PNG and SVG).")] = True,
    pair: Annotated[
        list[str] | None,
        typer.Option(
            "--pair",
            metavar="A:B",
            help="Paired tests of method A against B (repeatable; replaces the default: every "
            "method vs sft, each loss vs the keys its registration compares it with (napo vs "
            "sdpo, dmpo vs sdpo, beta_dpo vs dpo, each NAPO ablation vs napo; see `recbench "
            "losses KEY`), and each --variant vs its method's own row).",
            show_default=False,
        ),
    ] = None,
    variant: Annotated[
        list[str] | None,
        typer.Option(
            "--variant",
            metavar="METHOD:KEY=VALUE[,KEY=VALUE]",
            help="Also show METHOD at these hyper-parameters (its others at their defaults) as "
            "a row of its own, labelled METHOD[KEY=VALUE], in Table 2, the paired tests (vs "
            "sft and vs the method's own row; --pair may name the label) and the per-method "
            "tables; repeatable. E.g. sims_dpo:n_neg=19 next to SimS-DPO's default 3 "
            "negatives. A loss's runs on a --negatives strategy other than random are shown "
            "so without this option (sdpo[negatives=hard]).",
            show_default=False,
        ),
    ] = None,
    quiet: QuietOption = False,
    verbose: VerboseOption = False,
    plugin: PluginOption = None,
) -> None:
    """Paper-style tables (Markdown, CSV, LaTeX) and plots from the results store."""
    output = _output(quiet, verbose)
    plugins.load_plugins(plugin or [])
    check_output_path("--out", out, "dir")
    report = api.compare(
        results=results,
        out=out,
        datasets=dataset or [],
        model=model,
        profile=profile,
        formats=formats,
        plots=plots,
        pairs=pair or [],
        variants=variant or [],
    )
    if output.quiet:  # the one line that says where to look
        typer.echo(f"wrote {len(report.written)} files to {out}")
        return
    typer.echo(f"results: {report.store}")
    typer.echo(f"wrote {len(report.written)} files:")
    for path in report.written:
        typer.echo(f"  {path}")
    for name, reason in report.skipped:
        typer.echo(f"skipped {name}: {reason}")
    for path in report.removed:
        typer.echo(f"removed stale {path}")


# ---------------------------------------------------------------------------------- sweep
#: The options that combine with ``--config``: they pick a share of the file's points or load
#: code, and change no grid (every other option is the file's to set).
WITH_CONFIG = (
    "config", "grid", "seed", "dataset", "dry_run", "plugin", "quiet", "verbose", "report_to",
)  # fmt: skip


def _given(ctx: typer.Context, name: str) -> bool:
    """Whether the user typed this option (a default is not a choice to honour or refuse)."""
    source = ctx.get_parameter_source(name)  # typer's own click: compared by name
    return getattr(source, "name", None) in ("COMMANDLINE", "ENVIRONMENT")


def _experiment_grids(ctx: typer.Context, config: Path, grid: str | None) -> list:
    """The grids of ``--config FILE`` that this command runs: all, or those ``--grid``,
    ``--seed`` and ``--dataset`` select; any option that would change a grid is refused rather
    than silently winning over (or losing to) the file."""
    from recbench import sweep as sweeps

    for param in ctx.command.params:
        if param.name not in WITH_CONFIG and _given(ctx, param.name or ""):
            raise UserError(
                f"{param.opts[0]} cannot be combined with --config: the file sets every grid's "
                "options (--grid, --seed and --dataset pick a share of it)"
            )
    params = ctx.params
    return sweeps.select(
        sweeps.load_experiment(config),
        config,
        names=sweeps.parse_list(grid, "grid", str) if grid is not None else (),
        seeds=sweeps.parse_list(params["seed"], "seed", int) if _given(ctx, "seed") else (),
        datasets=sweeps.parse_list(params["dataset"], "dataset", str)
        if _given(ctx, "dataset")
        else (),
    )


@app.command("sweep")
def sweep_command(
    ctx: typer.Context,
    loss: Annotated[
        str | None, typer.Option(help=f"Loss key(s), comma-separated (default {DEFAULT_LOSS}).")
    ] = None,
    baseline: Annotated[
        str | None, typer.Option(help="Baseline(s), comma-separated, instead of or after losses.")
    ] = None,
    dataset: Annotated[
        str,
        typer.Option(
            help="Dataset name(s), comma-separated (with --config: run only these datasets)."
        ),
    ] = "lastfm",
    model: ModelOption = "smollm2-135m",
    profile: ProfileOption = "cpu",
    seed: Annotated[
        str,
        typer.Option(help="Seeds, comma-separated, e.g. 0,1,2 (with --config: run only these)."),
    ] = "0",
    n_neg: Annotated[
        str | None, typer.Option(help="Negatives per example, e.g. 1,3,7,15 (default: profile).")
    ] = None,
    param: ParamListOption = None,
    negatives: NegativesListOption = None,
    train_examples: TrainExamplesOption = None,
    eval_examples: EvalExamplesOption = None,
    checkpoint: CheckpointOption = None,
    set_: SetOption = None,
    aux_checkpoint: AuxCheckpointOption = None,
    results: ResultsOption = None,
    from_this_stage: FromThisStageOption = False,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            metavar="FILE.toml",
            help="Run an experiment file instead: its grid tables, whose keys are this "
            'command\'s options (loss = ["sdpo", "napo"], seed = [0, 1], set = {lora_r = 8}; '
            "shared ones in its defaults table; results relative to the file), run in file order, each "
            "grid resumable as one sweep. Only --grid, --seed, --dataset, --dry-run, --plugin "
            "and the output options (--quiet, --verbose, --report-to) combine with it. Examples: benchmarks/experiments/.",
        ),
    ] = None,
    grid: Annotated[
        str | None,
        typer.Option(help="With --config: run only these grids (their names, comma-separated)."),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            help="List the points, which are done, which another sweep is running now and what a "
            "started one has kept (stages at their checkpoint step, evaluation batches scored), "
            "with a time estimate for the rest; run nothing."
        ),
    ] = False,
    quiet: QuietOption = False,
    verbose: VerboseOption = False,
    report_to: ReportToOption = None,
    plugin: PluginOption = None,
) -> None:
    """Run a grid of `recbench run`s (a base run and the axes it varies), skipping points
    already in the results store; a killed sweep continues where it stopped.  `--config
    FILE.toml` runs the grids of an experiment file, one after the other."""
    output = _output(quiet, verbose, report_to)
    # --quiet: no line per point, but a dry run's listing is what it was asked for
    report = typer.echo if dry_run or not output.quiet else None
    plugins.load_plugins(plugin or [])  # the points run in this process
    from recbench import sweep as sweeps  # imports torch: only for the commands that run

    if config is not None:
        grids = _experiment_grids(ctx, config, grid)
        outcome = sweeps.run_experiment(grids, dry_run=dry_run, report=report, output=output)
    else:
        if grid is not None:
            raise UserError("--grid picks grids of an experiment file; give --config FILE.toml")
        options = sweeps.SweepOptions.from_command_line(
            loss=loss,
            baseline=baseline,
            dataset=dataset,
            seed=seed,
            n_neg=n_neg,
            param=param or [],
            negatives=negatives,
            set_=set_ or [],
            model=model,
            profile=profile,
            train_examples=train_examples,
            eval_examples=eval_examples,
            checkpoint=checkpoint,
            aux_checkpoint=aux_checkpoint,
            results=results,
            from_this_stage=from_this_stage,
        )
        outcome = api.sweep(options.to_spec(), dry_run=dry_run, report=report, output=output)
    counts = ", ".join(f"{outcome.count(s)} {s}" for s in ("done", "todo", "ran", "failed"))
    typer.echo(f"{len(outcome.outcomes)} points: {counts}")
    if dry_run and outcome.estimate():
        typer.echo(outcome.estimate())
    for failure in outcome.failed:
        typer.echo(f"failed: {failure.point.describe()}: {failure.detail}")
        if failure.traceback:
            typer.echo(failure.traceback, err=True)
    if outcome.failed:
        raise typer.Exit(1)


def main() -> None:
    """Console entry point: user errors become one line and exit code 2.

    First, where tcmalloc or jemalloc is installed, the command executes itself again under it
    (once; ``RECBENCH_ALLOCATOR=system`` never): glibc's allocator fragments over training
    steps, these do not (:mod:`recbench.allocator`).
    """
    from recbench import allocator

    try:
        allocator.reexecute()
        code = app(standalone_mode=False)
    except typer.Abort:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except typer.TyperException as exc:  # typer's parsing: a bad value, an unknown option
        ctx = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError":  # `recbench` or `recbench data` alone
            typer.echo(ctx.get_help() if ctx else str(exc))
            sys.exit(0)
        hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        typer.echo(f"error: {exc.format_message()}{hint}", err=True)
        sys.exit(getattr(exc, "exit_code", 2))
    except UserError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise  # anything else is a bug and keeps its traceback
        where = f" writing {exc.filename}" if exc.filename else ""
        typer.echo(f"error: no space left on the device{where}; free some and run the same "
                   "command again (with --resume for an interrupted run)", err=True)  # fmt: skip
        sys.exit(1)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    if isinstance(code, int) and code:
        sys.exit(code)


if __name__ == "__main__":
    main()
