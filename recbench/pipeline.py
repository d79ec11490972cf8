"""The LLM path of ``recbench run``: SFT, preference optimisation with a loss, evaluation.

dataset -> examples -> prompt items -> (scorer -> loss -> trainer) -> evaluation -> records.
The SFT stage depends only on the model, data, seed and SFT settings, so it is cached and shared
by every loss run with the same settings (and evaluated once, as the ``sft`` method).
"""

from __future__ import annotations

import hashlib
import json
import resource
import time
from dataclasses import asdict
from pathlib import Path

import torch

from recbench import models, paths, results
from recbench.batches import PromptItem, pick_examples, render
from recbench.config import RunConfig
from recbench.data import load_dataset
from recbench.data.dataset import Dataset
from recbench.evaluation import generate_answers, generation_report, rank_candidates, ranking_report
from recbench.scoring import encode_pairs, score_responses
from recbench.trainer import Stage, StageSettings, add_lora

EVAL_SEED = 0  # every method is evaluated on the same test subset with the same prompts


def _digest(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:12]


def peak_memory_mb() -> float:
    """Peak memory of this process: CUDA allocator peak on a GPU, else peak resident set."""
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _precision(requested: str) -> str:
    if requested != "auto":
        return requested
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16"
    return "fp32"


#: RunConfig fields that say where a run is stored or how it is started, not what it computes.
RUN_LOCATION_FIELDS = ("output_dir", "results", "resume")


