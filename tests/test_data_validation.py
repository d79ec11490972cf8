"""Issue 12, items 5 and 6: `recbench data import` refuses what later code cannot use.

Every case goes through the real CLI (``python -m recbench.cli``) and must end with exactly one
``error:`` line on stderr naming the file (and line, where there is one), exit code 2, no
traceback, and nothing registered afterwards.  The normalisations (a BOM is dropped, identical
rows of different users are kept) are tested to import cleanly.  The datasets are tiny: 30
items, a few sliding-window chains (see :func:`write_dataset`).
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import ROOT, assert_user_error, run_cli

from recbench.data.prompts import DOMAINS
from recbench.errors import DataError

N_ITEMS = 30


def chain(items: list[int], pad: int) -> list[dict]:
    """The sliding-window rows of one user: every prefix of ``items`` predicts the next item."""
    rows = []
    for end in range(len(items)):
        history = items[:end]
        seq = history + [pad] * (10 - len(history))
        rows.append({"seq": seq, "len_seq": max(len(history), 1), "next": items[end]})
    return rows


def default_rows(pad: int) -> dict[str, list[dict]]:
    # train.jsonl lines 1-4: user [0, 1, 2, 3]; lines 5-8: user [5, 6, 7, 8]
    return {
        "train": chain([0, 1, 2, 3], pad) + chain([5, 6, 7, 8], pad),
        "val": chain([10, 11, 12, 13], pad),
        "test": chain([15, 16, 17, 18], pad),
    }


def jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


def write_dataset(directory: Path, n_items: int = N_ITEMS) -> dict[str, Path]:
    """A valid dataset: ``n_items`` items named 'Item i', padding id ``n_items``."""
    directory.mkdir(parents=True, exist_ok=True)
    files = {}
    for split, rows in default_rows(n_items).items():
        files[split] = directory / f"{split}.jsonl"
        files[split].write_text(jsonl(rows))
    files["names"] = directory / "names.txt"
    files["names"].write_text("".join(f"{i}::Item {i}\n" for i in range(n_items)))
    return files


def import_args(files: dict[str, Path], name: str = "toy", *extra: str) -> tuple[str, ...]:
    return ("data", "import", name, "--train", str(files["train"]), "--val", str(files["val"]),
            "--test", str(files["test"]), "--names", str(files["names"]), *extra)  # fmt: skip


def assert_nothing_registered(home: Path, cli=None) -> None:
    """No import is listed (by ``recbench data list`` when ``cli`` is given, else in-process)."""
    if cli is not None:
        listed = json.loads(cli("data", "list", "--json").stdout)
        assert not [row for row in listed if row["items"] and not row["builtin"]], listed
    else:
        from recbench.data import catalog

        assert catalog.imported_names() == []
    datasets = home / "datasets"
    leftovers = list(datasets.iterdir()) if datasets.exists() else []
    assert not leftovers, leftovers  # not even a hidden staging directory


@pytest.fixture()
def files(tmp_path) -> dict[str, Path]:
    return write_dataset(tmp_path / "src")


def test_the_valid_dataset_imports(cli, files):
    result = cli(*import_args(files))
    assert result.returncode == 0, result.stderr
    assert "imported 'toy': 30 items" in result.stdout


# ------------------------------------------------------------------------ rows and names
def _rewrite(split: str, transform):
    """A mutation that rewrites one split's rows with ``transform(rows, pad)``."""

    def mutate(files: dict[str, Path]) -> None:
        rows = default_rows(N_ITEMS)[split]
        files[split].write_text(jsonl(transform(rows, N_ITEMS)))

    return mutate


def _names(text: str):
    def mutate(files: dict[str, Path]) -> None:
        files["names"].write_text(text)

    return mutate


def _bytes(key: str, data: bytes, suffix: str | None = None):
    def mutate(files: dict[str, Path]) -> None:
        if suffix is not None:
            files[key] = files[key].with_suffix(suffix)
        files[key].write_bytes(data)

    return mutate


def _set_row(index: int, **fields):
    def transform(rows: list[dict], pad: int) -> list[dict]:
        rows[index] = {
            **rows[index],
            **{k: v(pad) if callable(v) else v for k, v in fields.items()},
        }
        return rows

    return transform


