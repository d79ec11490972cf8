"""Writing datasets: imports and builds are exclusive per name and atomic; names files with any
line ending; the MovieLens download folder never outlives its build.

Two imports of one name at once must end with one dataset that is exactly one of the two inputs
and every other import refused with one line; a failed or killed import must leave no hidden
directory and never harm the dataset that was there.  The datasets are small hand-made chains
(a few thousand rows, so that an import takes long enough for two to overlap).
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, assert_user_error
from filelock import FileLock

from recbench import locks
from recbench.data import catalog, importer, load_dataset, movielens
from recbench.errors import DataError, UserError

N_ITEMS = 300  # padding id too


def _rows(rng: random.Random, users: int) -> str:
    """Sliding-window chains of ``users`` random users (11 distinct items each)."""
    lines = []
    for _ in range(users):
        items = rng.sample(range(N_ITEMS), 11)
        for end in range(1, 11):
            seq = items[:end] + [N_ITEMS] * (10 - end)
            lines.append(json.dumps({"seq": seq, "len_seq": end, "next": items[end]}))
    return "\n".join(lines) + "\n"


def write_dataset(directory: Path, seed: int, users: int = 300) -> dict[str, Path]:
    """A valid dataset whose rows depend on ``seed`` (two seeds: two different datasets)."""
    directory.mkdir(parents=True)
    rng = random.Random(seed)
    files = {"names": directory / "names.txt"}
    files["names"].write_text("".join(f"{i}::Item {i} of {seed}\n" for i in range(N_ITEMS)))
    for split, share in (("train", 8), ("val", 1), ("test", 1)):
        files[split] = directory / f"{split}.jsonl"
        files[split].write_text(_rows(rng, users * share // 10))
    return files


def import_args(files: dict[str, Path], name: str = "ds", *extra: str) -> list[str]:
    return ["data", "import", name, "--train", str(files["train"]), "--val", str(files["val"]),
            "--test", str(files["test"]), "--names", str(files["names"]), *extra]  # fmt: skip


def import_in_process(files: dict[str, Path], name: str = "ds", **kwargs: object):
    splits = {split: files[split] for split in ("train", "val", "test")}
    return importer.import_dataset(name, splits, files["names"], **kwargs)


def hidden_entries(home: Path) -> list[str]:
    """Staging or moved-aside directories (anything hidden) left in the datasets folder."""
    return sorted(p.name for p in (home / "datasets").iterdir() if p.name.startswith("."))


def first_names(name: str = "ds") -> list[str]:
    catalog.forget(name)
    return load_dataset(name).item_names[:2]


@pytest.fixture()
def two(tmp_path) -> tuple[dict[str, Path], dict[str, Path]]:
    return write_dataset(tmp_path / "a", seed=1), write_dataset(tmp_path / "b", seed=2)


# ------------------------------------------------------------------------ exclusive imports
def test_a_second_import_of_a_name_in_progress_fails_at_once(cli, recbench_home, two):
    a, b = two
    assert cli(*import_args(a)).returncode == 0
    lock = FileLock(str(locks.lock_path(recbench_home / "datasets" / "ds")))
    with lock.acquire(timeout=0):  # another process importing "ds" holds this lock
        started = time.monotonic()
        result = cli(*import_args(b, "ds", "--overwrite"))
        elapsed = time.monotonic() - started
    assert_user_error(result, "cannot import dataset 'ds'", "another process", "retry")
    assert elapsed < 60, f"waited {elapsed:.0f} s instead of failing at once"
    assert first_names() == ["Item 0 of 1", "Item 1 of 1"]  # the earlier import is untouched
    assert hidden_entries(recbench_home) == []
    assert cli(*import_args(b, "other")).returncode == 0  # other names are not locked


def test_racing_imports_leave_one_sound_dataset(recbench_home, two):
    """Two overwriting imports of one name started together, three rounds: each ends with a
    dataset that loads and is exactly one of the inputs; a loser exits with one line."""
    a, b = two
    expected = {"Item 0 of 1": a, "Item 0 of 2": b}
    env = {"RECBENCH_HOME": str(recbench_home), "OMP_NUM_THREADS": "1", "PATH": ""}
    command = [sys.executable, "-m", "recbench.cli"]
    for round_ in range(3):
        procs = [
            subprocess.Popen([*command, *import_args(f, "ds", "--overwrite")], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for f in (a, b)
        ]  # fmt: skip
        results = []
        for proc in procs:
            stdout, stderr = proc.communicate(timeout=300)
            results.append(subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr))
        assert any(r.returncode == 0 for r in results), [r.stderr for r in results]
        for result in results:
            if result.returncode != 0:
                assert_user_error(result, "cannot import dataset 'ds'", "another process")
        catalog.forget("ds")
        ds = load_dataset("ds")
        winner = expected[ds.item_names[0]]
        assert ds.rows("train").len_seq.size == len(winner["train"].read_text().splitlines())
        for split in ("train", "val", "test"):  # loads with its sha256 checked: no mix
            ds.rows(split)
        assert hidden_entries(recbench_home) == [], round_


def test_the_import_reports_its_own_counts_when_another_replaces_it_at_once(
    recbench_home, tmp_path, monkeypatch
):
    """The race the test above can lose: an import's summary read by name after its lock is
    released can meet the next import's files.  Here that next import lands right after this
    one releases its lock, before it reports: it still reports what it imported."""
    from recbench import api

    mine, theirs = write_dataset(tmp_path / "mine", seed=1, users=40), write_dataset(
        tmp_path / "theirs", seed=2, users=80)  # fmt: skip
    forget, landed = catalog.forget, []

    def released_then_replaced(name: str) -> None:  # runs once this import's lock is released
        forget(name)
        if not landed:
            landed.append(True)
            import_in_process(theirs, overwrite=True)

    monkeypatch.setattr(catalog, "forget", released_then_replaced)
    info = api.import_dataset("ds", mine["train"], mine["val"], mine["test"], mine["names"])
    assert info["splits"]["train"]["rows"] == len(mine["train"].read_text().splitlines()) == 320
    catalog.forget("ds")
    assert load_dataset("ds").item_names[0] == "Item 0 of 2"  # the other import is what stayed


# --------------------------------------------------------------------------- atomic writes
def test_a_failed_swap_keeps_the_old_dataset(recbench_home, two, monkeypatch):
    a, b = two
    import_in_process(a)
    real_rename = Path.rename

    def rename(self: Path, target):  # the new dataset cannot be moved into place
        if ".importing" in self.name:
            raise OSError(28, "No space left on device")
        return real_rename(self, target)

    with monkeypatch.context() as patch:  # (undo() would also undo RECBENCH_HOME)
        patch.setattr(Path, "rename", rename)
        with pytest.raises(DataError, match="cannot write dataset 'ds' .*No space left"):
            import_in_process(b, overwrite=True)
    assert first_names() == ["Item 0 of 1", "Item 1 of 1"]
    assert hidden_entries(recbench_home) == []


def test_an_interrupted_import_leaves_nothing(recbench_home, two, monkeypatch):
    a, b = two
    import_in_process(a)

    def interrupted(rows, path):
        path.write_text("half")
        raise KeyboardInterrupt

    monkeypatch.setattr(importer, "_write_jsonl", interrupted)
    with pytest.raises(KeyboardInterrupt):
        import_in_process(b, overwrite=True)
    assert hidden_entries(recbench_home) == []
    assert first_names() == ["Item 0 of 1", "Item 1 of 1"]


def test_what_a_killed_import_left_is_put_back_or_removed(recbench_home, two):
    """A kill between the two renames leaves the old copy aside and no dataset: the next import
    of the name puts it back (and so refuses to replace it without --overwrite)."""
    a, b = two
    import_in_process(a)
    root = recbench_home / "datasets"
    (root / "ds").rename(root / ".ds.replaced-123-0123abcd")
    (root / ".ds.importing-456-89abcdef").mkdir()
    (root / ".ds.importing-456-89abcdef" / "train.jsonl").write_text("half")
    (root / ".ds.x.importing-7-01234567").mkdir()  # dataset "ds.x"'s, not this name's
    with pytest.raises(UserError, match="dataset 'ds' already exists"):
        import_in_process(b)
    assert first_names() == ["Item 0 of 1", "Item 1 of 1"]
    assert hidden_entries(recbench_home) == [".ds.x.importing-7-01234567"]


# ----------------------------------------------------------------------- names files: \r
@pytest.mark.parametrize("ending", ["\r", "\r\n", "\n"], ids=["cr", "crlf", "lf"])
def test_names_file_with_any_line_ending(cli, recbench_home, tmp_path, ending):
    files = write_dataset(tmp_path / "src", seed=3, users=30)
    files["names"].write_bytes("".join(f"{i}::Item {i}{ending}" for i in range(N_ITEMS)).encode())
    result = cli(*import_args(files))
    assert result.returncode == 0, result.stderr
    assert load_dataset("ds").item_names == [f"Item {i}" for i in range(N_ITEMS)]


def test_bad_line_of_a_cr_names_file_is_blamed_on_that_file(cli, tmp_path):
    files = write_dataset(tmp_path / "src", seed=3, users=30)
    lines = [f"{i}::Item {i}" for i in range(N_ITEMS)]
    lines[4] = "4 Item 4"  # the separator is missing on line 5
    files["names"].write_bytes("\r".join(lines).encode())
    assert_user_error(cli(*import_args(files)), f"{files['names']}:5: expected 'id::name'")


# ---------------------------------------------------------------- movielens download folder
def test_the_download_folder_goes_however_the_build_ends(recbench_home, monkeypatch):
    seen: list[Path] = []

    def fetch(directory: Path) -> Path:
        seen.append(directory)
        (directory / "recbole-1.2.1-py3-none-any.whl").write_bytes(b"half a wheel")
        raise KeyboardInterrupt  # Ctrl-C during the download

    monkeypatch.setattr(movielens, "fetch_wheel", fetch)
    stale = recbench_home / "tmp" / "movielens-download-killed"
    stale.mkdir(parents=True)  # what a SIGKILLed build left
    (stale / "recbole-1.2.1-py3-none-any.whl").write_bytes(b"old half")
    with pytest.raises(KeyboardInterrupt):
        movielens.build()
    assert seen and seen[0].parent == recbench_home / "tmp"
    assert list((recbench_home / "tmp").iterdir()) == []

    def failing(directory: Path) -> Path:
        (directory / "partial").write_bytes(b"x")
        raise DataError("cannot fetch recbole==1.2.1 (no network)")

    monkeypatch.setattr(movielens, "fetch_wheel", failing)
    with pytest.raises(DataError, match="cannot fetch"):
        movielens.build()
    assert list((recbench_home / "tmp").iterdir()) == []
    assert not (recbench_home / "datasets" / "movielens").exists()
    assert hidden_entries(recbench_home) == []


def test_a_build_while_movielens_is_imported_fails_at_once(recbench_home, tmp_path):
    target = catalog.imported_root() / "movielens"
    refused = pytest.raises(UserError, match="cannot build dataset 'movielens': another process")
    with FileLock(str(locks.lock_path(target))).acquire(timeout=0), refused:
        movielens.build(tmp_path / "never-read.whl")
