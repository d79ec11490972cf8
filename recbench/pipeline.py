"""The LLM path of ``recbench run``: SFT, preference optimisation with a loss, evaluation.

dataset -> examples -> prompt items -> (scorer -> loss -> trainer) -> evaluation -> records.
The SFT stage depends only on the model, data, seed and SFT settings, so it is cached and shared
by every loss run with the same settings (and evaluated once, as the ``sft`` method).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import torch
from tqdm.auto import tqdm

import losses
from recbench import auxiliary, locks, models, paths, plugins, results, rundir
from recbench.batches import EVAL_SEED, PromptItem, evaluation_examples, pick_examples, render
from recbench.config import RunConfig, get_profile
from recbench.data import load_dataset
from recbench.data.dataset import Dataset
from recbench.errors import UserError
from recbench.evaluation import generate_answers, generation_report, rank_candidates, ranking_report
from recbench.journal import Journal, fingerprint, weights_digest
from recbench.methods import register_method
from recbench.outcomes import Outcomes
from recbench.results import cpu_has_bf16
from recbench.scoring import encode_pairs, score_responses
from recbench.trainer import Stage, StageSettings, add_lora, autocast, peak_memory_mb


def _digest(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:12]


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


RUN_LOCATION_FIELDS = rundir.RUN_LOCATION_FIELDS


def _training_examples(config: RunConfig, ds: Dataset) -> tuple[list, int | None, int | None]:
    """The seed's training examples in their seeded order, and how many of them go to the SFT
    and to the preference stage (their first ``sft_examples`` and ``train_examples``)."""
    s = config.settings
    sft_count, pref_count = s.sft_examples or s.train_examples, s.train_examples
    larger = None if None in (sft_count, pref_count) else max(sft_count, pref_count)
    return pick_examples(ds.examples("train"), larger, config.seed), sft_count, pref_count


def _sft_key(config: RunConfig, sft_examples: list, precision: str) -> str:
    """What names the SFT stage: everything its training depends on, nothing else."""
    s = config.settings
    identity = {
        "model": config.model,
        "dataset": config.dataset,
        "seed": config.seed,
        "train": [ex.key for ex in sft_examples],
        "profile": {k: getattr(s, k) for k in
                    ("sft_epochs", "batch_size", "grad_accum", "sft_learning_rate",
                     "lora_r", "lora_alpha", "max_prompt_tokens", "warmup_ratio")},
        "precision": precision,
    }  # fmt: skip
    if s.history_items is not None:  # only when set, so that earlier stages keep their keys
        identity["history_items"] = s.history_items
    return _digest(identity)


def sft_stage_dir(config: RunConfig) -> Path:
    """Where the SFT stage of a run with ``config`` is (or will be) cached, found without a
    model: a planner asks whether it is built here before charging its training."""
    examples, sft_count, _ = _training_examples(config, load_dataset(config.dataset))
    key = _sft_key(config, examples[:sft_count], _precision(config.settings.precision))
    return paths.home() / "stages" / f"sft-{key}"


def sft_stage_built(config: RunConfig) -> bool:
    """Whether the SFT stage of a run with ``config`` is built (finished) in $RECBENCH_HOME."""
    return (sft_stage_dir(config) / "final" / "done.json").is_file()


class RunInterrupted(UserError):
    """Ctrl-C during a run: one line saying how to continue it."""

    exit_code = 130


#: The settings that decide which examples a run is scored on and how.
EVALUATION_FIELDS = (
    "eval_split", "eval_rows", "eval_examples", "generation", "max_new_tokens",
    "max_prompt_tokens", "history_items",
)  # fmt: skip


def _evaluation(settings) -> dict:
    """The settings that decide how a run is scored; bf16 evaluation only where chosen, so
    that the ids of the fp32 evaluations recorded before it existed stay what they were."""
    out = {k: getattr(settings, k) for k in EVALUATION_FIELDS}
    if settings.eval_precision != "fp32":
        out["eval_precision"] = settings.eval_precision
    return out


class LLMRun:
    """State shared by the stages of one LLM run."""

    def __init__(self, config: RunConfig, progress: bool = True) -> None:
        from accelerate import Accelerator

        self.config = config
        self.settings = config.settings
        self.progress = progress
        self.load = results.LoadMeter()
        self.ds: Dataset = load_dataset(config.dataset)
        self.accelerator = Accelerator(cpu=not torch.cuda.is_available())
        self.precision = _precision(self.settings.precision)
        self._model = self._tokenizer = None  # loaded on first use: see `model`
        seed, s = config.seed, self.settings
        # one seeded order, rendered once: the SFT and the preference examples are its first
        # sft_examples and train_examples (None: all of them)
        examples, sft_count, pref_count = _training_examples(config, self.ds)
        items = [render(self.ds, ex, seed, s.n_neg, history_items=s.history_items)
                 for ex in examples]  # fmt: skip
        self.sft_items, self.train_items = items[:sft_count], items[:pref_count]
        scored = evaluation_examples(self.ds, s.eval_rows, s.eval_examples, s.eval_split)
        self.eval_items = [render(self.ds, ex, EVAL_SEED, history_items=s.history_items)
                           for ex in scored]  # fmt: skip
        self.sft_key = _sft_key(config, examples[:sft_count], self.precision)
        # where a run is stored, and whether it is being resumed, do not change what it computes:
        # a resumed run must find its own directory and keep its run id
        identity = {k: v for k, v in config.to_dict().items() if k not in RUN_LOCATION_FIELDS}
        key: dict = {"config": identity, "sft": self.sft_key}
        plugin = plugins.run_provenance(config.method)  # an edited plugin file is another run
        if plugin is not None:
            key["plugin"] = plugin.get("sha256")
        self.run_key = _digest(key)
        default_dir = paths.home() / "runs" / f"{config.dataset}-{config.method}-{self.run_key}"
        self.run_dir = Path(config.output_dir) if config.output_dir else default_dir
        self.timings: dict[str, float] = {}
        self._stage_peak = 0.0  # largest peak memory (MB) of its stages, from their summaries
        self.outcomes = Outcomes()  # per-example outcomes of the latest evaluation
        self.sft_weights: str | None = None  # digest of the SFT stage's weights, once trained

    # ---------------------------------------------------------------------------- the model
    # Loaded on first use, so that everything decided without it (the run id, a refused run
    # directory, a run already in the store) is decided in a second, not after a model load.
    def _load_model(self) -> None:
        model, self._tokenizer = models.load(self.config.model)
        self._model = model.to(self.accelerator.device)

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

    # ------------------------------------------------------------------------- run directory
    def identity(self) -> dict:
        """What defines this run (written to its directory's ``run.json``)."""
        return rundir.config_identity(self.config)

    @property
    def sft_id(self) -> str:
        """The run id of the SFT stage's evaluation, shared by every run on that stage that is
        scored on the same examples in the same way.

        An evaluation set other than the profile's own (another split, protocol, subset size or
        mode) is another evaluation of the stage and gets its own id; the profile's own keeps
        the id it always had, so existing stores still know it.
        """
        base = f"{self.config.dataset}-sft-{self.sft_key}-{self.config.profile}"
        evaluation = _evaluation(self.settings)
        if evaluation == _evaluation(get_profile(self.config.profile)):
            return base
        return f"{base}-eval{_digest(evaluation)}"

    def execute(self, run_id: str, work: Callable[[dict], list[dict]]) -> dict:
        """The skeleton of every LLM method, written once: skip a run already recorded, own
        its directory (:meth:`session`), do ``work``, append its records in one write.

        ``work(output)`` does the method's training and evaluation, adds what the CLI should
        print to ``output`` and returns the run's records.  Returns ``output``.
        """
        with self.session(run_id) as recorded:
            if recorded:
                return {"run_id": run_id, "skipped": "already in the results store"}
            output: dict = {"run_id": run_id, "run_dir": str(self.run_dir)}
            caveat = self.settings.caveat
            if caveat:
                output["note"] = f"{self.config.profile} profile: {caveat}"
            records = work(output)
            if self.accelerator.is_main_process:
                output["results"] = str(
                    results.append_records(records, self.config.results, self.outcomes)
                )
            output["timings"] = self.timings
            return output

    @contextmanager
    def session(self, run_id: str) -> Iterator[bool]:
        """Own the run directory for ``run_id`` while the block runs; yields "already recorded".

        The run's lock makes a second process with the same run wait and then find the records;
        the directory is claimed for ``run_id`` (:func:`recbench.rundir.claim`); ``--resume``
        with nothing to resume and Ctrl-C each end in one line that says what to do.
        """
        main = self.accelerator.is_main_process
        store = self.config.results
        if main and already_recorded(store, run_id):
            yield True
            return
        with locks.exclusive_for_run(self.run_dir, f"run {run_id}", self.accelerator):
            if main and already_recorded(store, run_id):  # the other process just finished it
                yield True
                return
            # an interrupted run left its directory, or at least its shared SFT stage, behind
            started_before = rundir.holds_run_state(self.run_dir) or any(
                (self.sft_dir / name).is_dir() for name in ("checkpoint", "checkpoint.old")
            )
            if main:
                if self.config.resume is True and not started_before:
                    raise UserError(
                        f"--resume: nothing to resume: no interrupted run {run_id} in "
                        f"{self.run_dir} (were other options used?); run without --resume"
                    )
                explicit = self.config.output_dir is not None
                rundir.claim(self.run_dir, run_id, self.identity(), explicit)
            self.accelerator.wait_for_everyone()
            try:
                yield False
            except KeyboardInterrupt:
                raise RunInterrupted(
                    f"interrupted; checkpoints are in {self.run_dir} and $RECBENCH_HOME/stages: "
                    "run the same command with --resume to continue"
                ) from None

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
        self._stage_peak = max(self._stage_peak, summary.get("peak_memory_mb", 0.0))
        self.sft_weights = weights_digest(self.model)
        return summary

    @property
    def sft_dir(self) -> Path:
        return paths.home() / "stages" / f"sft-{self.sft_key}"

    # --------------------------------------------------------------------------- preference
    def reference_logps(self, n_used: int) -> torch.Tensor:
        """Log-probs of chosen + first ``n_used`` negatives under the SFT model.

        They depend only on the SFT stage (its settings and the digest of its weights), the
        rendered examples and ``n_used``, so they are cached next to the SFT stage and shared
        by every loss run that needs them (DPO, S-DPO, alpha-DPO); one process computes them
        under a lock, the others wait and read them.  A damaged cache file is recomputed.
        """
        identity = {"sft": self.sft_key, "n_neg": self.settings.n_neg, "used": n_used}
        if self.sft_weights is not None:  # the stage itself: one retrained elsewhere differs
            identity["weights"] = self.sft_weights
        cache = paths.home() / "stages" / f"reference-{_digest(identity)}.safetensors"
        with locks.exclusive_for_run(cache, "the reference log-probs", self.accelerator):
            logps = _read_reference(cache, len(self.train_items), n_used + 1)
            if logps is None:
                logps = self._compute_reference(n_used)
                if self.accelerator.is_main_process:
                    _write_reference(cache, logps)
        return logps

    @torch.no_grad()
    def _compute_reference(self, n_used: int) -> torch.Tensor:
        self.model.eval()
        rows = []
        size = self.settings.batch_size
        starts = range(0, len(self.train_items), size)
        for start in tqdm(starts, desc="reference log-probs", disable=not self.progress):
            chunk = self.train_items[start : start + size]
            prompt_ids, response_ids = self.encode(chunk, n_used)
            rows.append(
                score_responses(self.model, prompt_ids, response_ids, pad_token_id=self.pad)
                .logps.float()
                .cpu()
            )
        self.model.train()
        return torch.cat(rows)

    def preference(self, loss_module, signals=None) -> dict:
        s = self.settings
        n_used = s.n_neg if loss_module.uses_all_negatives else 1
        needs = loss_module.requires
        reference = self.reference_logps(n_used) if loss_module.needs_reference else None
        if self.accelerator.is_main_process:
            _check_started_from(self.run_dir / "preference", self.sft_weights)
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
        self._stage_peak = max(self._stage_peak, summary.get("peak_memory_mb", 0.0))
        return summary

    # ---------------------------------------------------------------------------- evaluation
    def evaluate(self, generation: bool | None = None) -> dict[str, dict]:
        with self._eval_autocast():
            return self._evaluate(generation)

    def _eval_autocast(self):
        """bf16 autocast when the settings ask for bf16 evaluation, else a disabled one."""
        return autocast(self.settings.eval_precision, self.accelerator.device.type)

    def _journals(self) -> dict[str, Journal | None]:
        """Each mode's journal (see :mod:`recbench.journal`), in this run's directory and named
        by what decides the numbers; none when several processes evaluate side by side."""
        if self.accelerator.num_processes > 1:
            return {"ranking": None, "generation": None}
        s = self.settings
        shaping = {"model": self.config.model, "eval_precision": s.eval_precision,
                   "batch_size": s.batch_size, "max_prompt_tokens": s.max_prompt_tokens,
                   "max_new_tokens": s.max_new_tokens}  # fmt: skip
        tag = fingerprint(self.model, shaping, (it.example.key for it in self.eval_items))
        directory = self.run_dir / "evaluation"
        return {mode: Journal(directory / f"{mode}-{tag}.jsonl") for mode in MODES}

    def _evaluate(self, generation: bool | None) -> dict[str, dict]:
        s = self.settings
        journals = self._journals()
        started = time.perf_counter()
        scores, lengths = rank_candidates(
            self.model, self.tokenizer, self.ds, self.eval_items,
            batch_size=max(1, s.batch_size // 2), max_prompt_tokens=s.max_prompt_tokens,
            progress=self.progress, journal=journals["ranking"],
        )  # fmt: skip
        self.outcomes = Outcomes()
        out = {"ranking": ranking_report(self.ds, self.eval_items, scores, lengths, self.outcomes)}
        self.timings["eval_ranking_seconds"] = _seconds(started, journals["ranking"])
        if s.generation if generation is None else generation:
            started = time.perf_counter()
            answers = generate_answers(
                self.model, self.tokenizer, self.eval_items, batch_size=s.batch_size,
                max_new_tokens=s.max_new_tokens, max_prompt_tokens=s.max_prompt_tokens,
                progress=self.progress, journal=journals["generation"],
            )  # fmt: skip
            out["generation"] = generation_report(self.ds, self.eval_items, answers, self.outcomes)
            self.timings["eval_generation_seconds"] = _seconds(started, journals["generation"])
            self._write_answers(answers)
        return out

    def _write_answers(self, answers: list[str]) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        rundir.write_atomic(
            self.run_dir / "answers.jsonl",
            "".join(
                json.dumps({"key": item.example.key, "answer": text}) + "\n"
                for item, text in zip(self.eval_items, answers, strict=True)
            ),
        )

    def evaluate_sft_once(self, sft_id: str) -> dict | None:
        """Evaluate the SFT stage and record it, unless the store already holds its evaluation.

        Every loss run on the same SFT stage would record the same SFT evaluation; under the
        stage's evaluation lock, the first records it (at once, as its own run) and the others
        find it in the store.  Returns the evaluation, or None when it was already recorded.

        The store may hold an evaluation of *another* stage with the same settings: one trained
        on another machine (bf16 kernels differ between CPUs, and the stage cache does not
        travel) or recorded before stages carried a weights digest.  Loss runs must be compared
        with the model they started from, so this stage is then evaluated again and recorded
        under its own id (:meth:`sft_record_id`), never silently paired with the other one.
        """
        store = self.config.results
        main = self.accelerator.is_main_process
        with locks.exclusive_for_run(self.sft_dir / "evaluation", "the SFT evaluation",
                                     self.accelerator, quiet=True):  # fmt: skip
            run_id = self.sft_record_id(sft_id)
            if run_id is None:
                return None
            evaluation = self.evaluate()
            if main:
                records = self.records("sft", "llm_baseline", {}, evaluation, run_id)
                results.append_records(records, store, self.outcomes)
        return evaluation

    def sft_record_id(self, sft_id: str) -> str | None:
        """The run id this SFT stage's evaluation is recorded under, or None when it is there.

        ``sft_id`` when the store has no evaluation of these settings yet or has this very
        stage's (same weights digest); ``sft_id-wDIGEST`` when the evaluation under ``sft_id``
        is of another stage (another digest, or none recorded), with a warning saying so.
        """
        recorded = results.read_records(self.config.results)
        stages = {r.get("settings", {}).get("sft_weights") for r in recorded
                  if r.get("run_id") == sft_id}  # fmt: skip
        if not stages or stages == {self.sft_weights}:
            return None if stages else sft_id
        own = f"{sft_id}-w{self.sft_weights[:8]}"
        if any(r.get("run_id") == own for r in recorded):
            return None
        theirs = ", ".join(sorted(str(s or "not recorded") for s in stages))
        warnings.warn(
            f"the SFT stage of seed {self.config.seed} (weights {self.sft_weights}) is not the "
            f"one evaluated as {sft_id} in {self.config.results} (weights {theirs}; retrained "
            f"on other hardware?): evaluating it as {own}, which the runs trained from it are "
            "paired with",
            stacklevel=2,
        )
        return own

    # ------------------------------------------------------------------------------ records
    def records(self, method: str, family: str, hparams: dict, evaluation: dict, run_id: str):
        run = {
            "run_id": run_id,
            "dataset": self.config.dataset,
            "method": method,
            "family": family,
            "model": self.config.model,
            "seed": self.config.seed,
            "profile": self.config.profile,
            "hparams": hparams,
            "settings": {**asdict(self.settings), "config": self.config.to_dict(),
                         "precision": self.precision, "processes":
                         self.accelerator.num_processes},
        }  # fmt: skip
        # the files trained and scored on: what a store's users map is checked against
        run["settings"]["dataset_files"] = {
            split: self.ds.split_spec(split).sha256 for split in ("train", self.settings.eval_split)
        }
        if self.sft_weights is not None:  # which SFT stage the run's model started from
            run["settings"]["sft_weights"] = self.sft_weights
        if (plugin := plugins.run_provenance(method)) is not None:
            run["settings"]["plugin"] = plugin  # name, file and sha256 of a plugin's loss/method
        # like the stage times, the peak covers the stages the run stands on even where another
        # process trained them (their summaries keep it; 0 where one was written before that)
        peak = max(peak_memory_mb(), self._stage_peak)
        cost = {**self.timings, "peak_memory_mb": peak, **self.load.readings()}
        return results.run_records(run, evaluation, cost, split=self.settings.eval_split)


MODES = ("ranking", "generation")


def _seconds(started: float, journal: Journal | None) -> float:
    """An evaluation's time: since ``started``, plus what its reused batches took before."""
    return time.perf_counter() - started + (journal.reused_seconds if journal else 0.0)


STARTED_FROM = "sft_weights.txt"  # in a preference stage: the SFT stage it trains on


def _check_started_from(stage_dir: Path, sft_weights: str | None) -> None:
    """A preference stage continues only on the SFT stage it started from.

    Its checkpoints hold an adapter trained from that stage; resumed after the stage was
    trained again into other weights (another machine), the run would record the new stage
    while holding the old one's descendant.  Refused with one line; nothing is deleted.  The
    record is written atomically, so no kill damages it; a damaged one (a disk error) leaves
    the lineage unknown, and the stage is discarded with a warning and trained again, as a
    damaged checkpoint is.  A stage without the record (written before it existed) continues.
    """
    if sft_weights is None:
        return
    marker = stage_dir / STARTED_FROM
    if marker.is_file():
        started = marker.read_text(encoding="utf-8", errors="replace").strip()
        if not re.fullmatch(r"[0-9a-f]{16}", started):  # damaged: its lineage is unknown
            warnings.warn(
                f"preference: discarding {stage_dir}, whose record of the SFT stage it "
                "trains on is damaged; the stage is trained again from the start",
                UserWarning,
                stacklevel=3,
            )
            shutil.rmtree(stage_dir)
        elif started != sft_weights:
            raise rundir.RunDirectoryError(
                f"{stage_dir} holds a preference stage trained from the SFT stage with weights "
                f"{started}, but that stage now has weights {sft_weights} (trained again "
                f"elsewhere?): continuing would mix two models; remove {stage_dir} to retrain it"
            )
        else:
            return
    stage_dir.mkdir(parents=True, exist_ok=True)
    rundir.write_atomic(marker, sft_weights + "\n")


def _read_reference(path: Path, rows: int, columns: int) -> torch.Tensor | None:
    """The cached reference log-probs, or None when absent or damaged (then recomputed)."""
    if not path.is_file():
        return None
    from safetensors.torch import load_file

    try:
        logps = load_file(str(path))["logps"]
    except Exception as exc:  # noqa: BLE001 - any unreadable cache is recomputed
        warnings.warn(f"recomputing the damaged cache {path} ({type(exc).__name__})", stacklevel=3)
        return None
    if tuple(logps.shape) != (rows, columns) or not torch.isfinite(logps).all():
        warnings.warn(f"recomputing the cache {path}: unexpected shape or values", stacklevel=3)
        return None
    return logps


def _write_reference(path: Path, logps: torch.Tensor) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file({"logps": logps.contiguous()}, str(tmp))
    tmp.replace(path)


def _is_scalar(value: object) -> bool:
    if isinstance(value, int | float):
        return True
    return isinstance(value, torch.Tensor) and value.numel() == 1


def run_llm(config: RunConfig, progress: bool = True) -> dict:
    """``recbench run --loss KEY``: the shared SFT stage, preference optimisation, evaluation."""
    run = LLMRun(config, progress=progress)
    loss_module = losses.get_loss(config.loss, **config.loss_params)

    def work(output: dict) -> list[dict]:
        _sft_stage(run, output)
        signals = None
        if loss_module.requires & auxiliary.AUX_FIELDS:
            signals = auxiliary.for_run(run.ds, loss_module, config)
        output["preference"] = run.preference(loss_module, signals)
        evaluation = output["evaluation"] = run.evaluate()
        hparams = {**asdict(loss_module.hparams), "n_neg": run.settings.n_neg}
        return run.records(config.loss, "loss", hparams, evaluation, output["run_id"])

    return run.execute(f"{config.dataset}-{config.loss}-{run.run_key}", work)


def _sft_stage(run: LLMRun, output: dict) -> None:
    """Train (or load) the shared SFT stage; evaluate and record it once, as the ``sft`` run."""
    output["sft"] = run.sft()
    sft_eval = run.evaluate_sft_once(run.sft_id)
    if sft_eval is not None:
        output["sft_eval"] = sft_eval


@register_method(
    "zero_shot", family="llm_baseline", order=0,
    summary="the language model as it comes, without any training",
)  # fmt: skip
def run_zero_shot(config: RunConfig, progress: bool = True) -> dict:
    run = LLMRun(config, progress=progress)

    def work(output: dict) -> list[dict]:
        evaluation = output["evaluation"] = run.evaluate()
        return run.records("zero_shot", "llm_baseline", {}, evaluation, output["run_id"])

    return run.execute(f"{config.dataset}-zero_shot-{run.run_key}", work)


@register_method(
    "sft", family="llm_baseline", order=2,
    summary="the SFT stage alone: LoRA on the target titles, shared by every loss run",
)  # fmt: skip
def run_sft(config: RunConfig, progress: bool = True) -> dict:
    run = LLMRun(config, progress=progress)

    def work(output: dict) -> list[dict]:
        _sft_stage(run, output)  # records the SFT evaluation itself, once per stage
        return []

    return run.execute(run.sft_id, work)


def already_recorded(store, run_id: str) -> bool:
    """Whether the results store already holds records of ``run_id`` (a finished run)."""
    return any(r.get("run_id") == run_id for r in results.read_records(store))