NAMES_OK = "".join(f"{i}::Item {i}\n" for i in range(N_ITEMS))
P = N_ITEMS  # the padding id
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00"
# fmt: off
BAD_IMPORTS = [
    pytest.param(
        _rewrite("train", _set_row(2, seq=[0, P, 1] + [P] * 7)),
        ("train.jsonl:3: padding inside the history: item id 1 at position 3",
         f"follows the padding id {P} at position 2"), id="padding-inside-history"),
    pytest.param(
        _rewrite("train", _set_row(3, seq=[P] * 7 + [0, 1, 2])),
        ("train.jsonl:4: padding inside the history", "right-padded"), id="left-padded"),
    pytest.param(
        _rewrite("train", _set_row(3, len_seq=4)),
        ("train.jsonl:4: len_seq 4 disagrees with seq, which holds 3 item id(s)",),
        id="len-seq-too-long"),
    pytest.param(
        _rewrite("val", _set_row(0, len_seq=2)),
        ("val.jsonl:1: len_seq 2 disagrees with seq, which holds 0 item id(s)",
         "expected len_seq 1 (an all-padding row)"), id="len-seq-of-all-padding-row"),
    pytest.param(
        _rewrite("train", lambda rows, pad: rows[:4] + [rows[3]] + rows[4:]),
        ("train.jsonl:5: repeats the row directly above it", "train.jsonl:4)"),
        id="duplicate-row-adjacent"),
    pytest.param(
        _rewrite("train", lambda rows, pad: rows + rows),
        ("train.jsonl:9: this row and all after it repeat the file's first 8 rows",
         "written twice"), id="file-written-twice"),
    pytest.param(
        lambda files: files.update(write_dataset(files["train"].parent, n_items=22)),
        ("train.jsonl:4: too few items for the 20 candidates", "needs at least 23 items",
         "but it has 22"), id="too-few-items"),
    pytest.param(
        _names(NAMES_OK.replace("3::Item 3\n", "3::   \n")),
        ("names.txt:4: item 3 has an empty name",), id="empty-name"),
    pytest.param(
        _names(NAMES_OK.replace("4::Item 4\n", "4::Item 2\n")),
        ("names.txt:5: item 4 has the same name as item 2 (line 3): 'Item 2'",
         "names must be distinct"), id="duplicate-name"),
    pytest.param(
        _names(NAMES_OK.replace("4::Item 4\n", "2::Item 4\n")),
        ("names.txt:5: item id 2 named twice (first on line 3)",), id="duplicate-id"),
    pytest.param(
        _names(NAMES_OK.replace("4::Item 4\n", "٤::Item 4\n")),
        ("names.txt:5: expected 'id::name'",), id="non-ascii-digit-id"),
    pytest.param(
        _bytes("train", PNG), ("train.jsonl:1: not UTF-8 text (is it a binary file?)",),
        id="binary-jsonl"),
    pytest.param(
        _bytes("train", b"seq,len_seq,next\n" + PNG, ".csv"),
        ("train.csv:2: not UTF-8 text (is it a binary file?)",), id="binary-csv"),
    pytest.param(
        _bytes("val", b'{"seq": [10, \x00\x00]}\n'),
        ("val.jsonl:1: contains a NUL byte",), id="nul-byte-jsonl"),
    pytest.param(
        _bytes("names", NAMES_OK.encode("utf-16")),
        ("names.txt:1: not UTF-8 text",), id="utf16-names"),
    pytest.param(
        _bytes("names", PNG), ("names.txt:1: not UTF-8 text",), id="binary-names"),
    pytest.param(
        _bytes("train", b"PAR1 this is not a parquet file at all", ".parquet"),
        ("train.parquet: not a readable parquet file (",), id="garbage-parquet"),
    pytest.param(
        _bytes("test", b"", ".parquet"),
        ("test.parquet: not a readable parquet file (",), id="empty-parquet"),
    pytest.param(
        _bytes("train", b'{"seq": [[[[[[' * 20000 + b"\n"),
        ("train.jsonl:1: malformed JSON",), id="deeply-nested-json"),
    pytest.param(
        _bytes("train", b'{"seq": "[0]", "len_seq": "--3", "next": 1}\n'),
        ("train.jsonl:1: len_seq and next must be integers",), id="malformed-integer-text"),
]
# fmt: on


@pytest.mark.parametrize(("mutate", "needles"), BAD_IMPORTS)
def test_bad_import_is_one_line_and_registers_nothing(cli, recbench_home, files, mutate, needles):
    mutate(files)
    assert_user_error(cli(*import_args(files)), *needles)
    assert_nothing_registered(recbench_home)


