"""Every user mistake on the command line is one line on stderr, exit code 2, no traceback, and
nothing half-written: out-of-range numbers, conflicting options, the same setting given twice,
output paths that cannot be written, unusable model directories and unreachable hub ids.

Each case goes through ``python -m recbench.cli`` as a user would and fails in the input checks,
before any model is loaded, so the whole file runs in seconds per case.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_user_error, run_cli
from safetensors.numpy import save_file

SMOKE = ("--profile", "smoke")
MAX_SEED = "4294967295"


def assert_nothing_written(home: Path, *paths: Path) -> None:
    """No model, stage, run directory or results store in the home, and none of ``paths``."""
    for sub in ("models", "stages", "runs", "results"):
        assert not (home / sub).exists(), f"{sub}/ was created: the check came too late"
    for path in paths:
        assert not path.exists(), f"{path} was created"


def case(args: tuple[str, ...], *needles: str, id: str) -> object:
    return pytest.param(args, needles, id=id)


# fmt: off
RUN_MISTAKES = [
    # numbers out of range, of every kind
    case(("--seed", "-1"), f"--seed must be an integer in [0, {MAX_SEED}], got -1", id="seed-neg"),
    case(("--seed", "4294967296"), "--seed must be an integer in [0, 4294967295]",
         id="seed-too-big"),
    case(("--eval-examples", "0"), "--eval-examples must be at least 1, got 0", id="eval-0"),
    case(("--train-examples", "-1"), "--train-examples must be at least 1, got -1",
         id="train-neg"),
    case(("--n-neg", "0"), "--n-neg 0 out of range", "use 1 to 19", id="n-neg-0"),
    case(("--n-neg", "20"), "--n-neg 20 out of range", "use 1 to 19", id="n-neg-20"),
    case(("--set", "n_neg=0"), "--set n_neg 0 out of range", id="set-n-neg-0"),
    case(("--set", "warmup_ratio=2"), "--set warmup_ratio must be in [0, 1], got 2.0",
         id="warmup-2"),
    case(("--set", "warmup_ratio=nan"), "--set warmup_ratio must be in [0, 1], got nan",
         id="warmup-nan"),
    case(("--set", "lora_r=0"), "--set lora_r must be at least 1, got 0", id="lora-r-0"),
    case(("--set", "lora_r=inf"), "--set lora_r=inf: expected an integer", id="lora-r-inf"),
    case(("--set", "learning_rate=nan"), "--set learning_rate must be a finite number > 0",
         id="lr-nan"),
    case(("--set", "sft_epochs=inf"), "--set sft_epochs must be a finite number > 0, got inf",
         id="epochs-inf"),
    # loss hyper-parameters: ranges come from the loss registry (napo is the default loss)
    case(("--param", "rho=2"), "loss 'napo': hyper-parameter rho=2 is out of range", "[0, 1]",
         id="rho-2-default-loss"),
    case(("--loss", "napo", "--param", "beta=nan"), "hyper-parameter beta=nan is out of range",
         id="beta-nan"),
    case(("--loss", "dpo", "--param", "beta=-1"), "hyper-parameter beta=-1 is out of range",
         id="beta-neg"),
    case(("--loss", "dpo", "--param", "beta=inf"), "hyper-parameter beta=inf is out of range",
         id="beta-inf"),
    case(("--loss", "sdpo", "--param", "beta=-inf"), "hyper-parameter beta=-inf is out of range",
         id="param-beta-neg-inf"),
    # conflicting options
    case(("--loss", "dpo", "--baseline", "sasrec"),
         "--loss dpo and --baseline sasrec exclude each other", id="loss-and-baseline"),
    case(("--loss", "napo", "--baseline", "zero_shot"),
         "--loss napo and --baseline zero_shot exclude each other",
         id="default-loss-named-and-baseline"),
    # a loss's hyper-parameters have one channel (--param), not options named in the CLI
    case(("--loss", ""), "--loss is empty", id="empty-loss"),
    case(("--baseline", " "), "--baseline is empty", id="blank-baseline"),
    # the same setting given twice, in two ways
    case(("--beta", "0.5"), "No such option: --beta", id="named-loss-option-gone"),
    case(("--param", "rho=0.5", "--param", "rho=0.3"),
         "rho given twice: --param rho=0.5 and --param rho=0.3", id="rho-twice"),
    case(("--param", "beta=1", "--param", "beta=2"),
         "beta given twice: --param beta=1 and --param beta=2", id="param-twice"),
    case(("--set", "lora_r=4", "--set", "lora-r=8"),
         "lora_r given twice: --set lora_r=4 and --set lora-r=8", id="set-twice"),
    case(("--n-neg", "3", "--set", "n_neg=5"), "n_neg given twice: --n-neg 3 and --set n_neg=5",
         id="n-neg-twice"),
    case(("--train-examples", "8", "--set", "train_examples=16"),
         "train_examples given twice: --train-examples 8 and --set train_examples=16",
         id="train-examples-twice"),
    case(("--eval-examples", "8", "--set", "eval_examples=16"),
         "eval_examples given twice", id="eval-examples-twice"),
    case(("--set", "eval_precision=fp16"), "unknown eval_precision 'fp16'", "fp32, bf16, screened",
         id="eval-precision-unknown"),
    case(("--aux-checkpoint", "released", "--set", "aux_checkpoint=trained"),
         "aux_checkpoint given twice", id="aux-checkpoint-twice"),
]
# fmt: on


@pytest.mark.parametrize(("args", "needles"), RUN_MISTAKES)
def test_run_mistake_is_one_line_exit_2_and_writes_nothing(cli, recbench_home, args, needles):
    assert_user_error(cli("run", *SMOKE, *args), *needles)
    assert_nothing_written(recbench_home)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("data", "show", "lastfm", "--count", "-1"), "--count must be at least 1, got -1"),
        (("data", "show", "lastfm", "--count", "0"), "--count must be at least 1, got 0"),
        (("data", "show", "lastfm", "--seed", "-1"), "--seed must be an integer in [0, "),
        (("sweep", *SMOKE, "--seed", "0,-2", "--dry-run"), "got -2"),
        (("sweep", *SMOKE, "--seed", "-1"), "got -1"),
        (("sweep", *SMOKE, "--n-neg", "3,0", "--dry-run"), "--n-neg 0 out of range"),
        (("sweep", *SMOKE, "--train-examples", "0", "--dry-run"), "--train-examples must be"),
    ],
    ids=[
        "show-count-neg",
        "show-count-0",
        "show-seed-neg",
        "sweep-seed-neg-second",
        "sweep-seed-neg",
        "sweep-n-neg-0",
        "sweep-train-0",
    ],
)
def test_negative_counts_and_seeds_elsewhere(cli, recbench_home, args, needle):
    assert_user_error(cli(*args), needle)
    assert_nothing_written(recbench_home)


def test_neither_loss_nor_baseline_still_means_napo(cli):
    """--loss has no default value any more (so --loss with --baseline can be seen), but a run
    given neither still trains NAPO: its hyper-parameters are NAPO's."""
    assert_user_error(cli("run", *SMOKE, "--param", "rho=-1"), "loss 'napo'")
    assert "default napo" in " ".join(cli("run", "--help").stdout.split())


