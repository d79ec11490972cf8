"""One training loop for every stage and every loss: SFT and preference optimisation with LoRA.

The loop is deliberately small and explicit, so that what it does on one laptop core is exactly
what it does on several GPUs:

* accelerate provides the device, the process group and mixed-precision autocast; gradients of
  the (few) LoRA parameters are averaged across processes by hand after each backward, so the
  scorer can call the unwrapped model directly (no DDP wrapper between it and the decoder).
* Each global micro-batch is split rank-major across processes; batch-coupled losses (NAPO's
  sharing and margin, alpha-DPO's statistics) see the global micro-batch through
  ``recbench.losses.gather_batch``, so one process and several give the same loss.
* Batch order is a seeded permutation per epoch and nothing else in the loop draws random
  numbers (LoRA dropout is 0, Llama has no dropout), so a resumed run replays exactly the steps
  an uninterrupted run would have taken.
* Checkpoints (trainable weights as safetensors, optimizer and scheduler state, the loss's
  running buffers, the step) are written to a temporary directory and renamed into place, so a
  kill at any moment leaves either the previous or the new checkpoint, never half of one.
* A non-finite loss stops the stage with a clear error and leaves the last good checkpoint.
* With ``gradient_checkpointing`` the decoder layers recompute their activations in the backward
  instead of keeping them (:func:`set_gradient_checkpointing`): less memory, the same gradients.
* Crash windows are closed: the summary is written inside the checkpoint before the rename,
  a kill between the two renames is repaired from the kept ``.old`` copy, a torn line in the
  metrics log is dropped, and a damaged checkpoint (a file truncated or removed, however that
  happened) is discarded with a warning and its stage retrained, so ``--resume`` never fails on
  what a killed run left behind.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import resource
import shutil
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from recbench.errors import UserError
from recbench.models import quiet_library_warnings
from recbench.output import tracker_init_kwargs
from recbench.rundir import checkpoint_step

StepFn = Callable[[list], tuple[torch.Tensor, dict[str, float]]]
logger = logging.getLogger(__name__)


class InterruptedStageError(UserError):
    """A stage holds an interrupted run and the caller did not ask to resume it."""


class TrainingDivergedError(UserError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""

    exit_code = 1


@dataclass(frozen=True)
class StageSettings:
    name: str
    epochs: float
    learning_rate: float
    batch_size: int  # per process
    grad_accum: int
    warmup_ratio: float
    seed: int
    precision: str = "fp32"  # fp32 or bf16 (autocast)
    checkpoint_every: int = 10  # optimizer steps
    max_grad_norm: float = 1.0
    # recompute the decoder layers' activations in the backward (see set_gradient_checkpointing)
    gradient_checkpointing: bool = False


def peak_memory_mb() -> float:
    """Peak memory of this process: CUDA allocator peak on a GPU, else peak resident set."""
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def resident_memory_mb() -> float:
    """This process's resident memory now (0 where ``/proc`` is not there).

    Logged with every optimizer step, so that memory growing over a stage (an allocator that
    fragments, a tensor kept by mistake) shows in the stage's own log.
    """
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def autocast(precision: str, device_type: str):
    """bf16 autocast for ``precision == "bf16"``, a disabled one otherwise: the one place that
    turns a precision setting into a context, for training and evaluation alike."""
    return torch.autocast(
        device_type=device_type, dtype=torch.bfloat16, enabled=precision == "bf16"
    )


def add_lora(model, r: int, alpha: int, seed: int):
    """Wrap ``model`` with a LoRA adapter on every linear layer of the decoder (seeded init)."""
    from peft import LoraConfig, get_peft_model

    quiet_library_warnings()
    torch.manual_seed(seed)
    config = LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=0.0,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


def _checkpointable(model) -> torch.nn.Module:
    """The transformers model under a peft wrapper: its decoder layers carry the flag."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def is_gradient_checkpointing(model) -> bool:
    """Whether any layer of ``model`` recomputes its activations in the backward."""
    return any(getattr(m, "gradient_checkpointing", False) is True for m in model.modules())


