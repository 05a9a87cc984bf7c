"""Compression: smaller, faster variants of a trained model, each with its measured price.

A method takes the original model and the data (validation rows, and training rows where it refits) and returns
variants — TrainedModels that package, serve and register like any other. ``compress`` runs the methods and the
chains that make sense (prune → quantize, distill → compile), measures every variant the same way in one run, and
picks the smallest (then fastest) whose validation metric stays within the tolerance.
"""
from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from workbench import kinds
from workbench.errors import DataError, ModelError
from workbench.lookup import Registry
from workbench.models.compare import predict_scores
from workbench.models.decide import Calibrated
from workbench.models.metrics import DEFAULT_METRIC, loss, score
from workbench.models.trained import TrainedModel
from workbench.registry.package import build_package

BOUNDED = {"roc_auc", "accuracy", "f1", "precision", "recall", "r2", "balanced_accuracy"}  # loss in metric units
CHAINS = {"prune": ("quantize", "compile"), "distill": ("compile",)}  # a variant of the first goes through these too
CALIBRATION_TOLERANCE = 0.02  # a classifier's variant may lose at most 2 % of its log loss: probabilities stay usable


@dataclass
class Data:
    """What the methods work with: cleaned validation rows, and cleaned training rows with the teacher's
    out-of-fold predictions when the caller has them."""

    task: str
    n_classes: int
    metric: str
    tolerance: float
    X_valid: pd.DataFrame
    y_valid: np.ndarray
    X_train: pd.DataFrame | None = None
    y_train: np.ndarray | None = None
    teacher_oof: np.ndarray | None = None
    seed: int = 0
    reference: np.ndarray | None = None  # the original's predictions on the validation rows

    def metric_of(self, scores: np.ndarray, y=None) -> float:
        return score(self.task, self.y_valid if y is None else y, scores)[self.metric]

    def holds(self, value: float, reference: float) -> bool:
        """Is ``value`` within the tolerance of ``reference`` (or better)?"""
        allowed = self.tolerance if self.metric in BOUNDED else self.tolerance * abs(reference)
        return loss(self.metric, value) - loss(self.metric, reference) <= allowed + 1e-12

    def log_loss_change(self, scores: np.ndarray) -> float:
        """Relative change of the validation log loss against the original's (classification; NaN otherwise)."""
        if self.task == "regression":
            return float("nan")
        ll, ll0 = (score(self.task, self.y_valid, q)["log_loss"] for q in (scores, self.reference))
        return (ll - ll0) / ll0 if ll0 > 0 else 0.0

    def keeps(self, scores: np.ndarray) -> bool:
        """Does a variant with these validation predictions qualify: its metric within the tolerance of the original's
        and, for a classifier, its probabilities still calibrated (log loss at most 2 % worse)?"""
        if not self.holds(self.metric_of(scores), self.metric_of(self.reference)):
            return False
        return self.task == "regression" or self.log_loss_change(scores) <= CALIBRATION_TOLERANCE


@dataclass
class Variant:
    """One model and what it costs: size of its model files, latency, metric, how far its predictions moved."""

    name: str
    model: TrainedModel
    note: str = ""
    size_bytes: int = 0
    latency_1_ms: float = float("nan")
    latency_1000_ms: float = float("nan")
    valid_metric: float = float("nan")
    test_metric: float = float("nan")
    max_change: float = float("nan")
    agreement: float = float("nan")
    log_loss_change: float = float("nan")  # relative change of the validation log loss (classification)
    qualifies: bool = False

    def row(self) -> dict:
        return {"variant": self.name, "size_bytes": self.size_bytes, "latency_1_ms": self.latency_1_ms,
                "latency_1000_ms": self.latency_1000_ms, "valid_metric": self.valid_metric, "test_metric": self.test_metric,
                "max_change": self.max_change, "agreement": self.agreement, "log_loss_change": self.log_loss_change,
                "qualifies": self.qualifies, "note": self.note}


Method = Callable[[TrainedModel, Data], list[Variant]]
METHODS: Registry[Method] = Registry("compression method")


def method(name: str):
    def deco(fn: Method) -> Method:
        return METHODS.register(name, fn)
    return deco


