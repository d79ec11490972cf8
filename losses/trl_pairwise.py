"""The pairwise ``loss_type`` options of TRL 1.16.0's DPOTrainer, one key each (``trl_<type>``).

They let the benchmark compare the recommendation losses with the general-purpose preference
losses practitioners reach for first, on the same (y+, y-_1) pairs.  With cp = l+ - l+_ref,
cn = l-_1 - l-_1,ref and h = cp - cn, each formula is TRL's ``_compute_loss`` (f-divergence
'reverse_kl') rewritten through the stable softplus (docs/losses.md, 'TRL's pairwise loss types').  ``trl_sigmoid`` is
not a key: it is ``dpo`` with label smoothing 0.

``trl_aot`` and ``trl_aot_unpaired`` sort log-ratios across the batch, so their per_example[k]
belongs to the k-th sorted position, not to example k; only their mean is attributable.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from recbench.losses.base import BASE_FIELDS, LENGTH_FIELDS, REFERENCE_FIELDS, PreferenceLoss
from recbench.losses.batch import LossOutput, PreferenceBatch
from recbench.losses.hparams import hp
from recbench.losses.registry import register_loss
from recbench.losses.rewards import reward_metrics, sequence_scores
from recbench.losses.sources import LossSource
from recbench.losses.stable import lse_with_zero
from torch import Tensor

TRL_CODE = "huggingface/trl v1.16.0 trl/trainer/dpo_trainer.py DPOTrainer._compute_loss"
_BETA_DOC = "inverse temperature (TRL's default is 0.1)"


@dataclass(frozen=True)
class TRLHParams:
    beta: float = hp(1.0, low=0.0, low_open=True, doc=_BETA_DOC)


@dataclass(frozen=True)
class TRLSmoothingHParams:
    beta: float = hp(1.0, low=0.0, low_open=True, doc=_BETA_DOC)
    label_smoothing: float = hp(
        0.0, low=0.0, high=0.5, high_open=True, doc="probability that a preference is flipped"
    )


@dataclass(frozen=True)
class TRLExoHParams:
    beta: float = hp(1.0, low=0.0, low_open=True, doc=_BETA_DOC)
    label_smoothing: float = hp(
        1e-3,
        low=0.0,
        high=1.0,
        low_open=True,
        high_open=True,
        doc="target probability epsilon of the rejected response",
    )


@dataclass(frozen=True)
class TRLDiscoPOPHParams:
    beta: float = hp(1.0, low=0.0, low_open=True, doc=_BETA_DOC)
    discopop_tau: float = hp(
        0.05, low=0.0, low_open=True, doc="temperature tau of the logistic/exponential blend"
    )


def _softplus(x: Tensor) -> Tensor:
    return lse_with_zero(x[..., None])


def _smoothed(x: Tensor, eps: float) -> Tensor:
    """(1 - eps) * softplus(-x) + eps * softplus(x): the logistic loss with flipped labels."""
    return (1.0 - eps) * _softplus(-x) + eps * _softplus(x) if eps > 0.0 else _softplus(-x)


def _normalised_gap(batch: PreferenceBatch, cp: Tensor, cn: Tensor) -> Tensor:
    """cp/|y+| - cn/|y-|, lengths clamped at 1 as TRL does."""
    assert batch.chosen_lengths is not None and batch.rejected_lengths is not None
    return cp / batch.chosen_lengths.clamp_min(1.0) - cn / batch.rejected_lengths[:, 0].clamp_min(
        1.0
    )


def _exo(hp_: Any, cp: Tensor, cn: Tensor) -> Tensor:
    x, eps = hp_.beta * (cp - cn), hp_.label_smoothing
    return torch.sigmoid(x) * (-_softplus(-x) - math.log1p(-eps)) + torch.sigmoid(-x) * (
        -_softplus(x) - math.log(eps)
    )


def _aot(hp_: Any, batch: PreferenceBatch, cp: Tensor, cn: Tensor) -> Tensor:
    policy = torch.sort(batch.chosen_logps - batch.rejected_logps[:, 0]).values
    assert batch.ref_chosen_logps is not None and batch.ref_rejected_logps is not None
    reference = torch.sort(batch.ref_chosen_logps - batch.ref_rejected_logps[:, 0]).values
    return _smoothed(hp_.beta * (policy - reference), hp_.label_smoothing)


def _discopop(hp_: Any, cp: Tensor, cn: Tensor) -> Tensor:
    x = hp_.beta * (cp - cn)
    blend = torch.sigmoid(x / hp_.discopop_tau)
    # exp(-x) * sigma(x/tau) as one exponent: the product form is inf * 0 for x << 0
    return _softplus(-x) * (1.0 - blend) + torch.exp(-x - _softplus(-x / hp_.discopop_tau))


Formula = Callable[[Any, PreferenceBatch, Tensor, Tensor], Tensor]

#: loss_type -> per-example loss from (hparams, batch cut to y-_1, cp, cn).
FORMULAS: dict[str, Formula] = {
    "hinge": lambda h, b, cp, cn: torch.relu(1.0 - h.beta * (cp - cn)),
    "ipo": lambda h, b, cp, cn: (_normalised_gap(b, cp, cn) - 1.0 / (2.0 * h.beta)) ** 2,
    "exo_pair": lambda h, b, cp, cn: _exo(h, cp, cn),
    "nca_pair": lambda h, b, cp, cn: (
        _softplus(-h.beta * cp) + 0.5 * _softplus(h.beta * cp) + 0.5 * _softplus(h.beta * cn)
    ),
    "robust": lambda h, b, cp, cn: (
        (
            (1.0 - h.label_smoothing) * _softplus(-h.beta * (cp - cn))
            - h.label_smoothing * _softplus(h.beta * (cp - cn))
        )
        / (1.0 - 2.0 * h.label_smoothing)
    ),
    "bco_pair": lambda h, b, cp, cn: _softplus(-h.beta * cp) + _softplus(h.beta * cn),
    "sppo_hard": lambda h, b, cp, cn: (cp - 0.5 / h.beta) ** 2 + (cn + 0.5 / h.beta) ** 2,
    "aot": _aot,
    "aot_unpaired": lambda h, b, cp, cn: _smoothed(
        h.beta * (torch.sort(cp).values - torch.sort(cn).values), h.label_smoothing
    ),
    "apo_zero": lambda h, b, cp, cn: 1.0 - torch.sigmoid(h.beta * cp) + torch.sigmoid(h.beta * cn),
    "apo_down": lambda h, b, cp, cn: (
        torch.sigmoid(h.beta * cp) + 1.0 - torch.sigmoid(h.beta * (cp - cn))
    ),
    "discopop": lambda h, b, cp, cn: _discopop(h, cp, cn),
    "sigmoid_norm": lambda h, b, cp, cn: _softplus(-h.beta * _normalised_gap(b, cp, cn)),
}


class TRLPairLoss(PreferenceLoss):
    """One TRL loss_type; each key is a subclass fixing :attr:`loss_type`."""

    HParams: Any = TRLHParams
    loss_type: ClassVar[str] = ""
    #: ipo and sigmoid_norm divide the log-ratios by the response lengths
    LENGTH_NORMALISED: ClassVar[frozenset[str]] = frozenset({"ipo", "sigmoid_norm"})

    @classmethod
    def required_fields(cls, hparams: Any) -> frozenset[str]:
        lengths = LENGTH_FIELDS if cls.loss_type in cls.LENGTH_NORMALISED else frozenset()
        return BASE_FIELDS | REFERENCE_FIELDS | lengths

    @classmethod
    def all_negatives(cls, hparams: Any) -> bool:
        return False

    def compute(self, batch: PreferenceBatch) -> LossOutput:
        pos, neg = sequence_scores(batch, reference=True, ln=False)
        cp, cn = pos, neg[:, 0]
        per_example = FORMULAS[self.loss_type](self.hparams, batch, cp, cn)
        metrics: dict = reward_metrics(self.hparams.beta * pos, self.hparams.beta * neg)
        return LossOutput(per_example.mean(), per_example, metrics)


@dataclass(frozen=True)
class _Entry:
    loss_type: str
    hparams: type
    formula: str
    paper: str = ""
    defaults: tuple[tuple[str, object], ...] = ()


_ENTRIES = (
    _Entry("hinge", TRLHParams, "relu(1 - beta*h)", "SLiC-style hinge loss"),
    _Entry(
        "ipo",
        TRLHParams,
        "(cp/|y+| - cn/|y-| - 1/(2 beta))^2, lengths clamped at 1",
        "IPO, arXiv 2310.12036 (as cited by TRL)",
    ),
    _Entry(
        "exo_pair",
        TRLExoHParams,
        "s(x)(log s(x) - log(1-eps)) + s(-x)(log s(-x) - log eps), x = beta*h, s = sigmoid",
        "EXO, arXiv 2402.00856 (as cited by TRL)",
    ),
    _Entry(
        "nca_pair", TRLHParams, "softplus(-beta cp) + softplus(beta cp)/2 + softplus(beta cn)/2"
    ),
    _Entry(
        "robust",
        TRLSmoothingHParams,
        "[(1-eps) softplus(-beta h) - eps softplus(beta h)]/(1 - 2 eps)",
        "Robust DPO (TRL's documented typical eps = 0.1)",
        (("label_smoothing", 0.1),),
    ),
    _Entry("bco_pair", TRLHParams, "softplus(-beta cp) + softplus(beta cn) (no running mean)"),
    _Entry(
        "sppo_hard",
        TRLHParams,
        "(cp - 1/(2 beta))^2 + (cn + 1/(2 beta))^2",
        "SPPO, arXiv 2405.00675 (as cited by TRL)",
    ),
    _Entry(
        "aot",
        TRLSmoothingHParams,
        "d_k = sort(l+ - l-)_k - sort(l+_ref - l-_ref)_k across the batch; "
        "(1-eps) softplus(-beta d) + eps softplus(beta d)",
    ),
    _Entry(
        "aot_unpaired",
        TRLSmoothingHParams,
        "d_k = sort(cp)_k - sort(cn)_k across the batch; (1-eps) softplus(-beta d) + eps softplus(beta d)",
    ),
    _Entry(
        "apo_zero",
        TRLHParams,
        "1 - sigmoid(beta cp) + sigmoid(beta cn)",
        "APO, arXiv 2408.06266 Eq. 7 (as cited by TRL)",
    ),
    _Entry(
        "apo_down",
        TRLHParams,
        "sigmoid(beta cp) + 1 - sigmoid(beta h)",
        "APO, arXiv 2408.06266 Eq. 8 (as cited by TRL)",
    ),
    _Entry(
        "discopop",
        TRLDiscoPOPHParams,
        "x = beta h, w = sigmoid(x/tau): softplus(-x)(1 - w) + exp(-x) w (as one exponent)",
        "DiscoPOP, arXiv 2406.08414 Eq. 5 (as cited by TRL)",
    ),
    _Entry("sigmoid_norm", TRLHParams, "softplus(-beta (cp/|y+| - cn/|y-|)), lengths clamped at 1"),
)


def _register(index: int, entry: _Entry) -> None:
    name = "".join(part.title() for part in entry.loss_type.split("_"))
    cls = type(
        f"TRL{name}Loss",
        (TRLPairLoss,),
        {"HParams": entry.hparams, "loss_type": entry.loss_type, "__module__": __name__},
    )
    lengths = "yes" if entry.loss_type in TRLPairLoss.LENGTH_NORMALISED else "no"
    coupling = "  Couples the batch (sorted)." if entry.loss_type.startswith("aot") else ""
    register_loss(
        f"trl_{entry.loss_type}",
        label=f"TRL {entry.loss_type}",
        family="trl",
        order=200 + index,
        compared_with=("dpo",),  # each is a pairwise variant of DPO
        source=LossSource(entry.paper, f"{TRL_CODE} (loss_type='{entry.loss_type}')"),
        summary=f"TRL DPOTrainer loss_type='{entry.loss_type}' on (y+, y-_1)",
        description=f"""
L = {entry.formula};  cp = l+ - l+_ref, cn = l-_1 - l-_1,ref, h = cp - cn.
Reference model: yes.  Negatives: the first one.  Length normalisation: {lengths}.{coupling}
Source: TRL 1.16.0 DPOTrainer._compute_loss, f_divergence_type='reverse_kl'; beta = 1 (suite).
""",
        defaults=dict(entry.defaults),
    )(cls)


for _index, _entry in enumerate(_ENTRIES):
    _register(_index, _entry)
