"""Paper-style tables and plots from the results store (``recbench compare``).

:mod:`~recbench.reports.runs` reshapes records into one row per run and picks the configuration
each table shows, :mod:`~recbench.reports.stats` computes means and intervals,
:mod:`~recbench.reports.paired` the paired tests on per-example outcomes,
:mod:`~recbench.reports.tables` and :mod:`~recbench.reports.plots` build and render, and
:mod:`~recbench.reports.comparison` ties them together with provenance headers.

``compare`` is imported lazily: the sweep only needs the light record helpers of ``runs``, and
should not pay for importing matplotlib and seaborn.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CompareReport", "compare"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from recbench.reports import comparison as module

        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