@dataclass
class CompressionReport:
    """Every variant measured against the original, and the one chosen: the smallest (then fastest) that qualifies
    and is no bigger than the original; None when there is none."""

    metric: str
    tolerance: float
    variants: list[Variant]
    chosen: Variant | None
    seconds: float = 0.0
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def original(self) -> Variant:
        return self.variants[0]

    def to_frame(self) -> pd.DataFrame:
        f = pd.DataFrame([v.row() for v in self.variants]).set_index("variant")
        f["size_ratio"] = f["size_bytes"].iloc[0] / f["size_bytes"]
        f["speedup_1"] = f["latency_1_ms"].iloc[0] / f["latency_1_ms"]
        return f

    @property
    def verdict(self) -> str:
        if self.chosen is None:
            return (f"no variant no bigger than the original keeps the validation {self.metric} within "
                    f"{self.tolerance:g} (and its calibration): keep the original, or allow a larger loss")
        o, c = self.original, self.chosen
        return (f"{c.name}: {o.size_bytes / c.size_bytes:.1f}× smaller, {o.latency_1_ms / c.latency_1_ms:.1f}× faster "
                f"for one row; validation {self.metric} {c.valid_metric:.4f} (original {o.valid_metric:.4f})")

    def __str__(self) -> str:
        return self.to_frame().to_string(float_format=lambda v: f"{v:.4g}") + "\n" + self.verdict

    def _repr_html_(self) -> str:
        return f"<p><b>{self.verdict}</b></p>" + self.to_frame().to_html(float_format=lambda v: f"{v:.4g}")

    def figure(self):
        from workbench.viz.compression import pareto  # start-up cost: no plotly in the CLI, service or workers

        return pareto(self)


def compress(model, valid: pd.DataFrame, *, target: str | None = None, train: pd.DataFrame | None = None,
             test: pd.DataFrame | None = None, methods: list[str] | None = None, max_metric_loss: float = 0.002,
             teacher_oof: np.ndarray | None = None, seed: int = 0) -> CompressionReport:
    """Try ``methods`` (default: all) on ``model`` and measure every variant.

    Parameters
    ----------
    model : a TrainedModel, or a training result (its model, training rows and out-of-fold predictions are used).
    valid : raw labelled rows the model did not train on: they decide what is pruned and which variant qualifies.
    target : the target column (default: the one the model was trained on).
    train : raw labelled training rows, for the methods that refit (feature pruning, distillation).
    test : raw labelled rows, reported only.
    max_metric_loss : allowed loss of the validation metric: in metric units for bounded metrics (ROC AUC, accuracy,
        R²), relative to the original for the others (RMSE, MAE, log loss).
    """
    t0 = time.time()
    names = list(METHODS) if methods is None else list(methods)
    for n in names:
        METHODS.get(n)  # unknown names fail before any work, with the valid ones listed
    original, data = _data(model, valid, target, train, teacher_oof, max_metric_loss, seed)
    # a calibrated model: the methods change the model under its calibration map, which every variant keeps
    calibration = original.estimator.calibration if isinstance(original.estimator, Calibrated) else None
    base = with_estimator(original, original.estimator.estimator, original.name) if calibration else original
    variants, skipped = [Variant("original", original)], {}
    for n in names:
        try:
            made = METHODS.get(n)(base, data)
        except ModelError as exc:
            skipped[n] = str(exc)
            continue
        variants += made
        for follow in (f for f in CHAINS.get(n, ()) if f in names):
            for v in made:
                try:
                    variants += [_chained(v, w) for w in METHODS.get(follow)(v.model, data)]
                except ModelError as exc:
                    skipped[f"{v.name} → {follow}"] = str(exc)
    if calibration is not None:
        for v in variants[1:]:
            v.model = with_estimator(v.model, Calibrated(v.model.estimator, calibration), v.model.name)
    test_data = _labelled(original, test, target) if test is not None else None
    for v in variants:
        measure(v, variants[0], data, test_data)
    ok = [v for v in variants[1:] if v.qualifies and v.size_bytes <= variants[0].size_bytes]  # compression: never bigger
    chosen = min(ok, key=lambda v: (v.size_bytes, v.latency_1_ms)) if ok else None
    if chosen is not None:  # among variants of (nearly) the same size, the fastest
        close = [v for v in ok if v.size_bytes <= 1.05 * chosen.size_bytes]
        chosen = min(close, key=lambda v: v.latency_1_ms)
    return CompressionReport(data.metric, max_metric_loss, variants, chosen, time.time() - t0, skipped)


def _chained(first: Variant, second: Variant) -> Variant:
    second.name = f"{first.name} → {second.name}"
    return second


def _data(model, valid, target, train, teacher_oof, tolerance, seed) -> tuple[TrainedModel, Data]:
    oof = teacher_oof
    X_train = y_train = None
    if not isinstance(model, TrainedModel):  # a training result: its model, cleaned rows and the winner's OOF
        result = model
        model = result.model
        X_train = result.cleaned.X
        y_train = _codes(model, result.cleaned.y)
        if oof is None and result.best.oof is not None and result.best.name == model.name:
            oof = np.asarray(result.best.oof, dtype=float)
    if valid is None or len(valid) == 0:
        raise DataError("compression needs validation rows with the target (valid=...): they decide what can be cut "
                        "and whether a variant still predicts as well")
    X_valid, y_valid = _labelled(model, valid, target)
    if train is not None:
        X_train, y_train = _labelled(model, train, target)
        oof = teacher_oof
    task = model.task
    data = Data(task, len(model.classes or []), DEFAULT_METRIC[task], tolerance, X_valid, y_valid, X_train, y_train,
                oof, seed)
    data.reference = scores_of(model, X_valid)
    return model, data


