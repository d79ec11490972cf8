"""The LLM methods of ``recbench run``: zero-shot, the SFT stage, and every preference loss.

dataset -> examples -> prompt items -> (scorer -> loss -> trainer) -> scores and answers.
:class:`LLMRun` is the engine they share (the model, the cached SFT stage, reference log-probs,
the preference stage, candidate scores and greedy answers); the :class:`~recbench.methods.Method`
classes at the end are what the runner runs.  The SFT stage depends only on the model, data
content, seed and SFT settings, so it is cached and shared by every loss run with the same
settings, and evaluated once, as the ``sft`` method, a prerequisite of every loss run.
"""

from __future__ import annotations

import functools
import json
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import torch
from tqdm.auto import tqdm

from recbench import (
    auxiliary,
    identity,
    locks,
    losses,
    models,
    negatives,
    paths,
    rundir,
    stage_files,
)
from recbench.batches import EVAL_SEED, PromptItem, pick_examples, render, with_negatives
from recbench.config import LATER_SETTINGS, Profile, RunConfig
from recbench.data import load_dataset
from recbench.data.dataset import Dataset, Example
from recbench.errors import UserError
from recbench.evaluation import (
    generate_answers,
    rank_and_generate,
    rank_candidates,
    screened_rank,
)
from recbench.journal import Journal, fingerprint, weights_digest
from recbench.methods import Answers, Method, RunContext, Scores, register_method
from recbench.results import cpu_has_bf16
from recbench.scoring import encode_pairs, score_responses
from recbench.trainer import Stage, StageSettings, add_lora, autocast


def _digest(value: object) -> str:
    return identity.digest(value)


def _precision(requested: str) -> str:
    """``auto``: bf16 where the hardware computes it natively (a GPU, or a CPU with bf16
    instructions), else fp32; an explicit choice is kept, with a warning when bf16 would be
    emulated."""
    on_gpu = torch.cuda.is_available()
    native = torch.cuda.is_bf16_supported() if on_gpu else cpu_has_bf16()
    if requested == "auto":
        return "bf16" if native else "fp32"
    if requested == "bf16" and not native:
        warnings.warn(
            "precision bf16 on a CPU without bf16 instructions is emulated and several times "
            "slower than fp32; use --set precision=auto",
            stacklevel=2,
        )
    return requested


def _base_dtype(requested: str, precision: str) -> str:
    """The dtype the frozen base is loaded in: ``auto`` follows the training precision.

    A bf16 base under fp32 training would silently train a rounded model in fp32: refused.
    """
    if requested == "auto":
        return precision
    if requested == "bf16" and precision != "bf16":
        raise UserError(
            f"base_dtype=bf16 with precision={precision}: a bf16 base trains in bf16; "
            "use --set precision=bf16, or base_dtype=fp32"
        )
    return requested


RUN_LOCATION_FIELDS = rundir.RUN_LOCATION_FIELDS


def _training_examples(config: RunConfig, ds: Dataset) -> tuple[list, int | None, int | None]:
    """The seed's training examples in their seeded order, and how many of them go to the SFT
    and to the preference stage (their first ``sft_examples`` and ``train_examples``)."""
    s = config.settings
    sft_count, pref_count = s.sft_examples or s.train_examples, s.train_examples
    larger = None if None in (sft_count, pref_count) else max(sft_count, pref_count)
    return pick_examples(ds.examples("train"), larger, config.seed), sft_count, pref_count


def _sft_key(config: RunConfig, ds: Dataset, sft_examples: list, precision: str) -> str:
    """What names the SFT stage: everything its training depends on, nothing else.

    The data's content is part of it: a dataset re-imported under the same name with other rows
    names another stage, never the one trained on the old rows.
    """
    return _digest(_sft_identity(config, ds, sft_examples, precision))


def _sft_identity(config: RunConfig, ds: Dataset, sft_examples: list, precision: str) -> dict:
    s = config.settings
    ident = {
        "model": config.model,
        "dataset": config.dataset,
        "data": identity.data_digest(ds),
        "seed": config.seed,
        "train": [ex.key for ex in sft_examples],
        "profile": {k: getattr(s, k) for k in
                    ("sft_epochs", "batch_size", "grad_accum", "sft_learning_rate",
                     "lora_r", "lora_alpha", "max_prompt_tokens", "warmup_ratio")},
        "precision": precision,
    }  # fmt: skip
    if s.history_items is not None:  # only when set, so that earlier stages keep their keys
        ident["history_items"] = s.history_items
    base = _base_dtype(s.base_dtype, precision)
    if base != "fp32":  # likewise: an fp32 base is what every earlier stage was trained on
        ident["base_dtype"] = base
    if s.quantization != "none":
        ident["quantization"] = s.quantization
    return ident


