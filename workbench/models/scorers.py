"""Scorers: a fitted model compiled into a function from the encoded float matrix to its scores.

The encoded matrix holds the cleaned table's columns in order as float64, a category column holding each value's
code (its position in the column's category list). A scorer gives what ``predict_scores`` gives on the cleaned
DataFrame (probabilities for class codes 0..k-1, or numbers) to within 1e-9, with no pandas and no Python work per
row: the column preprocessing becomes a gather, an affine map and a one-hot lookup table, linear models and networks
a few matrix products, every tree ensemble one walk of all its trees at once, and LightGBM its C API.

Examples
--------
>>> from workbench.data import load, clean
>>> from workbench.models.compare import encode_target, predict_scores
>>> from workbench.models.zoo import get_model
>>> c = clean(load("demo", n_rows=300), "churn")
>>> est = get_model("linear").make("binary").fit(c.X, encode_target(c.y, "binary")[0])
>>> columns = [(n, list(c.X[n].cat.categories) if c.X[n].dtype == "category" else None) for n in c.X]
>>> score = compile_scorer(est, columns, "binary", 2)
>>> X = np.column_stack([c.X[n].cat.codes if cats else c.X[n] for n, cats in columns]).astype(float)
>>> bool(np.abs(score(X) - predict_scores(est, c.X, "binary", 2)).max() <= 1e-9)
True
"""
from __future__ import annotations

import copy
import threading
from dataclasses import dataclass
from functools import singledispatch
from typing import NamedTuple

import numpy as np
from lightgbm import LGBMClassifier, LGBMRegressor
from scipy.special import expit
from sklearn import config_context
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.ensemble import (AdaBoostClassifier, AdaBoostRegressor, BaggingClassifier, BaggingRegressor,
                              ExtraTreesClassifier, ExtraTreesRegressor, GradientBoostingClassifier,
                              GradientBoostingRegressor, HistGradientBoostingClassifier, HistGradientBoostingRegressor,
                              RandomForestClassifier, RandomForestRegressor)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import ElasticNet, Lasso, LinearRegression, LogisticRegression, Ridge, RidgeCV
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.neural_network._base import ACTIVATIONS
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
from sklearn.svm import SVC, SVR, NuSVC, NuSVR
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor
from sklearn.utils.extmath import softmax

from workbench.kinds import Columns, Scorer
from workbench.models.booster import SMALL, LightGBMBooster