def set_gradient_checkpointing(model, enabled: bool) -> None:
    """Turn non-reentrant gradient checkpointing of ``model``'s decoder layers on or off.

    Why: the activations each layer keeps for the backward are most of a training step's
    memory (about 3.75 of 6.2 GB for a SimS-DPO step with 19 negatives on the 135M model, tens
    of GB at 7B and micro-batch 16); checkpointed, a layer keeps only its inputs and recomputes
    the rest in the backward, for more time per step and the same gradients.

    Why non-reentrant: the reentrant form only passes gradients through positional inputs
    that require grad; with LoRA the embeddings are frozen and transformers calls its layers
    with keyword arguments, so the adapters' gradients would be lost (autograd refuses them).
    The non-reentrant form has no such condition, and it replays each layer with the autocast
    state and RNG of its forward, so the recomputation is the same computation.

    It is switched on in the transformers model under a peft wrapper, whose decoder layers read
    the flag themselves: the packed scorer's direct decoder calls (a 4D mask, no
    ``PeftModel.forward``) are checkpointed like an ordinary forward.  It only acts in training
    mode with gradients on: evaluation and the no-grad reference pass run as before.
    """
    base = _checkpointable(model)
    if not enabled:
        if is_gradient_checkpointing(base):
            disable = getattr(base, "activation_checkpointing_disable", None)
            (disable or base.gradient_checkpointing_disable)()
        return
    if not getattr(base, "supports_gradient_checkpointing", False):
        raise UserError(
            f"{type(base).__name__} does not support gradient checkpointing; "
            "use --set gradient_checkpointing=false"
        )
    kwargs = {"use_reentrant": False}
    # newer transformers name it activation checkpointing (the old name warns as deprecated)
    enable = getattr(base, "activation_checkpointing_enable", None)
    if enable is not None:
        enable(activation_checkpointing_kwargs=kwargs)
    else:
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


@contextmanager
def gradient_checkpointing(model, enabled: bool) -> Iterator[None]:
    """``model`` checkpointed inside the block when ``enabled``, left as found after it: the
    trained model is evaluated next, and may be trained by another stage with another setting."""
    if not enabled:
        yield
        return
    before = is_gradient_checkpointing(_checkpointable(model))
    set_gradient_checkpointing(model, True)
    try:
        yield
    finally:
        if not before:
            set_gradient_checkpointing(model, False)


def trainable_state(model) -> dict[str, torch.Tensor]:
    """A copy of the trainable weights on the CPU.

    A copy even on the CPU, where ``.cpu()`` returns the parameter itself: the state is kept
    to undo a partial load (:meth:`Stage._load_or_discard`), and an alias would follow the
    load instead of keeping what came before it.
    """
    return {
        n: p.detach().to("cpu", copy=True).contiguous()
        for n, p in model.named_parameters()
        if p.requires_grad
    }


def load_trainable_state(model, path: Path) -> None:
    state = load_file(str(path))
    params = dict(model.named_parameters())
    missing = [name for name in state if name not in params]
    if missing:
        raise UserError(f"{path} does not match the model (unknown tensor {missing[0]})")
    with torch.no_grad():
        for name, tensor in state.items():
            params[name].copy_(tensor.to(params[name].device))


