"""Names that become paths, blank names, repeated ``--variant`` keys, and shard indexes.

* every registered name (loss, method, baseline) is a safe file name, since run directories are
  named after it: a plugin registering ``../../x`` or ``my/loss`` is a one-line PluginError;
* a blank name (an unset shell variable) is "empty name", not "unknown ''";
* ``--variant m:beta=0.1,beta=0.2`` is refused rather than keeping the last value;
* a ``model.safetensors.index.json`` may name only ``.safetensors`` files in the model
  directory: a pickle shard (loading it runs its code) or a path out of it is refused.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_user_error
from safetensors.numpy import save_file
from test_plugins import write_plugin

from recbench import losses, models
from recbench.errors import ModelError, UserError
from recbench.registry import Registry, registries
from recbench.reports.variants import parse_variants


# ------------------------------------------------------------------------------- registries
@pytest.mark.parametrize("bad", ["../../x", "my/loss", ".hidden", "..", "a b", "x\n", "", "/abs"])
def test_a_builtin_bad_name_is_refused_at_registration(bad):
    registry: Registry[int] = Registry("thing")
    try:
        with pytest.raises(ValueError, match="invalid thing name"):
            registry.add(bad, 1)
        assert bad not in registry
        registry.add("fine-name_1.0", 2)
        assert registry.get("fine-name_1.0") == 2
    finally:
        registries().remove(registry)


@pytest.mark.parametrize("bad", ["../../x", "my/loss"])
def test_a_plugin_registering_a_path_like_key_is_one_line(cli, recbench_home, tmp_path, bad):
    plugin = write_plugin(tmp_path / "bad.py", bad)
    assert_user_error(
        cli("losses", "--plugin", str(plugin)),
        "plugin bad.py registers a bad name",
        f"invalid loss name '{bad}'",
    )
    result = cli("run", "--plugin", str(plugin), "--loss", bad, "--profile", "smoke")
    assert_user_error(result, "plugin bad.py registers a bad name")
    assert not (recbench_home / "runs").exists()
    assert not (recbench_home.parent / "x").exists()


@pytest.mark.parametrize("blank", ["", "  ", "\t"])
def test_a_blank_name_is_an_empty_name(blank):
    with pytest.raises(UserError, match=r"empty name \(.*\) given for a loss; known: dpo"):
        losses.get_spec(blank)


def test_a_blank_loss_on_the_command_line_is_one_line(cli):
    assert_user_error(cli("losses", ""), "empty name ('') given for a loss")


# ---------------------------------------------------------------------------------- variant
def test_a_variant_key_given_twice_is_refused():
    with pytest.raises(UserError, match=r"--variant m:beta=0\.1, beta=0\.2: key 'beta' is given"):
        parse_variants(["m:beta=0.1, beta=0.2"])
    parsed = parse_variants(["m:beta=0.1,gamma=0.2"])  # distinct keys are fine
    assert parsed[0].settings == (("beta", 0.1), ("gamma", 0.2))


def test_a_variant_key_given_twice_on_the_command_line(cli, tmp_path):
    result = cli("compare", "--results", str(tmp_path / "none.jsonl"), "--out",
                 str(tmp_path / "r"), "--variant", "m:beta=0.1,beta=0.2")  # fmt: skip
    assert_user_error(result, "key 'beta' is given twice")
    assert not (tmp_path / "r").exists()


# ------------------------------------------------------------------------- shard indexes
def sharded_model(root: Path, shards: dict[str, str]) -> Path:
    """A model directory: config.json, sound safetensors shards, and an index mapping each
    tensor to ``shards[tensor]``."""
    root.mkdir(parents=True)
    (root / "config.json").write_text(json.dumps({"model_type": "llama"}))
    for index, shard in enumerate(sorted(set(shards.values()))):
        if shard.endswith(".safetensors") and "/" not in shard:
            save_file({f"w{index}": np.zeros(4, dtype=np.float32)}, str(root / shard))
    index_file = root / "model.safetensors.index.json"
    index_file.write_text(json.dumps({"metadata": {}, "weight_map": shards}))
    return root


def test_a_sound_sharded_directory_passes(tmp_path):
    shards = {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}
    models.check_name(str(sharded_model(tmp_path / "m", shards)))


def test_an_index_naming_a_pickle_shard_is_refused(tmp_path):
    """The decoy ``model.safetensors`` passed the old check while the index sent the loader to a
    pickle."""
    model = sharded_model(tmp_path / "m", {"a": "model.safetensors", "b": "pytorch_model-1.bin"})
    (model / "pytorch_model-1.bin").write_bytes(b"\x80\x04malicious pickle")
    with pytest.raises(ModelError) as caught:
        models.check_name(str(model))
    message = str(caught.value)
    assert "names the weight shard 'pytorch_model-1.bin'" in message
    assert "not a .safetensors file in the model directory" in message
    assert "\n" not in message


@pytest.mark.parametrize("where", ["../outside.safetensors", "ABS", "sub/x.safetensors"])
def test_an_index_naming_a_shard_outside_the_directory_is_refused(tmp_path, where):
    outside = tmp_path / "outside.safetensors"
    save_file({"w": np.zeros(4, dtype=np.float32)}, str(outside))
    shard = str(outside) if where == "ABS" else where
    model = sharded_model(tmp_path / "m", {"a": "model.safetensors", "b": shard})
    (model / "sub").mkdir()
    save_file({"w": np.zeros(4, dtype=np.float32)}, str(model / "sub" / "x.safetensors"))
    with pytest.raises(ModelError, match="not a .safetensors file in the model directory"):
        models.check_directory(model)
