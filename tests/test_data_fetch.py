"""`recbench data fetch steam`: the full Steam training split, against a local stand-in hub.

The real hub cannot be reached from the machines these tests run on.  The stand-in is a small
HTTP server that answers huggingface_hub's requests for ``steam/train_data.df`` as the hub does
(``X-Repo-Commit``, ``ETag``, the bytes), so the real client code runs.  The stand-in pickle is
small; its size and sha256 are patched in as the "recorded" values, while the check itself
always runs.  A pickle that would create a marker file when unpickled proves that a file with
another hash is refused before it is unpickled.
"""

from __future__ import annotations

import functools
import hashlib
import json
import pickle
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import assert_user_error, run_cli
from typer.testing import CliRunner

from recbench import api
from recbench.cli import app
from recbench.data import catalog, load_dataset, steam_full
from recbench.data.dataset import SPLITS
from recbench.errors import DataError
from recbench.identity import data_digest

PAD = 3581  # steam's padding id (its item count)


def _row(history: list[int], nxt: int) -> dict:
    return {"seq": history + [PAD] * (10 - len(history)), "len_seq": max(len(history), 1),
            "next": nxt}  # fmt: skip


def _user(items: list[int]) -> list[dict]:
    """Every prefix of one user's items as a row (the released training layout)."""
    return [_row(items[:k], items[k]) for k in range(len(items))]


def stand_in_frame() -> pd.DataFrame:
    """Two users' sliding rows, with numpy ids and an extra column as a pandas release has."""
    rows = _user([5, 7, 9, 11, 13]) + _user([100, 200, 300, 400])
    frame = pd.DataFrame(rows)
    frame["seq"] = [np.asarray(r["seq"], dtype=np.int64) for r in rows]
    frame["next_item_name"] = "unused"
    return frame


def pickled(obj: object, path: Path) -> Path:
    path.write_bytes(pickle.dumps(obj))
    return path


class _Marks:
    """Unpickling this creates ``path``: the proof that a pickle was (or was not) loaded."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def record(monkeypatch, path: Path) -> None:
    """Make ``path``'s size and sha256 the recorded ones (the check itself is untouched)."""
    data = path.read_bytes()
    monkeypatch.setattr(steam_full, "SIZE", len(data))
    monkeypatch.setattr(steam_full, "SHA256", hashlib.sha256(data).hexdigest())


class StandInHub:
    """Serves one file at the hub's resolve URL of ``steam/train_data.df`` at the pinned
    commit, answering HEAD and GET as the hub does; logs the paths asked for."""

    def __init__(self) -> None:
        self.payload = b""
        self.requests: list[tuple[str, str]] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, body: bool) -> None:
                hub.requests.append((self.command, self.path))
                expected = (f"/datasets/{steam_full.REPO_ID}/resolve/{steam_full.REVISION}/"
                            f"{steam_full.FILENAME}")  # fmt: skip
                if self.path != expected:
                    self.send_response(404)
                    self.send_header("X-Error-Code", "EntryNotFound")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("X-Repo-Commit", steam_full.REVISION)
                self.send_header("ETag", f'"{hashlib.sha256(hub.payload).hexdigest()}"')
                self.send_header("Content-Length", str(len(hub.payload)))
                self.end_headers()
                if body:
                    self.wfile.write(hub.payload)

            def do_HEAD(self) -> None:
                self._answer(body=False)

            def do_GET(self) -> None:
                self._answer(body=True)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def serve(self, path: Path) -> None:
        self.payload = path.read_bytes()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def hub(recbench_home, monkeypatch):
    """The stand-in hub, and ``steam_full.fetch`` pointed at it (as ``$HF_ENDPOINT`` would)."""
    stand_in = StandInHub()
    monkeypatch.setattr(steam_full, "fetch", functools.partial(steam_full.fetch,
                                                               endpoint=stand_in.url))  # fmt: skip
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    catalog.forget("steam")
    yield stand_in
    stand_in.close()
    catalog.forget("steam")


def cli_with(home: Path, env: dict[str, str], *args: str):
    """``recbench ARGS`` in a subprocess with ``home`` as $RECBENCH_HOME and ``env`` added."""
    return run_cli(*args, env={"RECBENCH_HOME": str(home), **env}, timeout=120)


def leftovers(home: Path) -> list[str]:
    folder = home / "fetched"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


