"""How a command is watched (issue 37, item 5): ``--quiet``/``--verbose`` and ``--report-to``.

Quiet leaves the final summary and nothing on stderr; verbose adds the per-stage details and
the library output recbench hides; the default is today's.  ``--report-to`` sends every
optimizer step's values to accelerate's trackers; no tracker package is installed here, so the
trainer is checked with a tracker of the test's own (accelerate's ``GeneralTracker``), and the
command line with a missing package.  None of these options changes a run's id.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import ClassVar

import pytest
from accelerate.tracking import LOGGER_TYPE_TO_CLASS, GeneralTracker
from conftest import assert_user_error, run_cli

from recbench import output as output_module
from recbench import runner
from recbench.config import RunConfig
from recbench.output import Output

TRACKED = ("loss", "grad_norm", "lr", "rss_mb")  # every step's values, as in metrics.jsonl


class RecordingTracker(GeneralTracker):
    """A tracker that keeps what accelerate hands it (``--report-to fake`` in these tests)."""

    name = "fake"
    requires_logging_directory = True
    made: ClassVar[list[RecordingTracker]] = []

    def __init__(self, run_name: str = "", logging_dir: str | None = None, **kwargs) -> None:
        super().__init__()
        self.run_name, self.logging_dir = run_name, logging_dir
        self.config: dict = {}
        self.steps: list[tuple[int | None, dict]] = []
        self.finished = False
        RecordingTracker.made.append(self)

    @property
    def tracker(self):
        return self

    def store_init_configuration(self, values: dict) -> None:
        self.config = dict(values)

    def log(self, values: dict, step: int | None = None, **kwargs) -> None:
        self.steps.append((step, dict(values)))

    def finish(self) -> None:
        self.finished = True


def _run(home: Path, *args: str):
    return run_cli(*args, env={"RECBENCH_HOME": str(home)})


def _metrics(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# ---------------------------------------------------------------------------- the options
def test_help_explains_each_output_option():
    for command, options in (
        ("run", ("--quiet", "--verbose", "--report-to", "tensorboard", "wandb", "mlflow")),
        ("sweep", ("--quiet", "--verbose", "--report-to")),
        ("compare", ("--quiet", "--verbose")),
    ):
        result = run_cli(command, "--help", env={"COLUMNS": "200"})
        assert result.returncode == 0, result.stderr
        for option in options:
            assert option in result.stdout, (command, option)


def test_quiet_and_verbose_exclude_each_other(cli):
    assert_user_error(cli("run", "--baseline", "pop", "-q", "-v"), "--quiet and --verbose")


@pytest.mark.skipif(
    any(importlib.util.find_spec(m) for m in ("tensorboard", "tensorboardX")),
    reason="tensorboard is installed here",
)
@pytest.mark.parametrize("command", ["run", "sweep"])
def test_report_to_a_tracker_that_is_not_installed_is_one_line(cli, command):
    result = cli(command, "--baseline", "pop", "--profile", "smoke", "--report-to", "tensorboard")
    assert_user_error(result, "tensorboard", "pip install tensorboard")


def test_report_to_an_unknown_tracker_is_one_line(cli):
    result = cli("run", "--baseline", "pop", "--report-to", "tensorbord")
    assert_user_error(result, "tensorbord", "did you mean 'tensorboard'")


def test_report_to_is_repeatable_or_comma_separated():
    both = Output.from_options(False, False, ["wandb,mlflow", "wandb"])
    assert both.report_to == ("wandb", "mlflow") and both.progress
    assert not Output.from_options(True, False).progress


# ----------------------------------------------------------------------------- verbosity
def test_quiet_hides_progress_bars_and_verbose_adds_stage_details(tiny_llm, tmp_path):
    """One tiny SFT run three ways: the same run id and summary, different stderr."""
    args = ("run", "--baseline", "sft", "--model", str(tiny_llm), "--profile", "smoke")
    normal = _run(tmp_path / "normal", *args)
    quiet = _run(tmp_path / "quiet", *args, "--quiet")
    verbose = _run(tmp_path / "verbose", *args, "--verbose")
    for result in (normal, quiet, verbose):
        assert result.returncode == 0, result.stderr
    assert "it/s" in normal.stderr and "sft:" in normal.stderr  # today's progress bars
    assert quiet.stderr.strip() == "", quiet.stderr  # no bars, no warnings, no logs
    first = {r.stdout.splitlines()[0] for r in (normal, quiet, verbose)}
    assert len(first) == 1 and first.pop().startswith("run lastfm-sft-")  # one run id
    assert quiet.stdout.count("\n") == normal.stdout.count("\n")  # the summary is kept whole
    details = [line for line in verbose.stderr.splitlines() if line.startswith("recbench.")]
    assert any("sft: 2 optimizer steps over 8 examples" in line for line in details), details
    assert any(line.startswith("recbench.runner: run lastfm-sft-") for line in details)
    assert not any(line.startswith("recbench.") for line in normal.stderr.splitlines())


def test_a_quiet_sweep_prints_its_counts_and_a_normal_one_each_point(cli):
    args = ("sweep", "--baseline", "pop", "--profile", "smoke")
    quiet = cli(*args, "--quiet")
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout.splitlines() == ["1 points: 0 done, 0 todo, 1 ran, 0 failed"]
    normal = cli(*args)  # the same point: the store has it
    assert normal.returncode == 0, normal.stderr
    assert "[1/1]" in normal.stdout and "done (already in the results store)" in normal.stdout


# ------------------------------------------------------------------------------- trackers
def test_a_stage_sends_every_step_to_the_trackers(tiny_llm, tmp_path):
    """What the stage writes to metrics.jsonl, each tracker receives, step by step."""
    from accelerate import Accelerator
    from test_memory import _batch, _loss, _model, _stage_settings

    from recbench.trainer import Stage

    model = _model(tiny_llm)
    prompts, responses = _batch(model.config.vocab_size)

    def step(rows: list[int]):
        loss = _loss(model, [prompts[i] for i in rows], [responses[i] for i in rows])
        return loss, {"margin": 0.5}  # a loss's own value, as the preference losses report

    tracker = RecordingTracker("test")
    accelerator = Accelerator(cpu=True, log_with=[tracker])
    stage = Stage(tmp_path / "stage", _stage_settings(False), accelerator)
    stage.fit(model, len(prompts), step, progress=False)

    logged = _metrics(tmp_path / "stage" / "metrics.jsonl")
    assert [s for s, _ in tracker.steps] == [line["step"] for line in logged] == [1, 2]
    for (_, values), line in zip(tracker.steps, logged, strict=True):
        assert values == {k: v for k, v in line.items() if k != "step"}
        assert set(TRACKED) | {"margin"} <= set(values)
    assert tracker.config["name"] == "preference" and tracker.finished
    assert accelerator.trackers == []  # the next stage opens its own run


def test_report_to_logs_under_the_run_dir_and_changes_no_run_id(
    tiny_llm, recbench_home, tmp_path, monkeypatch
):
    """A tiny SFT run with ``--report-to fake``: the tracker sees both steps under
    RUN_DIR/trackers; the same run without it is "already recorded", under the same id."""
    monkeypatch.setitem(output_module.TRACKERS, "fake", (("recbench",), "fake"))
    monkeypatch.setitem(LOGGER_TYPE_TO_CLASS, "fake", RecordingTracker)
    monkeypatch.setattr(RecordingTracker, "made", [])
    store = tmp_path / "results.jsonl"
    config = RunConfig(baseline="sft", model=str(tiny_llm), profile="smoke", results=store)

    tracked = runner.execute(config, output=Output("quiet", ("fake",)))
    (tracker,) = RecordingTracker.made
    run_dir = Path(tracked["run_dir"])
    assert Path(tracker.logging_dir) == run_dir / "trackers" and tracker.run_name == "sft"
    assert [s for s, _ in tracker.steps] == [1, 2] and tracker.finished
    assert all(set(TRACKED) <= set(values) for _, values in tracker.steps)

    again = runner.execute(config, progress=False)  # no tracker: the very same run
    assert again == {"run_id": tracked["run_id"], "skipped": "already recorded"}
    assert "fake" not in store.read_text()  # nor is it recorded with the run


def test_report_to_with_a_method_without_llm_stages_says_nothing_is_sent(
    recbench_home, tmp_path, monkeypatch, caplog
):
    monkeypatch.setitem(output_module.TRACKERS, "fake", (("recbench",), "fake"))
    config = RunConfig(baseline="pop", profile="smoke", results=tmp_path / "results.jsonl")
    with caplog.at_level("WARNING", logger="recbench.runner"):
        done = runner.execute(config, output=Output("quiet", ("fake",)))
    assert "run_id" in done
    (message,) = [r.getMessage() for r in caplog.records if "--report-to" in r.getMessage()]
    assert message == "--report-to fake: pop trains no LLM stage, so nothing is sent to it"


def test_wandb_and_mlflow_keep_their_files_in_the_run_dir():
    """Left alone they would write ./wandb and ./mlruns wherever the command was started."""
    kwargs = output_module.tracker_init_kwargs("/runs/lastfm-sft-1234/trackers")
    assert kwargs["wandb"] == {"dir": "/runs/lastfm-sft-1234/trackers", "name": "lastfm-sft-1234"}
    assert kwargs["mlflow"]["logging_dir"] == "/runs/lastfm-sft-1234/trackers"
    assert output_module.tracker_init_kwargs(None) == {}
