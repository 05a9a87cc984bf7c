"""Decomposition: a model split into parts that run apart (Dask workers, part servers) and combine to its answer."""
from workbench.decompose.core import DecomposedModel, Part, PartError, decompose, load_part, predict_parallel

__all__ = ["DecomposedModel", "Part", "PartError", "decompose", "load_part", "predict_parallel"]
