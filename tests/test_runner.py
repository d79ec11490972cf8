"""The runner owns every run (issue 33) and nothing stale is reused (issue 34, class 1).

One identity, one skip rule and one append for every method: a repeated deterministic command
leaves one run in the store and says it is already recorded; ``--rerun`` runs it again; a run
id depends on the data's content, so a dataset re-imported with other rows is another run, with
another SFT stage; records written before identities existed still count; a store of a newer
record version is a one-line error.
"""

from __future__ import annotations

import json
import pathlib
from dataclasses import replace

import pytest
from conftest import assert_user_error

from recbench import pipeline, results, runner
from recbench.config import RunConfig
from recbench.errors import UserError

PAD = 30


def _rows(users: list[list[int]]) -> list[dict]:
    rows = []
    for user in users:
        for k in range(1, len(user)):
            history = user[max(0, k - 10) : k]
            rows.append({"seq": history + [PAD] * (10 - len(history)), "len_seq": len(history),
                         "next": user[k]})  # fmt: skip
    return rows


def _import(cli, tmp_path, name: str, users: list[list[int]], overwrite: bool = False) -> None:
    """A 30-item dataset whose training rows are ``users``' sliding windows."""
    folder = tmp_path / f"files-{len(users)}-{users[0][0]}"
    folder.mkdir(exist_ok=True)
    (folder / "names.txt").write_text("".join(f"{i}::Item {i}\n" for i in range(PAD)))
    splits = {"train": _rows(users), "val": _rows([[4, 6, 8, 10]]),
              "test": _rows([[1, 2, 5, 7]]) + _rows([[1, 2, 11, 13]])}  # fmt: skip
    for split, rows in splits.items():
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = ["data", "import", name, "--names", str(folder / "names.txt")]
    for split in splits:
        args += [f"--{split}", str(folder / f"{split}.jsonl")]
    result = cli(*args, *(["--overwrite"] if overwrite else []))
    assert result.returncode == 0, result.stderr


def _ids(store) -> set[str]:
    return {r["run_id"] for r in results.read_records(store)}


# ----------------------------------------------------------------- one run per command
def test_a_repeated_rule_run_is_recorded_once(cli, tmp_path):
    store = tmp_path / "results.jsonl"
    args = ("run", "--baseline", "pop", "--dataset", "lastfm", "--profile", "smoke",
            "--results", str(store))  # fmt: skip
    first = cli(*args)
    assert first.returncode == 0, first.stderr
    (run_id,) = _ids(store)
    lines = len(store.read_text().splitlines())
    again = cli(*args)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[0] == f"already recorded: {run_id} (--rerun runs it again)"
    assert len(store.read_text().splitlines()) == lines
    rerun = cli(*args, "--rerun")
    assert rerun.returncode == 0 and "already recorded" not in rerun.stdout
    assert len(store.read_text().splitlines()) == 2 * lines and _ids(store) == {run_id}


def test_a_repeated_released_sequential_run_is_recorded_once(recbench_home, tmp_path):
    store = tmp_path / "results.jsonl"
    config = RunConfig(dataset="steam", baseline="sasrec", checkpoint="released",
                       profile="paper", results=store)  # fmt: skip
    first = runner.execute(config, progress=False)
    assert first["evaluation"]["ranking"]["n_examples"] == 1186
    second = runner.execute(config, progress=False)
    assert second == {"run_id": first["run_id"], "skipped": "already recorded"}
    assert _ids(store) == {first["run_id"]}
    records = results.read_records(store)
    assert len(records) == len({(r["mode"], r["metric"]) for r in records})  # one run's worth


