"""The estimators compression produces: a LightGBM model in a compact binary layout, and a LightGBM model compiled to
native code on the machine that runs it. Both score cleaned DataFrames like ``LightGBMBooster``."""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.compress.lgbtext import lgb_matrix, unpack
from workbench.registry.modelio import LightGBMBooster


class CompactBooster(LightGBMBooster):
    """A LightGBM model stored in ``lgbtext.pack``'s layout (leaf values maybe at lower precision); scores with
    LightGBM itself after widening the stored values.

    Parameters
    ----------
    packed : the bytes ``pack`` wrote.  task : binary, multiclass or regression.
    """

    def __init__(self, packed: bytes = b"", task: str = "binary"):
        self.packed = packed
        self.task = task

    def fit(self, X=None, y=None):
        self.model_str = unpack(self.packed).to_string()
        return super().fit(X, y)


class CompiledBooster(LightGBMBooster):
    """A LightGBM model compiled to a shared library by treelite and tl2cgen (gcc), built where it runs and cached by
    the model's checksum; the package holds only the LightGBM text model, never native code.

    Parameters
    ----------
    model_str : the LightGBM text model.  task : binary, multiclass or regression.
    cache : folder of compiled libraries (default ``<workbench home>/cache/compiled``).
    """

    def __init__(self, model_str: str = "", task: str = "binary", cache: str | None = None):
        super().__init__(model_str, task)
        self.cache = cache

    def fit(self, X=None, y=None):
        import tl2cgen

        super().fit(X, y)
        self.library_ = compiled_library(self.model_str, self.cache)
        self.predictor_ = tl2cgen.Predictor(str(self.library_), nthread=1)
        return self

    def _scores(self, X) -> np.ndarray:
        import tl2cgen

        m = lgb_matrix(self.booster_, X) if isinstance(X, pd.DataFrame) else np.asarray(X, dtype=np.float64)
        out = np.asarray(self.predictor_.predict(tl2cgen.DMatrix(m, dtype="float64")), dtype=np.float64)
        return out.reshape(len(m), -1)

    def predict_proba(self, X) -> np.ndarray:
        p = self._scores(X)
        return np.column_stack([1 - p[:, 0], p[:, 0]]) if self.task == "binary" else p

    def predict(self, X) -> np.ndarray:
        if self.task == "regression":
            return self._scores(X)[:, 0]
        return self.predict_proba(X).argmax(axis=1)


def compiled_library(model_str: str, cache: str | None = None) -> Path:
    """The shared library of ``model_str``: from the cache when this exact model was compiled before, else compiled
    now (a few seconds per hundred trees) and put in the cache whole (written beside it, then renamed)."""
    import lightgbm as lgb
    import tl2cgen
    import treelite

    from workbench.settings import get_settings

    folder = Path(cache) if cache else Path(get_settings().home) / "cache" / "compiled"
    digest = hashlib.sha256(model_str.encode()).hexdigest()[:32]
    lib = folder / f"{digest}.so"
    if lib.exists():
        return lib
    folder.mkdir(parents=True, exist_ok=True)
    model = treelite.frontend.from_lightgbm(lgb.Booster(model_str=model_str))
    with tempfile.TemporaryDirectory(dir=folder, prefix=".build-") as tmp:
        built = Path(tmp) / "model.so"
        tl2cgen.export_lib(model, toolchain="gcc", libpath=str(built), params={"parallel_comp": max(1, os.cpu_count() or 1)})
        shutil.move(built, folder / f".{digest}.so.tmp")
        os.replace(folder / f".{digest}.so.tmp", lib)
    return lib
