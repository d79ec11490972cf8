"""Loss registry: ``@register_loss(key, ...)``, :func:`get_loss`, :func:`list_specs`.

A registry entry (:class:`LossSpec`) is a loss class plus a preset of default hyper-parameters,
so presets and ablations (``napo_official``, ``napo_no_ns``...) are registrations of the same class
with different defaults, not copies of code.  Hyper-parameters named in ``fixed`` define the
entry and cannot be changed through it.

Listing order (``recbench losses``, :func:`loss_keys`, the parametrised tests) comes from the
registration's ``order`` (then the key), and ``family`` groups the entries:

* ``pairwise``: one chosen vs one rejected response (DPO, SimPO, alpha-DPO);
* ``softmax``: the chosen response against all own negatives (S-DPO, SimS-DPO);
* ``napo``: NAPO, its presets and its appendix-B variants;
* ``ablation``: Table-3 ablations of NAPO;
* ``other``: the default, e.g. for a plugin's loss (whose default order, :data:`PLUGIN_ORDER`,
  puts it after the built-in losses).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from losses.base import REFERENCE_FIELDS, PreferenceLoss
from losses.hparams import build_hparams, check_overrides, fields_of, valid_range
from recbench.registry import Plugin, Registry

L = TypeVar("L", bound=type[PreferenceLoss])

LOSS_FAMILIES = ("pairwise", "softmax", "napo", "ablation", "other")
#: Default ``order`` of a registration: after every built-in loss (those use 10-999).
PLUGIN_ORDER = 1000

_LOSSES: Registry[LossSpec] = Registry("loss", sort_key=lambda key, spec: (spec.order, key))


@dataclass(frozen=True)
class LossSpec:
    """Everything the CLI shows about a loss, and how to build it.

    ``hparams`` maps each hyper-parameter to the default this key uses, ``hparam_ranges`` to its
    valid domain and ``hparam_docs`` to a short meaning.  ``requires``, ``uses_all_negatives``
    and ``needs_reference`` are evaluated at those defaults (an instance's own properties reflect
    overridden values).
    """

    key: str
    summary: str
    description: str
    hparams: dict[str, object]
    requires: frozenset[str]
    uses_all_negatives: bool
    needs_reference: bool
    fixed: frozenset[str] = frozenset()
    hparam_ranges: dict[str, str] = field(default_factory=dict)
    hparam_docs: dict[str, str] = field(default_factory=dict)
    loss_class: type[PreferenceLoss] | None = field(default=None, repr=False, compare=False)
    family: str = "other"
    order: float = PLUGIN_ORDER

    def build(self, **hparams: object) -> PreferenceLoss:
        """Instantiate the loss with these defaults overridden by ``hparams`` (validated)."""
        if self.loss_class is None:
            raise TypeError(f"loss spec '{self.key}' has no loss class")
        values = build_hparams(self.key, self.loss_class.HParams, self.hparams, self.fixed, hparams)
        return self.loss_class(values, key=self.key)


def register_loss(
    key: str,
    *,
    summary: str,
    description: str,
    defaults: Mapping[str, object] | None = None,
    fixed: frozenset[str] | set[str] | tuple[str, ...] = (),
    family: str = "other",
    order: float = PLUGIN_ORDER,
) -> Callable[[L], L]:
    """Class decorator registering a loss (or a preset of it) under ``key``.

    ``defaults`` overrides the class's hyper-parameter defaults for this key; ``fixed`` lists the
    overridden names that users may not change.  ``summary`` is one line, ``description`` a few
    lines (formula, reference model, negatives, margin, source).  ``family`` is one of
    :data:`LOSS_FAMILIES`; ``order`` places the key in listings (ties: by key).
    """
    overrides = dict(defaults or {})
    fixed_set = frozenset(fixed)
    if "\n" in summary:
        raise ValueError(f"loss '{key}': summary must be one line")
    if not fixed_set <= set(overrides):
        raise ValueError(f"loss '{key}': fixed names must also be given in defaults")
    if family not in LOSS_FAMILIES:
        raise ValueError(f"loss '{key}': family must be one of {', '.join(LOSS_FAMILIES)}")
    if isinstance(order, bool) or not isinstance(order, int | float):
        raise TypeError(f"loss '{key}': order must be a number, got {order!r}")

    def wrap(cls: L) -> L:
        check_overrides(key, cls.HParams, overrides)
        fields = fields_of(cls.HParams)
        values = {name: f.default for name, f in fields.items()}
        values.update(overrides)
        instance = cls.HParams(**values)
        requires = cls.required_fields(instance)
        spec = LossSpec(
            key=key,
            summary=summary,
            description=description.strip(),
            hparams=values,
            requires=requires,
            uses_all_negatives=cls.all_negatives(instance),
            needs_reference=bool(requires & REFERENCE_FIELDS),
            fixed=fixed_set,
            hparam_ranges={name: valid_range(f) for name, f in fields.items()},
            hparam_docs={name: f.metadata.get("doc", "") for name, f in fields.items()},
            loss_class=cls,
            family=family,
            order=order,
        )
        _LOSSES.add(key, spec)
        return cls

    return wrap


def get_spec(key: str) -> LossSpec:
    """The spec of ``key``; unknown keys raise ``UnknownNameError`` with a suggestion."""
    return _LOSSES.get(key)


def list_specs() -> list[LossSpec]:
    """All registered losses, in listing order (``order``, then key)."""
    return [_LOSSES.get(name) for name in _LOSSES.names()]


def loss_keys() -> list[str]:
    """Every registered key, in listing order (``order``, then key)."""
    return _LOSSES.names()


def loss_origin(key: str) -> Plugin | None:
    """The plugin that registered ``key``, or None for a loss built into recbench."""
    return _LOSSES.origin(key)


def get_loss(key: str, **hparams: object) -> PreferenceLoss:
    """Build the loss module registered as ``key``.

    Raises ``UnknownNameError`` for an unknown key and ``UserError`` for an unknown, fixed or
    out-of-range hyper-parameter.  The module starts in training mode (state updates on).
    """
    return get_spec(key).build(**hparams)