def _labelled(model: TrainedModel, df: pd.DataFrame, target: str | None) -> tuple[pd.DataFrame, np.ndarray]:
    target = target or (model.cleaner.target_ or {}).get("name")
    if target is None or target not in df.columns:
        raise DataError(f"the rows have no target column '{target}'; name it with target=... (columns: "
                        f"{', '.join(map(str, df.columns[:12]))})")
    y = model.cleaner.transform_target(df[target])
    keep = y.notna().to_numpy()
    if not keep.any():
        raise DataError(f"no row has a usable '{target}' value")
    return model.cleaner.transform(df[keep]), _codes(model, y[keep])


def _codes(model: TrainedModel, y: pd.Series) -> np.ndarray:
    if model.task == "regression":
        return y.to_numpy(dtype="float64")
    return pd.Categorical(y, categories=model.classes).codes.astype("int64")


def scores_of(model: TrainedModel, X: pd.DataFrame) -> np.ndarray:
    """Probabilities (n × k) or values of a model on cleaned rows."""
    return predict_scores(model.estimator, X, model.task, len(model.classes or []))


def model_bytes(model: TrainedModel) -> int:
    """Bytes on disk of the model's estimator files, as a package stores them (the cleaner is the same for all)."""
    with tempfile.TemporaryDirectory() as tmp:
        kinds.write(model.estimator, Path(tmp), "estimator", model.task)
        return sum(p.stat().st_size for p in Path(tmp).iterdir())


def latency_ms(model: TrainedModel, X: pd.DataFrame, repeats: int = 30) -> float:
    """Median wall time of one ``predict_proba``/``predict`` on cleaned rows, after a warm-up call."""
    fn = model.estimator.predict if model.task == "regression" else model.estimator.predict_proba
    fn(X)
    times = []
    end = time.perf_counter() + 2.0  # keep slow models from taking minutes
    for _ in range(repeats):
        t = time.perf_counter()
        fn(X)
        times.append(time.perf_counter() - t)
        if time.perf_counter() > end and len(times) >= 3:
            break
    return statistics.median(times) * 1e3


def measure(v: Variant, original: Variant, data: Data, test: tuple | None) -> None:
    p = scores_of(v.model, data.X_valid)
    p0 = scores_of(original.model, data.X_valid) if v is not original else p
    v.valid_metric = data.metric_of(p)
    v.max_change = float(np.abs(p - p0).max())
    if data.task != "regression":
        v.agreement = float((p.argmax(axis=1) == p0.argmax(axis=1)).mean())
        v.log_loss_change = data.log_loss_change(p)
    if test is not None:
        v.test_metric = score(data.task, test[1], scores_of(v.model, test[0]))[data.metric]
    v.size_bytes = model_bytes(v.model)
    one = data.X_valid.iloc[:1]
    many = data.X_valid.iloc[np.arange(1000) % len(data.X_valid)]
    v.latency_1_ms = latency_ms(v.model, one)
    v.latency_1000_ms = latency_ms(v.model, many, repeats=7)
    v.qualifies = v is not original and data.keeps(p)
    if v is not original and not v.qualifies and data.holds(v.valid_metric, original.valid_metric):
        v.note += f"{'; ' if v.note else ''}calibration broken: log loss {v.log_loss_change:+.1%}"


def with_estimator(model: TrainedModel, estimator, name: str) -> TrainedModel:
    """The same cleaner, classes and decision rule with another estimator."""
    return TrainedModel(model.cleaner, estimator, model.task, model.classes, name, model.decision)


def save_variant(report: CompressionReport, source, out: str | Path, *, variant: Variant | None = None,
                 archive: bool = False) -> Path:
    """The chosen (or given) variant as a package beside its source package: same name, schema and reference rows."""
    m = source.manifest
    return package_variant(report, out, schema=source.schema, reference=source.sample, name=m["name"],
                           target=m.get("target"), fingerprint=m.get("data_fingerprint"),
                           origin=f"{m['name']}/{m['version']}", variant=variant, archive=archive)


def package_variant(report: CompressionReport, out: str | Path, *, schema, reference, name: str, target=None,
                    fingerprint=None, origin: str = "", variant: Variant | None = None, archive: bool = False) -> Path:
    """A package of the chosen (or given) variant, with the compression's measurements in its metrics and where it
    came from in its parameters. Raises ModelError (the report's verdict) when nothing was chosen."""
    v = variant or report.chosen
    if v is None:
        raise ModelError(report.verdict)
    metrics = {f"valid_{report.metric}": v.valid_metric, "size_bytes": v.size_bytes, "latency_1_ms": v.latency_1_ms,
               "max_change": v.max_change} | ({f"test_{report.metric}": v.test_metric} if v.test_metric == v.test_metric else {})
    params = {"compressed_from": origin, "compression": v.name, "note": v.note}
    return build_package(v.model, out, schema=schema, reference=reference, name=name, target=target, metrics=metrics,
                         params=params, fingerprint=fingerprint, archive=archive)
