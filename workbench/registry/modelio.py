"""Model files in safe formats: LightGBM's own text model, skops for scikit-learn objects (trusted types only),
JSON for the structure and weights of ensembles. No pickle."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from workbench.data.clean import Cleaner
from workbench.errors import WorkbenchError
from workbench.models.trained import TrainedModel

# skops refuses every type it does not know; these are the modules whose types a model file may hold
TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.", "builtins.", "collections.", "workbench.", "lightgbm.")
# single types from elsewhere; a partial is safe because skops lists the function it wraps for its own check
TRUSTED_TYPES = ("functools.partial",)
SMALL = 1000  # rows: below this LightGBM predicts on one thread


class LightGBMBooster(BaseEstimator):
    """A LightGBM model loaded from its text file, with the scikit-learn prediction methods.

    Calls ``Booster.predict`` directly: about 30× faster per row than the scikit-learn wrapper.
    """

    def __init__(self, model_str: str = "", task: str = "binary"):
        self.model_str = model_str
        self.task = task

    def fit(self, X=None, y=None):
        import lightgbm as lgb

        self.booster_ = lgb.Booster(model_str=self.model_str)
        k = self.booster_.num_model_per_iteration()
        self.classes_ = np.arange(2 if self.task == "binary" else k)
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p = self._predict(X)
        return np.column_stack([1 - p, p]) if self.task == "binary" else p

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        if self.task == "regression":
            return self._predict(X)
        return self.predict_proba(X).argmax(axis=1)

    def _predict(self, X) -> np.ndarray:
        # a few rows on one thread: starting OpenMP's threads costs about a millisecond, more than the trees
        return self.booster_.predict(X, num_threads=1 if len(X) < SMALL else 0)


def save_model(model: TrainedModel, folder: str | Path) -> Path:
    """Write a trained model: ``model.json`` (what it is and how its files fit together), ``cleaner.json``,
    and one safe file per estimator (an ensemble's members each get their own)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    spec = write_estimator(model.estimator, folder, "estimator", model.task)
    (folder / "cleaner.json").write_text(model.cleaner.to_json())
    meta = {"name": model.name, "task": model.task, "classes": model.classes, "estimator": spec}
    (folder / "model.json").write_text(json.dumps(meta, indent=1, default=_jsonable))
    return folder


def load_model(folder: str | Path) -> TrainedModel:
    """Load a model written by ``save_model``; refuses files it cannot trust."""
    folder = Path(folder)
    try:
        meta = json.loads((folder / "model.json").read_text())
        cleaner = Cleaner.from_json((folder / "cleaner.json").read_text())
        est = read_estimator(meta["estimator"], folder, meta["task"])
    except FileNotFoundError as exc:
        raise WorkbenchError(f"{folder} is not a saved model: {Path(exc.filename).name} is missing") from None
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise WorkbenchError(f"{folder}: the model files are damaged ({type(exc).__name__}: {exc}); export the model again") from None
    return TrainedModel(cleaner, est, meta["task"], meta["classes"], meta["name"])


def write_estimator(est, folder: Path, stem: str, task: str) -> dict:
    """Write one estimator under ``folder`` and return its spec (format, file, and for ensembles the structure)."""
    from workbench.compress.estimators import CompactBooster, CompiledBooster, OnnxModel
    from workbench.ensemble.estimators import StackEnsemble, WeightedEnsemble

    if isinstance(est, OnnxModel):  # ONNX is a data format (protobuf): safe to load
        file = f"{stem}.onnx"
        (folder / file).write_bytes(est.onnx)
        return {"format": "onnx", "file": file, "columns": est.columns, "classes": est.classes}
    if isinstance(est, CompactBooster):
        file = f"{stem}.lgbz"
        (folder / file).write_bytes(est.packed)
        return {"format": "lightgbm-compact", "file": file}
    from workbench.decompose.core import DecomposedModel, write_decomposed

    if isinstance(est, DecomposedModel):  # each part a folder of its own, with its checksums
        return write_decomposed(est, folder, stem, task)
    if isinstance(est, CompiledBooster):  # the text model only: native code is built where it runs
        file = f"{stem}.lgb.txt"
        (folder / file).write_text(est.model_str)
        return {"format": "lightgbm-compiled", "file": file}
    booster = getattr(est, "booster_", None)
    if booster is not None:
        file = f"{stem}.lgb.txt"
        (folder / file).write_text(est.model_str if isinstance(est, LightGBMBooster) else booster.model_to_string())
        return {"format": "lightgbm", "file": file}
    if isinstance(est, (WeightedEnsemble, StackEnsemble)):
        members = [{"name": name, **write_estimator(fitted, folder, f"{stem}.{i}", task)}
                   for i, ((name, _), fitted) in enumerate(zip(est.estimators, est.estimators_))]
        spec = {"format": "ensemble", "task": est.task, "n_classes": est.n_classes, "members": members}
        if isinstance(est, WeightedEnsemble):
            return spec | {"kind": "weighted", "weights": [float(w) for w in est.weights_], "voting": est.voting}
        meta = write_estimator(est.meta_, folder, f"{stem}.meta", task)
        return spec | {"kind": "stack", "passthrough": est.passthrough, "cv": est.cv, "meta": meta}
    import skops.io as sio

    file = f"{stem}.skops"
    sio.dump(est, folder / file)
    return {"format": "skops", "file": file}


def read_estimator(spec: dict, folder: Path, task: str):
    """The estimator that ``write_estimator`` wrote, from safe files only."""
    from workbench.ensemble.estimators import StackEnsemble, WeightedEnsemble

    fmt = spec["format"]
    if fmt == "lightgbm":
        return LightGBMBooster((folder / spec["file"]).read_text(), task).fit(None)
    if fmt == "onnx":
        from workbench.compress.estimators import OnnxModel

        return OnnxModel((folder / spec["file"]).read_bytes(), task, [tuple(c) for c in spec["columns"]],
                         spec["classes"]).fit()
    if fmt in ("lightgbm-compact", "lightgbm-compiled"):
        from workbench.compress.estimators import CompactBooster, CompiledBooster

        if fmt == "lightgbm-compact":
            return CompactBooster((folder / spec["file"]).read_bytes(), task).fit(None)
        return CompiledBooster((folder / spec["file"]).read_text(), task).fit(None)
    if fmt == "skops":
        import skops.io as sio

        path = folder / spec["file"]
        untrusted = sio.get_untrusted_types(file=path)
        refused = [t for t in untrusted if not t.startswith(TRUSTED_PREFIXES) and t not in TRUSTED_TYPES]
        if refused:
            raise WorkbenchError(f"{path.name} holds types that are not trusted: {', '.join(refused)}; refusing to load it")
        return sio.load(path, trusted=untrusted)
    if fmt == "decomposed":
        from workbench.decompose.core import read_decomposed

        return read_decomposed(spec, folder, task)
    if fmt == "ensemble":
        members = [(m["name"], read_estimator(m, folder, task)) for m in spec["members"]]
        common = {"task": spec["task"], "n_classes": int(spec["n_classes"])}
        if spec["kind"] == "weighted":
            return WeightedEnsemble.from_fitted(members, spec["weights"], voting=spec["voting"], **common)
        if spec["kind"] == "stack":
            return StackEnsemble.from_fitted(members, read_estimator(spec["meta"], folder, task),
                                             passthrough=bool(spec["passthrough"]), cv=spec["cv"], **common)
        raise WorkbenchError(f"unknown ensemble kind '{spec['kind']}' in model.json")
    raise WorkbenchError(f"{spec.get('file', 'model.json')}: unknown model format '{fmt}'")


def _jsonable(v):
    if isinstance(v, np.generic):
        return v.item()
    raise TypeError(f"{type(v).__name__} is not JSON-serializable")
