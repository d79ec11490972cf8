"""The runner: everything about a run that is not the method's own training and scoring.

Each of these is done here, once, for every method (the rules, the sequential models, the LLM
baselines, every loss, and plugins alike):

* input checks before any work (:func:`check_inputs`);
* the run's identity and id (:func:`plan`, :mod:`recbench.identity`);
* skipping a run the store already holds (:func:`is_recorded`), unless ``--rerun``;
* claiming the run directory (:mod:`recbench.rundir`), under the run's lock;
* choosing the evaluation examples (:func:`evaluation_examples`);
* timing, peak memory and load; metrics from the method's scores and answers; per-example
  outcomes; the run's records and their single append (:func:`_record`).

A method (:class:`recbench.methods.Method`) only trains and scores.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from recbench import (
    identity,
    journal,
    losses,
    models,
    negatives,
    paths,
    pipeline,
    plugins,
    results,
    rundir,
)
from recbench.batches import EVAL_SEED
from recbench.batches import evaluation_examples as _protocol_examples
from recbench.config import RunConfig
from recbench.data import load_dataset
from recbench.data.dataset import SPLITS, Dataset, Example
from recbench.errors import UserError
from recbench.evaluation import answers_report, scores_report
from recbench.methods import (
    Answers,
    Method,
    MethodClass,
    RunContext,
    Scores,
    check_checkpoint,
    get_method,
)
from recbench.outcomes import Outcomes
from recbench.output import TRACKER_DIR, Output
from recbench.records import RECORD_VERSION, Record

log = logging.getLogger(__name__)


class RunInterrupted(UserError):
    """Ctrl-C during a run: one line saying how to continue it."""

    exit_code = 130


# ------------------------------------------------------------------------------ resolving
def resolve(config: RunConfig) -> MethodClass:
    """The method a config runs: ``--baseline NAME`` from the method registry, ``--loss KEY``
    as that loss's own method (:func:`recbench.pipeline.loss_method`)."""
    if config.baseline is not None:
        return get_method(config.baseline)
    return pipeline.loss_method(str(config.loss))


def check_inputs(config: RunConfig) -> MethodClass:
    """Resolve every name in the config, raising one-line user errors; returns the method.

    Runs before any model is loaded or trained, so everything that can be known to fail from
    the config alone (names, ranges, paths, the SASRec a loss needs) fails here, in a second.
    """
    config.validate()
    paths.home()  # an unusable RECBENCH_HOME fails now, not after training
    plugins.load_plugins()  # the installed ones (entry points); idempotent
    load_dataset(config.dataset)  # unknown names raise here
    method = resolve(config)
    check_checkpoint(config, method)
    negatives.get_strategy(config.negatives)  # unknown names: "did you mean"
    if config.negatives != negatives.DEFAULT and method.family != "loss":
        raise UserError(
            f"--negatives {config.negatives}: negatives are picked for preference losses; "
            f"{method.name} trains none"
        )
    if config.from_this_stage and method.needs != "stages":
        raise UserError(
            f"--from-this-stage: {method.name} is not trained from the SFT stage; the option "
            "is for the losses and the LLM methods that start from it"
        )
    method.check(config)
    models.check_name(config.model)
    results.check_store_path(config.results or results.default_store())
    return method


def baseline_names() -> list[str]:
    """Every method ``--baseline`` accepts (registered by the core and by plugins)."""
    from recbench.methods import method_names

    return method_names()


def evaluation_examples(config: RunConfig, ds: Dataset) -> list[Example]:
    """The examples a run is scored on, for every method: the profile's protocol rows of its
    evaluation split, then the seeded subset of ``eval_examples`` every method sees."""
    s = config.settings
    return _protocol_examples(ds, s.eval_rows, s.eval_examples, s.eval_split)


