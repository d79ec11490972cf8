"""The study page's prose quotes numbers from the committed reports; when the reports are
regenerated (a new run moves Table 2's SFT row to another stage, say), these checks fail until
the prose is updated, so no sentence keeps a number the reports no longer give."""

from __future__ import annotations

import re

import pandas as pd
from conftest import ROOT

REPORTS = ROOT / "reports" / "movielens-study"
TEXT = (ROOT / "docs" / "study.md").read_text()
PAGE = " ".join(TEXT.split())  # the prose with one space between words


def _csv(name: str) -> pd.DataFrame:
    return pd.read_csv(REPORTS / name, comment="#")


def _per_seed(row: pd.Series) -> str:
    """``0:0.3730 1:0.3240`` -> ``0.373, 0.324``, as the prose writes them."""
    return ", ".join(f"{float(part.split(':')[1]):.3f}" for part in row["per_seed"].split())


def _span(values: pd.Series, digits: int = 3) -> str:
    low, high = f"{values.min():.{digits}f}", f"{values.max():.{digits}f}"
    return low if low == high else f"{low}–{high}"


def test_the_seed_spread_sentence_quotes_the_seed_spread_report() -> None:
    spread = _csv("seed_spread.csv")
    spread = spread[spread["dataset"] == "movielens"]
    sft = spread[spread["method"] == "sft"].set_index("mode")
    generation, ranking = _per_seed(sft.loc["generation"]), _per_seed(sft.loc["ranking"])
    expected = (
        f"HR@1 {generation} (generation) and {ranking} (ranking), an SD over seeds of "
        f"{_span(sft['hr1_sd'])}, {_span(sft['sd_over_se'], 1)} times one run's test-set "
        f"sampling error ({_span(sft['sampling_se'])})"
    )
    assert expected in PAGE
    losses = spread[(spread["family"] == "loss") & (spread["seeds"] == 3)]
    assert f"(SD {_span(losses['hr1_sd'])} for the losses, all run on 3 seeds)" in PAGE


def test_the_sft_interval_over_seeds_is_table_2s() -> None:
    table = _csv("table2_main.csv")
    sft = table[(table["dataset"] == "movielens") & (table["method"] == "sft")].iloc[0]
    quoted = re.search(r"SFT's own interval over seeds is \[([\d.]+), ([\d.]+)\]", PAGE)
    assert quoted is not None
    assert (quoted[1], quoted[2]) == (f"{sft['hr1_low']:.3f}", f"{sft['hr1_high']:.3f}")


WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven"}
REFERENCE_ROWS = {"sdpo", "dpo", "sprec_sft"}  # the losses the field modifies; SPRec's control


def _signed(text: str) -> float:
    return float(text.replace("−", "-"))


def test_the_field_status_quotes_the_field_table() -> None:
    """The status bullet's "the N recorded runs are LOW to HIGH from that SFT evaluation"
    is the range of the field table's "− sft" differences over its recorded field rows."""
    table = TEXT.split("<!-- study-field-table: begin")[1].split("<!-- study-field-table: end")[0]
    diffs: list[float] = []
    runs = 0
    for row in re.findall(r"\| (\S+) \| ([1-9]) \| [^\n]*?− sft: (\S+) / (\S+) ", table):
        if row[0] not in REFERENCE_ROWS:
            runs += 1
            diffs += [_signed(row[2]), _signed(row[3])]
    quoted = re.search(r"the (\w+) recorded runs are (\S+) to (\S+) from that SFT evaluation", PAGE)
    assert quoted is not None and runs > 0
    assert quoted[1] == WORDS[runs]
    assert (_signed(quoted[2]), _signed(quoted[3])) == (min(diffs), max(diffs))