@pytest.mark.model
def test_a_repeated_loss_run_is_recorded_once_with_its_sft_stage(tiny_llm, recbench_home, tmp_path):
    store = tmp_path / "results.jsonl"
    config = RunConfig(loss="dpo", profile="smoke", model=str(tiny_llm), results=store)
    first = runner.execute(config, progress=False)
    assert "sft_eval" in first and first["run_id"].startswith("lastfm-dpo-")
    by_method = {r["method"]: r["run_id"] for r in results.read_records(store)}
    assert set(by_method) == {"sft", "dpo"}
    # the SFT evaluation is the `--baseline sft` run of the same settings: one id for both
    sft_config = RunConfig(baseline="sft", profile="smoke", model=str(tiny_llm), results=store)
    assert runner.plan(sft_config).run_id == by_method["sft"]
    lines = len(store.read_text().splitlines())
    assert runner.execute(config, progress=False)["skipped"] == "already recorded"
    assert runner.execute(sft_config, progress=False)["skipped"] == "already recorded"
    assert len(store.read_text().splitlines()) == lines


# -------------------------------------------------------------- identity and stale data
def test_a_reimported_dataset_is_other_data_for_every_cache(cli, recbench_home, tmp_path):
    """Re-importing a name with other rows changes the run id, the run directory, the SFT
    stage's key and the auxiliary SASRec's folder; the store's run no longer counts."""
    from recbench.data import load_dataset
    from recbench.seqrec.sasrec import trained_model_dir

    store = tmp_path / "results.jsonl"
    users = [[3, 9, 7, 12], [20, 21, 22, 23, 24], [1, 12, 7, 9]]
    _import(cli, tmp_path, "toy", users)
    config = RunConfig(baseline="pop", dataset="toy", profile="paper", results=store)
    loss = RunConfig(loss="dpo", dataset="toy", profile="smoke")
    before = runner.execute(config, progress=False)
    old_plan, old_stage = runner.plan(config), pipeline.sft_stage_dir(loss)
    old_aux = trained_model_dir(load_dataset("toy"))
    assert runner.execute(config, progress=False)["skipped"] == "already recorded"

    _import(cli, tmp_path, "toy", [[9, 3, 12, 7], *users[1:]], overwrite=True)
    new_plan = runner.plan(config)
    assert new_plan.run_id != old_plan.run_id and new_plan.run_dir != old_plan.run_dir
    assert pipeline.sft_stage_dir(loss) != old_stage
    assert trained_model_dir(load_dataset("toy")) != old_aux
    # a dry run says why the point is left: the store has it, on the old rows only
    stale = runner.recorded_on_other_data(results.read_records(store), new_plan)
    assert len(stale) == 1 and stale[0].startswith("train ") and ", now " in stale[0]
    assert runner.recorded_on_other_data(results.read_records(store), old_plan) == []
    dry = cli("sweep", "--baseline", "pop", "--dataset", "toy", "--profile", "paper",
              "--results", str(store), "--dry-run")  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    assert "to run (recorded on other data only (train " in dry.stdout + dry.stderr

    after = runner.execute(config, progress=False)
    assert "skipped" not in after and after["run_id"] == new_plan.run_id != before["run_id"]
    assert runner.recorded_on_other_data(results.read_records(store), new_plan) != []


def test_the_identity_covers_what_changes_the_numbers(recbench_home):
    base = RunConfig(loss="dpo", profile="smoke")
    ids = {
        runner.plan(c).run_id
        for c in (
            base,
            RunConfig(loss="dpo", profile="smoke", seed=1),
            RunConfig(loss="dpo", profile="smoke", loss_params={"beta": 0.5}),
            RunConfig(loss="dpo", profile="smoke", overrides={"lora_r": 8}),
            RunConfig(loss="dpo", profile="smoke", n_neg=1),
            RunConfig(loss="sdpo", profile="smoke"),
            RunConfig(loss="dpo", profile="cpu"),
        )
    }
    assert len(ids) == 7
    # where a run is stored and how it is started are not part of it
    same = RunConfig(loss="dpo", profile="smoke", results=recbench_home / "r.jsonl",
                     resume="auto", rerun=True)  # fmt: skip
    assert runner.plan(same).run_id == runner.plan(base).run_id
    # a deterministic rule: every seed is one run
    pops = {runner.plan(RunConfig(baseline="pop", profile="smoke", seed=s)).run_id for s in (0, 1)}
    assert len(pops) == 1