# -------------------------------------------------------------------------------- the plan
@dataclass(frozen=True)
class RunPlan:
    """Everything decided about a run before any work: what it is and where it goes."""

    config: RunConfig
    method: MethodClass
    dataset: Dataset
    identity: dict[str, Any]
    run_id: str
    store: Path
    run_dir: Path
    #: ``--from-this-stage``: the weights digest of the SFT stage built here, which the run
    #: must start from (None: not asked, or the stage is not built yet)
    stage_weights: str | None = None
    #: ``--from-this-stage`` before the stage is built: which id the run takes is decided
    #: once its SFT stage exists (:func:`execute` plans again after the prerequisites)
    awaits_stage: bool = False
    #: the id this run is a retraining of (``run_id`` is then ``BASE-wWEIGHTS``)
    base_id: str | None = None


def identity_of(config: RunConfig, method: MethodClass, ds: Dataset) -> dict[str, Any]:
    """What the run's numbers depend on: method, data content, model, profile, the method's
    defining settings and the plugin file that provides it.  Where the run is stored, and
    whether it is resumed or rerun, are not part of it."""
    out: dict[str, Any] = {
        "method": method.name,
        "dataset": config.dataset,
        "data": identity.data_digest(ds),
        "model": config.model,
        "profile": config.profile,
        **method.defining_settings(config, ds),
    }
    plugin = plugins.run_provenance(method.name)
    if plugin is not None:  # an edited plugin file is another run
        out["plugin"] = plugin.get("sha256")
    return out


def plan(
    config: RunConfig,
    method: MethodClass | None = None,
    records: Iterable[Mapping[str, Any]] | None = None,
) -> RunPlan:
    """The run's identity, id, store and directory, decided in a second, without a model.

    ``records`` are the store's records where the caller has read them already (a sweep
    plans every point against one reading); only ``--from-this-stage`` consults them.
    """
    method = method or resolve(config)
    ds = load_dataset(config.dataset)
    ident = identity_of(config, method, ds)
    run_id = identity.run_id(config.dataset, method.name, ident)
    store = Path(config.results) if config.results else results.default_store()
    default_dir = paths.home() / "runs" / run_id
    run_dir = Path(config.output_dir).expanduser() if config.output_dir else default_dir
    run = RunPlan(config, method, ds, ident, run_id, store, run_dir)
    return _on_this_stage(run, records) if config.from_this_stage else run


def _on_this_stage(run: RunPlan, records: Iterable[Mapping[str, Any]] | None) -> RunPlan:
    """``--from-this-stage``: the run trained from the SFT stage built in $RECBENCH_HOME.

    A stage trained again on other hardware is another model (:mod:`recbench.journal`); runs
    trained from it pair only with runs trained from it.  Which id the run from this stage
    has is :func:`_id_from_weights`'s rule; a retrained id gets a directory of its own (the
    other run's adapter and caches belong to the other stage).  Before the stage is built
    its weights are unknown: the plan waits for them (:attr:`RunPlan.awaits_stage`).
    """
    final = pipeline.sft_stage_dir(run.config) / "final"
    if not (final / "done.json").is_file():
        return replace(run, awaits_stage=True)
    weights = journal.saved_weights_digest(final / "adapter.safetensors")
    if records is None:
        records = results.read_records(run.store)
    own = _id_from_weights(is_recorded(records, run), run, weights)
    if own == run.run_id:
        return replace(run, stage_weights=weights)
    run_dir = run.run_dir if run.config.output_dir else paths.home() / "runs" / own
    return replace(run, run_id=own, run_dir=run_dir, stage_weights=weights, base_id=run.run_id)


def _id_from_weights(recorded: list[Record], run: RunPlan, weights: str) -> str:
    """The id of ``run`` trained from the stage whose weights digest is ``weights``: the
    one lineage rule, for ``--from-this-stage`` and for a prerequisite's evaluation.

    Its own id when the store records it from these weights (among others, if the same run
    was recorded more than once) or does not record it at all; otherwise, when the store
    records it only from other weights or from none recorded (a stage trained again on
    other hardware, a record older than weight digests), :func:`identity.retrained_id`.
    """
    held = {_weights_of(r) for r in recorded}
    if not recorded or weights in held:
        return run.run_id
    return identity.retrained_id(run.run_id, weights)


