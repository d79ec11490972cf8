"""The baselines plugin: registers every baseline method.

recbench's core never imports ``baselines``; it loads this module through the
``recbench.plugins`` entry point (``pyproject.toml``), exactly as it loads a researcher's
plugin.  Importing it registers the rules, the sequential recommenders, MoRec, TALLRec, ChatRec
and LLaRA with :func:`recbench.methods.register_method`.  The SASRec behind NAPO, ChatRec and
LLaRA is the core's own (:mod:`recbench.seqrec`), so NAPO runs without this plugin.
"""

from __future__ import annotations

# importing these registers their methods: the rules, TALLRec, ChatRec, LLaRA and SPRec
from recbench.baselines import chatrec, llara, morec, rules, sprec, tallrec  # noqa: F401
from recbench.baselines.runner import Sequential

from recbench.methods import register_method
from recbench.seqrec.registry import BASELINES

# ------------------------------------------------------------- the sequential recommenders
for _order, _name in enumerate(("gru4rec", "caser", "sasrec")):
    _summary = BASELINES.get(_name).description.splitlines()[0]
    register_method(type(f"Sequential[{_name}]", (Sequential,), {
        "name": _name, "baseline": _name, "summary": _summary, "order": _order}))  # fmt: skip
register_method(morec.MoRecMethod)