class LLMRun:
    """State shared by the stages of one LLM run."""

    def __init__(self, config: RunConfig, progress: bool = True) -> None:
        from accelerate import Accelerator

        self.config = config
        self.settings = config.resolved()
        self.progress = progress
        self.ds: Dataset = load_dataset(config.dataset)
        self.accelerator = Accelerator(cpu=not torch.cuda.is_available())
        self.precision = _precision(self.settings["precision"])
        self.model, self.tokenizer = models.load(config.model)
        self.model.to(self.accelerator.device)
        self.pad = self.tokenizer.pad_token_id
        seed = config.seed
        train = pick_examples(self.ds.examples("train"), self.settings["train_examples"], seed)
        n_neg = self.settings["n_neg"]
        self.train_items = [render(self.ds, ex, seed, n_neg) for ex in train]
        test = pick_examples(self.ds.examples("test"), self.settings["eval_examples"], EVAL_SEED)
        self.eval_items = [render(self.ds, ex, EVAL_SEED) for ex in test]
        self.sft_key = _digest(
            {
                "model": config.model,
                "dataset": config.dataset,
                "seed": seed,
                "train": [it.example.key for it in self.train_items],
                "profile": {k: self.settings[k] for k in
                            ("sft_epochs", "batch_size", "grad_accum", "sft_learning_rate",
                             "lora_r", "lora_alpha", "max_prompt_tokens", "warmup_ratio")},
                "precision": self.precision,
            }
        )  # fmt: skip
        # where a run is stored, and whether it is being resumed, do not change what it computes:
        # a resumed run must find its own directory and keep its run id
        identity = {k: v for k, v in config.to_dict().items() if k not in RUN_LOCATION_FIELDS}
        self.run_key = _digest({"config": identity, "sft": self.sft_key})
        default_dir = paths.home() / "runs" / f"{config.dataset}-{config.method}-{self.run_key}"
        self.run_dir = Path(config.output_dir) if config.output_dir else default_dir
        self.timings: dict[str, float] = {}

    # ------------------------------------------------------------------------------ helpers
    def encode(self, items: list[PromptItem], with_negatives: int):
        responses = [[it.chosen, *it.rejected[:with_negatives]] for it in items]
        return encode_pairs(
            self.tokenizer,
            [it.prompt for it in items],
            responses,
            add_bos=False,
            max_prompt_tokens=self.settings["max_prompt_tokens"],
        )

    def stage_settings(self, name: str, epochs: float, lr: float) -> StageSettings:
        s = self.settings
        return StageSettings(
            name=name, epochs=epochs, learning_rate=lr, batch_size=s["batch_size"],
            grad_accum=s["grad_accum"], warmup_ratio=s["warmup_ratio"], seed=self.config.seed,
            precision=self.precision, checkpoint_every=s["checkpoint_every"],
        )  # fmt: skip

    # ---------------------------------------------------------------------------------- SFT
    def sft(self) -> dict:
        """Supervised fine-tuning: mean per-token NLL of the target title (+EOS)."""
        s = self.settings
        self.model = add_lora(self.model, s["lora_r"], s["lora_alpha"], self.config.seed)
        stage = Stage(
            paths.home() / "stages" / f"sft-{self.sft_key}",
            self.stage_settings("sft", s["sft_epochs"], s["sft_learning_rate"]),
            self.accelerator,
        )

        def step(rows: list[int]):
            items = [self.train_items[i] for i in rows]
            prompt_ids, response_ids = self.encode(items, 0)
            scores = score_responses(self.model, prompt_ids, response_ids, pad_token_id=self.pad)
            per_token = scores.logps[:, 0] / scores.lengths[:, 0]
            return -per_token.mean(), {}

        summary = stage.fit(
            self.model, len(self.train_items), step, resume=True, progress=self.progress
        )
        # the SFT stage may come from the cache: record what training it took, not the load
        self.timings["sft_seconds"] = summary["seconds"]
        return summary

    # --------------------------------------------------------------------------- preference
    @torch.no_grad()
    def reference_logps(self, n_used: int) -> torch.Tensor:
        """Log-probs of chosen + negatives under the SFT model, computed once and cached."""
        cache = self.run_dir / "reference.safetensors"
        from safetensors.torch import load_file, save_file

        if cache.is_file():
            return load_file(str(cache))["logps"]
        self.model.eval()
        rows = []
        size = self.settings["batch_size"]
        for start in range(0, len(self.train_items), size):
            chunk = self.train_items[start : start + size]
            prompt_ids, response_ids = self.encode(chunk, n_used)
            rows.append(
                score_responses(self.model, prompt_ids, response_ids, pad_token_id=self.pad)
                .logps.float()
                .cpu()
            )
        logps = torch.cat(rows)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        save_file({"logps": logps}, str(cache))
        self.model.train()
        return logps

    def preference(self, loss_module, auxiliary=None) -> dict:
        from losses import PreferenceBatch, gather_batch

        s = self.settings
        n_used = s["n_neg"] if loss_module.uses_all_negatives else 1
        needs = loss_module.requires
        reference = self.reference_logps(n_used) if loss_module.needs_reference else None
        stage = Stage(
            self.run_dir / "preference",
            self.stage_settings("preference", s["pref_epochs"], s["learning_rate"]),
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
            if auxiliary is not None:
                fields.update(auxiliary.fields(items, needs))
            batch = gather_batch(PreferenceBatch(**fields))
            out = loss_module(batch)
            info = {k: float(v) for k, v in out.metrics.items() if _is_scalar(v)}
            return out.loss, info

        started = time.perf_counter()
        summary = stage.fit(
            self.model,
            len(self.train_items),
            step,
            extra={"loss": loss_module},
            resume=self.config.resume,
            progress=self.progress,
        )
        self.timings["preference_seconds"] = time.perf_counter() - started
        return summary

    # ---------------------------------------------------------------------------- evaluation
    def evaluate(self, generation: bool | None = None) -> dict[str, dict]:
        s = self.settings
        started = time.perf_counter()
        scores, lengths = rank_candidates(
            self.model, self.tokenizer, self.ds, self.eval_items,
            batch_size=max(1, s["batch_size"] // 2), max_prompt_tokens=s["max_prompt_tokens"],
            progress=self.progress,
        )  # fmt: skip
        out = {"ranking": ranking_report(self.ds, self.eval_items, scores, lengths)}
        self.timings["eval_ranking_seconds"] = time.perf_counter() - started
        if s["generation"] if generation is None else generation:
            started = time.perf_counter()
            answers = generate_answers(
                self.model, self.tokenizer, self.eval_items, batch_size=s["batch_size"],
                max_new_tokens=s["max_new_tokens"], max_prompt_tokens=s["max_prompt_tokens"],
                progress=self.progress,
            )  # fmt: skip
            out["generation"] = generation_report(self.ds, self.eval_items, answers)
            self.timings["eval_generation_seconds"] = time.perf_counter() - started
            self._write_answers(answers)
        return out

    def _write_answers(self, answers: list[str]) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with open(self.run_dir / "answers.jsonl", "w") as out:
            out.writelines(
                json.dumps({"key": item.example.key, "answer": text}) + "\n"
                for item, text in zip(self.eval_items, answers, strict=True)
            )

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
            "settings": {**self.settings, "config": self.config.to_dict(),
                         "precision": self.precision, "processes":
                         self.accelerator.num_processes},
        }  # fmt: skip
        rows = []
        for mode, values in evaluation.items():
            rows += results.make_records(run, values, split="test", mode=mode)
        cost = {**self.timings, "peak_memory_mb": peak_memory_mb()}
        rows += results.make_records(run, cost, split="train", mode="cost")
        return rows


def _is_scalar(value: object) -> bool:
    if isinstance(value, int | float):
        return True
    return isinstance(value, torch.Tensor) and value.numel() == 1


def run_llm(config: RunConfig, progress: bool = True) -> dict:
    """``recbench run --loss KEY`` (or the zero-shot / SFT LLM baselines)."""
    import losses

    run = LLMRun(config, progress=progress)
    store = config.results
    # SFT results are keyed by the SFT stage, so every loss run sharing it reuses one evaluation
    sft_id = f"{config.dataset}-sft-{run.sft_key}-{config.profile}"
    run_id = (
        sft_id if config.baseline == "sft" else f"{config.dataset}-{config.method}-{run.run_key}"
    )
    if run.accelerator.is_main_process and already_recorded(store, run_id):
        return {"run_id": run_id, "skipped": "already in the results store"}
    output: dict = {"run_id": run_id, "run_dir": str(run.run_dir)}
    all_records = []
    if config.baseline == "zero_shot":
        evaluation = run.evaluate()
        all_records += run.records("zero_shot", "llm_baseline", {}, evaluation, run_id)
    else:
        output["sft"] = run.sft()
        if not already_recorded(store, sft_id):
            evaluation = run.evaluate()
            all_records += run.records("sft", "llm_baseline", {}, evaluation, sft_id)
            output["sft_eval"] = evaluation
        if config.loss is not None:
            loss_module = losses.get_loss(config.loss, **config.loss_params)
            auxiliary = None
            if loss_module.requires & {"seq_embeddings", "rejected_scores", "receiver_scores"}:
                from recbench.auxiliary import for_run

                auxiliary = for_run(run.ds, loss_module, config)
            output["preference"] = run.preference(loss_module, auxiliary)
            evaluation = run.evaluate()
            hparams = {**asdict(loss_module.hparams), "n_neg": run.settings["n_neg"]}
            all_records += run.records(config.loss, "loss", hparams, evaluation, run_id)
            output["evaluation"] = evaluation
    if run.accelerator.is_main_process:
        output["results"] = str(results.append_records(all_records, store))
    output["timings"] = run.timings
    return output


def already_recorded(store, run_id: str) -> bool:
    """Whether the results store already holds records of ``run_id`` (a finished run)."""
    return any(r.get("run_id") == run_id for r in results.read_records(store))