def compile_scorer(estimator, columns: Columns, task: str, n_classes: int) -> Scorer:
    """The fitted ``estimator`` as a function from the encoded matrix to what ``predict_scores`` gives.

    Parameters
    ----------
    estimator : a fitted zoo model (a bare LightGBM or histogram gradient boosting model, or a preprocessing
        Pipeline around any other family, possibly inside a TransformedTargetRegressor), or a loaded
        ``LightGBMBooster``.
    columns : [(name, categories or None for a number column)], in the matrix's order: the cleaned table's columns.
    task : "binary", "multiclass" or "regression".
    n_classes : k, the number of class codes (ignored for regression).

    Returns
    -------
    A function from an n × len(columns) float64 matrix to an n × k array of probabilities for the class codes
    0..k-1 (a class the model never saw gets 0), or to n numbers for regression.

    Raises
    ------
    TypeError naming the estimator (or the part of it) that has no scorer; call ``predict_scores`` instead.
    """
    columns = [(name, None if cats is None else list(cats)) for name, cats in columns]
    model = _compile(estimator, columns)
    width = len(columns)

    def checked(X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != width:
            raise ValueError(f"a scorer takes an n × {width} matrix (one column per cleaned column), got {X.shape}")
        return X

    if task == "regression":
        if model.classes is not None:
            raise TypeError(f"{type(estimator).__name__} is a classifier; a regression scorer needs a regressor")
        return lambda X: np.asarray(model.scores(checked(X)), dtype=np.float64).reshape(-1)
    if model.classes is None:
        raise TypeError(f"{type(estimator).__name__} is a regressor; a {task} scorer needs a classifier")
    seen = np.asarray(model.classes, dtype=np.int64)
    if len(seen) == n_classes:
        return lambda X: model.scores(checked(X))

    def widened(X: np.ndarray) -> np.ndarray:  # a class the training rows lacked gets probability 0
        proba = model.scores(checked(X))
        full = np.zeros((len(proba), n_classes))
        full[:, seen] = proba
        return full
    return widened


class DirectBooster:
    """LightGBM's C API called directly, its arguments prepared once. One row through the single-row fast path:
    ~3 µs where ``Booster.predict`` spends ~16 µs on argument handling; many rows through ``PredictForMat``
    without the predictor object ``Booster.predict`` builds and frees on every call. Same trees, same numbers.
    ``num_iteration`` as ``Booster.predict`` reads it (-1: all; the model's best iteration when it has one).
    ``contrib``: each row's feature contributions (TreeSHAP) and the bias instead of its scores, as
    ``Booster.predict(pred_contrib=True)`` gives them (per class: features, then the bias)."""

    def __init__(self, booster, num_iteration: int | None = None, contrib: bool = False):
        import ctypes

        from lightgbm.basic import _LIB, _c_str, _safe_call

        if num_iteration is None:
            num_iteration = booster.best_iteration if booster.best_iteration > 0 else -1
        self._booster, self._lib, self._check, self._ctypes = booster, _LIB, _safe_call, ctypes
        self._type = 3 if contrib else 0  # C_API_PREDICT_CONTRIB or C_API_PREDICT_NORMAL
        self.n_out = booster.num_model_per_iteration() * ((booster.num_feature() + 1) if contrib else 1)
        self._iterations = ctypes.c_int(num_iteration)
        self._config = ctypes.c_void_p()
        _safe_call(_LIB.LGBM_BoosterPredictForMatSingleRowFastInit(
            booster._handle, ctypes.c_int(self._type), ctypes.c_int(0), self._iterations,  # from iteration 0
            ctypes.c_int(1), ctypes.c_int32(booster.num_feature()), _c_str("num_threads=1"), ctypes.byref(self._config)))
        self._predict = _LIB.LGBM_BoosterPredictForMatSingleRowFast
        self._n = ctypes.c_int64(0)
        self._lock = threading.Lock()
        self._params: dict[int, bytes] = {}

    def __call__(self, row: np.ndarray) -> np.ndarray:
        """One row: its scores (one per class for multiclass, else one)."""
        ct = self._ctypes
        row = np.ascontiguousarray(row, dtype=np.float64)
        out = np.empty(self.n_out)
        with self._lock:  # the fast config holds the row's buffer: one caller at a time
            self._check(self._predict(self._config, row.ctypes.data_as(ct.c_void_p), ct.byref(self._n),
                                      out.ctypes.data_as(ct.POINTER(ct.c_double))))
        return out

    def many(self, X: np.ndarray, threads: int = 1) -> np.ndarray:
        """Rows × features → scores, as ``Booster.predict`` returns them (n, or n × classes)."""
        ct = self._ctypes
        X = np.ascontiguousarray(X, dtype=np.float64)
        param = self._params.get(threads)
        if param is None:
            param = self._params[threads] = f"num_threads={threads}".encode()
        out = np.empty(len(X) * self.n_out)
        n = ct.c_int64(0)
        self._check(self._lib.LGBM_BoosterPredictForMat(
            self._booster._handle, X.ctypes.data_as(ct.c_void_p), ct.c_int(1), ct.c_int32(X.shape[0]),
            ct.c_int32(X.shape[1]), ct.c_int(1), ct.c_int(self._type), ct.c_int(0), self._iterations,  # float64, row-major
            ct.c_char_p(param), ct.byref(n), out.ctypes.data_as(ct.POINTER(ct.c_double))))
        return out if self.n_out == 1 else out.reshape(len(X), self.n_out)

    def __del__(self):
        config = getattr(self, "_config", None)
        if config is not None and config.value:
            self._lib.LGBM_FastConfigFree(config)


@dataclass
class _Model:
    """A compiled estimator: matrix → its scores (probabilities over ``classes``, or numbers for a regressor)."""

    scores: Scorer
    classes: np.ndarray | None = None  # a classifier's classes_, the columns of its scores
    labels: Scorer | None = None  # its predict, where that is not simply the class of the highest score
    trees: "_TreeSet | None" = None  # its trees, so that an ensemble walks them with its other members' at once

    def predict(self, Z: np.ndarray) -> np.ndarray:
        if self.labels is not None:
            return self.labels(Z)
        if self.classes is None:
            return self.scores(Z)
        return self.classes[np.argmax(self.scores(Z), axis=1)]

    def after(self, prepare: Scorer) -> "_Model":
        """The same model behind a preprocessing step."""
        labels = self.labels
        return _Model(lambda X: self.scores(prepare(X)), self.classes,
                      None if labels is None else (lambda X: labels(prepare(X))))


@singledispatch
def _compile(est, columns: Columns | None) -> _Model:
    """The model of ``est``. ``columns`` describes its input: the encoded table's columns (categories as codes),
    or None for a plain number matrix (what a model behind a pipeline's preprocessing receives)."""
    # a loaded LightGBM model, unless a subclass scores its own way (compiled to native code)
    if isinstance(est, LightGBMBooster) and all(getattr(type(est), m) is getattr(LightGBMBooster, m)
                                                for m in ("_predict", "predict_proba", "predict")):
        return _booster(est.booster_, columns, est.task, est.classes_ if est.task != "regression" else None)
    raise TypeError(f"no scorer for {type(est).__name__}: score it with predict_scores")


def _numbers_only(est, columns: Columns | None) -> None:
    if columns is not None and any(cats is not None for _, cats in columns):
        raise TypeError(f"no scorer for {type(est).__name__} on category columns: it reads numbers only")


@_compile.register
def _(est: Pipeline, columns):
    *front, (_, final) = est.steps
    steps = []
    for _, step in front:
        if step is None or step == "passthrough":
            continue
        if isinstance(step, ColumnTransformer):
            if columns is None:
                raise TypeError("no scorer for a ColumnTransformer on a plain matrix: it selects table columns")
            steps.append(_column_transformer(step, columns))
            columns = None
        elif isinstance(step, StandardScaler):
            _numbers_only(step, columns)
            steps.append(_scaler(step))
        else:
            raise TypeError(f"no scorer for {type(step).__name__} in a Pipeline: score it with predict_scores")
    model = _compile(final, columns)
    if not steps:
        return model

    def prepare(X):
        for step in steps:
            X = step(X)
        return X
    return model.after(prepare)


@_compile.register
def _(est: TransformedTargetRegressor, columns):
    scaler = est.transformer_
    if type(scaler) is not StandardScaler:
        raise TypeError(f"no scorer for a TransformedTargetRegressor over {type(scaler).__name__}: only StandardScaler")
    inner = _compile(est.regressor_, columns)
    scale = scaler.scale_ if scaler.with_std else None
    mean = scaler.mean_ if scaler.with_mean else None

    def scores(X):  # StandardScaler.inverse_transform, step for step
        y = np.array(inner.scores(X), dtype=np.float64).reshape(-1, 1)
        if scale is not None:
            y *= scale
        if mean is not None:
            y += mean
        return y.reshape(-1) if est._training_dim == 1 else y
    return _Model(scores)


def _scaler(scaler: StandardScaler) -> Scorer:
    mean = scaler.mean_ if scaler.with_mean else None
    scale = scaler.scale_ if scaler.with_std else None

    def transform(Z):
        Z = np.array(Z, dtype=np.float64)
        if mean is not None:
            Z -= mean
        if scale is not None:
            Z /= scale
        return Z
    return transform


def _column_transformer(ct: ColumnTransformer, columns: Columns) -> Scorer:
    """A fitted ColumnTransformer of scaled or passed-through numbers and one-hot categories, as numpy: the number
    columns gathered and scaled at once, every category column's code looked up in one table of output positions
    (a code the encoder never saw points at a spare column that is dropped, so its row is all zeros)."""
    index = {name: j for j, (name, _) in enumerate(columns)}
    width = max((s.stop for s in ct.output_indices_.values()), default=0)
    num_in, num_out, fill, mean, scale = [], [], [], [], []
    cat_in, sizes, table = [], [], []
    for name, trans, spec in ct.transformers_:
        out = ct.output_indices_.get(name, slice(0, 0))
        if trans == "drop" or out.stop == out.start:
            continue
        picked = _selected(spec, columns, index)
        if (numbers := _number_steps(trans, len(picked))) is not None:
            num_in += picked
            num_out += range(out.start, out.stop)
            for gathered, values in zip((fill, mean, scale), numbers):
                gathered += values.tolist()
        elif type(trans) is OneHotEncoder:
            if trans.drop_idx_ is not None or getattr(trans, "_infrequent_enabled", False) or trans.dtype != np.float64:
                raise TypeError("no scorer for a OneHotEncoder that drops, groups infrequent categories or is not float64")
            at = out.start
            for j, known in zip(picked, trans.categories_):
                ours = columns[j][1]
                if ours is None:
                    raise TypeError(f"no scorer for one-hot encoding the number column '{columns[j][0]}'")
                position = {v: at + i for i, v in enumerate(known.tolist())}
                cat_in.append(j)
                sizes.append(len(ours))
                table += [position.get(v, width) for v in ours] + [width]  # last: a missing or invalid code
                at += len(known)
        else:
            raise TypeError(f"no scorer for {type(trans).__name__} in a ColumnTransformer: score it with predict_scores")
    num_in, num_out = np.array(num_in, dtype=np.intp), np.array(num_out, dtype=np.intp)
    if len(num_out) and np.array_equal(num_out, np.arange(num_out[0], num_out[0] + len(num_out))):
        num_out = slice(int(num_out[0]), int(num_out[0]) + len(num_out))
    fill, mean, scale = np.array(fill), np.array(mean), np.array(scale)
    imputes = not np.isnan(fill).all()
    cat_in, sizes, table = np.array(cat_in, dtype=np.intp), np.array(sizes, dtype=np.float64), np.array(table, dtype=np.intp)
    starts = np.concatenate([[0], np.cumsum(sizes[:-1] + 1)]).astype(np.intp) if len(sizes) else np.zeros(0, np.intp)

    def transform(X):
        n = len(X)
        Z = np.zeros((n, width + 1))
        if len(num_in):
            x = X[:, num_in]
            Z[:, num_out] = ((np.where(np.isnan(x), fill, x) if imputes else x) - mean) / scale
        if len(cat_in):
            codes = X[:, cat_in]
            slot = np.where((codes >= 0) & (codes < sizes), codes, sizes).astype(np.intp)
            Z[np.arange(n)[:, None], table[starts + slot]] = 1.0
        return Z[:, :width]
    return transform


def _number_steps(trans, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """A ColumnTransformer's transformer of ``n`` numbers as (fill, mean, scale): a missing value becomes its fill (NaN:
    it stays missing), then (x - mean) / scale (x - 0 and x / 1 are exact: passthrough rides with the scaled numbers).
    None when it is not passthrough, a median or mean imputation without indicator and a StandardScaler, in order."""
    fill, mean, scale = np.full(n, np.nan), np.zeros(n), np.ones(n)
    scaled = False
    for _, step in trans.steps if type(trans) is Pipeline else [(None, trans)]:
        if step is None or (isinstance(step, str) and step == "passthrough") or (
                type(step) is FunctionTransformer and step.func is None):
            continue
        if type(step) is SimpleImputer and not scaled and step.indicator_ is None and step.strategy in ("mean", "median") \
                and isinstance(step.missing_values, float) and np.isnan(step.missing_values):
            fill = np.where(np.isnan(fill), step.statistics_, fill)
        elif type(step) is StandardScaler and not scaled:
            scaled = True
            mean = step.mean_ if step.with_mean else mean
            scale = step.scale_ if step.with_std else scale
        else:
            return None
    return fill, mean, scale


def _selected(spec, columns: Columns, index: dict[str, int]) -> list[int]:
    """The matrix positions of a fitted ColumnTransformer's column selection (names, a mask or positions)."""
    if isinstance(spec, slice):
        return list(range(len(columns)))[spec]
    spec = np.asarray(spec)
    if spec.dtype == bool:
        return np.flatnonzero(spec).tolist()
    if spec.dtype.kind in "iu":
        return spec.tolist()
    try:
        return [index[name] for name in spec.tolist()]
    except KeyError as exc:
        raise TypeError(f"no scorer: the model reads column {exc} that the matrix does not have") from None


# LightGBM: its C API on the matrix, categories as the codes it stored with the model

@_compile.register
def _(est: LGBMClassifier, columns):
    return _booster(est.booster_, columns, "binary" if est.n_classes_ == 2 else "multiclass", est.classes_)


@_compile.register
def _(est: LGBMRegressor, columns):
    return _booster(est.booster_, columns, "regression", None)


def _booster(booster, columns: Columns | None, kind: str, classes) -> _Model:
    if columns is not None and len(columns) != booster.num_feature():  # the one-row path reads that many values
        raise TypeError(f"no scorer: the LightGBM model reads {booster.num_feature()} columns, the matrix has {len(columns)}")
    direct = DirectBooster(booster)
    recode = _lightgbm_codes(booster.pandas_categorical, columns)

    def raw(X):
        if recode is not None:
            X = recode(X)
        if len(X) == 1:
            return direct(X[0]).reshape(1, -1) if direct.n_out > 1 else direct(X[0])
        return direct.many(X, 1 if len(X) < SMALL else 0)

    if kind == "binary":
        def scores(X):
            p = raw(X)
            return np.vstack((1.0 - p, p)).T
        return _Model(scores, classes)
    return _Model(raw, classes)


def _lightgbm_codes(stored: list | None, columns: Columns | None) -> Scorer | None:
    """Our category codes → the codes LightGBM stored with the model (``pandas_categorical``), as its pandas
    path makes them (``set_categories``: a category it never had is missing); None when they are the same."""
    ours = [(j, cats) for j, (_, cats) in enumerate(columns or []) if cats is not None]
    if len(ours) != len(stored or []):
        raise TypeError(f"no scorer: the LightGBM model has {len(stored or [])} category columns, the matrix {len(ours)}")
    tables = []
    for (j, cats), kept in zip(ours, stored or []):
        if list(cats) != list(kept):
            where = {v: float(i) for i, v in enumerate(kept)}
            tables.append((j, np.array([where.get(v, np.nan) for v in cats] + [np.nan]), len(cats)))
    if not tables:
        return None

    def recode(X):
        X = X.copy()
        for j, table, size in tables:
            codes = X[:, j]
            X[:, j] = table[np.where((codes >= 0) & (codes < size), codes, size).astype(np.intp)]
        return X
    return recode


# models on numbers: the same arithmetic as scikit-learn's own methods, without their input checks

@_compile.register
def _(est: LogisticRegression, columns):
    _numbers_only(est, columns)
    coef, intercept, classes = est.coef_.T, est.intercept_, est.classes_

    def decision(Z):
        d = Z @ coef + intercept
        return d.reshape(-1) if d.shape[1] == 1 else d

    if len(classes) <= 2:
        def scores(Z):
            p = expit(decision(Z))
            return np.stack([1 - p, p], axis=1)
        return _Model(scores, classes, lambda Z: classes[(decision(Z) > 0).astype(int)])
    return _Model(lambda Z: softmax(decision(Z), copy=False), classes,
                  lambda Z: classes[np.argmax(decision(Z), axis=1)])


@_compile.register(Ridge)
@_compile.register(RidgeCV)  # the regression stack's meta-learner: through predict it cost 0.07 ms a row
@_compile.register(LinearRegression)
@_compile.register(Lasso)
@_compile.register(ElasticNet)
def _(est, columns):
    _numbers_only(est, columns)
    coef, intercept = (est.coef_ if est.coef_.ndim == 1 else est.coef_.T), est.intercept_
    return _Model(lambda Z: Z @ coef + intercept)


@_compile.register
def _(est: GaussianNB, columns):
    """``predict_proba``: each class's joint log-likelihood, less their log-sum-exp (scikit-learn's, step for step)."""
    _numbers_only(est, columns)
    classes = est.classes_
    parts = [(np.log(prior), -0.5 * np.sum(np.log(2.0 * np.pi * var)), theta, var)
             for prior, theta, var in zip(est.class_prior_, est.theta_, est.var_)]

    def joint(Z):
        return np.stack([prior + (spread - 0.5 * np.sum(((Z - theta) ** 2) / var, axis=1))
                         for prior, spread, theta, var in parts]).T

    def scores(Z):
        jll = joint(Z)
        top = np.max(jll, axis=1, keepdims=True)
        is_top = jll == top
        m = np.sum(is_top, axis=1, keepdims=True, dtype=np.float64)
        shift = np.where(np.isfinite(top), top, 0)
        total = np.sum(np.exp(np.where(is_top, -np.inf, jll) - shift), axis=1, keepdims=True)
        total = np.where(total == 0, total, total / m)
        return np.exp(jll - (np.log1p(total) + np.log(m) + top))
    return _Model(scores, classes, lambda Z: classes[np.argmax(joint(Z), axis=1)])


@_compile.register(MLPClassifier)
@_compile.register(MLPRegressor)
def _(est, columns):
    """The forward pass with scikit-learn's own in-place activations."""
    _numbers_only(est, columns)
    layers = list(zip(est.coefs_, est.intercepts_))
    hidden, output = ACTIVATIONS[est.activation], ACTIVATIONS[est.out_activation_]

    def forward(Z):
        a = Z
        for i, (w, b) in enumerate(layers):
            a = a @ w
            a += b
            if i < len(layers) - 1:
                hidden(a)
        output(a)
        return a

    if isinstance(est, MLPRegressor):
        def predict(Z):
            y = forward(Z)
            return y.ravel() if y.shape[1] == 1 else y
        return _Model(predict)
    classes = est.classes_
    if len(classes) == 2:
        def scores(Z):
            p = forward(Z).ravel()
            return np.vstack([1 - p, p]).T
        return _Model(scores, classes, lambda Z: classes[(forward(Z).ravel() > 0.5).astype(int)])
    return _Model(forward, classes)


@_compile.register(KNeighborsClassifier)
@_compile.register(KNeighborsRegressor)
@_compile.register(SVC)
@_compile.register(NuSVC)
@_compile.register(SVR)
@_compile.register(NuSVR)
@_compile.register(CalibratedClassifierCV)
def _(est, columns):
    """Neighbours and kernels: scikit-learn's own methods on the matrix, without its finiteness checks, on the
    caller's thread (a neighbour search trained with ``n_jobs`` would start a thread pool per call: 14 ms a row
    instead of 0.4 ms)."""
    _numbers_only(est, columns)
    if getattr(est, "n_jobs", None) not in (None, 1):
        est = copy.copy(est)
        est.n_jobs = None

    def labels(Z):
        with config_context(assume_finite=True):
            return est.predict(Z)

    if not hasattr(est, "classes_"):
        return _Model(labels)

    def scores(Z):
        with config_context(assume_finite=True):
            return est.predict_proba(Z)
    return _Model(scores, est.classes_, labels)


# trees: every tree's nodes in flat arrays, walked for all (row, tree) pairs at once

class _Tree(NamedTuple):
    """One decision tree as node arrays; a leaf has ``left == -1``; ``value`` is nodes × outputs."""

    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    nan_left: np.ndarray  # where a missing value goes
    value: np.ndarray
    depth: int
    categorical: np.ndarray | None = None  # per node its row of ``_Forest.category_right``; -1: a number split


class _TreeSet(NamedTuple):
    """A tree model's trees, their outputs summed and divided by ``divisor`` (a forest's mean)."""

    trees: list[_Tree]
    divisor: float


class _Forest:
    """Trees walked together. Each step moves every (tree, row) pair one level down: a node reads its column of
    the row, goes right when the value is above its threshold (or missing and its missing values go right) and a
    leaf points to itself, so after the deepest tree's depth every pair sits on its leaf. Calling gives, per
    member (consecutive trees, e.g. one forest of a bagging ensemble), the sum of its leaves' values over its
    divisor: rows × members × outputs. The sums run tree by tree from ``base`` (the first member's start), the
    order scikit-learn adds them in, so a near tie falls the same way.

    ``float32``: scikit-learn's trees compare ``float32(x) <= threshold``; histogram gradient boosting compares
    the float64. ``category_right``: for categorical splits, whether each category code (the last column: missing
    or invalid) goes right."""

    def __init__(self, trees: list[_Tree], members: list[tuple[int, float]] | None = None, *, base=None,
                 float32: bool = True, category_right: np.ndarray | None = None):
        members = members or [(len(trees), 1.0)]
        sizes = np.array([len(t.feature) for t in trees])
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        self.roots = offsets[:-1].astype(np.intp)
        self.feature = np.concatenate([t.feature for t in trees]).astype(np.intp)
        self.threshold = np.concatenate([t.threshold for t in trees]).astype(np.float64)
        self.nan_right = ~np.concatenate([t.nan_left for t in trees]).astype(bool)
        self.value = np.concatenate([t.value for t in trees]).astype(np.float64)
        children = []
        for t, off in zip(trees, offsets):
            own = np.arange(len(t.left)) + off
            leaf = t.left < 0
            children.append(np.column_stack([np.where(leaf, own, t.left + off), np.where(leaf, own, t.right + off)]))
        self.children = np.concatenate(children).ravel().astype(np.intp)  # node i: 2i left, 2i + 1 right
        self.depth = max(t.depth for t in trees)
        self.float32 = float32
        self.missing_right = bool(self.nan_right.any())
        self.categorical = None
        if category_right is not None:
            self.categorical = np.concatenate([t.categorical for t in trees]).astype(np.intp)
            self.category_right = category_right
            self.n_codes = category_right.shape[1] - 1
        counts = [n for n, _ in members]
        self.equal = counts[0] if len(set(counts)) == 1 else None
        self.bounds = np.cumsum([0, *counts])
        self.divisors = np.array([d for _, d in members], dtype=np.float64)[:, None]
        self.base = None if base is None else np.asarray(base, dtype=np.float64)

    def __call__(self, X: np.ndarray) -> np.ndarray:
        n, d = X.shape
        V = np.ascontiguousarray(X, dtype=np.float32 if self.float32 else np.float64).ravel()
        # the (tree, row) pairs tree by tree in one flat array: flat gathers cost least (40 % less than on a
        # trees × rows grid for one row, where each level's handful of gathers is the whole cost)
        node = np.repeat(self.roots, n)
        offset = np.tile(np.arange(0, n * d, d), len(self.roots)) if n > 1 else None
        missing = self.missing_right and bool(np.isnan(V).any())
        for _ in range(self.depth):
            at = self.feature[node]
            x = V[at if offset is None else at + offset]
            right = x > self.threshold[node]
            if missing:
                right |= np.isnan(x) & self.nan_right[node]
            if self.categorical is not None:
                row = self.categorical[node]
                split = row >= 0
                if split.any():
                    code = x[split]
                    slot = np.where((code >= 0) & (code < self.n_codes), code, self.n_codes).astype(np.intp)
                    right[split] = self.category_right[row[split], slot]
            node = self.children[2 * node + right]
        values = self.value[node.reshape(len(self.roots), n)]  # trees × rows × outputs
        if self.base is not None:
            values[0] += self.base
        if self.equal is not None:  # cumsum: strictly tree after tree, where a sum may pair them up
            grouped = values.reshape(-1, self.equal, n, values.shape[2])
            sums = np.cumsum(grouped, axis=1)[:, -1]
        else:
            sums = np.stack([np.cumsum(values[a:b], axis=0)[-1] for a, b in zip(self.bounds[:-1], self.bounds[1:])])
        return sums.transpose(1, 0, 2) / self.divisors


def _sklearn_tree(est, n_out: int = 1, output: int = 0, *, scale: float | None = None, nan_left: bool | None = None) -> _Tree:
    """A fitted scikit-learn tree: a classifier's class fractions as its ``n_out`` outputs, a regressor's value
    (times ``scale``) at ``output`` of ``n_out``."""
    t = est.tree_
    if t.n_outputs != 1:
        raise TypeError("no scorer for a multi-output tree")
    left = t.children_left
    value = np.zeros((len(left), n_out))
    if isinstance(est, DecisionTreeClassifier):
        value[:] = t.value[:, 0, :n_out]
    else:
        value[:, output] = t.value[:, 0, 0] if scale is None else scale * t.value[:, 0, 0]
    go_left = t.missing_go_to_left.astype(bool) if nan_left is None else np.full(len(left), nan_left)
    return _Tree(np.where(left < 0, 0, t.feature), t.threshold, left, t.children_right, go_left, value, int(t.max_depth))


def _tree_model(trees: list[_Tree], divisor: float, classes) -> _Model:
    forest = _Forest(trees, [(len(trees), divisor)])
    if classes is None:
        return _Model(lambda Z: forest(Z)[:, 0, 0], None, trees=_TreeSet(trees, divisor))
    return _Model(lambda Z: forest(Z)[:, 0, :], classes, trees=_TreeSet(trees, divisor))


@_compile.register(DecisionTreeClassifier)
@_compile.register(DecisionTreeRegressor)
def _(est, columns):
    _numbers_only(est, columns)
    if isinstance(est, DecisionTreeClassifier):
        return _tree_model([_sklearn_tree(est, est.n_classes_)], 1.0, est.classes_)
    return _tree_model([_sklearn_tree(est)], 1.0, None)


@_compile.register(RandomForestClassifier)
@_compile.register(ExtraTreesClassifier)
@_compile.register(RandomForestRegressor)
@_compile.register(ExtraTreesRegressor)
def _(est, columns):
    """The mean of the trees' leaf values (a classifier's leaves hold class fractions)."""
    _numbers_only(est, columns)
    if est.n_outputs_ != 1:
        raise TypeError(f"no scorer for a multi-output {type(est).__name__}")
    if hasattr(est, "classes_"):
        k = est.n_classes_
        return _tree_model([_sklearn_tree(e, k) for e in est.estimators_], len(est.estimators_), est.classes_)
    return _tree_model([_sklearn_tree(e) for e in est.estimators_], len(est.estimators_), None)


@_compile.register(GradientBoostingClassifier)
@_compile.register(GradientBoostingRegressor)
def _(est, columns):
    """The init estimator's constant plus learning rate × leaf value of every stage's tree, then the loss's link."""
    _numbers_only(est, columns)
    if not (est.init_ == "zero" or isinstance(est.init_, (DummyClassifier, DummyRegressor))):
        raise TypeError(f"no scorer for gradient boosting from a {type(est.init_).__name__} init")
    stages, k = est.estimators_.shape
    trees = [_sklearn_tree(est.estimators_[i, j], k, j, scale=est.learning_rate, nan_left=False)
             for i in range(stages) for j in range(k)]  # its own walk sends a missing value right: NaN <= t is false
    forest = _Forest(trees, base=est._raw_predict_init(np.zeros((1, est.n_features_in_), dtype=np.float32))[0])

    def raw(Z):
        return forest(Z)[:, 0, :]

    if isinstance(est, GradientBoostingRegressor):
        return _Model(lambda Z: raw(Z).ravel())
    classes, loss = est.classes_, est._loss
    if k == 1:
        return _Model(lambda Z: loss.predict_proba(raw(Z)), classes, lambda Z: classes[(raw(Z).ravel() >= 0).astype(int)])
    return _Model(lambda Z: loss.predict_proba(raw(Z)), classes)


@_compile.register(HistGradientBoostingClassifier)
@_compile.register(HistGradientBoostingRegressor)
def _(est, columns):
    """Its predictors on our matrix. Fitted on a table with categories, it encodes them first (categories then
    numbers, each category as its position in the encoder's sorted list, unknown as missing); here our codes go
    straight to each categorical split's decision, worked out once per code."""
    pre = est._preprocessor
    n = est.n_features_in_
    if pre is None:
        if est.is_categorical_ is not None:
            raise TypeError("no scorer for histogram gradient boosting with categories on a plain matrix")
        _numbers_only(est, columns)
        source = np.arange(n)  # model feature → matrix column
        codes = {}
    else:
        if columns is None:
            raise TypeError("no scorer for histogram gradient boosting fitted on a table, on a plain matrix")
        index = {name: j for j, (name, _) in enumerate(columns)}
        names = list(getattr(est, "feature_names_in_", [c for c, _ in columns][:n]))
        try:
            ours = np.array([index[name] for name in names], dtype=np.intp)
        except KeyError as exc:
            raise TypeError(f"no scorer: the model reads column {exc} that the matrix does not have") from None
        is_cat = np.asarray(est.is_categorical_, dtype=bool)
        source = np.empty(n, dtype=np.intp)
        source[pre.output_indices_["encoder"]] = ours[is_cat]
        source[pre.output_indices_["numerical"]] = ours[~is_cat]
        encoder = pre.named_transformers_["encoder"]
        codes = {}  # model feature → per our code, the encoder's ordinal (-1: unknown)
        for f, j, known in zip(range(pre.output_indices_["encoder"].start, n), ours[is_cat], encoder.categories_):
            cats = columns[j][1]
            if cats is None:
                raise TypeError(f"no scorer: the model reads '{columns[j][0]}' as categories, the matrix as numbers")
            where = {v: i for i, v in enumerate(known.tolist())}
            codes[f] = np.array([where.get(v, -1) for v in cats], dtype=np.intp)
    known_bits, f_idx_map = est._bin_mapper.make_known_categories_bitsets()
    width = max([len(c) for c in codes.values()], default=0)
    k = est.n_trees_per_iteration_
    trees, rows = [], []
    for iteration in est._predictors:
        for j, predictor in enumerate(iteration):
            nodes = predictor.nodes
            leaf = nodes["is_leaf"].astype(bool)
            feature = np.where(leaf, 0, nodes["feature_idx"]).astype(np.intp)
            value = np.zeros((len(nodes), k))
            value[:, j] = nodes["value"]
            categorical = np.full(len(nodes), -1, dtype=np.intp)
            for i in np.flatnonzero(nodes["is_categorical"].astype(bool) & ~leaf):
                f = int(nodes[i]["feature_idx"])
                categorical[i] = len(rows)
                rows.append(_category_split(nodes[i], predictor.raw_left_cat_bitsets, known_bits[f_idx_map[f]], codes[f], width))
            trees.append(_Tree(source[feature], nodes["num_threshold"], np.where(leaf, -1, nodes["left"].astype(np.intp)),
                               nodes["right"].astype(np.intp), nodes["missing_go_to_left"].astype(bool), value,
                               int(nodes["depth"].max()), categorical))
    forest = _Forest(trees, base=est._baseline_prediction[0], float32=False,
                     category_right=np.array(rows, dtype=bool).reshape(len(rows), width + 1) if rows else None)

    def raw(X):
        return forest(X)[:, 0, :]

    loss = est._loss
    if isinstance(est, HistGradientBoostingRegressor):
        return _Model(lambda X: loss.link.inverse(raw(X).ravel()))
    classes = est.classes_
    if k == 1:
        return _Model(lambda X: loss.predict_proba(raw(X)), classes, lambda X: classes[(raw(X).ravel() > 0).astype(int)])
    return _Model(lambda X: loss.predict_proba(raw(X)), classes)


def _category_split(node, left_bits: np.ndarray, known_bits: np.ndarray, ordinals: np.ndarray, width: int) -> list[bool]:
    """Per category code (and a last slot for missing or invalid): does this categorical split send it right?
    As its predictor decides: left when in the split's left set, right when a known category, else the missing side."""
    def member(bits, v):
        return bool((int(bits[v // 32]) >> (v % 32)) & 1)

    missing = not node["missing_go_to_left"]
    left_set = left_bits[node["bitset_idx"]]
    out = []
    for code in range(width + 1):
        v = int(ordinals[code]) if code < len(ordinals) else -1
        if v < 0:
            out.append(missing)
        elif member(left_set, v):
            out.append(False)
        else:
            out.append(True if member(known_bits, v) else missing)
    return out


# ensembles of models on numbers

@_compile.register(BaggingClassifier)
@_compile.register(BaggingRegressor)
def _(est, columns):
    """The mean of the members on their columns (a member's classes at their places; members without
    probabilities vote). Members made of scikit-learn trees are walked together."""
    _numbers_only(est, columns)
    members = [_compile(m, None) for m in est.estimators_]
    features = [np.asarray(f, dtype=np.intp) for f in est.estimators_features_]
    n_estimators = est.n_estimators
    classifier = isinstance(est, BaggingClassifier)
    k = est.n_classes_ if classifier else 1
    if all(m.trees is not None for m in members):
        forest = _members_forest(members, features, np.arange(k) if classifier else None)  # members see codes 0..k-1
        if classifier:  # cumsum: member after member, as scikit-learn adds them
            return _Model(lambda Z: np.cumsum(forest(Z), axis=1)[:, -1] / n_estimators, est.classes_)
        return _Model(lambda Z: np.cumsum(forest(Z)[:, :, 0], axis=1)[:, -1] / n_estimators)
    if not classifier:
        return _Model(lambda Z: sum(m.predict(Z[:, f]) for m, f in zip(members, features)) / n_estimators)
    voting = [not hasattr(e, "predict_proba") for e in est.estimators_]

    def scores(Z):
        proba = np.zeros((len(Z), k))
        for m, f, vote in zip(members, features, voting):
            if vote:
                np.add.at(proba, (np.arange(len(Z)), m.predict(Z[:, f]).astype(np.intp)), 1)
            elif len(m.classes) == k:
                proba += m.scores(Z[:, f])
            else:
                proba[:, m.classes] += m.scores(Z[:, f])
        return proba / n_estimators
    return _Model(scores, est.classes_)


def _members_forest(members: list[_Model], features: list[np.ndarray | None], classes: np.ndarray | None) -> _Forest:
    """The trees of tree-model members as one forest, one member per group: a classifier member's class columns
    at their places among the ensemble's ``classes``, a member's columns renumbered by its ``features``."""
    trees, groups = [], []
    for m, f in zip(members, features):
        k = 1 if classes is None else len(classes)
        place = slice(None) if classes is None else np.searchsorted(classes, m.classes)
        for t in m.trees.trees:
            value = np.zeros((len(t.value), k))
            value[:, place] = t.value
            trees.append(t._replace(feature=t.feature if f is None else f[t.feature], value=value))
        groups.append((len(m.trees.trees), m.trees.divisor))
    return _Forest(trees, groups)


@_compile.register
def _(est: AdaBoostClassifier, columns):
    """SAMME: every member's vote weighted by its estimator weight, turned into probabilities by the softmax."""
    _numbers_only(est, columns)
    classes, k = est.classes_, est.n_classes_
    weights = est.estimator_weights_[:len(est.estimators_)]
    total = est.estimator_weights_.sum()
    members = [_compile(m, None) for m in est.estimators_]
    if k == 1:
        return _Model(lambda Z: np.ones((len(Z), 1)), classes)
    if all(m.trees is not None for m in members):
        forest = _members_forest(members, [None] * len(members), classes)

        def votes(Z):
            return classes[np.argmax(forest(Z), axis=2)]
    else:
        def votes(Z):
            return np.column_stack([m.predict(Z) for m in members])

    def decision(Z):
        said = votes(Z)
        pred = 0
        for i, w in enumerate(weights):
            pred = pred + np.where(said[:, i, None] == classes, w, -1 / (k - 1) * w)
        pred /= total
        if k == 2:
            pred[:, 0] *= -1
            return pred.sum(axis=1)
        return pred

    def scores(Z):
        d = decision(Z)
        d = np.vstack([-d, d]).T / 2 if k == 2 else d / (k - 1)
        return softmax(d, copy=False)

    if k == 2:
        return _Model(scores, classes, lambda Z: classes[(decision(Z) > 0).astype(int)])
    return _Model(scores, classes, lambda Z: classes[np.argmax(decision(Z), axis=1)])


@_compile.register
def _(est: AdaBoostRegressor, columns):
    """The weighted median of the members' predictions."""
    _numbers_only(est, columns)
    members = [_compile(m, None) for m in est.estimators_]
    weights = est.estimator_weights_
    if all(m.trees is not None for m in members):
        forest = _members_forest(members, [None] * len(members), None)

        def predictions(Z):
            return forest(Z)[:, :, 0]
    else:
        def predictions(Z):
            return np.column_stack([m.predict(Z) for m in members])

    def scores(Z):
        p = predictions(Z)
        order = np.argsort(p, axis=1)
        cdf = np.cumsum(weights[order], axis=1)
        median = (cdf >= 0.5 * cdf[:, -1][:, np.newaxis]).argmax(axis=1)
        rows = np.arange(len(p))
        return p[rows, order[rows, median]]
    return _Model(scores)