# ------------------------------------------------------------------------------ output paths
@pytest.fixture()
def a_file(tmp_path) -> Path:
    path = tmp_path / "notes.txt"
    path.write_text("a file, not a directory\n")
    return path


@pytest.mark.parametrize(
    ("command", "option", "kind"),
    [
        (("run", *SMOKE, "--loss", "dpo"), "--output-dir", "sub"),
        (("run", *SMOKE, "--loss", "dpo"), "--results", "sub.jsonl"),
        (("run", *SMOKE, "--baseline", "sasrec"), "--results", "sub.jsonl"),
        (("compare",), "--out", "sub"),
    ],
)
def test_output_path_under_a_file_fails_before_any_work(cli, recbench_home, a_file, command,
                                                        option, kind):  # fmt: skip
    target = a_file / kind
    result = cli(*command, option, str(target))
    assert_user_error(result, f"{option} {target} cannot be created: {a_file} is a file")
    assert_nothing_written(recbench_home)
    assert a_file.read_text() == "a file, not a directory\n"


def test_output_dir_and_compare_out_that_are_files(cli, recbench_home, a_file):
    result = cli("run", *SMOKE, "--loss", "dpo", "--output-dir", str(a_file))
    assert_user_error(result, f"--output-dir {a_file} exists and is not a directory")
    assert_user_error(cli("compare", "--out", str(a_file)), f"--out {a_file} exists and is not")
    assert_nothing_written(recbench_home)
    assert a_file.read_text() == "a file, not a directory\n"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_output_dir_in_a_read_only_directory(cli, recbench_home, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        result = cli("run", *SMOKE, "--loss", "dpo", "--output-dir", str(locked / "run"))
        assert_user_error(result, "is not writable", str(locked))
    finally:
        locked.chmod(0o700)
    assert_nothing_written(recbench_home, locked / "run")


# -------------------------------------------------------------------------------- models
def model_dir(root: Path, **files: bytes) -> Path:
    """A model directory with a sound config.json and the given files."""
    root.mkdir(parents=True)
    (root / "config.json").write_text(json.dumps({"model_type": "llama"}))
    for name, data in files.items():
        (root / name.replace("__", ".")).write_bytes(data)
    return root


def safetensors_bytes(tmp_path: Path) -> bytes:
    save_file({"w": np.zeros(64, dtype=np.float32)}, str(tmp_path / "w.safetensors"))
    return (tmp_path / "w.safetensors").read_bytes()


def test_model_dirs_that_cannot_be_used_fail_in_the_checks(cli, recbench_home, tmp_path):
    sound = safetensors_bytes(tmp_path)
    cases = {
        "garbage": (model_dir(tmp_path / "garbage", model__safetensors=os.urandom(4096)),
                    "model.safetensors is not a valid safetensors file"),
        "truncated": (model_dir(tmp_path / "truncated", model__safetensors=sound[:-100]),
                      "model.safetensors is not a valid safetensors file"),
        "pickle": (model_dir(tmp_path / "pickle", pytorch_model__bin=b"\x80\x04junk"),
                   "has only pickle weights (pytorch_model.bin), which recbench refuses"),
        "empty": (model_dir(tmp_path / "empty"), "has no weights (model.safetensors)"),
    }  # fmt: skip
    bad_config = model_dir(tmp_path / "bad-config", model__safetensors=sound)
    (bad_config / "config.json").write_text("{not json")
    cases["bad-config"] = (bad_config, "config.json is not a readable model config")
    no_config = model_dir(tmp_path / "no-config", model__safetensors=sound)
    (no_config / "config.json").unlink()
    cases["no-config"] = (no_config, "has no config.json")
    for name, (directory, needle) in cases.items():
        result = cli("run", *SMOKE, "--loss", "dpo", "--model", str(directory))
        line = assert_user_error(result, needle)
        assert str(directory) in line, name
    assert_user_error(cli("run", *SMOKE, "--model", str(tmp_path / "w.safetensors")),
                      "is a file; give the model's directory")  # fmt: skip
    assert_nothing_written(recbench_home)


def hub_env(recbench_home: Path, cache: Path, **extra: str) -> dict:
    return {"RECBENCH_HOME": str(recbench_home), "HF_HUB_CACHE": str(cache), **extra}


def test_unreachable_hub_fails_in_seconds_without_retries(recbench_home, tmp_path):
    env = hub_env(recbench_home, tmp_path / "hf", HF_ENDPOINT="http://127.0.0.1:9")
    started = time.monotonic()
    result = run_cli("run", *SMOKE, "--model", "some-org/some-model", env=env)
    elapsed = time.monotonic() - started
    assert_user_error(result, "model 'some-org/some-model' is not a local directory",
                      "the Hugging Face hub cannot be reached", "--model DIR")  # fmt: skip
    assert elapsed < 60, f"took {elapsed:.0f} s"  # a retry storm takes about a minute
    assert_nothing_written(recbench_home)


def test_offline_hub_id_not_in_the_cache(recbench_home, tmp_path):
    env = hub_env(recbench_home, tmp_path / "hf", HF_HUB_OFFLINE="1")
    result = run_cli("run", *SMOKE, "--model", "some-org/some-model", env=env)
    assert_user_error(result, "not in the local Hugging Face cache", "HF_HUB_OFFLINE is set")
    assert_nothing_written(recbench_home)


def test_cached_hub_id_is_checked_from_the_cache_without_network(recbench_home, tmp_path):
    """A hub id in the local Hugging Face cache resolves to its snapshot directory (no request:
    the endpoint is unreachable) and that directory gets the same checks as --model DIR."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hf" / "models--acme--tiny"
    model_dir(repo / "snapshots" / commit, pytorch_model__bin=b"\x80\x04junk")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    env = hub_env(recbench_home, tmp_path / "hf", HF_ENDPOINT="http://127.0.0.1:9")
    result = run_cli("run", *SMOKE, "--model", "acme/tiny", env=env)
    assert_user_error(result, f"snapshots/{commit} has only pickle weights")
    assert_nothing_written(recbench_home)


# ------------------------------------------------------------------------------ summaries
def test_run_summary_prints_the_metrics_of_every_kind_of_run(capsys):
    """zero_shot and the baselines report only ``evaluation``; loss runs also ``sft_eval``."""
    from recbench.cli import _print_run_summary

    ranking = {"hr@1": 0.25, "ndcg@10": 0.5, "pop_bias": 0.1, "n_examples": 4.0}
    timings = {"eval_ranking_seconds": 1.25, "peak_memory_mb": 900.0}
    _print_run_summary({"run_id": "zs", "evaluation": {"ranking": ranking}, "timings": timings})
    out = capsys.readouterr().out
    assert "final ranking    hr@1=0.2500, ndcg@10=0.5000, pop_bias=0.1000  (n=4)" in out
    assert "seconds: eval_ranking=1.2" in out and "peak_memory" not in out
    _print_run_summary({"run_id": "nothing"})
    assert "no test metrics" in capsys.readouterr().out