# ------------------------------------------------------------------ already recorded?
def is_recorded(records: Iterable[Mapping[str, Any]], run: RunPlan) -> list[Record]:
    """The store's records of this run (empty: not recorded): the one "already done" rule.

    Records of this version carry their run id, which is the identity's digest.  Records
    written before identities covered the data (version 1) are matched on what they state:
    dataset, method, model, profile, seed, the data files' sha256, the settings and the
    hyper-parameters they recorded (:func:`_matches_earlier_record`).
    """
    if run.awaits_stage:  # which run this is waits for its SFT stage: none is recorded yet
        return []
    found = []
    earlier = run.base_id is None  # an earlier record names no stage: never a retraining
    for raw in records:
        record = raw if isinstance(raw, Record) else Record.from_json(raw)
        if record.run_id == run.run_id or (
            earlier and record.version < RECORD_VERSION and _matches_earlier_record(record, run)
        ):
            found.append(record)
    return found


def _same(a: object, b: object) -> bool:
    """Equal as recorded values: numbers by value (3 == 3.0), the rest as they are."""
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool | str):
        return float(a) == float(b)
    return a == b


def _matches_earlier_record(record: Record, run: RunPlan) -> bool:
    if run.config.negatives != negatives.DEFAULT:  # earlier records all drew them uniformly
        return False
    return not _other_data(record, run) and _same_point(record, run)


def _other_data(record: Record, run: RunPlan) -> list[str]:
    """The splits whose file the record ran on differs from the dataset's now (a re-import, a
    rebuild): ``SPLIT sha256 RECORDED..., now CURRENT...`` per split, empty when none."""
    files = record.run_settings.dataset_files
    return [
        f"{split} {files[split][:8]}..., now {run.dataset.split_spec(split).sha256[:8]}..."
        for split in sorted(files.keys() & set(SPLITS))
        if files[split] != run.dataset.split_spec(split).sha256
    ]


def recorded_on_other_data(records: Iterable[Mapping[str, Any]], run: RunPlan) -> list[str]:
    """Why a run that is not recorded may look as if it were: records of the same point (method,
    seed, settings, hyper-parameters) made on other split files than the dataset holds now.
    Such records never count as this run (the numbers came from other data); a dry run says
    so instead of leaving the user to wonder why a finished study has points left."""
    found: list[str] = []
    for raw in records:
        record = raw if isinstance(raw, Record) else Record.from_json(raw)
        differ = _other_data(record, run)
        if differ and _same_point(record, run) and "; ".join(differ) not in found:
            found.append("; ".join(differ))
    return found


def _same_point(record: Record, run: RunPlan) -> bool:
    """Whether ``record`` states the run's method, seed, model and settings, data aside."""
    config, method = run.config, run.method
    if (record.dataset, record.method, record.profile) != (
        config.dataset, method.name, config.profile,
    ) or record.seed not in (config.seed, method.recorded_seed(config), None):  # fmt: skip
        return False
    if method.family in ("loss", "llm_baseline") and record.model != config.model:
        return False
    if record.hparams.get("negatives", negatives.DEFAULT) != config.negatives:
        return False
    resolved = asdict(config.settings)
    stated = {k: record.settings[k] for k in resolved.keys() & record.settings.keys()}
    if not all(_same(v, resolved[k]) for k, v in stated.items() if k not in _DESCRIPTIVE):
        return False
    expected = expected_hparams(config)
    hparams = record.hparams
    return all(_same(hparams[k], expected[k]) for k in hparams.keys() & expected.keys())


_DESCRIPTIVE = frozenset({"name", "summary", "caveat"})


def expected_hparams(config: RunConfig) -> dict[str, object]:
    """What a run of ``config`` records as hparams: a loss's defaults, its overrides and the
    n_neg used (a baseline records its own, which nothing here predicts)."""
    if config.loss is None:
        return {}
    hparams: dict[str, object] = dict(losses.get_spec(config.loss).hparams)
    hparams.update(config.loss_params)
    hparams["n_neg"] = config.settings.n_neg
    hparams["negatives"] = config.negatives
    return hparams