class Stage:
    """Runs one training stage in ``directory``, resumable, with JSON Lines metrics."""

    def __init__(self, directory: Path, settings: StageSettings, accelerator) -> None:
        self.dir = Path(directory)
        self.settings = settings
        self.accelerator = accelerator
        self.dir.mkdir(parents=True, exist_ok=True)

    @property
    def final_weights(self) -> Path:
        return self.dir / "final" / "adapter.safetensors"

    def is_done(self) -> bool:
        """Whether the stage finished (its final checkpoint is complete; see :meth:`repair`)."""
        return (self.dir / "final" / "done.json").is_file()

    def repair(self) -> None:
        """Undo what a kill in :meth:`_save` can leave: a lone ``.old`` copy, a ``.tmp``.

        ``_save`` renames the current checkpoint to ``.old`` and the new one into place; killed
        between the two renames, the stage has ``.old`` and no checkpoint, and the ``.old``
        copy is the last complete one.  A ``.tmp`` directory is always incomplete.
        """
        for where in ("checkpoint", "final"):
            target, old = self.dir / where, self.dir / (where + ".old")
            if old.is_dir() and not target.exists():
                old.rename(target)
            shutil.rmtree(old, ignore_errors=True)
            shutil.rmtree(self.dir / (where + ".tmp"), ignore_errors=True)

    def interrupted_step(self) -> int | None:
        """The step of the stage's resumable checkpoint, or None when it has none."""
        return checkpoint_step(self.dir / "checkpoint")

    def _order(self, n_items: int, epoch: int) -> list[int]:
        order = list(range(n_items))
        random.Random(f"order:{self.settings.seed}:{self.settings.name}:{epoch}").shuffle(order)
        return order

    def micro_batches(self, n_items: int) -> list[list[int]]:
        """Global micro-batches (lists of item indices) over all epochs, in training order."""
        world = self.accelerator.num_processes
        size = self.settings.batch_size * world
        whole = math.floor(self.settings.epochs)
        frac = self.settings.epochs - whole
        batches: list[list[int]] = []
        for epoch in range(math.ceil(self.settings.epochs)):
            order = self._order(n_items, epoch)
            if epoch == whole and frac > 0:
                order = order[: max(size, round(frac * n_items))]
            batches += [order[i : i + size] for i in range(0, len(order) - size + 1, size)]
        if not batches:
            raise UserError(
                f"{self.settings.name}: {n_items} training examples cannot fill one batch of "
                f"{size}; use more examples or a smaller batch"
            )
        return batches

    def local_rows(self, batch: list[int]) -> list[int]:
        per = self.settings.batch_size
        rank = self.accelerator.process_index
        return batch[rank * per : (rank + 1) * per]

    # ------------------------------------------------------------------ checkpointing
    def _save(
        self, model, optimizer, scheduler, extra: dict, step: int, where: str,
        summary: dict | None = None, seconds: float = 0.0, peak_mb: float = 0.0,
    ) -> None:  # fmt: skip
        if not self.accelerator.is_main_process:
            self.accelerator.wait_for_everyone()
            return
        target = self.dir / where
        tmp = self.dir / (where + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        save_file(trainable_state(model), str(tmp / "adapter.safetensors"))
        if optimizer is not None:
            torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
            torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        torch.save({k: v.state_dict() for k, v in extra.items()}, tmp / "modules.pt")
        state = {"step": step, "seconds": seconds, "peak_memory_mb": peak_mb}
        (tmp / "state.json").write_text(json.dumps(state) + "\n")
        if where == "final":  # done.json last: it marks the checkpoint complete
            (tmp / "summary.json").write_text(json.dumps(summary or {}) + "\n")
            (tmp / "done.json").write_text(json.dumps(asdict(self.settings)) + "\n")
        old = self.dir / (where + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if target.exists():
            target.rename(old)
        tmp.rename(target)
        shutil.rmtree(old, ignore_errors=True)
        self.accelerator.wait_for_everyone()

    def _load(self, model, optimizer, scheduler, extra: dict, where: str) -> int:
        source = self.dir / where
        load_trainable_state(model, source / "adapter.safetensors")
        if optimizer is not None and (source / "optimizer.pt").is_file():
            optimizer.load_state_dict(torch.load(source / "optimizer.pt", weights_only=True))
            scheduler.load_state_dict(torch.load(source / "scheduler.pt", weights_only=True))
        modules = torch.load(source / "modules.pt", weights_only=True)
        for key, module in extra.items():
            if key in modules:
                module.load_state_dict(modules[key])
        return int(json.loads((source / "state.json").read_text())["step"])

    def _checkpoint_cost(self) -> tuple[float, float]:
        """Training seconds and peak memory (MB) up to the checkpoint (0 for one written before
        they were kept), so that a stage continued after a kill reports the time of all its
        steps and the peak of every process that trained it, not of the last part only.  Steps
        done after the checkpoint and lost with the kill are not counted; they are counted when
        they are redone."""
        try:
            state = json.loads((self.dir / "checkpoint" / "state.json").read_text())
            return float(state.get("seconds", 0.0)), float(state.get("peak_memory_mb", 0.0))
        except (OSError, ValueError, TypeError, AttributeError):
            return 0.0, 0.0

    def load_final(self, model, extra: dict | None = None) -> None:
        self._load(model, None, None, extra or {}, "final")

    def _load_or_discard(self, model, optimizer, scheduler, extra: dict, where: str) -> int | None:
        """Load checkpoint ``where``; a damaged one is removed with a warning (None).

        A checkpoint whose files are truncated, missing or unreadable cannot be continued, and
        keeping it would make every later ``--resume`` fail the same way; the stage then
        retrains from the previous complete state (the checkpoint, or the start).
        """
        weights = trainable_state(model)
        modules = {k: {n: t.clone() for n, t in m.state_dict().items()} for k, m in extra.items()}
        try:
            step = self._load(model, optimizer, scheduler, extra, where)
            if where == "final":
                json.loads((self.dir / where / "summary.json").read_text())
            return step
        except Exception as exc:  # noqa: BLE001 - torch.load of a torn file raises anything
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            warnings.warn(
                f"{self.settings.name}: discarding the damaged {where} in {self.dir} "
                f"({reason}); the stage continues from the previous complete state",
                UserWarning, stacklevel=3,
            )  # fmt: skip
            shutil.rmtree(self.dir / where, ignore_errors=True)
            with torch.no_grad():  # undo whatever part of the damaged checkpoint was loaded
                params = dict(model.named_parameters())
                for name, tensor in weights.items():
                    params[name].copy_(tensor.to(params[name].device))
            for key, module in extra.items():
                module.load_state_dict(modules[key])
            return None

    # ------------------------------------------------------------------------ training
    def fit(
        self,
        model,
        n_items: int,
        step_fn: Callable[[list[int]], tuple[torch.Tensor, dict[str, float]]],
        *,
        extra: dict | None = None,
        resume: bool | str = False,
        progress: bool = True,
    ) -> dict:
        """Train until the stage is done; ``step_fn(local_item_indices)`` returns the loss.

        ``resume``: an interrupted checkpoint is continued when true (or ``"auto"``); when
        false, finding one raises :class:`InterruptedStageError` rather than deleting it.

        ``extra`` maps names to modules whose state is checkpointed with the weights (the loss
        and its running buffers).  Returns a summary (steps, seconds, peak memory, last metrics).
        """
        from transformers import get_cosine_schedule_with_warmup

        extra = extra or {}
        if self.accelerator.is_main_process:  # one process renames; the others wait for it
            self.repair()
        self.accelerator.wait_for_everyone()
        if self.is_done() and self._load_or_discard(model, None, None, extra, "final") is not None:
            logger.info("%s: trained before; loaded from %s", self.settings.name, self.dir)
            return json.loads((self.dir / "final" / "summary.json").read_text())
        self.accelerator.wait_for_everyone()  # every process has looked before one removes it
        if self.accelerator.is_main_process:
            shutil.rmtree(self.dir / "final", ignore_errors=True)  # incomplete (no done.json)
        settings = self.settings
        batches = self.micro_batches(n_items)
        total_steps = max(1, len(batches) // settings.grad_accum)
        batches = batches[: total_steps * settings.grad_accum]
        params = [p for p in model.parameters() if p.requires_grad]

        def fresh_optimizer():
            optimizer = torch.optim.AdamW(params, lr=settings.learning_rate, weight_decay=0.0)
            return optimizer, get_cosine_schedule_with_warmup(
                optimizer, math.ceil(settings.warmup_ratio * total_steps), total_steps
            )

        optimizer, scheduler = fresh_optimizer()
        step, resumed_at, seconds_before, peak_before = 0, None, 0.0, 0.0
        if (self.dir / "checkpoint").is_dir():
            if not resume:
                raise InterruptedStageError(
                    f"{self.dir} holds an interrupted {settings.name} stage (step "
                    f"{self.interrupted_step()} of {total_steps}); add --resume to continue "
                    f"it, or delete {self.dir} to start it over"
                )
            loaded = self._load_or_discard(model, optimizer, scheduler, extra, "checkpoint")
            if loaded is None:
                optimizer, scheduler = fresh_optimizer()  # a partial load may have touched them
            else:
                step, resumed_at = loaded, loaded
                seconds_before, peak_before = self._checkpoint_cost()
                if progress:
                    print(f"{settings.name}: continuing from the checkpoint at step {step} of "
                          f"{total_steps} ({self.dir})", file=sys.stderr, flush=True)  # fmt: skip
        log_path = self.dir / "metrics.jsonl"
        self._truncate_log(log_path, step)
        started = time.perf_counter()
        model.train()
        for module in extra.values():
            module.train()
        self._describe(n_items, total_steps, step)
        bar = tqdm(total=total_steps, initial=step, desc=settings.name, disable=not progress)
        last: dict[str, float] = {}
        autocast = self._autocast()
        with self._tracking(), gradient_checkpointing(model, settings.gradient_checkpointing):
            while step < total_steps:
                sums: dict[str, float] = {}
                for micro in range(settings.grad_accum):
                    batch = batches[step * settings.grad_accum + micro]
                    with autocast:
                        loss, info = step_fn(self.local_rows(batch))
                    if not torch.isfinite(loss.detach()).all():
                        raise self._diverged("loss", step + 1)
                    (loss / settings.grad_accum).backward()
                    for key, value in {"loss": float(loss.detach()), **info}.items():
                        sums[key] = sums.get(key, 0.0) + float(value) / settings.grad_accum
                self._average_gradients(params)
                grad_norm = torch.nn.utils.clip_grad_norm_(params, settings.max_grad_norm)
                if not torch.isfinite(grad_norm):
                    # a finite loss can still have NaN/inf gradients; stepping would poison the
                    # weights and the next checkpoint, so stop before the optimizer touches them
                    raise self._diverged("gradient", step + 1)
                used_lr = scheduler.get_last_lr()[0]  # the rate this step applies, not the next
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                last = {**sums, "grad_norm": float(grad_norm), "lr": used_lr}
                if self.accelerator.is_main_process:
                    memory = {"rss_mb": round(resident_memory_mb(), 1)}
                    with open(log_path, "a") as log:
                        log.write(json.dumps({"step": step, **last, **memory}) + "\n")
                    self.accelerator.log({**last, **memory}, step=step)  # --report-to, if any
                bar.update(1)
                bar.set_postfix(loss=f"{last['loss']:.4f}")
                if step % settings.checkpoint_every == 0 and step < total_steps:
                    seconds = seconds_before + time.perf_counter() - started
                    peak = max(peak_before, peak_memory_mb())
                    self._save(model, optimizer, scheduler, extra, step, "checkpoint",
                               seconds=seconds, peak_mb=peak)  # fmt: skip
        bar.close()
        summary = {
            "steps": total_steps,
            "micro_batches": len(batches),
            "examples_seen": len(batches) * settings.batch_size * self.accelerator.num_processes,
            # the training time of the whole stage, across the processes that ran its parts
            "seconds": seconds_before + time.perf_counter() - started,
            "resumed_at_step": resumed_at,
            # the largest peak of the processes that trained it (this one's includes what it
            # did before, e.g. the SFT stage ahead of a preference stage)
            "peak_memory_mb": max(peak_before, peak_memory_mb()),
            "last": last,
        }
        self._save(model, None, None, extra, step, "final", summary,
                   seconds=summary["seconds"], peak_mb=summary["peak_memory_mb"])  # fmt: skip
        logger.info("%s: %d steps in %.1f s, peak memory %.0f MB, last loss %.4f",
                    settings.name, total_steps, summary["seconds"], summary["peak_memory_mb"],
                    last.get("loss", float("nan")))  # fmt: skip
        if self.accelerator.is_main_process:
            shutil.rmtree(self.dir / "checkpoint", ignore_errors=True)
        return summary

    def _describe(self, n_items: int, total_steps: int, step: int) -> None:
        """The stage's shape in one line, for ``--verbose`` (logged at INFO)."""
        s = self.settings
        logger.info(
            "%s: %d optimizer steps over %d examples (%g epochs; micro-batch %d x %d processes, "
            "accumulation %d), lr %g, %s, gradient checkpointing %s%s; in %s",
            s.name, total_steps, n_items, s.epochs, s.batch_size,
            self.accelerator.num_processes, s.grad_accum, s.learning_rate, s.precision,
            "on" if s.gradient_checkpointing else "off",
            f", continuing at step {step}" if step else "", self.dir,
        )  # fmt: skip

    @contextmanager
    def _tracking(self) -> Iterator[None]:
        """The accelerator's trackers (``--report-to``) open for this stage, finished after it.

        One tracker run per stage, named after it (``RUN_DIR/trackers/sft``, ``.../preference``),
        since each stage counts its steps from 1.  Not ``Accelerator.end_training``: it also
        destroys the process group, which the run still needs after its stages.
        """
        accelerator = self.accelerator
        if not getattr(accelerator, "log_with", None):
            yield
            return
        accelerator.init_trackers(
            self.settings.name,
            config=asdict(self.settings),
            init_kwargs=tracker_init_kwargs(accelerator.logging_dir),
        )
        try:
            yield
        finally:
            for tracker in accelerator.trackers:
                tracker.finish()
            accelerator.trackers = []  # the next stage opens its own

    def _diverged(self, what: str, step: int) -> TrainingDivergedError:
        """The one-line error for a NaN/inf, naming the checkpoint a ``--resume`` would use."""
        state = self.dir / "checkpoint" / "state.json"
        if state.is_file():
            good = int(json.loads(state.read_text())["step"])
            kept = f"the last good checkpoint (step {good}) is kept in {state.parent}"
        else:
            kept = (
                f"no checkpoint was written yet (one every {self.settings.checkpoint_every} steps)"
            )
        return TrainingDivergedError(
            f"{self.settings.name}: non-finite {what} at optimizer step {step}; {kept}; "
            "lower the learning rate or check the loss's hyper-parameters"
        )

    @staticmethod
    def _truncate_log(path: Path, step: int) -> None:
        """Keep only the log lines of steps the checkpoint covers (a kill may leave later ones)."""
        if not path.is_file():
            return
        kept = []
        for line in path.read_bytes().decode("utf-8", "replace").splitlines():
            try:  # a kill mid-write leaves a torn last line: it is dropped with the later ones
                entry = json.loads(line)
                if isinstance(entry, dict) and int(entry["step"]) <= step:
                    kept.append(line)
            except (ValueError, KeyError, TypeError):
                continue
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(line + "\n" for line in kept))
        tmp.replace(path)

    def _autocast(self):
        return autocast(self.settings.precision, self.accelerator.device.type)

    def _average_gradients(self, params: Sequence[torch.nn.Parameter]) -> None:
        world = self.accelerator.num_processes
        if world == 1:
            return
        import torch.distributed as dist

        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            dist.all_reduce(p.grad)
            p.grad /= world
