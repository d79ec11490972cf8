"""Configurations shown as methods of their own: ``recbench compare --variant sims_dpo:n_neg=19``.

The headline tables show one configuration per method (its registered defaults, see
:func:`~recbench.reports.runs.choose_references`).  Some comparisons need two configurations of
one method side by side: the paper's Table 2 has SimS-DPO with 3 negatives *and* with all 19.  A
variant names such a configuration; its runs are added to the report under a label of their own,
``METHOD[KEY=VALUE,...]``, so Table 2, the paired tests (against sft by default, or with
``--pair``), the seed spread and the time table show it as one more row, while the default
configuration stays where it was and the one-factor studies (fig3c_n_neg) keep drawing the
method's curve from the runs as recorded.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from recbench.errors import UserError
from recbench.registry import did_you_mean
from recbench.reports.runs import (
    DEFAULT_NEGATIVES,
    compatible,
    hparams_key,
    registry_defaults,
)


@dataclass(frozen=True)
class Variant:
    """A method at some hyper-parameters that differ from what its table row shows."""

    method: str
    settings: tuple[tuple[str, object], ...]  # sorted (key, value) pairs

    @property
    def label(self) -> str:
        """``sims_dpo[n_neg=19]``: the name the variant's rows carry in every table."""
        inner = ",".join(f"{key}={_text(value)}" for key, value in self.settings)
        return f"{self.method}[{inner}]"

    @property
    def text(self) -> str:
        """The ``--variant`` argument that gives this variant (canonical form)."""
        return f"{self.method}:{','.join(f'{k}={_text(v)}' for k, v in self.settings)}"


def _text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _value(text: str) -> object:
    """``19`` -> 19, ``0.5`` -> 0.5, ``true`` -> True; anything else stays a string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_variants(texts: Iterable[str]) -> tuple[Variant, ...]:
    """``["sims_dpo:n_neg=19"]`` -> (Variant("sims_dpo", (("n_neg", 19),)),), sorted, no repeats.

    Malformed text, or a key given twice (which value was meant?), is a one-line
    :class:`UserError`.
    """
    found = set()
    for text in texts:
        method, colon, rest = text.strip().partition(":")
        method = method.strip()
        settings: dict[str, object] = {}
        for item in rest.split(","):
            key, equals, value = item.partition("=")
            key, value = key.strip(), value.strip()
            if not equals or not key or not value:
                settings = {}
                break
            if key in settings:  # keeping the last value would silently drop the first
                raise UserError(f"--variant {text}: key '{key}' is given twice; give each key once")
            settings[key] = _value(value)
        if not colon or not method or not settings:
            raise UserError(
                f"--variant takes METHOD:KEY=VALUE[,KEY=VALUE...], e.g. sims_dpo:n_neg=19; "
                f"got '{text}'"
            )
        found.add(Variant(method, tuple(sorted(settings.items()))))
    return tuple(sorted(found, key=lambda v: v.label))


def base_method(name: str) -> str:
    """``sims_dpo[n_neg=19]`` -> ``sims_dpo`` (other names unchanged): where a variant sorts."""
    return name.split("[", 1)[0] if name.endswith("]") else name


def _wanted(
    variant: Variant, group: pd.DataFrame, defaults: Mapping[str, object] | None
) -> dict[str, object]:
    """The hyper-parameters a run of the variant has: the method's defaults with the variant's
    settings (a loss), or just the settings (a method without registered defaults)."""
    known = set(defaults or {}) | {k for h in group["hparams"] for k in h}
    for key, _ in variant.settings:
        if key not in known:
            raise UserError(
                f"--variant {variant.text}: {variant.method} has no hyper-parameter "
                f"'{key}'{did_you_mean(key, sorted(known))}; it has: {', '.join(sorted(known))}"
            )
    return {**(defaults or {}), **dict(variant.settings)}


def _matches(hparams: Mapping[str, object], wanted: Mapping[str, object], keys: set[str]) -> bool:
    return all(k in hparams for k in keys) and compatible(hparams, wanted)


def add_variants(
    runs: pd.DataFrame, variants: Sequence[Variant], strict: bool = True
) -> pd.DataFrame:
    """``runs`` plus a copy of each variant's runs, relabelled with :attr:`Variant.label`.

    ``strict`` (the whole filtered store): a variant with no runs, or one that is its method's
    default configuration (it would repeat the method's own row), is a :class:`UserError`.
    Otherwise (one setting of several) a variant without runs here is skipped.  On a dataset
    where the method has no run at its defaults, the variant's runs leave the method's own row
    (they would be shown twice otherwise: :func:`_shown_only_as_variant`).
    """
    if not variants:
        return runs
    added, moved = [], []
    for variant in variants:
        group = runs[runs["method"] == variant.method]
        if group.empty and not strict:
            continue
        if group.empty:
            known = sorted(set(runs["method"]))
            raise UserError(
                f"--variant {variant.text}: no runs of method '{variant.method}'"
                f"{did_you_mean(variant.method, known)}; the store has: {', '.join(known)}"
            )
        defaults = registry_defaults(variant.method, str(group["profile"].iloc[0]))
        wanted = _wanted(variant, group, defaults)
        if defaults is not None and hparams_key(defaults) == hparams_key(wanted):
            raise UserError(
                f"--variant {variant.text}: these are {variant.method}'s defaults, which its "
                "own row already shows"
            )
        keys = {key for key, _ in variant.settings}
        chosen = group[[_matches(h, wanted, keys) for h in group["hparams"]]]
        if chosen.empty and strict:
            raise UserError(
                f"--variant {variant.text}: no run of {variant.method} has these "
                "hyper-parameters (with its other hyper-parameters at their defaults)"
            )
        added.append(chosen.assign(method=variant.label))
        moved += _shown_only_as_variant(group, chosen, defaults)
    return pd.concat([runs.drop(index=moved), *added], ignore_index=True)


def strategy_variants(runs: pd.DataFrame, given: Sequence[Variant] = ()) -> tuple[Variant, ...]:
    """A variant ``METHOD[negatives=STRATEGY]`` for each loss run on a strategy other than the
    default, so negatives show as rows of their own, paired with the loss's own row, without
    an option (``given``: the user's variants, which one of these would repeat).  What
    :func:`add_variants` does with them is decided run by run, never an error: a strategy run
    at other hyper-parameters than the loss's defaults matches none and is not shown."""
    found = set()
    if not runs.empty:
        for method, family, hparams in zip(runs["method"], runs["family"], runs["hparams"],
                                           strict=True):  # fmt: skip
            strategy = hparams.get("negatives", DEFAULT_NEGATIVES)
            if family == "loss" and strategy != DEFAULT_NEGATIVES:
                found.add(Variant(method, (("negatives", strategy),)))
    return tuple(sorted(found - set(given), key=lambda v: v.label))


def _shown_only_as_variant(
    group: pd.DataFrame, chosen: pd.DataFrame, defaults: Mapping[str, object] | None
) -> list[object]:
    """The variant's runs on datasets where its method has no run at its defaults: there the
    method's own row would fall back to a configuration it has, perhaps the variant's, and show
    the same runs twice under two names; they are shown once, as the variant."""
    if defaults is None:
        return []
    moved: list[object] = []
    for dataset, here in chosen.groupby("dataset", sort=False):
        base = group[group["dataset"] == dataset]
        if not any(compatible(h, defaults) for h in base["hparams"]):
            moved += list(here.index)
    return moved


__all__ = ["Variant", "add_variants", "base_method", "parse_variants", "strategy_variants"]