# ---------------------------------------------------------------------------- executing
def execute(
    config: RunConfig, progress: bool = True, output: Output | None = None
) -> dict[str, Any]:
    """Check, plan, skip or run a method, record it; returns what the CLI prints.

    ``output`` says how the run is watched (its progress bars and trackers; it changes nothing
    the run computes, and is not part of its identity); ``progress=False`` is the short form of
    a quiet one, for scripts and tests.
    """
    output = (output or Output("normal" if progress else "quiet")).check()
    method = check_inputs(config)
    main = plan(config, method)
    if not config.rerun and _recorded_now(main):  # in a second, before any prerequisite
        return {"run_id": main.run_id, "skipped": "already recorded"}
    # before any prerequisite runs: the SFT stage it would continue is the state to resume
    _check_resume(config, main, rundir.holds_run_state(main.run_dir))
    summary: dict[str, Any] = {}
    prerequisites = method.prerequisites(config)
    if main.awaits_stage and not prerequisites:  # which run this is needs the stage: build it
        prerequisites = [pipeline.sft_prerequisite(config)]
    for prerequisite in prerequisites:
        log.info("%s first: the %s run it starts from", main.run_id, prerequisite.method)
        before = _run(plan(prerequisite), output, prerequisite=True)
        if "evaluation" in before:
            summary["sft_eval"] = before["evaluation"]
    if main.awaits_stage:  # its SFT stage is built now: which run is this?
        main = plan(config, method)
    summary.update(_run(main, output))
    keep_example_users(summary.get("results"), config)
    return summary


def _run(run: RunPlan, output: Output, prerequisite: bool = False) -> dict[str, Any]:
    """Skip a recorded run, or own its directory, do the work and record it once."""
    from accelerate import PartialState

    from recbench import locks

    state = PartialState()
    config = run.config
    rerun = config.rerun and not prerequisite
    if not rerun and not prerequisite and _recorded_now(run):
        return {"run_id": run.run_id, "skipped": "already recorded"}
    with locks.exclusive_for_run(run.run_dir, f"run {run.run_id}", state):
        if not rerun and not prerequisite and _recorded_now(run):  # another process just did
            return {"run_id": run.run_id, "skipped": "already recorded"}
        if state.is_main_process:
            rundir.claim(run.run_dir, run.run_id, run.identity, config.output_dir is not None)
        state.wait_for_everyone()
        log.info("run %s (%s on %s, %s profile) in %s", run.run_id, run.method.name,
                 config.dataset, config.profile, run.run_dir)  # fmt: skip
        if output.report_to and run.method.needs == "stages":
            log.info("training curves (%s): %s", ", ".join(output.report_to),
                     run.run_dir / TRACKER_DIR)  # fmt: skip
        elif output.report_to:
            log.warning("--report-to %s: %s trains no LLM stage, so nothing is sent to it",
                        ",".join(output.report_to), run.method.name)  # fmt: skip
        context = RunContext(config, run.dataset, run.run_dir, run.run_id, output.progress, output)
        try:
            return _work(run, run.method(context), state, prerequisite)
        except KeyboardInterrupt:
            raise RunInterrupted(
                f"interrupted; checkpoints are in {run.run_dir} and $RECBENCH_HOME/stages: "
                "run the same command with --resume to continue"
            ) from None


def _recorded_now(run: RunPlan) -> bool:
    return bool(is_recorded(results.read_records(run.store), run))


def _check_resume(config: RunConfig, run: RunPlan, started_before: bool) -> None:
    """``--resume`` with nothing to continue says so, instead of silently starting over."""
    if config.resume is not True or started_before:
        return
    if run.method.needs == "stages" and pipeline.stage_started(config):
        return  # the shared SFT stage was interrupted: that is what continues
    raise UserError(
        f"--resume: nothing to resume: no interrupted run {run.run_id} in {run.run_dir} "
        "(were other options used?); run without --resume"
    )


