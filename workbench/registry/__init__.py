"""Tracking (MLflow), model files in safe formats, packages and the model repository."""
from workbench.registry.modelio import load_model, save_model

__all__ = ["save_model", "load_model"]
