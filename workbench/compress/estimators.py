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
from sklearn.base import BaseEstimator

from workbench import kinds
from workbench.compress.lgbtext import lgb_matrix, unpack
from workbench.extras import extra
from workbench.models import contrib
from workbench.models.booster import LightGBMBooster
from workbench.models.kinds import matrix_scorer
from workbench.settings import get_settings


SMALL_BATCH = 16  # up to this many rows are scored row by row through the compiled function


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
        with extra("compile"):
            import tl2cgen

        import ctypes

        super().fit(X, y)
        self.library_ = compiled_library(self.model_str, self.cache)
        self.predictor_ = tl2cgen.Predictor(str(self.library_), nthread=1)
        lib = ctypes.CDLL(str(self.library_))
        self._row = lib.predict  # void predict(union Entry* row, int pred_margin, double* result)
        self._row.argtypes, self._row.restype = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p], None
        self._n_out = max(1, self.booster_.num_model_per_iteration())
        return self

    def _scores(self, X) -> np.ndarray:
        m = lgb_matrix(self.booster_, X) if isinstance(X, pd.DataFrame) else np.asarray(X, dtype=np.float64)
        if len(m) <= SMALL_BATCH:  # a few rows: the library's own row function, no DMatrix to build
            return np.vstack([self._one(r) for r in m]) if len(m) else np.zeros((0, self._n_out))
        with extra("compile"):
            import tl2cgen

        out = np.asarray(self.predictor_.predict(tl2cgen.DMatrix(m, dtype="float64")), dtype=np.float64)
        return out.reshape(len(m), -1)

    def _one(self, row: np.ndarray) -> np.ndarray:
        """One row through the compiled ``predict``: its inputs are 8-byte entries whose low int is -1 when the
        value is missing (tl2cgen's own DMatrix encodes NaN the same way)."""
        entry = np.array(row, dtype=np.float64)
        missing = np.isnan(entry)
        entry.view(np.int32)[0::2][missing] = -1
        out = np.zeros(self._n_out)
        self._row(entry.ctypes.data, 0, out.ctypes.data)
        return out

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
    with extra("compile"):
        import tl2cgen
        import treelite

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


class OnnxModel(BaseEstimator):
    """A scikit-learn pipeline exported to ONNX (skl2onnx) and scored by onnxruntime, float32 or with int8 weights.

    Parameters
    ----------
    onnx : the model bytes.  task : binary, multiclass or regression.
    columns : [(name, "category" | "number")] of the cleaned rows, in order (one input tensor each).
    classes : the class codes the original estimator knew (classification).
    """

    def __init__(self, onnx: bytes = b"", task: str = "binary", columns: list | None = None, classes: list | None = None):
        self.onnx = onnx
        self.task = task
        self.columns = columns
        self.classes = classes

    def fit(self, X=None, y=None):
        with extra("compile"):
            import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self.session_ = ort.InferenceSession(self.onnx, options, providers=["CPUExecutionProvider"])
        self.classes_ = np.asarray(self.classes) if self.classes is not None else None
        return self

    def _run(self, X: pd.DataFrame) -> list:
        feeds = {}
        for name, kind in self.columns:
            s = X[name]
            feeds[name] = (s.astype(str).to_numpy(dtype=object) if kind == "category"
                           else s.to_numpy(dtype=np.float32, na_value=np.nan)).reshape(-1, 1)
        return self.session_.run(None, feeds)

    def predict_proba(self, X) -> np.ndarray:
        p = np.asarray(self._run(X)[1], dtype=np.float64)
        return p / p.sum(axis=1, keepdims=True)  # float32 sums are off by ~1e-7: rows sum to one again

    def predict(self, X) -> np.ndarray:
        out = self._run(X)
        return np.asarray(out[0], dtype=np.float64).ravel() if self.task == "regression" else np.asarray(out[0])