# ------------------------------------------------------------------------------ conversion
def test_known_rows_convert_to_these_json_lines(tmp_path):
    frame = stand_in_frame().iloc[[0, 2, 4, 5]]
    frame.loc[frame.index[1], "len_seq"] = np.int32(2)  # any integer type
    frame.loc[frame.index[2], "next"] = 13.0  # an int column with gaps reads as floats
    out = tmp_path / "train.jsonl"
    steam_full.write_jsonl(steam_full.frame_rows(frame, "stand-in"), out)
    p = ", ".join(["3581"] * 9)
    assert out.read_text().splitlines() == [
        f'{{"seq": [{p}, 3581], "len_seq": 1, "next": 5}}',
        '{"seq": [5, 7, 3581, 3581, 3581, 3581, 3581, 3581, 3581, 3581], "len_seq": 2, "next": 9}',
        '{"seq": [5, 7, 9, 11, 3581, 3581, 3581, 3581, 3581, 3581], "len_seq": 4, "next": 13}',
        f'{{"seq": [{p}, 3581], "len_seq": 1, "next": 100}}',
    ]


def test_a_value_that_is_no_id_is_refused_at_its_row():
    frame = stand_in_frame().head(2)
    frame["next"] = [5, 7.5]
    with pytest.raises(DataError, match=r"stand-in:row 2: 7\.5 is not an item id"):
        list(steam_full.frame_rows(frame, "stand-in"))


# ------------------------------------------------------------------------ the right file
def test_fetch_from_the_stand_in_hub_makes_steam_train_on_the_full_split(
    hub, monkeypatch, recbench_home, tmp_path, cli
):
    path = pickled(stand_in_frame(), tmp_path / "train_data.df")
    record(monkeypatch, path)
    hub.serve(path)
    sample = load_dataset("steam")
    before = {split: sample.split_spec(split).sha256 for split in SPLITS}
    digest_before = data_digest(sample)

    result = CliRunner().invoke(app, ["data", "fetch", "steam"])

    assert result.exit_code == 0, (result.output, result.exception)
    assert "now trains on 9 rows (3 with len_seq>=3)" in result.output
    path_asked = (f"/datasets/{steam_full.REPO_ID}/resolve/{steam_full.REVISION}/"
                  f"{steam_full.FILENAME}")  # fmt: skip
    assert ("GET", path_asked) in hub.requests
    folder = recbench_home / "fetched" / "steam"
    assert sorted(p.name for p in folder.iterdir()) == ["split.json", "train.jsonl"]
    assert leftovers(recbench_home) == ["steam"]  # no staging or download left beside it
    lines = (folder / "train.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == _user([5, 7, 9, 11, 13]) + _user(
        [100, 200, 300, 400]
    )

    full = load_dataset("steam")
    assert full.split_spec("train").layout == "sliding"
    assert len(full.rows("train")) == 9 and len(full.examples("train")) == 3
    assert full.examples("train")[0].history == (5, 7, 9)
    for split in ("val", "test"):  # as shipped
        assert full.split_spec(split).sha256 == before[split]
    assert full.split_spec("train").sha256 != before["train"]
    assert data_digest(full) != digest_before  # runs on the full split get other ids

    info = cli("data", "info", "steam")  # a new process finds the fetched split by itself
    assert info.returncode == 0, info.stderr
    assert "TRAIN SPLIT IS THE FULL ONE (9 rows), fetched" in info.stdout
    assert "full training split of the LLaRA release (9 rows)" in info.stdout
    assert "1,000-ROW SAMPLE" not in info.stdout
    train_line = next(line for line in info.stdout.splitlines() if line.startswith("train "))
    assert train_line.split() == ["train", "9", "3", "2", "sliding"]  # rows, kept, users
    stats = api.dataset_info("steam")
    assert stats["splits"]["train"]["rows"] == 9
    assert stats["splits"]["train"]["layout"] == "sliding"


def test_without_a_fetch_data_info_says_the_sample_is_used(cli):
    info = cli("data", "info", "steam")
    assert info.returncode == 0, info.stderr
    assert "1,000-ROW SAMPLE" in info.stdout
    assert "recbench data fetch steam" in info.stdout


def test_a_copy_given_with_file_goes_through_the_same_check(recbench_home, monkeypatch, tmp_path):
    path = pickled(stand_in_frame(), tmp_path / "downloaded-by-hand.df")
    record(monkeypatch, path)
    catalog.forget("steam")
    stats = api.fetch_dataset("steam", file=path)
    assert stats["splits"]["train"]["rows"] == 9
    assert "given with --file" in load_dataset("steam").spec.source
    catalog.forget("steam")


