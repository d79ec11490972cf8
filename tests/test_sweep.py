"""``recbench sweep``: grid expansion, skipping stored points, carrying on after failures.

``recbench.runner.execute`` is replaced by a fake that records the configs it gets and appends the
records a real run would write, so the whole sweep logic runs in milliseconds.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from recbench import losses, results, runner
from recbench import sweep as sweep_module
from recbench.cli import app
from recbench.config import RunConfig
from recbench.errors import UserError
from recbench.sweep import SweepSpec, expand, is_done, parse_param_lists, run_sweep


def recorded_hparams(config: RunConfig) -> dict:
    """What a real run records: the loss defaults, the overrides and the n_neg it used."""
    return {
        **losses.get_spec(config.method).hparams,
        **config.loss_params,
        "n_neg": config.resolved()["n_neg"],
    }


def store_run(store: Path, config: RunConfig, hparams: dict | None = None, **fields) -> None:
    run = {
        "run_id": f"fake-{len(results.read_records(store))}",
        "dataset": config.dataset,
        "method": config.method,
        "family": "loss",
        "model": config.model,
        "seed": config.seed,
        "profile": config.profile,
        "hparams": recorded_hparams(config) if hparams is None else hparams,
        "hardware": {"machine": "test"},
        "versions": {"python": "test"},
        **fields,
    }
    records = results.make_records(run, {"hr@1": 0.5, "n_examples": 10}, split="test",
                                   mode="generation")  # fmt: skip
    results.append_records(records, store)


@pytest.fixture()
def fake_run(monkeypatch, recbench_home):
    """Replace the runner (recbench.runner.execute): remember each config, store its records, fail where told to."""
    calls: list[RunConfig] = []
    failing: list[dict] = []

    def run(config: RunConfig, progress: bool = True, output=None) -> dict:
        calls.append(config)
        for condition in failing:
            if all(config.loss_params.get(k, getattr(config, k, None)) == v
                   for k, v in condition.items()):  # fmt: skip
                raise RuntimeError("out of memory\nsecond line")
        store_run(config.results, config)
        return {"run_id": "fake"}

    monkeypatch.setattr(runner, "execute", run)
    return calls, failing


def spec(tmp_path: Path, **changes) -> SweepSpec:
    base = {"losses": ("napo",), "datasets": ("lastfm",), "seeds": (0, 1), "n_negs": (1, 3),
            "params": {"rho": [0.1, 0.3]}, "profile": "cpu",
            "results": tmp_path / "results.jsonl"}  # fmt: skip
    return SweepSpec.grid(**{**base, **changes})


def test_grid_expansion_is_the_full_product_seed_major(tmp_path, recbench_home):
    points = expand(spec(tmp_path))
    assert len(points) == 2 * 2 * 2
    assert [(p.config.seed, p.config.n_neg, p.config.loss_params["rho"]) for p in points] == [
        (0, 1, 0.1), (0, 1, 0.3), (0, 3, 0.1), (0, 3, 0.3),
        (1, 1, 0.1), (1, 1, 0.3), (1, 3, 0.1), (1, 3, 0.3),
    ]  # fmt: skip
    first = points[0]
    assert first.swept == {"n_neg": 1, "rho": 0.1}
    assert first.config.method == "napo" and first.config.results == tmp_path / "results.jsonl"
    assert first.expected["alpha"] == losses.get_spec("napo").hparams["alpha"]
    assert first.describe() == "lastfm napo seed=0 n_neg=1 rho=0.1"


def test_default_n_neg_comes_from_the_profile(tmp_path, recbench_home):
    points = expand(spec(tmp_path, n_negs=(), seeds=(0,), params={}))
    assert len(points) == 1
    assert points[0].config.n_neg is None and points[0].swept == {}
    assert points[0].expected["n_neg"] == 3  # the cpu profile's


def test_stored_points_are_matched_on_every_identity_field(tmp_path, recbench_home):
    store = tmp_path / "results.jsonl"
    point = expand(spec(tmp_path, seeds=(0,), n_negs=(7,), params={"rho": [0.3]}))[0]
    assert not is_done(point, [])
    others = [
        point.config.with_updates(seed=1),
        point.config.with_updates(model="other/model"),
        point.config.with_updates(profile="smoke"),
        point.config.with_updates(dataset="steam"),
        point.config.with_updates(loss="sdpo_ns"),
        point.config.with_updates(n_neg=3),
        point.config.with_updates(loss_params={"rho": 0.5}),
    ]
    for other in others:
        store_run(store, other)
    # same swept values but a non-default alpha: a different point
    store_run(store, point.config, hparams={**recorded_hparams(point.config), "alpha": 0.9})
    # same hyper-parameters, trained on fewer examples than the cpu profile's 2048
    store_run(store, point.config, settings={"train_examples": 100, "eval_examples": 500})
    assert not is_done(point, results.read_records(store))
    store_run(store, point.config)
    assert is_done(point, results.read_records(store))


def test_a_dry_run_plans_each_point_once_and_is_done_takes_that_plan(
    tmp_path, recbench_home, monkeypatch
):
    """The sweep asks is_done with the plan it made (no second plan per point), and is_done
    answers from the plan it is given."""
    store = tmp_path / "results.jsonl"
    points = expand(spec(tmp_path, seeds=(0, 1), n_negs=(7,), params={"rho": [0.3]}))
    store_run(store, points[0].config)
    planned = []
    real_plan = sweep_module.runner.plan
    monkeypatch.setattr(sweep_module.runner, "plan",
                        lambda *a, **k: planned.append(a) or real_plan(*a, **k))  # fmt: skip
    result = run_sweep(spec(tmp_path, seeds=(0, 1), n_negs=(7,), params={"rho": [0.3]}),
                       dry_run=True)  # fmt: skip
    assert [o.status for o in result.outcomes] == ["done", "todo"]
    assert len(planned) == 2
    records = results.read_records(store)
    done_plan = real_plan(points[0].config, records=records)
    assert is_done(points[1], records, planned=done_plan)  # the given plan decides
    assert not is_done(points[1], records)


def test_a_run_recorded_without_a_seed_is_done_for_every_seed(tmp_path, recbench_home):
    """Deterministic rules record no seed: one run holds for the whole seed axis, while a
    seeded method's run holds for its own seed only."""
    store = tmp_path / "results.jsonl"
    base = RunConfig(baseline="pop", dataset="lastfm", profile="cpu", results=store)
    points = expand(SweepSpec(base, {"seed": (0, 1, 2)}))
    run = {"run_id": "r", "dataset": "lastfm", "method": "pop", "family": "rule",
           "model": "rule", "profile": "cpu", "seed": None, "hparams": {}, "settings": {}}  # fmt: skip
    results.append_records(results.make_records(run, {"hr@1": 0.25}, mode="ranking"), store)
    assert all(is_done(p, results.read_records(store)) for p in points)
    seeded = {**run, "run_id": "s", "method": "random", "seed": 1}
    results.append_records(results.make_records(seeded, {"hr@1": 0.05}, mode="ranking"), store)
    random_points = expand(SweepSpec(base.with_updates(baseline="random"), {"seed": (0, 1)}))
    assert [is_done(p, results.read_records(store)) for p in random_points] == [False, True]