def to_onnx_model(estimator, X: pd.DataFrame, task: str, int8: bool = False) -> OnnxModel:
    """``estimator`` (fitted on cleaned rows like ``X``) as an OnnxModel; ``int8``: onnxruntime's dynamic int8
    quantization of its matrix weights. Raises ValueError when skl2onnx cannot convert it."""
    import logging

    with extra("compile"):
        from skl2onnx import to_onnx
        from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    columns = [(c, "category" if isinstance(X[c].dtype, pd.CategoricalDtype) else "number") for c in X.columns]
    types = [(c, StringTensorType([None, 1]) if k == "category" else FloatTensorType([None, 1])) for c, k in columns]
    options = {id(estimator): {"zipmap": False}} if task != "regression" else None
    try:
        data = to_onnx(estimator, initial_types=types, options=options, target_opset=17).SerializeToString()
    except Exception as exc:  # noqa: BLE001 - skl2onnx raises many kinds for what it cannot convert
        raise ValueError(f"skl2onnx cannot convert it ({type(exc).__name__}: {str(exc)[:200]})") from None
    if int8:
        with extra("compile"):
            from onnxruntime.quantization import QuantType, quantize_dynamic

        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "m.onnx").write_bytes(data)
            root = logging.getLogger()
            level = root.level
            root.setLevel(logging.ERROR)  # its advice to pre-process concerns image models
            try:
                quantize_dynamic(str(Path(tmp) / "m.onnx"), str(Path(tmp) / "q.onnx"), weight_type=QuantType.QInt8)
            finally:
                root.setLevel(level)
            data = (Path(tmp) / "q.onnx").read_bytes()
    classes = [int(c) for c in estimator.classes_] if task != "regression" else None
    return OnnxModel(data, task, columns, classes).fit()


# ---- the model kinds ---------------------------------------------------------------------------------------------

def _write_compact(est, folder: Path, stem: str, task: str) -> dict:
    (folder / f"{stem}.lgbz").write_bytes(est.packed)
    return {"file": f"{stem}.lgbz"}


def _write_compiled(est, folder: Path, stem: str, task: str) -> dict:  # the text model only: built where it runs
    (folder / f"{stem}.lgb.txt").write_text(est.model_str)
    return {"file": f"{stem}.lgb.txt"}


def _write_onnx(est, folder: Path, stem: str, task: str) -> dict:  # ONNX is a data format (protobuf): safe to load
    (folder / f"{stem}.onnx").write_bytes(est.onnx)
    return {"file": f"{stem}.onnx", "columns": est.columns, "classes": est.classes}


def _compiled_scorer(est, columns, task: str, n_classes: int) -> kinds.Scorer:
    """The compiled library on the matrix: the same encoded features LightGBM takes."""
    if task == "binary":
        return lambda X: _binary(est._scores(X)[:, 0])
    if task == "regression":
        return lambda X: est._scores(X)[:, 0]
    return est._scores


def _binary(p: np.ndarray) -> np.ndarray:
    out = np.empty((len(p), 2))
    out[:, 1] = p
    out[:, 0] = 1 - p
    return out


def _onnx_scorer(est, columns, task: str, n_classes: int) -> kinds.Scorer:
    """One onnxruntime session on the matrix: categories as their level names, numbers as float32, one input each."""
    index = {name: j for j, (name, _) in enumerate(columns)}
    levels = {name: np.asarray(lv, dtype=object) for name, lv in columns if lv is not None}
    inputs = [(name, index[name], levels.get(name)) for name, _ in est.columns]
    k = n_classes

    def score(X):
        feeds = {name: (lv[X[:, j].astype(np.int64)] if lv is not None else X[:, j].astype(np.float32)).reshape(-1, 1)
                 for name, j, lv in inputs}
        out = est.session_.run(None, feeds)
        if task == "regression":
            return np.asarray(out[0], dtype=np.float64).ravel()
        p = np.asarray(out[1], dtype=np.float64)
        p = p / p.sum(axis=1, keepdims=True)
        if est.classes_ is not None and len(est.classes_) != k:  # a class the fit never saw scores 0
            full = np.zeros((len(X), k))
            full[:, est.classes_.astype(np.int64)] = p
            return full
        return p
    return score


kinds.register(kinds.Kind("lightgbm-compact", (CompactBooster,), _write_compact,
                          lambda spec, folder, task: CompactBooster((folder / spec["file"]).read_bytes(), task).fit(None),
                          matrix_scorer, contributions=contrib.lightgbm))
kinds.register(kinds.Kind("lightgbm-compiled", (CompiledBooster,), _write_compiled,  # the same trees, in LightGBM
                          lambda spec, folder, task: CompiledBooster((folder / spec["file"]).read_text(), task).fit(None),
                          _compiled_scorer, extra="compile", contributions=contrib.lightgbm))
kinds.register(kinds.Kind("onnx", (OnnxModel,), _write_onnx,
                          lambda spec, folder, task: OnnxModel((folder / spec["file"]).read_bytes(), task,
                                                               [tuple(c) for c in spec["columns"]], spec["classes"]).fit(),
                          _onnx_scorer, extra="compile"))
