"""The sequential recommenders (GRU4Rec, Caser, SASRec): models, training, weights.

They are part of the core because the core needs one: NAPO's sharing and margin, ChatRec's
suggestions and LLaRA's item tokens all read a frozen SASRec (:mod:`recbench.auxiliary`), which
must work whatever plugins are installed.  The architectures load the released LLaRA checkpoints
unchanged (``checkpoints/``, see its PROVENANCE.md).  As baselines of their own they are methods
of the ``recbench.baselines`` plugin.
"""
