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
* ``listwise``: other losses of the recommendation literature over all n negatives (DMPO, MPPO,
  DynamicPO, RecDPO/RecPO; docs/losses.md);
* ``trl``: the pairwise ``loss_type`` options of TRL's DPOTrainer;
* ``other``: the default, e.g. for a plugin's loss (whose default order, :data:`PLUGIN_ORDER`,
  puts it after the built-in losses).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from recbench.losses.base import REFERENCE_FIELDS, PreferenceLoss
from recbench.losses.hparams import build_hparams, check_overrides, fields_of, valid_range
from recbench.losses.sources import BUILTIN_SOURCES, LossSource

from recbench.registry import Plugin, Registry

L = TypeVar("L", bound=type[PreferenceLoss])

LOSS_FAMILIES = ("pairwise", "softmax", "napo", "ablation", "listwise", "trl", "other")
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
    label: str = ""  # how tables name it (the key when empty)
    compared_with: tuple[str, ...] = ()  # keys its paired tests compare it with by default
    ablation_row: float | None = None  # its row in the ablation table (Table 3), if any
    source: LossSource = field(default_factory=LossSource)  # the paper and code it follows

    @property
    def display(self) -> str:
        """The label tables use: :attr:`label`, else the key."""
        return self.label or self.key

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
    label: str = "",
    compared_with: tuple[str, ...] = (),
    ablation_row: float | None = None,
    source: LossSource | None = None,
) -> Callable[[L], L]:
    """Class decorator registering a loss (or a preset of it) under ``key``.

    ``defaults`` overrides the class's hyper-parameter defaults for this key; ``fixed`` lists the
    overridden names that users may not change.  ``summary`` is one line, ``description`` a few
    lines (formula, reference model, negatives, margin, source).  ``family`` is one of
    :data:`LOSS_FAMILIES`; ``order`` places the key in listings (ties: by key).  The reports
    take the rest from here, never from a list of their own: ``label`` names the key in tables,
    ``compared_with`` are the keys its default paired tests compare it with (besides SFT), and
    ``ablation_row`` places it in the ablation table.  ``source`` names the paper and the
    released code (repository, file, commit) the formula follows; keys registered without one
    take theirs from :data:`~recbench.losses.sources.BUILTIN_SOURCES`, if listed there.
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
            label=label,
            compared_with=tuple(compared_with),
            ablation_row=ablation_row,
            source=source or BUILTIN_SOURCES.get(key, LossSource()),
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
