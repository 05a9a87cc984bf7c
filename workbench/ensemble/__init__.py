"""Ensembles of leaderboard candidates: average, vote, stack, select, bag, boost, random forest."""
from workbench.ensemble.estimators import StackEnsemble, WeightedEnsemble
from workbench.ensemble.methods import LIMITED, METHODS, EnsembleReport, EnsembleResult, ensemble

__all__ = ["ensemble", "METHODS", "LIMITED", "EnsembleResult", "EnsembleReport", "WeightedEnsemble", "StackEnsemble"]