def sft_stage_dir(config: RunConfig) -> Path:
    """Where the SFT stage of a run with ``config`` is (or will be) cached, found without a
    model: a planner asks whether it is built here before charging its training."""
    ds = load_dataset(config.dataset)
    examples, sft_count, _ = _training_examples(config, ds)
    key = _sft_key(config, ds, examples[:sft_count], _precision(config.settings.precision))
    return paths.home() / "stages" / f"sft-{key}"


def sft_stage_built(config: RunConfig) -> bool:
    """Whether the SFT stage of a run with ``config`` is built (finished) in $RECBENCH_HOME."""
    return (sft_stage_dir(config) / "final" / "done.json").is_file()


#: The settings that decide which examples a run is scored on and how.
EVALUATION_FIELDS = (
    "eval_split", "eval_rows", "eval_examples", "generation", "max_new_tokens",
    "max_prompt_tokens", "history_items", "eval_precision", "generation_from_ranking",
)  # fmt: skip


def evaluation_identity(settings: Profile) -> dict:
    """The evaluation settings of a run's identity.  A setting of
    :data:`~recbench.config.LATER_SETTINGS` among them is there only when set otherwise than
    its earlier value, so runs from before it existed keep their ids."""
    out = {k: getattr(settings, k) for k in EVALUATION_FIELDS}
    return {k: v for k, v in out.items() if k not in LATER_SETTINGS or v != LATER_SETTINGS[k]}


