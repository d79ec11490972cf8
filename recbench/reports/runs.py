"""From long-format result records to one row per run, and the configuration each table shows.

The store holds one record per (run, metric).  Reports need the opposite shape: one row per run
with its metrics side by side, exactly one run per (dataset, method, hyper-parameters, seed) (the
latest, when a point was run twice), and, for every method, one *reference* hyper-parameter
configuration, so that a sweep over rho does not leak five NAPO variants into the main table.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from recbench import results
from recbench.errors import UserError
from recbench.records import instant
from recbench.registry import did_you_mean

# Run-level columns (everything else in a runs frame is a "mode:metric" column).
RUN_COLUMNS = (
    "run_id",
    "time",
    "dataset",
    "method",
    "family",
    "model",
    "profile",
    "seed",
    "hparams",
    "hkey",
    "hardware",
    "machine",  # the processor (or GPU) and threads, in a few words
    "outcomes",  # mode -> the record's reference to its per-example outcomes (paired tests)
    "sft_stage",  # digest of the SFT stage the run's model started from ("" when not recorded)
    "split_sha256",  # sha256 of the split file the run was scored on ("" when not recorded)
    "train_sha256",  # sha256 of the train split file it was trained on ("" when not recorded)
)
#: Evaluation modes whose records may point to per-example outcomes.
OUTCOME_MODES = ("ranking", "generation")
TRAIN_TIME_PARTS = ("cost:sft_seconds", "cost:preference_seconds")
#: The negatives of a loss run that records none (every run before they were an axis).
DEFAULT_NEGATIVES = "random"
TRAIN_TIME = "cost:train_seconds"  # derived: SFT + preference stage (or a baseline's own total)


def _normal(value: object) -> object:
    """Numbers compare by value (3 == 3.0) and print without spurious ".0"."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    as_float = float(value)
    return int(as_float) if as_float.is_integer() else as_float


def hparams_key(hparams: Mapping[str, object] | None) -> str:
    """A canonical string for a hyper-parameter dict (the identity of a configuration)."""
    return json.dumps({k: _normal(v) for k, v in (hparams or {}).items()}, sort_keys=True)


def compatible(
    hparams: Mapping[str, object], reference: Mapping[str, object], ignore: Iterable[str] = ()
) -> bool:
    """True when every hyper-parameter the two dicts share (except ``ignore``) is equal.

    Keys present on one side only are not held against a run: records written by another
    version may carry fewer or more hyper-parameters, and rerunning or dropping them over that
    would be worse than comparing what both sides state.
    """
    skip = set(ignore)
    return all(
        _normal(hparams[k]) == _normal(reference[k])
        for k in hparams.keys() & reference.keys()
        if k not in skip
    )


def describe_hardware(hardware: Mapping[str, object] | None) -> str:
    """One line naming the machine a record came from (sorted keys: deterministic)."""
    if not hardware:
        return "unknown"
    return ", ".join(f"{k}={hardware[k]}" for k in sorted(hardware))


def describe_machine(hardware: Mapping[str, object] | None) -> str:
    """The processor (or GPU) a run was timed on and its threads: "Intel Xeon, 2 threads"."""
    hardware = hardware or {}
    name = hardware.get("gpu") or hardware.get("cpu_model") or hardware.get("cpu") or "unknown"
    threads = hardware.get("torch_threads")
    return f"{name}, {threads} threads" if threads else str(name)


@dataclass(frozen=True)
class Filters:
    """Which records a report covers (empty = everything in the store)."""

    datasets: tuple[str, ...] = ()
    model: str | None = None
    profile: str | None = None


def _check_values(what: str, wanted: Sequence[str], present: Iterable[object]) -> None:
    known = sorted({str(v) for v in present})
    for value in wanted:
        if value not in known:
            raise UserError(
                f"no results for {what} '{value}'{did_you_mean(value, known)}; "
                f"the store has: {', '.join(known) or 'nothing'}"
            )


def load_runs(store: Path, filters: Filters) -> pd.DataFrame:
    """Read, filter and reshape the store into one row per run (latest run per point).

    Raises a one-line :class:`UserError` when the store is empty or a filter matches nothing,
    so a typo in ``--dataset`` never yields an empty report.
    """
    records = results.read_records(store)
    if not records:
        damaged = store.is_file() and store.stat().st_size > 0
        state = "holds no readable record" if damaged else "is empty or missing"
        raise UserError(
            f"the results store {store} {state}; fill it with `recbench run` or `recbench sweep`"
        )
    _check_values("dataset", filters.datasets, (r.get("dataset") for r in records))
    if filters.model is not None:
        _check_values("model", [filters.model], (r.get("model") for r in records))
    if filters.profile is not None:
        _check_values("profile", [filters.profile], (r.get("profile") for r in records))
    chosen = [
        r
        for r in records
        if (not filters.datasets or r.get("dataset") in filters.datasets)
        and (filters.model is None or r.get("model") == filters.model)
        and (filters.profile is None or r.get("profile") == filters.profile)
    ]
    if not chosen:
        raise UserError("no results match the filters (--dataset/--model/--profile) together")
    return _to_runs(chosen)


