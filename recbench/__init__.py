"""recbench: a benchmark of preference-optimisation losses for LLM recommenders."""

__version__ = "0.1.0"
