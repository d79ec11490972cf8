"""Declaring and validating loss hyper-parameters.

Every loss declares its hyper-parameters exactly once, as a frozen dataclass whose fields are made
with :func:`hp`.  The field default is the value the loss uses and the value the CLI shows, and the
field metadata carries the valid range, so a bad value is rejected with one line that names the
parameter and its range instead of silently producing a NaN loss hours into a run.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from recbench.errors import UserError
from recbench.registry import did_you_mean


def hp(
    default: bool | float | str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    choices: tuple[str, ...] | None = None,
    doc: str = "",
) -> Any:
    """A dataclass field for one hyper-parameter.

    ``low``/``high`` bound numeric values (closed unless ``*_open``), ``choices`` lists the allowed
    strings; the type is taken from the default (bool, int, float or str).
    """
    if choices is not None and default not in choices:
        raise ValueError(f"default {default!r} is not one of {choices}")
    meta = {
        "low": low,
        "high": high,
        "low_open": low_open,
        "high_open": high_open,
        "choices": choices,
        "doc": doc,
    }
    return dataclasses.field(default=default, metadata=meta)


def valid_range(field: dataclasses.Field) -> str:
    """Human-readable domain of a field, e.g. ``[0, 1)`` or ``one of 'none', 'all'``."""
    meta = field.metadata
    if meta.get("choices"):
        return "one of " + ", ".join(repr(c) for c in meta["choices"])
    if isinstance(field.default, bool):
        return "True or False"
    low, high = meta.get("low"), meta.get("high")
    left = "(" if meta.get("low_open") or low is None else "["
    right = ")" if meta.get("high_open") or high is None else "]"
    lo = "-inf" if low is None else f"{low:g}"
    hi = "inf" if high is None else f"{high:g}"
    kind = "an integer" if isinstance(field.default, int) else "a number"
    return f"{kind} in {left}{lo}, {hi}{right}"


def _coerce(loss_key: str, field: dataclasses.Field, value: object) -> object:
    """Check ``value`` against ``field`` and return it in the field's type."""
    name, default, meta = field.name, field.default, field.metadata
    where = f"loss '{loss_key}': hyper-parameter {name}={value!r}"
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise UserError(f"{where} is invalid; expected True or False")
        return value
    if isinstance(default, str):
        if not isinstance(value, str) or value not in meta["choices"]:
            raise UserError(f"{where} is invalid; expected {valid_range(field)}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UserError(f"{where} is invalid; expected {valid_range(field)}")
    if isinstance(default, int) and not isinstance(value, int):
        raise UserError(f"{where} is invalid; expected {valid_range(field)}")
    number = float(value)
    low, high = meta["low"], meta["high"]
    too_low = low is not None and (number <= low if meta["low_open"] else number < low)
    too_high = high is not None and (number >= high if meta["high_open"] else number > high)
    if not math.isfinite(number) or too_low or too_high:
        raise UserError(f"{where} is out of range; expected {valid_range(field)}")
    return int(value) if isinstance(default, int) else number


def fields_of(hparams_cls: type) -> dict[str, dataclasses.Field]:
    """Name -> field of a hyper-parameter dataclass, in declaration order."""
    return {f.name: f for f in dataclasses.fields(hparams_cls)}


def check_overrides(loss_key: str, hparams_cls: type, overrides: Mapping[str, object]) -> None:
    """Validate registration-time defaults; a mistake here is a bug, hence ``ValueError``."""
    fields = fields_of(hparams_cls)
    for name, value in overrides.items():
        if name not in fields:
            raise ValueError(f"loss '{loss_key}': preset sets unknown hyper-parameter '{name}'")
        try:
            _coerce(loss_key, fields[name], value)
        except UserError as err:
            raise ValueError(str(err)) from None


def build_hparams(
    loss_key: str,
    hparams_cls: type,
    defaults: Mapping[str, object],
    fixed: frozenset[str],
    given: Mapping[str, object],
) -> Any:
    """Instantiate ``hparams_cls`` from a preset's ``defaults`` and the user's ``given`` values.

    Names in ``fixed`` define the preset (e.g. ``rho=0`` *is* the no-sharing ablation); passing a
    different value for them is refused rather than silently turning the ablation into another
    loss.
    """
    fields = fields_of(hparams_cls)
    values = dict(defaults)
    for name, value in given.items():
        if name not in fields:
            raise UserError(
                f"loss '{loss_key}' has no hyper-parameter '{name}'"
                f"{did_you_mean(name, list(fields))}; valid: {', '.join(fields)}"
            )
        coerced = _coerce(loss_key, fields[name], value)
        if name in fixed and coerced != defaults[name]:
            raise UserError(
                f"loss '{loss_key}' fixes {name}={defaults[name]!r} (that is what defines it); "
                f"got {value!r}; use the base loss to choose {name}"
            )
        values[name] = coerced
    return hparams_cls(**values)