#: What a profile is called in reports when its runs evaluated each test user's last row only.
LAST_ROWS_SUFFIX = "+last-rows"
#: ... and when they were scored on the validation split (runs that choose settings).
VALIDATION_SUFFIX = "+val"


def _protocol_profile(record: dict) -> str:
    """The record's profile, marked when it evaluated the ``last`` rows protocol or the
    validation split: such numbers are on other examples and never share a table column."""
    settings = record.get("settings") or {}
    if not isinstance(settings, dict):
        settings = {}
    last = settings.get("eval_rows") == "last"
    validation = settings.get("eval_split") == "val"
    return (
        str(record.get("profile"))
        + (LAST_ROWS_SUFFIX if last else "")
        + (VALIDATION_SUFFIX if validation else "")
    )


def chronological(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame``'s runs in the order they were recorded (ties: by run id).

    Times are compared as instants (:func:`recbench.records.instant`), never as text: a run
    recorded later in another time zone, or after a daylight-saving change, is later.
    """
    return frame.sort_values(["time", "run_id"], key=_as_instants)


def _as_instants(column: pd.Series) -> pd.Series:
    return column.map(instant) if column.name == "time" else column


def _record_order(record: dict) -> tuple[float, str, str]:
    time = record.get("time")
    return instant(time), str(time or ""), str(record.get("run_id"))


def _to_runs(records: list[dict]) -> pd.DataFrame:
    runs: dict[str, dict] = {}
    ordered = sorted(records, key=_record_order)
    for record in ordered:
        run_id = str(record.get("run_id"))
        row = runs.get(run_id)
        if row is None:
            hparams = dict(record.get("hparams") or {})
            if record.get("family") == "loss":  # recorded before negatives were an axis
                hparams.setdefault("negatives", DEFAULT_NEGATIVES)
            seed = record.get("seed")
            row = runs[run_id] = {
                "run_id": run_id,
                "time": str(record.get("time") or ""),
                "dataset": str(record.get("dataset")),
                "method": str(record.get("method")),
                "family": str(record.get("family")),
                "model": str(record.get("model")),
                "profile": _protocol_profile(record),
                "seed": int(seed) if seed is not None else -1,
                "hparams": hparams,
                "hkey": hparams_key(hparams),
                "hardware": describe_hardware(record.get("hardware")),
                "machine": describe_machine(record.get("hardware")),
                "outcomes": {},
                "sft_stage": _sft_stage(record),
                "split_sha256": "",
                "train_sha256": _dataset_file(record, "train"),
            }
        if record.get("mode") in OUTCOME_MODES and not row["split_sha256"]:
            row["split_sha256"] = _split_sha256(record)
        reference = record.get("outcomes")
        if record.get("mode") in OUTCOME_MODES and isinstance(reference, dict):
            row["outcomes"][str(record.get("mode"))] = reference
        value = record.get("value")
        row[f"{record.get('mode')}:{record.get('metric')}"] = (
            math.nan if value is None else float(value)
        )
    frame = pd.DataFrame(list(runs.values()))
    metric_columns = sorted(c for c in frame.columns if c not in RUN_COLUMNS)
    frame = frame.reindex(columns=list(RUN_COLUMNS) + metric_columns)
    parts = [c for c in TRAIN_TIME_PARTS if c in frame.columns]
    if parts:
        total = frame[parts].sum(axis=1, min_count=1)
        if TRAIN_TIME in frame.columns:  # a baseline that records its own training total
            total = total.fillna(frame[TRAIN_TIME])
        frame[TRAIN_TIME] = total
    # a point recorded twice keeps its latest run, per SFT stage: a seed's losses are paired
    # with the evaluation of the stage they started from (see latest_per_point)
    frame = chronological(frame).drop_duplicates([*POINT, "sft_stage"], keep="last")
    return frame.sort_values([*POINT, "run_id"]).reset_index(drop=True)


#: What makes two runs the same point of a study (a rerun replaces the earlier run).
POINT = ("dataset", "method", "model", "profile", "hkey", "seed")


def _split_sha256(record: dict) -> str:
    return _dataset_file(record, str(record.get("split")))


def _dataset_file(record: dict, split: str) -> str:
    """The sha256 of ``split``'s file as the record states it ("" when it states none)."""
    settings = record.get("settings")
    files = settings.get("dataset_files") if isinstance(settings, dict) else None
    sha = files.get(split) if isinstance(files, dict) else None
    return str(sha) if sha else ""


def _sft_stage(record: dict) -> str:
    settings = record.get("settings")
    stage = settings.get("sft_weights") if isinstance(settings, dict) else None
    return str(stage) if stage else ""


def table_order(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame``'s runs in the order tables prefer them, the preferred last: runs on the SFT
    stage that more runs of their seed started from come later, and equally shared ones in the
    order they were recorded.

    A seed whose SFT stage was trained twice (on two machines; see :mod:`recbench.pipeline`)
    has an SFT evaluation of each.  A table shows the one that the seed's other runs were
    mostly trained from, so that a later study adding a few runs on a retrained stage does not
    swap the SFT row under the earlier study's losses (ties: the latest).
    """
    ordered = chronological(frame)
    order = stage_sharing(ordered).reset_index(drop=True).sort_values(kind="stable").index
    return ordered.iloc[order]


def stage_sharing(frame: pd.DataFrame) -> pd.Series:
    """Per run of ``frame``: how many of its seed's runs (every method) started from its SFT
    stage; 0 for a run that names none (baselines without an LLM, records from before stages
    had a digest), which shares nothing that can be counted.  :func:`table_order` prefers the
    most shared stage, and Table 2's note names it with these counts."""
    seed = [c for c in POINT if c not in ("method", "hkey")]
    sharing = frame.groupby([*seed, "sft_stage"], dropna=False)["run_id"].transform("size")
    return sharing.where(frame["sft_stage"].astype(str) != "", 0)


def trained_from_stage(group: pd.DataFrame) -> bool:
    """Whether a method's runs were trained from their seed's SFT stage, so that each compares
    with that stage's own evaluation rather than with the SFT row: a loss (its older runs name
    no stage), or any method whose runs name the stage they started from (SPRec, its control)."""
    if group.empty:
        return False
    named = "sft_stage" in group.columns and (group["sft_stage"].astype(str) != "").any()
    return group["family"].iloc[0] == "loss" or bool(named)


def latest_per_point(frame: pd.DataFrame) -> pd.DataFrame:
    """One run per point, the one tables prefer (:func:`table_order`): in a study without
    retrained stages, the latest.  Paired tests pair every loss run with the evaluation of its
    own stage whatever the table shows."""
    latest = table_order(frame).drop_duplicates(list(POINT), keep="last")
    return latest.sort_values([*POINT, "run_id"]).reset_index(drop=True)


def matching_stage(run: pd.Series, candidates: pd.DataFrame) -> pd.Series | None:
    """The run of ``candidates`` to pair with ``run`` (same seed, or none): the latest with
    the same SFT stage, else the latest one; None when no candidate has the seed."""
    same_seed = chronological(candidates[candidates["seed"] == run["seed"]])
    if same_seed.empty:
        return None
    same_stage = same_seed[same_seed["sft_stage"] == run["sft_stage"]]
    return (same_stage if len(same_stage) else same_seed).iloc[-1]


SEQUENTIAL = "sequential"
#: Families whose runs have no LLM: their "model" is their own checkpoint or rule, so they are
#: listed next to every LLM setting of their profile rather than forming settings of their own.
WITHOUT_LLM = frozenset({SEQUENTIAL, "rule"})


#: The "model" of a setting that holds only baselines without an LLM (one per profile).
BASELINES_ONLY = "baselines"


def settings_of(runs: pd.DataFrame) -> list[tuple[str, str]]:
    """The distinct (model, profile) pairs: numbers from different pairs are never pooled.

    The model of a sequential or rule baseline is its own checkpoint or rule, not an LLM, so
    these runs do not form settings of their own: they are listed next to every LLM of their
    profile (see :func:`runs_of_setting`), as the paper's tables do, and a profile with no LLM
    run has one setting of all its baselines (named by their model if they share one, else
    :data:`BASELINES_ONLY`).
    """
    llm = runs[~runs["family"].isin(WITHOUT_LLM)]
    pairs = {(str(m), str(p)) for m, p in llm[["model", "profile"]].itertuples(index=False)}
    llm_profiles = {p for _, p in pairs}
    alone = runs[runs["family"].isin(WITHOUT_LLM) & ~runs["profile"].isin(llm_profiles)]
    for profile, group in alone.groupby("profile"):
        models = {str(m) for m in group["model"]}
        pairs.add((models.pop() if len(models) == 1 else BASELINES_ONLY, str(profile)))
    return sorted(pairs)


def runs_of_setting(runs: pd.DataFrame, model: str, profile: str) -> pd.DataFrame:
    """The runs of one setting: its model's, plus the profile's sequential and rule baselines."""
    same_profile = runs["profile"] == profile
    baselines = runs["family"].isin(WITHOUT_LLM)
    if not (same_profile & ~baselines).any():  # a profile of baselines only: one setting
        return runs[baselines & same_profile]
    return runs[((runs["model"] == model) | baselines) & same_profile]


# ------------------------------------------------------------------------- reference choice
def registry_defaults(method: str, profile: str) -> dict[str, object] | None:
    """The hyper-parameters a plain ``recbench run --loss METHOD`` records, or None if unknown."""
    from recbench.config import get_profile

    try:
        from recbench import losses

        defaults = dict(losses.get_spec(method).hparams)
    except (ImportError, KeyError, UserError):
        return None
    try:
        defaults["n_neg"] = get_profile(profile).n_neg
    except UserError:
        pass
    defaults["negatives"] = DEFAULT_NEGATIVES
    return defaults


@dataclass
class References:
    """For each (dataset, method): the reference hyper-parameters and the runs that have them."""

    hparams: dict[tuple[str, str], dict[str, object]] = field(default_factory=dict)
    notes: dict[tuple[str, str], str] = field(default_factory=dict)
    runs: pd.DataFrame = field(default_factory=pd.DataFrame)  # one per point: what tables show
    instances: pd.DataFrame = field(default_factory=pd.DataFrame)  # + other SFT stages' runs


def _pick(groups: pd.DataFrame) -> str:
    """The configuration with the most seeds (ties: the smallest key, for determinism)."""
    counts = groups.groupby("hkey")["seed"].nunique()
    best = counts.max()
    return min(counts[counts == best].index)


def choose_references(runs: pd.DataFrame) -> References:
    """Pick, per (dataset, method), the configuration the headline tables report.

    Losses report their registered defaults (with the profile's n_neg), which is what a plain
    ``recbench run`` produces; when no run has them, the most-seeded configuration is shown with
    a note naming how it differs.  Other methods (baselines) report their most-seeded
    configuration.
    """
    out = References()
    kept = []
    for (dataset, method), group in runs.groupby(["dataset", "method"], sort=True):
        family = str(group["family"].iloc[0])
        profile = str(group["profile"].iloc[0])
        expected = registry_defaults(method, profile) if family == "loss" else None
        chosen: str | None = None
        if expected is not None:
            matching = group[[compatible(h, expected) for h in group["hparams"]]]
            if len(matching):
                chosen = _pick(matching)
        if chosen is None:
            chosen = _pick(group)
            if expected is not None:
                hparams = group[group["hkey"] == chosen]["hparams"].iloc[0]
                differ = sorted(
                    f"{k}={_normal(hparams[k])}"
                    for k in hparams.keys() & expected.keys()
                    if _normal(hparams[k]) != _normal(expected[k])
                )
                out.notes[(dataset, method)] = (
                    f"{method} on {dataset}: no run at the default hyper-parameters; "
                    f"shown: {', '.join(differ)}"
                )
            elif group["hkey"].nunique() > 1:
                out.notes[(dataset, method)] = (
                    f"{method} on {dataset}: {group['hkey'].nunique()} configurations in the "
                    "store; shown: the one with the most seeds"
                )
        selected = group[group["hkey"] == chosen]
        out.hparams[(dataset, method)] = (
            expected if expected is not None else dict(selected["hparams"].iloc[0])
        )
        kept.append(selected)
    out.instances = pd.concat(kept, ignore_index=True) if kept else runs.iloc[0:0]
    out.runs = latest_per_point(out.instances)
    return out


def one_factor(runs: pd.DataFrame, refs: References, parameter: str) -> pd.DataFrame:
    """Runs that differ from their method's reference in ``parameter`` only (a 1-D study).

    A grid sweep (n_neg x rho x seed) thus yields a clean rho curve at the default n_neg and a
    clean n_neg curve at the default rho, never a mixture.  Adds a ``value`` column.
    """
    rows = []
    for index, row in runs.iterrows():
        reference = refs.hparams.get((row["dataset"], row["method"]))
        hparams = row["hparams"]
        if reference is None or parameter not in hparams:
            continue
        if compatible(hparams, reference, ignore=[parameter]):
            rows.append(index)
    selected = runs.loc[rows].copy()
    selected["value"] = [_normal(h[parameter]) for h in selected["hparams"]]
    return selected