#: Run ids that recbench 289407c gave (the code the field study's runs started on), read from
#: that version's ``runner.plan``.  A setting added since must leave them as they are
#: (``config.LATER_SETTINGS``): a changed id makes a sweep start a half-trained run over and
#: run a recorded one again.
PINNED_IDS = {
    ("dpo", None, "smoke", 0): "lastfm-dpo-90825bec852b",
    ("napo", None, "study", 2): "lastfm-napo-1306b88c49c9",
    (None, "sft", "study", 0): "lastfm-sft-86aefb105a0c",
    (None, "zero_shot", "cpu", 0): "lastfm-zero_shot-beb32426430c",
}


@pytest.mark.parametrize(("point", "run_id"), PINNED_IDS.items(), ids=lambda v: str(v))
def test_run_ids_stay_as_an_earlier_version_gave_them(recbench_home, point, run_id):
    loss, baseline, profile, seed = point
    config = RunConfig(loss=loss, baseline=baseline, dataset="lastfm", profile=profile, seed=seed)
    assert runner.plan(config.validate()).run_id == run_id
    # a later setting joins the identity when set away from its earlier behaviour
    on = replace(config, overrides={"generation_from_ranking": True})
    assert runner.plan(on.validate()).run_id != run_id


# --------------------------------------------------------------------- earlier records
def test_a_record_written_before_identities_still_counts(recbench_home, tmp_path):
    """A version-1 record (no record_version, another run id) of the same point is found by
    what it states; one of other data (another split sha256) is not."""
    from recbench.data import load_dataset

    store = tmp_path / "results.jsonl"
    config = RunConfig(baseline="pop", dataset="lastfm", profile="smoke", results=store)
    ds = load_dataset("lastfm")
    files = {"train": ds.split_spec("train").sha256, "test": ds.split_spec("test").sha256}
    old = {"run_id": "20250101-000000-abcdef12", "dataset": "lastfm", "method": "pop",
           "family": "rule", "model": "rule", "seed": None, "profile": "smoke", "split": "test",
           "mode": "ranking", "metric": "hr@1", "value": 0.25, "hparams": {},
           "settings": {"eval_examples": 4, "eval_rows": "all", "eval_split": "test",
                        "dataset_files": files}}  # fmt: skip
    plan = runner.plan(config)
    assert runner.is_recorded([old], plan) == [old]
    other_data = {**old, "settings": {**old["settings"], "dataset_files": {"train": "0" * 64}}}
    assert runner.is_recorded([other_data], plan) == []
    other_size = {**old, "settings": {**old["settings"], "eval_examples": 300}}
    assert runner.is_recorded([other_size], plan) == []
    results.append_records([old], store)
    assert runner.execute(config, progress=False)["skipped"] == "already recorded"


def test_a_store_of_a_newer_record_version_is_a_one_line_error(cli, tmp_path):
    store = tmp_path / "results.jsonl"
    record = {"run_id": "r", "dataset": "lastfm", "method": "pop", "mode": "ranking",
              "metric": "hr@1", "value": 0.1, "settings": {"record_version": 99}}  # fmt: skip
    store.write_text(json.dumps(record) + "\n")
    with pytest.raises(UserError, match="version 99, written by a newer recbench"):
        results.read_records(store)
    result = cli("compare", "--results", str(store), "--out", str(tmp_path / "out"))
    assert_user_error(result, "version 99", "upgrade recbench")