def _work(run: RunPlan, method: Method, state, prerequisite: bool) -> dict[str, Any]:
    """Prepare, score, generate; then the metrics, records and the one append."""
    load = results.LoadMeter()
    method.prepare()
    if run.stage_weights is not None and method.facts.weights not in (None, run.stage_weights):
        raise UserError(
            f"the SFT stage changed after {run.run_id} was planned (weights "
            f"{run.stage_weights}, now {method.facts.weights}: trained again meanwhile?); "
            "run the command again"
        )
    run_id = run.run_id
    if prerequisite:  # built now: is this very model's evaluation recorded?
        run_id = _prerequisite_id(run, method.facts.weights)
        if run_id is None:
            return {"run_id": run.run_id, "skipped": "already recorded"}
    scored = _evaluate(run, method)
    evaluation, timings, outcomes, facts = (
        scored.evaluation,
        scored.timings,
        scored.outcomes,
        method.facts,
    )
    output: dict[str, Any] = {"run_id": run_id, "run_dir": str(run.run_dir), **facts.summary}
    if caveat := run.config.settings.caveat:  # after the method's own note, if any
        notes = (output.get("note"), f"{run.config.profile} profile: {caveat}")
        output["note"] = "; ".join(n for n in notes if n)
    output["evaluation"] = evaluation
    output["timings"] = {**facts.timings, **timings}
    if state.is_main_process:
        records = _records(run, method, run_id, evaluation, {**facts.timings, **timings}, load)
        output["results"] = str(_record(run, records, outcomes))
    return output


def _prerequisite_id(run: RunPlan, weights: str | None) -> str | None:
    """The id a prerequisite's evaluation is recorded under, or None when it is recorded.

    :func:`_id_from_weights` decides the id.  When it is a retrained id (the store's record
    is of another model), this model is evaluated again under it, with a warning, so that
    every run is paired with the very model it started from.
    """
    import warnings

    records = results.read_records(run.store)
    recorded = is_recorded(records, run)
    if weights is None:  # a model without a digest: nothing to tell it apart by
        return None if recorded else run.run_id
    own = _id_from_weights(recorded, run, weights)
    if own == run.run_id:
        return None if recorded else run.run_id
    if any(r.run_id == own for r in records):
        return None
    theirs = ", ".join(sorted({str(_weights_of(r) or "not recorded") for r in recorded}))
    # a record from before records named their data files may have read another build
    unnamed = any(not r.run_settings.dataset_files for r in recorded)
    why = "other hardware, or data that record does not name" if unnamed else "other hardware"
    warnings.warn(
        f"the {run.method.name} model of seed {run.config.seed} (weights {weights}) is not the "
        f"one evaluated as {run.run_id} in {run.store} (weights {theirs}; trained again on "
        f"{why}?): evaluating it as {own}, which the runs trained from it are paired with",
        stacklevel=2,
    )
    return own


def _weights_of(record: Record) -> str | None:
    return record.run_settings.sft_weights


@dataclass
class Evaluated:
    """A method's evaluation on the runner's examples, before anything is recorded."""

    evaluation: dict[str, dict[str, float]]
    timings: dict[str, float]
    outcomes: Outcomes
    examples: list[Example]
    method: Method
    scores: Scores | None = None
    answers: Answers | None = None


def _evaluate(run: RunPlan, method: Method) -> Evaluated:
    """Each mode the method provides, scored by the protocol's metric code."""
    examples = evaluation_examples(run.config, run.dataset)
    outcomes = Outcomes()
    out = Evaluated({}, {}, outcomes, examples, method)
    started = time.perf_counter()
    out.scores = scores = method.score(examples)
    if scores is not None:
        out.evaluation["ranking"] = scores_report(
            run.dataset, examples, scores.values, scores.lengths, outcomes
        )
        out.timings["eval_ranking_seconds"] = time.perf_counter() - started + scores.reused_seconds
    if run.config.settings.generation:
        started = time.perf_counter()
        out.answers = answers = method.generate(examples)
        if answers is not None:
            out.evaluation["generation"] = answers_report(
                run.dataset, examples, answers.texts, outcomes
            )
            seconds = time.perf_counter() - started + answers.reused_seconds
            out.timings["eval_generation_seconds"] = seconds
            _write_answers(run.run_dir, examples, answers.texts)
    if not out.evaluation:
        raise UserError(f"method {run.method.name} gave neither scores nor answers")
    out.evaluation.update(method.facts.extra_modes)
    return out


