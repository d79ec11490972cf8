"""Where each loss comes from: the paper it cites and the code whose numbers it reproduces.

A benchmark row is only as trustworthy as the reading behind it, so every key says which paper
and which released code (repository, file, commit) its formula was taken from, as tagged in the
suite's specifications (summarised in docs/losses.md).  A paper marked UNVERIFIED was known from its
abstract or a README only.  New registrations pass ``source=`` to ``register_loss``;
:data:`BUILTIN_SOURCES` holds the sources of the keys registered before that argument existed.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LossSource:
    """``paper``: title, venue or arXiv id; ``code``: repository, file and commit (or release)."""

    paper: str = ""
    code: str = ""

    def __str__(self) -> str:
        parts = [
            f"paper: {self.paper}" if self.paper else "",
            f"code: {self.code}" if self.code else "",
        ]
        return "; ".join(p for p in parts if p) or "not recorded"


_NAPO_PAPER = "On Negative-aware Preference Optimization for Recommendation (NAPO)"
_NAPO_CODE = "acoding-xuan/NAPO trainer/softmax_dpo_trainer.py @7d8c38e"

#: Sources of the paper's losses (docs/losses.md, 'The paper's losses').
BUILTIN_SOURCES: dict[str, LossSource] = {
    "dpo": LossSource(
        "Direct Preference Optimization (DPO)",
        "chenyuxin1999/S-DPO dpo.py, dpo.sh @07befa4; huggingface/trl v0.11.1 dpo_trainer.py",
    ),
    "simpo": LossSource(
        "SimPO (Eq. 6)",
        "princeton-nlp/SimPO scripts/simpo_trainer.py; trl experimental/cpo/cpo_trainer.py",
    ),
    "sdpo": LossSource(
        "S-DPO (Eqs. 9-10)", "chenyuxin1999/S-DPO trainer/softmax_dpo_trainer.py @07befa4"
    ),
    "sims_dpo": LossSource(f"{_NAPO_PAPER}, Table 3", _NAPO_CODE),
    "alpha_dpo": LossSource(
        "alpha-DPO", "junkangwu/alpha-DPO scripts/dpo_trainer.py (loss_type='alpha-dpo')"
    ),
    "napo": LossSource(f"{_NAPO_PAPER}, Eqs. 11-17", _NAPO_CODE),
    "napo_official": LossSource(f"{_NAPO_PAPER}, Eqs. 11-17", _NAPO_CODE),
    "napo_paper": LossSource(f"{_NAPO_PAPER}, Eqs. 15-17", _NAPO_CODE),
    "sdpo_ns": LossSource(f"{_NAPO_PAPER}, Table 3 (defined by analogy; not in the code)"),
    "napo_ln": LossSource(f"{_NAPO_PAPER}, Table 3", _NAPO_CODE),
    "napo_no_ns": LossSource(f"{_NAPO_PAPER}, Table 3", f"{_NAPO_CODE} (batch_shared=False)"),
    "napo_no_dyn": LossSource(f"{_NAPO_PAPER}, Table 3", _NAPO_CODE),
    "napo_no_ns_gamma": LossSource(f"{_NAPO_PAPER}, Table 3", _NAPO_CODE),
    "napo_no_ns_dyn": LossSource(f"{_NAPO_PAPER}, Table 3", _NAPO_CODE),
    "napo1": LossSource(f"{_NAPO_PAPER}, Appendix B (no released code)"),
    "napo2": LossSource(f"{_NAPO_PAPER}, Appendix B (no released code)"),
}