def test_sweep_runs_missing_points_and_skips_stored_ones(tmp_path, fake_run):
    calls, _ = fake_run
    store = tmp_path / "results.jsonl"
    already = expand(spec(tmp_path))[2]  # seed 0, n_neg 3, rho 0.1
    store_run(store, already.config)

    outcome = run_sweep(spec(tmp_path))
    assert len(calls) == 7
    assert already.config not in calls
    assert outcome.count("done") == 1 and outcome.count("ran") == 7
    assert [o.status for o in outcome.outcomes][2] == "done"

    again = run_sweep(spec(tmp_path))  # the same command resumes: nothing left to run
    assert len(calls) == 7 and again.count("done") == 8


def test_a_failed_point_is_reported_and_the_sweep_goes_on(tmp_path, fake_run):
    calls, failing = fake_run
    failing.append({"n_neg": 3, "rho": 0.3, "seed": 0})
    lines: list[str] = []
    outcome = run_sweep(spec(tmp_path), report=lines.append)
    assert len(calls) == 8
    assert [o.point.describe() for o in outcome.failed] == ["lastfm napo seed=0 n_neg=3 rho=0.3"]
    assert outcome.failed[0].detail == "RuntimeError: out of memory"
    assert "Traceback" in outcome.failed[0].traceback
    assert outcome.count("ran") == 7
    assert any("FAILED" in line for line in lines)
    # the failed point stays to do; the next sweep retries only it
    failing.clear()
    rerun = run_sweep(spec(tmp_path))
    assert len(calls) == 9 and rerun.count("ran") == 1


