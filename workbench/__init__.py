"""AIMS Workbench: a business table to a trusted model, in notebooks, on the command line, on Dask.

Importing the package costs milliseconds (the command line answers at once): ``load``, ``profile``, ``clean``,
``split``, ``compare`` and ``train`` load their modules when first used, and each model kind's module loads when a
kind is first looked up.
"""
import importlib
import os

# OpenMP threads (LightGBM, histogram boosting) sleep when idle instead of spinning: next to a busy process the
# default spin-wait makes a 2-thread fit 3-30x slower. Read once, when the runtime loads: so before any model library
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from workbench import kinds  # noqa: E402

# where each model kind registers (a new kind adds its line here; tests/test_start.py checks): the zoo's and
# calibrated models (models), ensembles, compressed and decomposed models
for _name, _module in {"lightgbm": "workbench.models.kinds", "skops": "workbench.models.kinds",
                       "ensemble": "workbench.ensemble.estimators", "decomposed": "workbench.decompose.core",
                       "lightgbm-compact": "workbench.compress.estimators",
                       "lightgbm-compiled": "workbench.compress.estimators",
                       "onnx": "workbench.compress.estimators", "calibrated": "workbench.models.decide",
                       "catboost": "workbench.models.boost", "xgboost": "workbench.models.boost"}.items():
    kinds.KINDS.declare(_name, _module)

_PUBLIC = {"load": "workbench.data", "profile": "workbench.data", "clean": "workbench.data", "split": "workbench.data",
           "compare": "workbench.models", "train": "workbench.auto"}
__all__ = list(_PUBLIC)
__version__ = "0.1.0"


def __getattr__(name: str):
    if name in _PUBLIC:  # start-up cost: pandas, scikit-learn and LightGBM load with the first call, not the import
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'workbench' has no attribute '{name}'")
