"""The one configuration object shared by the CLI and the Python API.

``recbench run`` only parses options into a :class:`RunConfig`; ``recbench.api.run`` validates it
and does the work.  Profiles bundle the settings that make a run tiny (``smoke``), meaningful on
a 2-core laptop (``cpu``) or comparable with the paper (``paper``); any field set explicitly by the
user overrides the profile.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from recbench.errors import UserError
from recbench.registry import did_you_mean

DEFAULT_LOSS = "napo"  # what `recbench run` trains when it is given neither --loss nor --baseline
MAX_NEGATIVES = 19  # 20 candidates = target + 19 negatives
#: Seeds are non-negative and fit in 32 bits, the widest range every seeded library accepts
#: (numpy refuses negative seeds; its legacy generator refuses seeds of 2**32 and more).
MAX_SEED = 2**32 - 1
#: Profile settings that also have an option of their own on ``recbench run``.
_OWN_OPTIONS = ("n_neg", "train_examples", "eval_examples", "aux_checkpoint")


@dataclass(frozen=True)
class Profile:
    """Size and schedule of a run; docs/concepts.md ("Profiles") gives the reasoning behind
    each value."""

    name: str
    summary: str
    train_examples: int | None  # None = the whole training split
    eval_examples: int | None  # None = the whole test split
    sft_epochs: float
    pref_epochs: float
    batch_size: int
    grad_accum: int
    learning_rate: float
    sft_learning_rate: float
    lora_r: int
    lora_alpha: int
    max_prompt_tokens: int
    n_neg: int
    warmup_ratio: float = 0.05
    generation: bool = True  # also evaluate in generation mode
    max_new_tokens: int = 20
    # greedy answers continue the ranking pass's prompt keys and values instead of encoding
    # every prompt again (recbench.decoding): generation then costs a fraction of what it
    # did; the same answers up to float rounding (benchmarks/bench_generation_cache.py
    # counts how many change).  Not with eval_precision="screened", whose ranking is bf16.
    generation_from_ranking: bool = False
    precision: str = "auto"
    # SASRec for NAPO's sharing and margin: "default" (released for steam, recbench-trained
    # otherwise), "released", "trained" or a checkpoint directory.
    aux_checkpoint: str = "default"
    checkpoint_every: int = 10  # optimizer steps between resumable checkpoints
    # which test rows are examples: "all" (every row with len_seq >= 3, as S-DPO and NAPO
    # evaluate) or "last" (each test user's last row, as LLaRA's and TALLRec's code evaluate)
    eval_rows: str = "all"
    # sequential baselines and MoRec: None trains them fully (the published protocol); a number
    # trains one epoch of at most that many steps on the profile's training examples, an
    # end-to-end check of seconds
    baseline_train_steps: int | None = None
    # prompts list only the last this-many history items (None: all the example has, at most
    # 10); the sequential baselines always read the whole window
    history_items: int | None = None
    # distinct training examples of the SFT stage (None: train_examples); the preference stage
    # trains on the first train_examples of the same seeded order
    sft_examples: int | None = None
    # the split a run is scored on: "test", or "val" to choose settings without seeing test
    eval_split: str = "test"
    # precision of evaluation: "fp32" whatever the training precision, or "bf16" autocast,
    # which is cheaper where bf16 is native (benchmarks/bench_bf16_eval.py measures whether
    # it changes the recommendations), or "screened": bf16 ranking with the close examples
    # scored again in fp32 (benchmarks/bench_fast_ranking.py; generation in fp32)
    eval_precision: str = "fp32"
    # recompute each decoder layer's activations in the backward instead of keeping them
    # (non-reentrant gradient checkpointing, recbench.trainer.set_gradient_checkpointing): the
    # same gradients (tests/test_memory.py), a fraction of a training step's memory, more time
    # per step.  It changes how the gradients are computed, not what is trained, so it is not
    # part of the SFT stage's key (recbench.pipeline._sft_identity); a loss run's id holds
    # every setting (Profile.identity_settings), this one too.
    gradient_checkpointing: bool = False
    # the dtype the frozen base weights are loaded in: "fp32", "bf16", or "auto" (bf16 when
    # the run trains in bf16).  In fp32, bf16 training keeps the weights in fp32 and casts a
    # bf16 copy of each at every use: at 7B that is 27 GB of weights plus 13.5 GB of copies,
    # which no 24 GB GPU holds (issue 36); in bf16 the base takes 13.5 GB and nothing is cast,
    # but the residual stream and the evaluation are then computed in bf16 too.  Part of the
    # SFT stage's key when not fp32.
    base_dtype: str = "fp32"
    # "nf4": the frozen base quantised to 4 bits with bitsandbytes (QLoRA, as LLaMA-Factory
    # and DynamicPO train 7B models), computing in bf16; needs bitsandbytes and a CUDA GPU.
    # Part of the SFT stage's key when not "none".
    quantization: str = "none"
    # what a run of this profile can and cannot show, printed with its results
    caveat: str = ""

    def identity_settings(self) -> dict[str, object]:
        """The settings as a run's identity holds them: all but the descriptive ones, and a
        setting of :data:`LATER_SETTINGS` only where it differs from the value it stands at there
        (so every run recorded before that setting existed keeps its id)."""
        out = {k: v for k, v in asdict(self).items() if k not in _DESCRIPTIVE}
        for name, before in LATER_SETTINGS.items():
            if out.get(name) == before:
                del out[name]
        return out


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        summary="tiny: two steps per stage on 8 examples with short prompts, for tests (~1 min)",
        train_examples=8,
        eval_examples=4,
        sft_epochs=1,
        pref_epochs=1,
        batch_size=4,
        grad_accum=1,
        learning_rate=1e-4,
        sft_learning_rate=3e-4,
        lora_r=4,
        lora_alpha=8,
        max_prompt_tokens=128,
        n_neg=3,
        generation=True,
        max_new_tokens=8,
        aux_checkpoint="released",
        checkpoint_every=1,
        # no warm-up: with two steps, a warm-up step would train at learning rate 0
        warmup_ratio=0.0,
        baseline_train_steps=2,
        # as the profiles it stands in for: a smoke run checks the code path they train with
        gradient_checkpointing=True,
        caveat="a smoke run checks that every stage runs end to end (two optimizer steps "
        "each, 4 test examples); its metrics measure nothing about the method",
    ),
    "cpu": Profile(
        name="cpu",
        summary="a 2-core laptop: 1,024 training examples, bf16 autocast, 300 test examples",
        train_examples=1024,
        eval_examples=300,
        sft_epochs=1,
        pref_epochs=1,
        batch_size=8,
        grad_accum=1,
        learning_rate=1e-4,
        sft_learning_rate=1e-3,
        lora_r=16,
        lora_alpha=32,
        max_prompt_tokens=512,
        n_neg=3,
        precision="bf16",
        # as the study profile's (see there): a laptop's memory is the limit
        gradient_checkpointing=True,
    ),
    "study": Profile(
        name="study",
        summary="the powered CPU study: 2,048 distinct SFT examples (lr 3e-3), prompts with "
        "the last 5 history items, 1,000 test examples (SFT examples chosen on validation: "
        "reports/movielens-study-validation)",
        train_examples=1024,
        sft_examples=2048,
        history_items=5,
        eval_examples=1000,
        sft_epochs=1,
        pref_epochs=1,
        batch_size=8,
        grad_accum=1,
        learning_rate=1e-4,
        sft_learning_rate=3e-3,
        lora_r=16,
        lora_alpha=32,
        max_prompt_tokens=512,
        n_neg=3,
        # pinned, not "auto": one study, one precision, whichever CPU a session lands on (a
        # CPU without bf16 instructions emulates it and is several times slower; it warns)
        precision="bf16",
        # with tcmalloc (recbench.allocator), a short SimS-DPO run with 19 negatives peaks at
        # 2.7 GB instead of 9.9 (glibc, no checkpointing), so two jobs fit side by side; its
        # stages take 0.96-1.37x as long (docs/performance.md, "Memory and speed")
        gradient_checkpointing=True,
    ),
    "paper": Profile(
        name="paper",
        summary="the paper's settings (3 epochs, lr 1e-5, effective batch 128, 16-example "
        "micro-batches); for GPUs",
        train_examples=None,
        eval_examples=None,
        sft_epochs=3,
        pref_epochs=3,
        batch_size=16,
        grad_accum=8,
        learning_rate=1e-5,
        sft_learning_rate=1e-4,
        lora_r=16,
        lora_alpha=32,
        max_prompt_tokens=512,
        n_neg=3,
        # 7B-scale activations at micro-batch 16 are tens of GB without it (issue 36): on a
        # GPU memory, not time, is what limits the paper's settings
        gradient_checkpointing=True,
        # bf16 on a GPU: the base in the dtype it is trained in (a 7B base in fp32 alone
        # outgrows a 24 GB GPU)
        base_dtype="auto",
    ),
}


Value = float | int | str | bool


def parse_value(raw: str) -> Value:
    """``"true"`` -> True, ``"3"`` -> 3, ``"0.5"`` -> 0.5, anything else stays a string.

    The one reading of a command-line value for every ``KEY=VALUE`` option (``--set``,
    ``--param``, the sweep's lists); the setting or hyper-parameter it lands in checks its type.
    """
    text = raw.strip()
    if text.lower() in {"true", "false"}:
        return text.lower() == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            continue
    return text


def split_assignments(items: Sequence[str], option: str) -> dict[str, str]:
    """``["lora-r=8", "beta=0.5"]`` -> {"lora_r": "8", "beta": "0.5"}; a key given twice, or an
    item without ``=``, is a one-line error naming ``option``."""
    out: dict[str, str] = {}
    given: dict[str, str] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"{option} expects KEY=VALUE, got '{item}'")
        name = key.strip().replace("-", "_")
        if name in given:
            raise UserError(f"{name} given twice: {option} {given[name]} and {option} {item}")
        given[name] = item
        out[name] = raw
    return out


def parse_assignments(items: Sequence[str], option: str) -> dict[str, Value]:
    """``KEY=VALUE`` items as typed values (:func:`parse_value`)."""
    return {k: parse_value(v) for k, v in split_assignments(items, option).items()}


def check_seed(seed: int, option: str = "--seed") -> None:
    """Seeds are integers in ``[0, MAX_SEED]``; anything else is refused with one line."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise UserError(f"{option} must be an integer in [0, {MAX_SEED}], got {seed!r}")


def check_output_path(option: str, path: Path | str, kind: str = "file") -> None:
    """Refuse an output path that could only fail when written (a file where a directory must
    be, or the reverse; a parent that is a file; a read-only place); creates nothing.

    ``kind`` is ``"file"`` or ``"dir"``: what ``path`` itself must be, once it exists.
    """
    target = Path(path).expanduser()
    if target.exists():
        if kind == "dir" and not target.is_dir():
            raise UserError(f"{option} {path} exists and is not a directory")
        if kind == "file" and target.is_dir():
            raise UserError(
                f"{option} {path} is a directory; give a file such as "
                f"{Path(path) / 'results.jsonl'}"
            )
        probe = target
    else:
        probe = target.parent
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        if probe.exists() and not probe.is_dir():
            raise UserError(f"{option} {path} cannot be created: {probe} is a file")
    if not os.access(probe, os.W_OK):
        raise UserError(f"{option} {path} is not writable ({probe} is read-only)")


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise UserError(
            f"unknown profile '{name}'{did_you_mean(name, list(PROFILES))}; "
            f"known: {', '.join(PROFILES)}"
        )
    return PROFILES[name]


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a run; recorded in full with its results so it can be repeated."""

    dataset: str = "lastfm"
    loss: str | None = DEFAULT_LOSS
    baseline: str | None = None
    model: str = "smollm2-135m"
    profile: str = "cpu"
    seed: int = 0
    n_neg: int | None = None
    loss_params: dict[str, float | int | str | bool] = field(default_factory=dict)
    train_examples: int | None = None
    eval_examples: int | None = None
    checkpoint: str | None = None  # baselines: "released" or a path
    aux_checkpoint: str | None = None  # NAPO's SASRec; None = the profile's choice
    negatives: str = "random"  # how a loss's negatives are picked (recbench.negatives)
    overrides: dict[str, float | int | str | bool] = field(default_factory=dict)  # profile fields
    output_dir: Path | None = None
    results: Path | None = None
    resume: bool | str = False  # True: continue an interrupted run (--resume); "auto": if any
    rerun: bool = False  # run again although the store records this run (--rerun)
    #: --from-this-stage: where the store records this run trained from another training of
    #: its SFT stage, train it again from the stage built here (recorded as ID-wWEIGHTS)
    from_this_stage: bool = False

    def __post_init__(self) -> None:
        # ``loss`` defaults to napo for a run that names nothing; a baseline run has no loss
        # (the CLI refuses --loss with --baseline; the API drops the default here)
        if self.baseline is not None and self.loss == DEFAULT_LOSS:
            object.__setattr__(self, "loss", None)

    def validate(self) -> RunConfig:
        """Cheap checks before any heavy work; raises :class:`UserError` with one line."""
        get_profile(self.profile)
        names = (("--loss", self.loss), ("--baseline", self.baseline),
                 ("--negatives", self.negatives))  # fmt: skip
        for option, name in names:
            if name is not None and not str(name).strip():
                raise UserError(
                    f"{option} is empty (an unset shell variable?); `recbench methods` lists "
                    "the names"
                )
        if self.baseline is None and self.loss is None:
            raise UserError("choose a loss (--loss KEY) or a baseline (--baseline NAME)")
        self._check_numbers()
        values = self.resolved()  # checks --set names and types
        for name, value in values.items():
            _check_setting(self._option(name), name, value)
        if values["generation_from_ranking"] and values["eval_precision"] == "screened":
            raise UserError(
                "generation_from_ranking=true needs eval_precision fp32 or bf16: a screened "
                "ranking scores in bf16 and would hand its bf16 prompts to generation"
            )
        self._check_paths()
        return self

    def _check_numbers(self) -> None:
        """Types and ranges of the numeric fields, and settings given twice in two ways."""
        for name in ("seed", "n_neg", "train_examples", "eval_examples"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise UserError(f"--{name.replace('_', '-')} expects an integer, got {value!r}")
        check_seed(self.seed)
        for name in _OWN_OPTIONS:
            if getattr(self, name) is not None and name in self.overrides:
                raise UserError(
                    f"{name} given twice: --{name.replace('_', '-')} {getattr(self, name)} "
                    f"and --set {name}={self.overrides[name]}; keep one"
                )

    def _option(self, name: str) -> str:
        """How the user set ``name``: its own option (``--n-neg``) or ``--set name``."""
        if name in self.overrides and getattr(self, name, None) is None:
            return f"--set {name}"
        return f"--{name.replace('_', '-')}"

    def _check_paths(self) -> None:
        """Paths that would only fail when the run ends (after hours of training)."""
        if self.results is not None:
            check_output_path("--results", self.results, "file")
            store = Path(self.results).expanduser()
            if store.suffix != ".jsonl" and store.is_file() and store.stat().st_size:
                raise UserError(
                    f"--results {self.results} exists and is not a results store (a .jsonl "
                    "file); records are only appended to a new file or a .jsonl store"
                )
        if self.output_dir is not None:
            check_output_path("--output-dir", self.output_dir, "dir")

    @property
    def method(self) -> str:
        return self.baseline or self.loss or ""

    @property
    def settings(self) -> Profile:
        """The profile with the user's overrides applied: what the run uses, typed and frozen.

        This is what the work reads (``config.settings.n_neg``); :meth:`resolved` is the same
        as a plain dict, for records and messages.
        """
        return Profile(**self.resolved())

    def resolved(self) -> dict:
        """Profile values with the user's overrides applied (what the run actually uses)."""
        profile = get_profile(self.profile)
        values = asdict(profile)
        for name, value in self.overrides.items():
            if name not in values or name in _DESCRIPTIVE:
                known = [k for k in values if k not in _DESCRIPTIVE]
                raise UserError(
                    f"--set: unknown profile setting '{name}'{did_you_mean(name, known)}; "
                    f"known: {', '.join(known)}"
                )
            values[name] = _coerce_setting(name, value)
        for name in _OWN_OPTIONS:
            if getattr(self, name) is not None:
                values[name] = getattr(self, name)
        return values

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        for key in ("output_dir", "results"):
            if out[key] is not None:
                out[key] = str(out[key])
        return out

    def with_updates(self, **changes: object) -> RunConfig:
        return replace(self, **changes)


#: Profile fields that describe it and change nothing in a run (not settable with --set).
_DESCRIPTIVE = frozenset({"name", "summary", "caveat"})
#: Settings added after runs had been recorded, with the value that gives the behaviour from
#: before each existed.  At that value a setting stays out of a run's identity, so adding it
#: changed no run id (a sweep finds its recorded and half-trained runs again); set otherwise,
#: it joins the identity.  A new setting that leaves the numbers as they were belongs here.
LATER_SETTINGS: dict[str, object] = {"generation_from_ranking": False}
#: Settings that must be positive integers (0 or a negative would crash or silently do nothing).
_POSITIVE_INTS = frozenset(
    {
        "train_examples",
        "eval_examples",
        "batch_size",
        "grad_accum",
        "lora_r",
        "lora_alpha",
        "max_prompt_tokens",
        "max_new_tokens",
        "checkpoint_every",
        "history_items",
        "sft_examples",
    }
)
#: Settings that must be finite and > 0.
_POSITIVE_FLOATS = frozenset({"sft_epochs", "pref_epochs", "learning_rate", "sft_learning_rate"})
PRECISIONS = ("auto", "fp32", "bf16")
#: "screened": ranking scored in bf16, the close examples again in fp32
#: (recbench.evaluation.screened_rank); generation stays fp32.
EVAL_PRECISIONS = ("fp32", "bf16", "screened")
BASE_DTYPES = ("fp32", "bf16", "auto")
QUANTIZATIONS = ("none", "nf4")
EVAL_ROWS = ("all", "last")
EVAL_SPLITS = ("test", "val")
#: Settings that take one of a few names.
_CHOICES = {
    "eval_rows": EVAL_ROWS,
    "eval_split": EVAL_SPLITS,
    "eval_precision": EVAL_PRECISIONS,
    "precision": PRECISIONS,
    "base_dtype": BASE_DTYPES,
    "quantization": QUANTIZATIONS,
}
_TRUE, _FALSE = {"1", "true", "yes"}, {"0", "false", "no"}


def _setting_types() -> dict[str, str]:
    """Declared type of each profile field (``int``, ``float``, ``bool``, ``str``).

    The annotation, not the default's type, decides: ``sft_epochs=1`` is a float setting even
    though a profile writes it as ``1``.
    """
    return {f.name: str(f.type).split("|")[0].strip() for f in fields(Profile)}


def _coerce_setting(name: str, value: object) -> object:
    """Cast a ``--set`` value to the declared type of the profile field it overrides.

    Refuses rather than rounds: ``lora_r=8.5`` or ``generation=maybe`` must not silently become
    8 or False, since the run would then record settings the user did not ask for.
    """
    kind = _setting_types()[name]
    where = f"--set {name}={value}"
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "bool":
        text = str(value).lower()
        if text in _TRUE | _FALSE:
            return text in _TRUE
        raise UserError(f"{where}: expected true or false")
    if kind == "int":
        if is_number and float(value).is_integer():
            return int(value)
        raise UserError(f"{where}: expected an integer")
    if kind == "float":
        if is_number:
            return float(value)
        raise UserError(f"{where}: expected a number")
    return str(value)


def _check_setting(option: str, name: str, value: object) -> None:
    """Range of one resolved setting; ``option`` is how the user gave it, for the message."""
    if value is None:
        return
    if name == "n_neg" and not 1 <= int(value) <= MAX_NEGATIVES:
        raise UserError(
            f"{option} {value} out of range: each example has {MAX_NEGATIVES} negatives "
            f"(use 1 to {MAX_NEGATIVES})"
        )
    if name in _POSITIVE_INTS and int(value) < 1:
        raise UserError(f"{option} must be at least 1, got {value}")
    if name in _POSITIVE_FLOATS and not (math.isfinite(float(value)) and float(value) > 0):
        raise UserError(f"{option} must be a finite number > 0, got {value}")
    if name == "warmup_ratio" and not 0.0 <= float(value) <= 1.0:
        raise UserError(f"{option} must be in [0, 1], got {value}")
    choices = _CHOICES.get(name)
    if choices is not None and value not in choices:
        listed = " or ".join(choices) if len(choices) == 2 else ", ".join(choices)
        raise UserError(
            f"{option}: unknown {name} '{value}'{did_you_mean(str(value), list(choices))}; "
            f"use {listed}"
        )