def test_dry_run_lists_points_and_runs_nothing(tmp_path, fake_run):
    calls, _ = fake_run
    store_run(tmp_path / "results.jsonl", expand(spec(tmp_path))[0].config)
    lines: list[str] = []
    outcome = run_sweep(spec(tmp_path), dry_run=True, report=lines.append)
    assert calls == []
    assert outcome.count("done") == 1 and outcome.count("todo") == 7
    assert (
        lines[0] == "[1/8] lastfm napo seed=0 n_neg=1 rho=0.1: done (already in the results store)"
    )
    assert lines[1] == (
        "[2/8] lastfm napo seed=0 n_neg=1 rho=0.3: to run "
        "(no estimate: no run like it on this hardware in the store)"
    )


def test_dry_run_says_what_a_started_point_has_kept(tmp_path, fake_run):
    """A killed point's run directory: its preference stage at a checkpoint, a done stage, and
    evaluation journals (the newest of a mode counts; a torn last line is no batch)."""
    import json
    import os

    point = expand(spec(tmp_path))[1]
    run_dir = runner.plan(point.config).run_dir
    (run_dir / "preference" / "checkpoint").mkdir(parents=True)
    (run_dir / "preference" / "checkpoint" / "state.json").write_text(json.dumps({"step": 40}))
    (run_dir / "iteration-0" / "sft" / "final").mkdir(parents=True)
    (run_dir / "iteration-0" / "sft" / "final" / "done.json").write_text("{}")
    journals = run_dir / "evaluation"
    journals.mkdir()
    (journals / "ranking-old.jsonl").write_text('{"keys": []}\n' * 9)
    (journals / "ranking-new.jsonl").write_text('{"keys": []}\n' * 3 + '{"ke')
    os.utime(journals / "ranking-old.jsonl", (1_000_000, 1_000_000))  # other weights, earlier
    lines: list[str] = []
    run_sweep(spec(tmp_path), dry_run=True, report=lines.append)
    assert lines[1] == (
        "[2/8] lastfm napo seed=0 n_neg=1 rho=0.3: to run (started, kept: iteration-0/sft done, "
        "preference at step 40, ranking 3 batches scored; "
        "no estimate: no run like it on this hardware in the store)"
    )
    assert "started" not in lines[2]  # nothing kept for the others


def test_cli_sweep_builds_the_grid(tmp_path, fake_run):
    calls, failing = fake_run
    store = tmp_path / "results.jsonl"
    args = ["sweep", "--loss", "napo", "--dataset", "lastfm", "--profile", "smoke",
            "--n-neg", "1,3", "--param", "alpha=0.1,0.3", "--param", "beta=0.5,1",
            "--seed", "0", "--results", str(store)]  # fmt: skip
    dry = CliRunner().invoke(app, [*args, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "8 points: 0 done, 8 todo, 0 ran, 0 failed" in dry.output and calls == []
    assert "to run: no estimate" in dry.output  # an empty store holds no cost records

    failing.append({"n_neg": 1, "alpha": 0.1, "beta": 0.5})
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    assert {(c.n_neg, c.loss_params["alpha"], c.loss_params["beta"]) for c in calls} == {
        (n, a, b) for n in (1, 3) for a in (0.1, 0.3) for b in (0.5, 1)}  # fmt: skip
    assert all(c.profile == "smoke" and c.results == store for c in calls)
    assert "failed: lastfm napo seed=0 n_neg=1 alpha=0.1 beta=0.5: RuntimeError" in result.output


def test_param_lists_parse_types():
    assert parse_param_lists(["beta=0.5,1", "ln=true", "margin-mode=paper"]) == {
        "beta": [0.5, 1], "ln": [True], "margin_mode": ["paper"]}  # fmt: skip
    with pytest.raises(UserError, match="KEY=VALUE"):
        parse_param_lists(["beta"])


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--n-neg", "1,20"), "n-neg 20 out of range"),
        (("--n-neg", "1,x"), "--n-neg: cannot read 'x'"),
        (("--loss", "napoo"), "did you mean 'napo'"),
        (("--dataset", "lastfn"), "did you mean 'lastfm'"),
        (("--param", "rho=1.5"), "rho"),
        (("--param", "bogus=1"), "bogus"),
        (("--param", "beta="), "e.g. --param beta=1,3,7"),
        (("--loss", ","), "e.g. --loss NAME1,NAME2"),
        (("--seed", ","), "e.g. --seed 0,1,2"),
    ],
)
def test_sweep_input_mistakes_are_one_line_errors(cli, tmp_path, args, needle):
    result = cli("sweep", "--profile", "smoke", "--results", str(tmp_path / "r.jsonl"), *args)
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], result.stderr
    assert not (tmp_path / "r.jsonl").exists()