def evaluate(config: RunConfig, progress: bool = False) -> Evaluated:
    """Run a method on its examples and return its evaluation, recording nothing (for scripts,
    benchmarks and tests; ``recbench run`` is :func:`execute`).  The run directory is claimed
    as for a recorded run, so what it trains is found again by the recorded run."""
    from accelerate import PartialState

    from recbench import locks

    method = check_inputs(config)
    run = plan(config, method)
    with locks.exclusive_for_run(run.run_dir, f"run {run.run_id}", PartialState()):
        rundir.claim(run.run_dir, run.run_id, run.identity, config.output_dir is not None)
        instance = method(RunContext(config, run.dataset, run.run_dir, run.run_id, progress))
        instance.prepare()
        return _evaluate(run, instance)


def _write_answers(run_dir: Path, examples: list[Example], texts: list[str]) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    lines = (
        json.dumps({"key": ex.key, "answer": t}) + "\n"
        for ex, t in zip(examples, texts, strict=True)
    )
    rundir.write_atomic(run_dir / "answers.jsonl", "".join(lines))


def _records(
    run: RunPlan,
    method: Method,
    run_id: str,
    evaluation: dict[str, dict[str, float]],
    timings: dict[str, float],
    load: results.LoadMeter,
) -> list[dict]:
    """The run's records, one shape of settings for every method."""
    from recbench.trainer import peak_memory_mb

    config, facts, s = run.config, method.facts, run.config.settings
    settings = {
        **asdict(s),
        "config": config.to_dict(),
        "record_version": RECORD_VERSION,
        "identity": identity.digest(run.identity),
        "data": run.identity["data"],
        # the files trained and scored on: what a store's users map is checked against
        "dataset_files": {
            split: run.dataset.split_spec(split).sha256 for split in ("train", s.eval_split)
        },
        "eval_seed": EVAL_SEED,
        **facts.settings,
    }
    if (plugin := plugins.run_provenance(method.name)) is not None:
        settings["plugin"] = plugin  # name, file and sha256 of a plugin's loss or method
    header = {
        "run_id": run_id,
        "dataset": config.dataset,
        "method": method.name,
        "family": method.family,
        "model": facts.model or config.model,
        "seed": method.recorded_seed(config),
        "profile": config.profile,
        "hparams": facts.hparams,
        "settings": settings,
    }
    # like the stage times, the peak covers the stages the run stands on, even where another
    # process trained them (their summaries keep it)
    cost = {**timings, "peak_memory_mb": max(peak_memory_mb(), facts.stage_peak_mb),
            **load.readings()}  # fmt: skip
    return results.run_records(header, evaluation, cost, split=s.eval_split)


def _record(run: RunPlan, records: list[dict], outcomes: Outcomes) -> Path:
    """The one append of a run's records, all or none (a rerun adds beside the earlier ones;
    the reports take the latest)."""
    return results.append_records(records, run.store, outcomes)


def keep_example_users(store: str | None, config: RunConfig) -> Path | None:
    """Keep the users of the evaluation split's examples beside the store's outcomes, once, so
    that ``recbench compare`` clusters its paired tests by user from the store alone.

    A store holding another version of the split's map keeps it, with one warning line: the
    run's records are what matter here, not the map.  Returns the path written, if any.
    """
    path = Path(store) if store else None
    if path is None or not path.is_file():
        return None
    split = config.settings.eval_split
    try:
        return results.write_example_users(path, load_dataset(config.dataset).example_users(split))
    except ValueError as exc:
        log.warning("warning: %s", exc)
        return None
