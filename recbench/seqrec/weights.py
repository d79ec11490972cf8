"""Saving and loading sequential-model weights (safetensors + a json of settings).

Two kinds of checkpoint exist:

* the **released** LLaRA / iLoRA weights in ``recbench/seqrec/checkpoints/`` (``NAME.safetensors`` beside
  ``NAME.json``, whose ``class`` and constructor fields describe the original model), and
* weights **trained by recbench**, saved as ``model.safetensors`` + ``model.json`` (``kind`` and
  ``config``, plus whatever the trainer records) in a directory the caller chooses.

Both load with ``strict=True`` so that a missing or renamed tensor is an error, never a silently
random layer.  The sha256 of the weights file is the checkpoint's identity in caches (a retrained
model with the same name must not reuse another model's cached signals).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from recbench.data.rows import sha256_of
from recbench.errors import ModelError
from recbench.seqrec.models import STATE_SIZE, SequentialRecommender, build_model

CHECKPOINT_DIR = Path(__file__).parent / "checkpoints"
WEIGHTS_FILE = "model.safetensors"
SETTINGS_FILE = "model.json"
# Released checkpoints whose numbers must not be read as results of the dataset's protocol.
RELEASED_CAVEATS = {
    "sasrec_lastfm": (
        "its training data is undocumented, so an overlap with lastfm's test users cannot be "
        "ruled out; recbench reports lastfm baselines trained on the training split instead"
    ),
}
# The "class" field of the released descriptions -> recbench model kind.
_RELEASED_CLASSES = {"SASRec": "sasrec", "GRU": "gru4rec", "Caser": "caser"}


def released_names() -> list[str]:
    """Names of the released checkpoints shipped in ``recbench/seqrec/checkpoints``."""
    return sorted(p.stem for p in CHECKPOINT_DIR.glob("*.safetensors"))


def released_name(kind: str, dataset: str) -> str:
    """The released checkpoint name for a model kind and dataset (``sasrec_steam`` etc.)."""
    return f"{kind}_{dataset}"


def released_path(kind: str, dataset: str) -> Path:
    """Path of the released weights, or a one-line :class:`ModelError` when there are none."""
    name = released_name(kind, dataset)
    path = CHECKPOINT_DIR / f"{name}.safetensors"
    if not path.is_file():
        have = [n for n in released_names() if n.startswith(f"{kind}_")]
        datasets = ", ".join(n[len(kind) + 1 :] for n in have) or "none"
        raise ModelError(
            f"no released {kind} checkpoint for dataset '{dataset}' "
            f"(released {kind} checkpoints exist for: {datasets}); train one instead"
        )
    return path


def file_sha256(path: Path) -> str:
    return sha256_of(path)


def _settings_path(weights: Path) -> Path:
    """``NAME.json`` beside ``NAME.safetensors`` (released), else ``model.json`` (recbench)."""
    sibling = weights.with_suffix(".json")
    if sibling.is_file():
        return sibling
    fallback = weights.parent / SETTINGS_FILE
    if fallback.is_file():
        return fallback
    raise ModelError(f"{weights}: no settings file ({sibling.name} or {SETTINGS_FILE}) beside it")


def _released_config(description: dict, state: dict[str, torch.Tensor]) -> tuple[str, dict]:
    """Constructor settings of a released model, from its description and tensor shapes.

    Shapes are authoritative (the pickled attributes of some releases are incomplete, e.g. the
    SASRec state size is only recorded for one of them); the description supplies the rest.
    """
    kind = _RELEASED_CLASSES.get(str(description.get("class")))
    if kind is None:
        raise ModelError(f"unsupported released model class '{description.get('class')}'")
    num_items, hidden = state["s_fc.weight"].shape[0], state["item_embeddings.weight"].shape[1]
    config: dict[str, Any] = {"num_items": int(num_items), "hidden_size": int(hidden)}
    if kind == "sasrec":
        config["state_size"] = int(state["positional_embeddings.weight"].shape[0])
        config["num_heads"] = int(description.get("num_heads", 1))
    elif kind == "caser":
        config["state_size"] = int(state["vertical_cnn.weight"].shape[2])
        config["num_filters"] = int(description.get("num_filters", 16))
        config["filter_sizes"] = list(description.get("filter_sizes", [2, 3, 4]))
        config["dropout"] = float(description.get("dropout_rate", 0.1))
    else:
        config["state_size"] = int(description.get("state_size", STATE_SIZE))
    return kind, config


def load_weights(path: Path | str) -> tuple[SequentialRecommender, dict]:
    """Load a checkpoint (released or recbench-trained) in evaluation mode.

    Returns the model and its settings; ``settings["sha256"]`` is the weights file's digest.
    """
    path = Path(path)
    if path.is_dir():
        path = path / WEIGHTS_FILE
    if not path.is_file():
        raise ModelError(f"checkpoint not found: {path}")
    settings = json.loads(_settings_path(path).read_text(encoding="utf-8"))
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise ModelError(f"{path}: not a readable safetensors file ({exc})") from None
    if "kind" in settings and "config" in settings:
        kind, config = settings["kind"], dict(settings["config"])
    else:
        kind, config = _released_config(settings, state)
    model = build_model(kind, **config)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise ModelError(f"{path}: weights do not fit a {kind} model ({first[-1]})") from None
    model.eval()
    settings = {**settings, "kind": kind, "config": config, "sha256": file_sha256(path)}
    settings["path"] = str(path)
    return model, settings


def load_released(kind: str, dataset: str) -> tuple[SequentialRecommender, dict]:
    """The released ``{kind}_{dataset}`` model, in evaluation mode."""
    return load_weights(released_path(kind, dataset))


def save_weights(model: SequentialRecommender, directory: Path, extra: dict | None = None) -> Path:
    """Write ``model.safetensors`` and ``model.json`` (kind, config, ``extra``) to ``directory``.

    Files are written under temporary names and renamed (settings, then weights), so a crash
    never leaves a weights file that does not match its settings.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    weights = directory / WEIGHTS_FILE
    settings = {"kind": model.kind, "config": model.config(), **(extra or {})}
    tmp_weights = directory / (WEIGHTS_FILE + ".tmp")
    tmp_settings = directory / (SETTINGS_FILE + ".tmp")
    state = {name: t.detach().cpu().contiguous() for name, t in model.state_dict().items()}
    save_file(state, str(tmp_weights))
    settings["sha256"] = file_sha256(tmp_weights)
    tmp_settings.write_text(json.dumps(settings, indent=1, sort_keys=True) + "\n", "utf-8")
    # settings first, weights last: the weights file is what marks a saved model, so a kill
    # between the two renames leaves no weights beside settings that do not describe them
    if weights.exists():
        weights.unlink()
    tmp_settings.replace(directory / SETTINGS_FILE)
    tmp_weights.replace(weights)
    return weights
