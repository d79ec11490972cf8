"""A killed reference pass, or a killed ``self``-negatives scoring pass, continues where it stopped.

Both passes run once per SFT stage and are cached when complete; on the study's CPU each takes
20-40 minutes, so a run killed inside one used to start it over.  Each finished batch now goes
to a journal beside the cache (``*.partial.jsonl``).  Here a smoke S-DPO run (tiny random Llama)
is stopped right after the pass's first batch is journalled; continued, it scores only the
batches that are left, caches what an uninterrupted run caches, records its metrics and removes
the journal.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file

from recbench import api, results
from recbench.config import RunConfig
from recbench.journal import Journal

pytestmark = pytest.mark.model

#: smoke: 8 preference examples; reference batches of 4, ranking batches of 2
BATCHES = {"reference": 2, "negatives": 4}


def config_in(root: Path, tiny_llm: Path, negatives: str) -> RunConfig:
    return RunConfig(
        loss="sdpo", dataset="lastfm", profile="smoke", model=str(tiny_llm), eval_examples=2,
        negatives=negatives, overrides={"generation": False}, output_dir=root / "run",
        results=root / "results.jsonl", resume="auto",
    )  # fmt: skip


def ranking_metrics(store: Path) -> dict[str, float]:
    records = results.read_records(store)
    return {r["metric"]: r["value"] for r in records
            if r.get("method") == "sdpo" and r.get("mode") == "ranking"}  # fmt: skip


class Appends:
    """Counts the journal appends of one pass (``reference-*`` or ``negatives-*`` journals)
    and, when ``stop_after`` is set, interrupts the run after that many."""

    def __init__(self, monkeypatch, cache: str, stop_after: int | None = None) -> None:
        self.count, self.cache, self.stop_after = 0, cache, stop_after
        original = Journal.append

        def append(journal, keys, seconds, **values):
            original(journal, keys, seconds, **values)
            if journal.path.name.startswith(f"{self.cache}-") and ".partial." in journal.path.name:
                self.count += 1
                if self.count == self.stop_after:
                    raise KeyboardInterrupt

        monkeypatch.setattr(Journal, "append", append)


def cached(home: Path, cache: str):
    """What the complete pass cached: the reference log-probs, or the picked negatives."""
    if cache == "reference":
        (path,) = (home / "stages").glob("reference-*.safetensors")
        return load_file(str(path))["logps"]
    (path,) = (home / "stages").glob("negatives-*.json")
    return json.loads(path.read_text())


@pytest.mark.parametrize(("cache", "negatives"), [("reference", "random"), ("negatives", "self")])
def test_a_pass_killed_after_one_batch_continues_from_the_next(
    cache, negatives, tiny_llm, tmp_path, monkeypatch
):
    import torch

    clean, killed = tmp_path / "clean", tmp_path / "killed"
    monkeypatch.setenv("RECBENCH_HOME", str(clean / "home"))
    with monkeypatch.context() as patch:
        uninterrupted = Appends(patch, cache)
        api.run(config_in(clean, tiny_llm, negatives))
    assert uninterrupted.count == BATCHES[cache]  # the pass journals every batch

    monkeypatch.setenv("RECBENCH_HOME", str(killed / "home"))
    with monkeypatch.context() as patch:
        Appends(patch, cache, stop_after=1)
        with pytest.raises(BaseException) as stopped:
            api.run(config_in(killed, tiny_llm, negatives))
    chain = [stopped.value, stopped.value.__cause__, stopped.value.__context__]
    assert any(isinstance(e, KeyboardInterrupt) for e in chain), stopped.value
    (journal,) = (killed / "home" / "stages").glob(f"{cache}-*.partial.jsonl")
    assert len(journal.read_text().splitlines()) == 1

    with monkeypatch.context() as patch:
        continued = Appends(patch, cache)
        api.run(config_in(killed, tiny_llm, negatives))
    assert continued.count == BATCHES[cache] - 1  # the journalled batch is not scored again
    assert not list((killed / "home" / "stages").glob("*.partial.jsonl"))  # done: removed

    expected, got = cached(clean / "home", cache), cached(killed / "home", cache)
    if cache == "reference":  # the journalled batch was read back, the other recomputed
        torch.testing.assert_close(got, expected, rtol=0.0, atol=1e-6)
    else:
        assert got == expected  # item ids
    want, have = ranking_metrics(clean / "results.jsonl"), ranking_metrics(killed / "results.jsonl")
    assert want and set(have) == set(want)
    for metric, value in want.items():
        assert have[metric] == pytest.approx(value, abs=1e-9), metric
