"""The paired comparison used for the closing numbers: exact McNemar and the paired bootstrap."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "paired_generation.py"
spec = importlib.util.spec_from_file_location("paired_generation", PATH)
paired = importlib.util.module_from_spec(spec)
spec.loader.exec_module(paired)


@pytest.mark.parametrize(
    ("b", "c", "expected"),
    [
        (12, 4, 2 * (1 + 16 + 120 + 560 + 1820) / 2**16),  # binomial(16, 1/2) tail, by hand
        (5, 5, 1.0),
        (0, 6, 2 / 2**6),
        (0, 0, 1.0),
    ],
)
def test_exact_mcnemar_matches_the_binomial_tail(b, c, expected):
    assert paired.mcnemar_exact(b, c) == pytest.approx(expected)


def test_paired_difference_and_discordant_counts():
    reference = {f"k{i}": i < 10 for i in range(100)}  # 10 hits
    other = {f"k{i}": 5 <= i < 25 for i in range(100)}  # 20 hits, 5 shared
    result = paired.compare(reference, other)
    assert result["difference"] == pytest.approx(0.10)
    assert (result["only_other"], result["only_reference"]) == (15, 5)
    low, high = result["interval95"]
    assert low < 0.10 < high and high - low < 0.2
    assert paired.compare(reference, other) == result  # seeded