def test_records_of_every_method_have_one_shape_of_settings(cli, tmp_path):
    store = tmp_path / "results.jsonl"
    for method in ("pop", "random"):
        result = cli("run", "--baseline", method, "--profile", "smoke", "--results", str(store))
        assert result.returncode == 0, result.stderr
    records = results.read_records(store)
    for record in records:
        settings = record["settings"]
        assert settings["record_version"] == results.RECORD_VERSION
        assert settings["config"]["baseline"] == record["method"]
        assert settings["eval_examples"] == 4 and settings["eval_split"] == "test"
        assert settings["identity"] and settings["data"]
    assert {r["seed"] for r in records if r["method"] == "random"} == {0}


def test_empty_method_names_are_one_line_errors(cli, recbench_home):
    assert_user_error(cli("run", "--loss", "", "--profile", "smoke"), "--loss is empty")
    assert_user_error(cli("run", "--baseline", "  ", "--profile", "smoke"), "--baseline is empty")
    assert not (recbench_home / "runs").exists()


@pytest.mark.parametrize("where", ["device", "results-is-a-file", "outcomes-is-a-file"])
def test_output_paths_are_checked_before_any_work(cli, recbench_home, tmp_path, where):
    """Issue 34, class 3: a store that cannot be written fails in the input check, before the
    SFT stage trains (a traceback after an hour, and a NULL.outcomes folder, before)."""
    args = ["run", "--loss", "dpo", "--profile", "smoke"]
    if where == "device":
        args += ["--results", "/dev/null"]
        needle = "not a regular file"
    elif where == "results-is-a-file":
        recbench_home.mkdir(parents=True, exist_ok=True)
        (recbench_home / "results").write_text("a file where the default store's folder goes\n")
        needle = "is a file"
    else:
        (tmp_path / "r.outcomes").write_text("a file where the outcomes folder goes\n")
        args += ["--results", str(tmp_path / "r.jsonl")]
        needle = "cannot keep its outcomes"
    assert_user_error(cli(*args), needle)
    assert not (recbench_home / "stages").exists() and not (recbench_home / "runs").exists()
    assert (
        not list(tmp_path.glob("*.outcomes/*")) and not pathlib.Path("/dev/NULL.outcomes").exists()
    )


def test_a_rule_honours_output_dir_like_every_method(cli, tmp_path):
    """Issue 34, class 8: ``--output-dir`` was silently ignored by the rule baselines; the runner
    now claims it for every method, so another run there is refused."""
    out, store = tmp_path / "out", tmp_path / "r.jsonl"
    first = cli("run", "--baseline", "pop", "--profile", "smoke", "--output-dir", str(out),
                "--results", str(store))  # fmt: skip
    assert first.returncode == 0, first.stderr
    claimed = json.loads((out / "run.json").read_text())
    assert claimed["run_id"] == next(iter(_ids(store))) and claimed["method"] == "pop"
    other = cli("run", "--baseline", "markov", "--profile", "smoke", "--output-dir", str(out),
                "--results", str(store))  # fmt: skip
    assert_user_error(other, f"--output-dir {out} holds another run")


def test_a_full_disk_is_one_line_not_a_traceback(monkeypatch, capsys):
    """Issue 34, class 8: ENOSPC anywhere in a command ends in one line saying what to do."""
    import errno

    from recbench import cli

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", "/data/home/stages/x.pt")

    monkeypatch.setattr(cli, "app", full)
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    expected = (
        "error: no space left on the device writing /data/home/stages/x.pt; free some and run "
        "the same command again (with --resume for an interrupted run)"
    )
    assert err == [expected]


@pytest.mark.parametrize("key", ["recdpo", "recpo"])
def test_a_loss_needing_item_scores_stops_before_any_model_loads(cli, recbench_home, key):
    """RecDPO/RecPO read per-item preference scores that lastfm does not supply (only movielens
    has ratings, issue 35): one line, exit 2, nothing trained or written."""
    result = cli("run", "--loss", key, "--profile", "smoke")
    assert_user_error(result, f"loss {key} reads chosen_scores", "does not supply")
    assert not (recbench_home / "stages").exists() and not (recbench_home / "runs").exists()