def test_parquet_with_non_integer_ids(cli, recbench_home, files):
    rows = [{**row, "seq": [str(x) for x in row["seq"]]} for row in default_rows(N_ITEMS)["train"]]
    rows[2]["seq"][1] = "a"  # numeric strings are accepted as ids, "a" is not
    path = files["train"].with_suffix(".parquet")
    pd.DataFrame(rows).to_parquet(path)
    files["train"] = path
    assert_user_error(
        cli(*import_args(files)), "train.parquet:row 3: seq must be a list of integer"
    )
    assert_nothing_registered(recbench_home, cli)


def test_garbage_pickle_even_when_pickles_are_allowed(cli, recbench_home, files):
    files["train"] = files["train"].with_suffix(".df")
    files["train"].write_bytes(b"\x80\x04garbage, not a pickle")
    line = assert_user_error(cli(*import_args(files, "toy", "--allow-pickle")))
    assert "train.df: not a readable pickle file (" in line
    assert_nothing_registered(recbench_home, cli)


def test_directory_given_as_a_data_file(cli, recbench_home, files, tmp_path):
    files["val"] = tmp_path
    assert_user_error(cli(*import_args(files)), f"data file is a directory, not a file: {tmp_path}")
    assert_nothing_registered(recbench_home)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a chmod 000 file anyway")
def test_unreadable_data_file(cli, recbench_home, files):
    files["test"].chmod(0)
    assert_user_error(cli(*import_args(files)), "test.jsonl: cannot read the file")
    assert_nothing_registered(recbench_home)


def run_main_with(prelude: str, *args: str, home: Path) -> subprocess.CompletedProcess:
    """``recbench ARGS`` through ``main()`` after ``prelude`` (to simulate what root can't see)."""
    code = f"{prelude}\nimport sys\nfrom recbench.cli import main\nsys.argv = ['recbench', *{args!r}]\nmain()\n"
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False,
        env={**os.environ, "RECBENCH_HOME": str(home)}, timeout=120,
    )  # fmt: skip


def test_unreadable_data_file_simulated(recbench_home, files):
    """Runs as root too: ``open`` of one file raises EACCES, as it would for another user."""
    prelude = (
        "import builtins, errno\n"
        "_open = builtins.open\n"
        "def _denied(file, *a, **k):\n"
        f"    if str(file) == {str(files['test'])!r}:\n"
        "        raise PermissionError(errno.EACCES, 'Permission denied', str(file))\n"
        "    return _open(file, *a, **k)\n"
        "builtins.open = _denied\n"
    )
    result = run_main_with(prelude, *import_args(files), home=recbench_home)
    assert_user_error(result, f"{files['test']}: cannot read the file (Permission denied)")


def test_unknown_domain_lists_the_known_ones(cli, recbench_home, files):
    line = assert_user_error(
        cli(*import_args(files, "toy", "--domain", "musci")),
        "unknown domain 'musci' (did you mean 'music'?)",
    )
    assert line.split("known: ", 1)[1].split(", ") == list(DOMAINS)
    assert set(DOMAINS) == {"music", "games", "movies", "books", "items"}
    assert_nothing_registered(recbench_home, cli)


# ------------------------------------------------------------------- documented normalisations
def test_bom_is_dropped_from_names_and_data_files(cli, recbench_home, files):
    from recbench.data import load_dataset

    files["names"].write_bytes(b"\xef\xbb\xbf" + NAMES_OK.encode())
    files["val"].write_bytes(b"\xef\xbb\xbf" + files["val"].read_bytes())
    csv_rows = pd.DataFrame(default_rows(N_ITEMS)["test"])
    csv_rows["seq"] = csv_rows["seq"].map(json.dumps)
    files["test"] = files["test"].with_suffix(".csv")
    files["test"].write_bytes(b"\xef\xbb\xbf" + csv_rows.to_csv(index=False).encode())
    result = cli(*import_args(files))
    assert result.returncode == 0, result.stderr
    stored = (recbench_home / "datasets" / "toy" / "id2name.txt").read_bytes()
    assert stored.startswith(b"0::Item 0\n")  # stored normalised, without the BOM
    ds = load_dataset("toy")
    assert ds.item_names[0] == "Item 0"
    assert len(ds.rows("val")) == 4 and len(ds.rows("test")) == 4


