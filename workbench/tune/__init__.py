"""Hyperparameter tuning: one search-space description, strategies by name, parallel trials on Dask."""
from workbench.tune.search import TuningResult, parameter_importance, tune
from workbench.tune.strategies import STRATEGIES, Proposal, Strategy

__all__ = ["tune", "TuningResult", "parameter_importance", "STRATEGIES", "Strategy", "Proposal"]