def test_an_edited_fetched_split_is_refused_when_read(hub, monkeypatch, tmp_path, recbench_home):
    path = pickled(stand_in_frame(), tmp_path / "train_data.df")
    record(monkeypatch, path)
    hub.serve(path)
    steam_full.fetch()
    train = recbench_home / "fetched" / "steam" / "train.jsonl"
    train.write_text(train.read_text().replace('"next": 13', '"next": 14'))
    catalog.forget("steam")
    with pytest.raises(DataError, match="corrupt or modified"):
        load_dataset("steam").rows("train")


# ------------------------------------------------------------------------ another file
def test_a_file_with_another_hash_is_refused_before_it_is_unpickled(
    hub, monkeypatch, recbench_home, tmp_path
):
    marker = tmp_path / "unpickled"
    evil = pickled(_Marks(marker), tmp_path / "train_data.df")
    good = pickled(stand_in_frame(), tmp_path / "good.df")
    record(monkeypatch, good)
    monkeypatch.setattr(steam_full, "SIZE", evil.stat().st_size)  # only the hash differs
    hub.serve(evil)

    with pytest.raises(DataError) as refused:
        steam_full.fetch()
    message = str(refused.value)
    assert "\n" not in message and "refused without unpickling it" in message
    assert steam_full.URL in message  # the hub's file, not the temporary copy
    with pytest.raises(DataError, match="refused without unpickling it"):
        steam_full.fetch(file=evil)
    assert not marker.exists()
    assert leftovers(recbench_home) == []  # nothing installed, nothing half-written
    assert load_dataset("steam").split_spec("train").layout == "sample"

    # the control: with that file's hash recorded, it *is* unpickled, and the marker appears
    record(monkeypatch, evil)
    with pytest.raises(DataError, match="holds a NoneType, not a DataFrame"):
        steam_full.fetch(file=evil)
    assert marker.exists()
    assert leftovers(recbench_home) == []


def test_a_refused_refetch_leaves_the_installed_split_alone(hub, monkeypatch, tmp_path):
    path = pickled(stand_in_frame(), tmp_path / "train_data.df")
    record(monkeypatch, path)
    hub.serve(path)
    steam_full.fetch()
    other = pickled(stand_in_frame().head(3), tmp_path / "other.df")
    hub.serve(other)
    with pytest.raises(DataError, match="not the recorded LLaRA Steam training split"):
        steam_full.fetch()
    catalog.forget("steam")
    assert len(load_dataset("steam").rows("train")) == 9


def test_the_cli_refuses_a_file_that_is_not_the_recorded_one(cli, tmp_path):
    marker = tmp_path / "unpickled"
    evil = pickled(_Marks(marker), tmp_path / "train_data.df")
    result = cli("data", "fetch", "steam", "--file", str(evil))
    assert_user_error(result, str(evil), "expected 7,322,362 bytes, sha256 90f8e2ec...ed5b63",
                      "refused without unpickling it")  # fmt: skip
    assert not marker.exists()


def test_the_cli_refuses_what_a_hub_serves_if_it_is_not_the_recorded_file(recbench_home, tmp_path):
    """End to end through the real client: the stand-in serves a file of another hash."""
    stand_in = StandInHub()
    try:
        stand_in.serve(pickled(_Marks(tmp_path / "unpickled"), tmp_path / "train_data.df"))
        result = cli_with(recbench_home, {"HF_ENDPOINT": stand_in.url}, "data", "fetch", "steam")
    finally:
        stand_in.close()
    assert_user_error(result, steam_full.URL, "refused without unpickling it")
    assert not (tmp_path / "unpickled").exists()
    assert leftovers(recbench_home) == []


# ------------------------------------------------------------------------------ offline
@pytest.mark.parametrize(
    "env",
    [{"HF_ENDPOINT": "http://127.0.0.1:9"},  # nothing listens: the hub is unreachable
     {"HF_HUB_OFFLINE": "1"}],
    ids=["unreachable", "offline-mode"],
)  # fmt: skip
def test_offline_it_fails_in_seconds_with_one_line_that_says_how_to_import_by_hand(
    recbench_home, env
):
    started = time.monotonic()
    result = cli_with(recbench_home, env, "data", "fetch", "steam")
    elapsed = time.monotonic() - started
    assert_user_error(result, "cannot download steam/train_data.df of joyliao7777/LLaRA",
                      steam_full.URL, "recbench data fetch steam --file PATH")  # fmt: skip
    assert elapsed < 15, elapsed  # a process start included; huggingface_hub alone retries ~25 s


def test_only_steam_can_be_fetched(cli):
    assert_user_error(cli("data", "fetch", "steem"), "did you mean 'steam'", "fetchable: steam")
    assert_user_error(cli("data", "fetch", "lastfm"), "nothing to fetch for dataset 'lastfm'")
