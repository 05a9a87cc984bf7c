"""AIMS Workbench: a business table to a trusted model, in notebooks, on the command line, on Dask.

Importing the package costs milliseconds (the command line answers at once): ``load``, ``profile``, ``clean``,
``split``, ``compare`` and ``train`` load their modules when first used, and each model kind's module loads when a
kind is first looked up.
"""
import importlib
import os

# OpenMP threads (LightGBM's, scikit-learn's: two runtimes in one process) spin a little between parallel regions,
# then sleep. Measured on 2 cores (one fold of every configuration auto compares, diamonds + titanic): sleeping at
# once (OMP_WAIT_POLICY=PASSIVE) 40.7 s quiet / 26.1 s beside a busy process - each of LightGBM's many small regions
# then waits to wake a sleeping core, 5-25x slower fits; libgomp's long default spin 30.3 s busy (the spinning threads
# take the cores); 1,000 spins 16.6 s quiet / 28.8 s busy. Read once, when the runtime loads: before any model library
os.environ.setdefault("GOMP_SPINCOUNT", "1000")

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