def test_a_grid_of_baselines_alone_gives_them_its_axes_or_refuses_them(tmp_path, recbench_home):
    """Beside losses, a baseline is one point whatever the loss axes; without losses the axes
    can only be meant for the baselines: sprec takes --param iterations, a rule refuses
    --negatives, as `recbench run` does (before, both were dropped without a word)."""
    base = RunConfig(profile="smoke", results=tmp_path / "results.jsonl")
    points = expand(SweepSpec(base, {"baseline": ["sprec"], "iterations": [1, 2]}))
    assert [(p.config.baseline, p.config.loss_params) for p in points] == [
        ("sprec", {"iterations": 1}),
        ("sprec", {"iterations": 2}),
    ]
    with pytest.raises(UserError, match="negatives are picked for preference losses"):
        expand(SweepSpec(base, {"baseline": ["pop"], "negatives": ["hard"]}))
    with pytest.raises(UserError, match="sasrec takes no --param"):
        expand(SweepSpec(base, {"baseline": ["sasrec"], "beta": [1.0]}))
    mixed = expand(SweepSpec(base, {"loss": ["dpo"], "baseline": ["pop"], "negatives": ["hard"]}))
    assert [(p.config.method, p.config.negatives) for p in mixed] == [
        ("dpo", "hard"),
        ("pop", base.negatives),
    ]


def test_a_sweep_is_a_base_run_and_the_axes_it_varies(tmp_path, recbench_home):
    """--set, --aux-checkpoint and baselines reach every point, as in `recbench run`."""
    store = tmp_path / "results.jsonl"
    base = RunConfig(profile="smoke", overrides={"lora_r": 8}, aux_checkpoint="released",
                     results=store)  # fmt: skip
    axes = {"seed": [0, 1], "loss": ["dpo"], "baseline": ["pop"], "beta": [0.5]}
    points = expand(SweepSpec(base, axes))
    described = [(p.config.seed, p.config.loss, p.config.baseline) for p in points]
    assert described == [(0, "dpo", None), (0, None, "pop"), (1, "dpo", None), (1, None, "pop")]
    for point in points:
        assert point.config.overrides == {"lora_r": 8}
        assert point.config.aux_checkpoint == "released" and point.config.results == store
        assert point.config.resume == "auto"
    assert points[0].config.loss_params == {"beta": 0.5}

    # a stored run with other --set settings is another point; the same settings are done
    dpo = points[0]
    store_run(store, dpo.config, settings={"lora_r": 4, "train_examples": 8, "eval_examples": 4})
    assert not is_done(dpo, results.read_records(store))
    store_run(store, dpo.config, settings={"lora_r": 8, "train_examples": 8, "eval_examples": 4})
    assert is_done(dpo, results.read_records(store))
    # a baseline's record names its own weights or rule as its model
    pop = points[1]
    store_run(store, pop.config, hparams={}, model="rule", family="rule", seed=None,
              settings={"lora_r": 8, "train_examples": 8, "eval_examples": 4})  # fmt: skip
    assert is_done(pop, results.read_records(store))
    assert is_done(points[3], results.read_records(store))  # seed 1: pop draws nothing
    assert not is_done(points[2], results.read_records(store))  # dpo, seed 1


def test_sweep_cli_takes_set_and_baselines_like_run(tmp_path, recbench_home):
    result = CliRunner().invoke(app, [
        "sweep", "--loss", "dpo", "--baseline", "pop", "--seed", "0", "--profile", "smoke",
        "--set", "lora_r=8", "--results", str(tmp_path / "r.jsonl"), "--dry-run",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "lastfm dpo seed=0: to run" in result.output
    assert "lastfm pop seed=0: to run" in result.output
    assert "2 points: 0 done, 2 todo" in result.output