class LLMRun:
    """The engine of every LLM method: the model, its stages, its scores and answers.

    Built from the runner's :class:`~recbench.methods.RunContext`; what it trains goes to the
    run's directory (the preference stage) or to the shared stage cache (the SFT stage).
    """

    def __init__(self, run: RunContext) -> None:
        from accelerate import Accelerator

        self.config = config = run.config
        self.settings = config.settings
        self.progress = run.progress
        self.ds: Dataset = run.dataset
        self.run_dir = run.run_dir
        # --report-to: the stages also log each step to accelerate's trackers, in the run dir
        tracking = run.output.accelerator_kwargs(run.run_dir)
        self.accelerator = Accelerator(cpu=not torch.cuda.is_available(), **tracking)
        self.precision = _precision(self.settings.precision)
        self.base_dtype = _base_dtype(self.settings.base_dtype, self.precision)
        self._model = self._tokenizer = None  # loaded on first use: see `model`
        seed, s = config.seed, self.settings
        # one seeded order, rendered once: the SFT and the preference examples are its first
        # sft_examples and train_examples (None: all of them)
        examples, sft_count, pref_count = _training_examples(config, self.ds)
        items = [render(self.ds, ex, seed, s.n_neg, history_items=s.history_items)
                 for ex in examples]  # fmt: skip
        self.sft_items, self.train_items = items[:sft_count], items[:pref_count]
        self.sft_key = _sft_key(config, self.ds, examples[:sft_count], self.precision)
        self.timings: dict[str, float] = {}
        self.stage_peak = 0.0  # largest peak memory (MB) of its stages, from their summaries
        self.screening: dict[str, float | int] = {}  # what a screened ranking re-scored
        # (example keys, answers) decoded by score() with generation_from_ranking
        self._answered: tuple[tuple[str, ...], Answers] | None = None
        self.sft_weights: str | None = None  # digest of the SFT stage's weights, once trained

    @classmethod
    def from_config(cls, config: RunConfig, progress: bool = False) -> LLMRun:
        """An engine outside the runner (scripts, benchmarks, tests): the run directory is
        ``--output-dir`` or a scratch one under ``$RECBENCH_HOME/scratch``."""
        run_dir = Path(config.output_dir) if config.output_dir else paths.home() / "scratch"
        context = RunContext(config, load_dataset(config.dataset), run_dir, "scratch", progress)
        return cls(context)

    @property
    def sft_dir(self) -> Path:
        return paths.home() / "stages" / f"sft-{self.sft_key}"

    # ---------------------------------------------------------------------------- the model
    # Loaded on first use, so that everything decided without it (the run id, a refused run
    # directory, a run already in the store) is decided in a second, not after a model load.
    def _load_model(self) -> None:
        s = self.settings
        dtype = {"fp32": "float32", "bf16": "bfloat16"}[self.base_dtype]
        model, self._tokenizer = models.load(
            self.config.model, dtype=dtype, quantization=s.quantization
        )
        # a 4-bit model is placed on its GPU as it loads, and cannot be moved
        self._model = model if s.quantization != "none" else model.to(self.accelerator.device)

    @property
    def model(self):
        if self._model is None:
            self._load_model()
        return self._model

    @model.setter
    def model(self, value) -> None:
        self._model = value

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            self._load_model()
        return self._tokenizer

    @property
    def pad(self) -> int:
        return self.tokenizer.pad_token_id

    def eval_items(self, examples: Sequence[Example]) -> list[PromptItem]:
        """The prompts of the examples the run is scored on (one fixed template seed)."""
        s = self.settings
        return [render(self.ds, ex, EVAL_SEED, history_items=s.history_items) for ex in examples]

    # ------------------------------------------------------------------------------ helpers
    def encode(self, items: list[PromptItem], with_negatives: int):
        responses = [[it.chosen, *it.rejected[:with_negatives]] for it in items]
        return encode_pairs(
            self.tokenizer,
            [it.prompt for it in items],
            responses,
            add_bos=False,
            max_prompt_tokens=self.settings.max_prompt_tokens,
        )

    def stage_settings(self, name: str, epochs: float, lr: float) -> StageSettings:
        s = self.settings
        return StageSettings(
            name=name, epochs=epochs, learning_rate=lr, batch_size=s.batch_size,
            grad_accum=s.grad_accum, warmup_ratio=s.warmup_ratio, seed=self.config.seed,
            precision=self.precision, checkpoint_every=s.checkpoint_every,
            gradient_checkpointing=s.gradient_checkpointing,
        )  # fmt: skip

    # ---------------------------------------------------------------------------------- SFT
    def sft(self) -> dict:
        """Supervised fine-tuning: mean per-token NLL of the target title (+EOS)."""
        s = self.settings
        self.model = add_lora(self.model, s.lora_r, s.lora_alpha, self.config.seed)
        stage = Stage(
            self.sft_dir,
            self.stage_settings("sft", s.sft_epochs, s.sft_learning_rate),
            self.accelerator,
        )

        def step(rows: list[int]):
            items = [self.sft_items[i] for i in rows]
            prompt_ids, response_ids = self.encode(items, 0)
            scores = score_responses(self.model, prompt_ids, response_ids, pad_token_id=self.pad)
            per_token = scores.logps[:, 0] / scores.lengths[:, 0]
            return -per_token.mean(), {}

        # shared by every run with these settings: one process builds it, the others wait;
        # continuing an interrupted SFT stage is always what a run with these settings wants
        with locks.exclusive_for_run(stage.dir, "the shared SFT stage", self.accelerator):
            summary = stage.fit(
                self.model, len(self.sft_items), step, resume="auto", progress=self.progress
            )
        # the SFT stage may come from the cache: record what training it took, not the load
        self.timings["sft_seconds"] = summary["seconds"]
        self.stage_peak = max(self.stage_peak, summary.get("peak_memory_mb", 0.0))
        self.sft_weights = weights_digest(self.model)
        return summary

    # --------------------------------------------------------------------------- preference
    def reference_logps(self, n_used: int) -> torch.Tensor:
        """Log-probs of chosen + first ``n_used`` negatives under the SFT model.

        They depend only on the SFT stage (its settings and the digest of its weights), the
        rendered examples and ``n_used``, so they are cached next to the SFT stage and shared
        by every loss run that needs them (DPO, S-DPO, alpha-DPO); one process computes them
        under a lock, the others wait and read them.  A damaged cache file is recomputed.
        """
        identity = {"sft": self.sft_key, "n_neg": self.settings.n_neg, "used": n_used,
                    "negatives": _digest([it.negatives for it in self.train_items])}  # fmt: skip
        if self.sft_weights is not None:  # the stage itself: one retrained elsewhere differs
            identity["weights"] = self.sft_weights
        cache = paths.home() / "stages" / f"reference-{_digest(identity)}.safetensors"
        with locks.exclusive_for_run(cache, "the reference log-probs", self.accelerator):
            logps = stage_files.read_reference(cache, len(self.train_items), n_used + 1)
            if logps is None:
                partial = self.partial_journal(stage_files.partial_path(cache))
                logps = self.policy_logps(self.train_items, n_used, journal=partial)
                if self.accelerator.is_main_process:
                    stage_files.write_reference(cache, logps)
                    stage_files.discard_journal(partial)
        return logps

    def partial_journal(self, path: Path) -> Journal | None:
        """A journal for a long pass whose result is cached once complete (reference log-probs,
        the policy's scores for ``self`` negatives): a killed pass continues from its last
        finished batch.  None when several processes share the pass (each would append)."""
        return Journal(path) if self.accelerator.num_processes == 1 else None

    def use_negatives(self, key: str) -> None:
        """Train against the negatives strategy ``key`` picks (``random``: as rendered).

        Called once the SFT stage is built, since ``self`` ranks candidates by the SFT model;
        ``hard`` reads the run's auxiliary SASRec.  Both choices are cached beside the SFT
        stage (keyed by its weights), so a resumed run trains on the very same negatives.
        """
        strategy = negatives.get_strategy(key)
        if key == negatives.DEFAULT:
            return
        examples = [it.example for it in self.train_items]
        ident = {"sft": self.sft_key, "weights": self.sft_weights, "strategy": key,
                 "n": self.settings.n_neg, "examples": [ex.key for ex in examples],
                 "aux": auxiliary.choice_for(self.ds, self.config)}  # fmt: skip
        cache = paths.home() / "stages" / f"negatives-{_digest(ident)}.json"
        with locks.exclusive_for_run(cache, "the chosen negatives", self.accelerator):
            picked = stage_files.read_negatives(cache, len(examples))
            if picked is None:
                partial = self.partial_journal(stage_files.partial_path(cache))
                context = negatives.NegativeContext(
                    self.ds, self.config.seed, sasrec_scores=self.sasrec_scores,
                    policy_scores=functools.partial(self.policy_scores, journal=partial),
                )  # fmt: skip
                picked = strategy().pick(context, examples, self.settings.n_neg)
                if self.accelerator.is_main_process:
                    rundir.write_atomic(cache, json.dumps([list(p) for p in picked]))
                    stage_files.discard_journal(partial)
        self.train_items = [with_negatives(self.ds, it, p)
                            for it, p in zip(self.train_items, picked, strict=True)]  # fmt: skip

    def sasrec_scores(self, examples: Sequence[Example]):
        from recbench.seqrec.evaluation import CandidateSet, candidate_scores

        model, _ = auxiliary.load_sasrec(self.ds, self.config)
        return candidate_scores(model, CandidateSet.from_examples(examples))

    def policy_scores(self, examples: Sequence[Example], journal: Journal | None = None):
        """The summed log-probability of every candidate under the model as it is now."""
        s = self.settings
        items = [render(self.ds, ex, self.config.seed, history_items=s.history_items)
                 for ex in examples]  # fmt: skip
        with self._eval_autocast():
            values, _ = rank_candidates(
                self.model, self.tokenizer, self.ds, items,
                batch_size=max(1, s.batch_size // 2), max_prompt_tokens=s.max_prompt_tokens,
                progress=self.progress, journal=journal,
            )  # fmt: skip
        return values

    @torch.no_grad()
    def policy_logps(
        self, items: Sequence[PromptItem], n_used: int, journal: Journal | None = None
    ) -> torch.Tensor:
        """Summed log-probs ``[len(items), 1 + n_used]`` of each item's chosen response and
        first ``n_used`` rejected ones under the model as it is now (evaluation mode).

        With a ``journal`` each finished batch is appended to it, and the batches it already
        holds (same example keys, in order) are read back instead of scored again: float32
        values round-trip exactly through JSON, so a continued pass equals an uninterrupted one.
        """
        size = self.settings.batch_size
        batches = [items[start : start + size] for start in range(0, len(items), size)]
        keys = [[it.example.key for it in chunk] for chunk in batches]
        done = journal.resume(keys) if journal is not None else []
        rows = [torch.tensor(entry["logps"], dtype=torch.float32) for entry in done]
        self.model.eval()
        bar = tqdm(batches[len(done) :], desc="reference log-probs", disable=not self.progress,
                   initial=len(done), total=len(batches))  # fmt: skip
        for chunk in bar:
            started = time.perf_counter()
            prompt_ids, response_ids = self.encode(chunk, n_used)
            scores = score_responses(self.model, prompt_ids, response_ids, pad_token_id=self.pad)
            rows.append(scores.logps.float().cpu())
            if journal is not None:
                journal.append(keys[len(rows) - 1], time.perf_counter() - started,
                               logps=rows[-1].tolist())  # fmt: skip
        self.model.train()
        return torch.cat(rows)

    def preference(self, loss_module, signals=None) -> dict:
        s = self.settings
        n_used = s.n_neg if loss_module.uses_all_negatives else 1
        needs = auxiliary.sasrec_fields(loss_module)
        ratings = auxiliary.reads_ratings(loss_module)  # RecDPO/RecPO: s+ and s- from ratings
        reference = self.reference_logps(n_used) if loss_module.needs_reference else None
        if self.accelerator.is_main_process:
            stage_files.check_started_from(self.run_dir / "preference", self.sft_weights)
        self.accelerator.wait_for_everyone()
        stage = Stage(
            self.run_dir / "preference",
            self.stage_settings("preference", s.pref_epochs, s.learning_rate),
            self.accelerator,
        )

        def step(rows: list[int]):
            items = [self.train_items[i] for i in rows]
            prompt_ids, response_ids = self.encode(items, n_used)
            scores = score_responses(self.model, prompt_ids, response_ids, pad_token_id=self.pad)
            fields = {
                "chosen_logps": scores.logps[:, 0],
                "rejected_logps": scores.logps[:, 1:],
                "chosen_lengths": scores.lengths[:, 0].float(),
                "rejected_lengths": scores.lengths[:, 1:].float(),
                "example_ids": torch.tensor([it.example.index for it in items]),
            }
            if reference is not None:
                ref = reference[rows].to(scores.logps.device)
                fields["ref_chosen_logps"], fields["ref_rejected_logps"] = ref[:, 0], ref[:, 1:]
            if signals is not None:
                fields.update(signals.fields(items, needs))
            if ratings:
                scored = auxiliary.rating_fields(self.ds, items, n_used)
                fields.update({k: v.to(scores.logps.device) for k, v in scored.items()})
            batch = losses.gather_batch(losses.PreferenceBatch(**fields))
            out = loss_module(batch)
            info = {k: float(v) for k, v in out.metrics.items() if _is_scalar(v)}
            return out.loss, info

        summary = stage.fit(
            self.model,
            len(self.train_items),
            step,
            extra={"loss": loss_module},
            resume=self.config.resume,
            progress=self.progress,
        )
        # the stage's own clock: a run resumed after its stage finished did not train it here
        self.timings["preference_seconds"] = summary["seconds"]
        self.stage_peak = max(self.stage_peak, summary.get("peak_memory_mb", 0.0))
        return summary

    # ---------------------------------------------------------------------------- evaluation
    def _eval_autocast(self):
        """bf16 autocast when the settings ask for bf16 evaluation, else a disabled one."""
        return autocast(self.settings.eval_precision, self.accelerator.device.type)

    def _journal(self, mode: str, items: Sequence[PromptItem]) -> Journal | None:
        """The mode's journal (see :mod:`recbench.journal`), in this run's directory and named
        by what decides the numbers; none when several processes evaluate side by side."""
        if self.accelerator.num_processes > 1:
            return None
        s = self.settings
        shaping = {"model": self.config.model, "eval_precision": s.eval_precision,
                   "batch_size": s.batch_size, "max_prompt_tokens": s.max_prompt_tokens,
                   "max_new_tokens": s.max_new_tokens}  # fmt: skip
        if s.generation_from_ranking:
            shaping["generation_from_ranking"] = True
        tag = fingerprint(self.model, shaping, (it.example.key for it in items))
        return Journal(self.run_dir / "evaluation" / f"{mode}-{tag}.jsonl")

    def score(self, items: Sequence[PromptItem]) -> Scores:
        """Summed log-probability and token count of every candidate title (+EOS)."""
        s = self.settings
        if s.generation and s.generation_from_ranking:
            return self._score_and_answer(items)
        journal = self._journal("ranking", items)
        if s.eval_precision == "screened":
            return self._score_screened(items, journal)
        with self._eval_autocast():
            values, lengths = rank_candidates(
                self.model, self.tokenizer, self.ds, items,
                batch_size=max(1, s.batch_size // 2), max_prompt_tokens=s.max_prompt_tokens,
                progress=self.progress, journal=journal,
            )  # fmt: skip
        return Scores(values, lengths, journal.reused_seconds if journal else 0.0)

    def _score_and_answer(self, items: Sequence[PromptItem]) -> Scores:
        """:func:`recbench.evaluation.rank_and_generate`: the answers are kept for
        :meth:`generate`, which the runner calls next, and the decoding seconds move from the
        ranking's clock to generation's."""
        s = self.settings
        journal = self._journal("ranking-generation", items)
        with self._eval_autocast():
            done = rank_and_generate(
                self.model, self.tokenizer, self.ds, items,
                batch_size=max(1, s.batch_size // 2), max_new_tokens=s.max_new_tokens,
                max_prompt_tokens=s.max_prompt_tokens, progress=self.progress, journal=journal,
            )  # fmt: skip
        keys = tuple(item.example.key for item in items)
        self._answered = (keys, Answers(done.answers, done.decode_seconds))
        reused = journal.reused_seconds if journal else 0.0
        return Scores(done.values, done.lengths, reused - done.decode_seconds)

    def _score_screened(self, items: Sequence[PromptItem], journal: Journal | None) -> Scores:
        """:func:`recbench.evaluation.screened_rank`: bf16 for every example, fp32 again for
        the close ones; the share re-scored is kept in :attr:`screening` for the record."""
        s = self.settings
        journals = [journal] if journal is not None else []

        def rescore_journal(subset: Sequence[PromptItem]) -> Journal | None:
            again = self._journal("ranking-fp32", subset)
            journals.extend([again] if again is not None else [])
            return again

        ranking = screened_rank(
            self.model, self.tokenizer, self.ds, items,
            batch_size=max(1, s.batch_size // 2), max_prompt_tokens=s.max_prompt_tokens,
            progress=self.progress, journal=journal, rescore_journal=rescore_journal,
        )  # fmt: skip
        self.screening = {"ranking_rescored_fraction": ranking.rescored_fraction,
                          "ranking_rescored": int(ranking.rescored.sum())}  # fmt: skip
        reused = sum(j.reused_seconds for j in journals)
        return Scores(ranking.values, ranking.lengths, reused)

    def generate(self, items: Sequence[PromptItem]) -> Answers:
        """Greedy answers of at most ``max_new_tokens`` tokens (those :meth:`score` decoded
        with ``generation_from_ranking``, when it scored these items)."""
        keys = tuple(item.example.key for item in items)
        if self._answered is not None and self._answered[0] == keys:
            answers, self._answered = self._answered[1], None
            return answers
        s = self.settings
        journal = self._journal("generation", items)
        with self._eval_autocast():
            texts = generate_answers(
                self.model, self.tokenizer, items, batch_size=s.batch_size,
                max_new_tokens=s.max_new_tokens, max_prompt_tokens=s.max_prompt_tokens,
                progress=self.progress, journal=journal,
            )  # fmt: skip
        return Answers(texts, journal.reused_seconds if journal else 0.0)

    def record_facts(self, facts) -> None:
        """What every LLM run records beside its metrics: precision, processes, the SFT stage
        it started from, its stage times and their peak memory."""
        facts.settings.update(precision=self.precision, processes=self.accelerator.num_processes)
        if self.sft_weights is not None:  # which SFT stage the run's model started from
            facts.settings["sft_weights"] = self.sft_weights
            facts.weights = self.sft_weights
        facts.timings.update(self.timings)
        facts.stage_peak_mb = max(facts.stage_peak_mb, self.stage_peak)


def _is_scalar(value: object) -> bool:
    if isinstance(value, int | float):
        return True
    return isinstance(value, torch.Tensor) and value.numel() == 1


# ------------------------------------------------------------------------------ methods
class LLMMethod(Method):
    """An LLM method: :class:`LLMRun` scores and answers the runner's examples."""

    family = "llm_baseline"

    def __init__(self, run: RunContext) -> None:
        super().__init__(run)
        self.llm = LLMRun(run)

    def score(self, examples: Sequence[Example]) -> Scores:
        scores = self.llm.score(self.llm.eval_items(examples))
        self.facts.settings.update(self.llm.screening)  # screened ranking: what it re-scored
        return scores

    def generate(self, examples: Sequence[Example]) -> Answers:
        return self.llm.generate(self.llm.eval_items(examples))


@register_method
class ZeroShot(LLMMethod):
    name, order = "zero_shot", 0
    summary = "the language model as it comes, without any training"

    def prepare(self) -> None:
        self.llm.record_facts(self.facts)


def stage_identity(config: RunConfig, ds: Dataset) -> dict:
    """What defines the SFT stage of a run with ``config`` (see :func:`_sft_key`)."""
    examples, sft_count, _ = _training_examples(config, ds)
    precision = _precision(config.settings.precision)
    return _sft_identity(config, ds, examples[:sft_count], precision)


@register_method
class Sft(LLMMethod):
    """The cached SFT stage, evaluated: a prerequisite of every loss run on it."""

    name, order, needs, reference = "sft", 2, "stages", True
    summary = "the SFT stage alone: LoRA on the target titles, shared by every loss run"

    @classmethod
    def defining_settings(cls, config: RunConfig, ds: Dataset) -> dict:
        """The stage and how it is scored: every loss run on one stage shares this run."""
        settings = config.settings
        return {"stage": stage_identity(config, ds),
                "evaluation": evaluation_identity(settings)}  # fmt: skip

    def prepare(self) -> None:
        self.facts.summary["sft"] = self.llm.sft()
        self.llm.record_facts(self.facts)


def stage_started(config: RunConfig) -> bool:
    """Whether an interrupted SFT stage of ``config`` waits to be continued (``--resume``)."""
    stage = sft_stage_dir(config)
    return any((stage / name).is_dir() for name in ("checkpoint", "checkpoint.old"))


def sft_prerequisite(config: RunConfig) -> RunConfig:
    """The ``sft`` run a loss run of ``config`` trains from (recorded once, before it)."""
    from dataclasses import replace

    return replace(
        config,
        loss=None,
        baseline="sft",
        loss_params={},
        resume="auto",
        rerun=False,
        output_dir=None,
        negatives=negatives.DEFAULT,
        from_this_stage=False,  # it finds its own retrained id (runner._prerequisite_id)
    )


class LossMethod(LLMMethod):
    """``recbench run --loss KEY``: the shared SFT stage, then preference optimisation."""

    family, needs = "loss", "stages"
    key: str = ""

    @classmethod
    def check(cls, config: RunConfig) -> None:
        loss_module = losses.get_loss(cls.key, **config.loss_params)  # names and ranges
        ds = load_dataset(config.dataset)
        auxiliary.check_item_scores(ds, loss_module, cls.key)  # RecDPO/RecPO: ratings known?
        auxiliary.check_for_run(ds, loss_module, config)

    @classmethod
    def defining_settings(cls, config: RunConfig, ds: Dataset) -> dict:
        out = super().defining_settings(config, ds)
        out["hparams"] = asdict(losses.get_loss(cls.key, **config.loss_params).hparams)
        out["negatives"] = config.negatives
        scores = ds.spec.item_scores
        if scores is not None and auxiliary.reads_ratings(losses.get_spec(cls.key)):
            out["item_scores"] = scores.sha256  # only these runs: no other run id changes
        return out

    @classmethod
    def prerequisites(cls, config: RunConfig) -> list[RunConfig]:
        return [sft_prerequisite(config)]

    def prepare(self) -> None:
        config, llm = self.run.config, self.llm
        loss_module = losses.get_loss(self.key, **config.loss_params)
        self.facts.summary["sft"] = llm.sft()
        llm.use_negatives(config.negatives)
        signals = None
        if auxiliary.sasrec_fields(loss_module):
            signals = auxiliary.for_run(self.run.dataset, loss_module, config)
        self.facts.summary["preference"] = llm.preference(loss_module, signals)
        self.facts.hparams = {**asdict(loss_module.hparams), "n_neg": llm.settings.n_neg,
                              "negatives": config.negatives}  # fmt: skip
        if auxiliary.reads_ratings(loss_module):  # the ratings file its scores came from
            self.facts.settings["item_scores"] = self.run.dataset.spec.item_scores.sha256
        llm.record_facts(self.facts)


def loss_method(key: str) -> type[Method]:
    """The method of loss ``key`` (unknown keys: the loss registry's "did you mean")."""
    spec = losses.get_spec(key)
    attributes = {"name": key, "key": key, "summary": spec.summary.splitlines()[0]}
    return type(f"Loss[{key}]", (LossMethod,), attributes)