def test_identical_rows_of_different_users_are_kept(cli, recbench_home, files):
    """Two users sharing a prefix give identical rows (lastfm has some): not an error."""
    rows = default_rows(N_ITEMS)["train"] + chain([0, 1, 2, 3], N_ITEMS)
    files["train"].write_text(jsonl(rows))
    result = cli(*import_args(files))
    assert result.returncode == 0, result.stderr
    assert "train: 12 rows, 3 with len_seq>=3" in result.stdout


def test_exactly_enough_items_for_the_candidates(cli, tmp_path):
    """The longest example uses 4 ids (3 history + target): 23 items are enough, 22 are not."""
    files = write_dataset(tmp_path / "src", n_items=23)
    result = cli(*import_args(files))
    assert result.returncode == 0, result.stderr
    from recbench.data import load_dataset

    for example in load_dataset("toy").examples("train"):
        assert len(set(example.candidates)) == 20


# --------------------------------------------------------------------- writing the import
def test_a_failed_write_leaves_nothing_and_keeps_the_old_import(recbench_home, files, monkeypatch):
    from recbench import api
    from recbench.data import catalog, importer, load_dataset

    def import_toy(**kwargs):
        return api.import_dataset("toy", files["train"], files["val"], files["test"],
                                  files["names"], **kwargs)  # fmt: skip

    real_write = importer._write_jsonl

    def disk_full(rows, path):
        if path.name == "val.jsonl":
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(rows, path)

    monkeypatch.setattr(importer, "_write_jsonl", disk_full)
    with pytest.raises(DataError, match="cannot write dataset 'toy' under .*No space left"):
        import_toy()
    assert not list((recbench_home / "datasets").iterdir())
    monkeypatch.setattr(importer, "_write_jsonl", real_write)
    import_toy(domain="music")
    monkeypatch.setattr(importer, "_write_jsonl", disk_full)
    with pytest.raises(DataError, match="No space left"):
        import_toy(domain="books", overwrite=True)
    assert [p.name for p in (recbench_home / "datasets").iterdir()] == ["toy"]
    catalog.forget("toy")
    assert load_dataset("toy").domain == "music"  # the old import is intact


# ------------------------------------------------------------------------- RECBENCH_HOME
def test_home_that_is_a_file(tmp_path, files):
    home = tmp_path / "home-file"
    home.write_text("not a directory\n")
    for args in (("data", "list"), import_args(files)):
        result = _cli_with_home(home, *args)
        assert_user_error(result, f"RECBENCH_HOME={home} is not a usable directory",
                          "it exists and is not a directory")  # fmt: skip
    assert home.read_text() == "not a directory\n"


def test_home_below_a_file(tmp_path):
    home = tmp_path / "home-file" / "sub"
    home.parent.write_text("x")
    result = _cli_with_home(home, "data", "list")
    assert_user_error(result, f"RECBENCH_HOME={home} is not a usable directory: cannot create it")


def test_datasets_folder_that_is_a_file(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "datasets").write_text("x")
    result = _cli_with_home(home, "data", "list")
    assert_user_error(result, f"{home / 'datasets'} (inside the recbench cache {home})",
                      "is not a usable directory: it exists and is not a directory")  # fmt: skip


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only directory anyway")
def test_read_only_home(tmp_path, files):
    home = tmp_path / "ro-home"
    home.mkdir()
    home.chmod(0o555)
    try:
        result = _cli_with_home(home, *import_args(files))
    finally:
        home.chmod(0o755)
    assert_user_error(result, f"RECBENCH_HOME={home} is not a usable directory: it is not writable")


def test_read_only_home_simulated(tmp_path, files):
    """Runs as root too: ``os.access`` says what it says for a read-only file system."""
    home = tmp_path / "ro-home"
    home.mkdir()
    prelude = (
        "import os\n"
        "_access = os.access\n"
        f"os.access = lambda p, m, **k: False if str(p) == {str(home)!r} else _access(p, m, **k)\n"
    )
    for args in (("data", "list"), import_args(files)):
        result = run_main_with(prelude, *args, home=home)
        assert_user_error(
            result, f"RECBENCH_HOME={home} is not a usable directory: it is not writable"
        )
    assert not list(home.iterdir())


def _cli_with_home(home: Path, *args: str) -> subprocess.CompletedProcess:
    return run_cli(*args, env={"RECBENCH_HOME": str(home)}, timeout=120)
