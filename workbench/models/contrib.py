"""Contributions: how much each raw business column moved a model's output for a row, adding up to that output.

An ``Explainer`` reads the encoded matrix (``RowEncoder``'s layout) and gives, per row, one contribution per raw
column and a bias (the output with nothing known about the row): ``bias + sum == output`` on the explainer's
``scale`` to rounding. Each model kind registers how its contributions are made (``Kind.contributions``):

- LightGBM: its own TreeSHAP (``pred_contrib``), on the raw margin (log-odds, per-class margins, or values);
- CatBoost and XGBoost (``workbench.models.boost``): their own TreeSHAP (``ShapValues``, ``pred_contribs``), on the
  raw margin likewise;
- forests, extra trees, gradient boosting and histogram gradient boosting: path-dependent TreeSHAP (the ``shap``
  package's C implementation) on the trees' own output (class probabilities for forests, margins for boosting);
- linear models: coefficient × (value − the training mean), in the model's link space;
- weighted ensembles: the weighted sum of the members' contributions where they are averaged (probabilities or
  values); stacks with a linear meta-learner: the members' contributions carried through its coefficients;
- anything else (k-NN, SVM, MLP, naive Bayes, ONNX, hard votes): ``agnostic``, permutation Shapley values against
  a sample of training rows, whose sum is exact and each value an estimate with its standard error.

A raw column's parts (a one-hot category's indicators, a date's four numbers, a text's scores, an image's features)
are summed back into one number. Changing scale (``on_scale``) keeps the sum exact by sharing the change of the new
output among the contributions in proportion to their share of the old one.

Examples
--------
>>> from workbench.data import load, clean
>>> from workbench.data.encode import matrix_of
>>> from workbench.models.compare import encode_target
>>> from workbench.models.zoo import get_model
>>> c = clean(load("demo", n_rows=300), "churn")
>>> est = get_model("lightgbm").make("binary").fit(c.X, encode_target(c.y, "binary")[0])
>>> X, _ = matrix_of(c.X.head(5))                 # the cleaned rows as the encoded matrix
>>> ex = explainer(est, Layout.of(c.cleaner.encoder()), "binary", 2)
>>> phi = ex(X)                                   # 5 rows × (raw columns + bias) × 1 output
>>> ex.scale, bool(gap(phi, est.predict_proba(c.X.head(5)), ex.scale, "binary") < 1e-6)
('log-odds', True)
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
from scipy.special import expit, softmax
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
from sklearn.ensemble import (ExtraTreesClassifier, ExtraTreesRegressor, GradientBoostingClassifier,
                              GradientBoostingRegressor, HistGradientBoostingClassifier, HistGradientBoostingRegressor,
                              RandomForestClassifier, RandomForestRegressor)
from sklearn.linear_model import ElasticNet, Lasso, LinearRegression, LogisticRegression, Ridge, RidgeCV
from sklearn.pipeline import Pipeline
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from workbench import kinds
from workbench.data.encode import frame_of
from workbench.errors import WorkbenchError
from workbench.extras import MissingExtra, extra
from workbench.models.scorers import DirectBooster, _lightgbm_codes, _selected

BIAS = "(bias)"
CLIP = 1e-6  # a stack's members' probabilities are clipped to [CLIP, 1 - CLIP] before their log-odds
TREES = (RandomForestClassifier, RandomForestRegressor, ExtraTreesClassifier, ExtraTreesRegressor,
         GradientBoostingClassifier, GradientBoostingRegressor, DecisionTreeClassifier, DecisionTreeRegressor)
LINEAR = (LogisticRegression, Ridge, RidgeCV, LinearRegression, Lasso, ElasticNet)
SCALES = {  # what ``bias + sum`` is on each scale
    "value": "the predicted value",
    "log": "the log of the predicted value",
    "log-odds": "the log-odds of the second class",
    "margin": "each class's margin (softmax gives the probabilities)",
    "probability": "the probability of the second class (binary) or of each class",
    "clipped log-odds": "the log-odds of the second class, its probabilities clipped to [1e-6, 1 - 1e-6]",
    "clipped log-probability": "each class's log probability, clipped to [1e-6, 1 - 1e-6]",
}


@dataclass(frozen=True)
class Layout:
    """The encoded matrix an explainer reads, and which of its features make up each raw business column.

    Parameters
    ----------
    columns : the matrix's features, [(name, category levels or None)] (``RowEncoder.columns``).
    names : the raw columns, in order.
    groups : per raw column, the positions of its features in the matrix.
    background : encoded training rows: the means linear models are centred on, the rows the model-agnostic
        estimate replaces values from (None: only exact tree explainers can work).
    """

    columns: list
    names: list
    groups: list
    background: np.ndarray | None = None

    @classmethod
    def of(cls, encoder, background: np.ndarray | None = None) -> "Layout":
        """A row encoder's raw columns (a date is four features, a text or image column several)."""
        start, names, groups = 0, [], []
        for col, width, _ in encoder.encoders:
            names.append(col)
            groups.append(np.arange(start, start + width))
            start += width
        return cls(list(encoder.columns), names, groups, background)

    @classmethod
    def plain(cls, columns: list, background: np.ndarray | None = None) -> "Layout":
        """Every feature its own column (a matrix that is not a row encoder's)."""
        return cls(list(columns), [name for name, _ in columns], [np.array([j]) for j in range(len(columns))],
                   background)

    def folding(self, sources: np.ndarray) -> np.ndarray:
        """The 0/1 matrix (model features × raw columns) that sums a model's feature contributions into raw columns;
        ``sources`` holds, per model feature, the matrix feature it is computed from."""
        owner = np.empty(len(self.columns), dtype=np.intp)
        for g, features in enumerate(self.groups):
            owner[features] = g
        fold = np.zeros((len(sources), len(self.groups)))
        fold[np.arange(len(sources)), owner[np.asarray(sources, dtype=np.intp)]] = 1.0
        return fold


@dataclass(frozen=True)
class Explainer:
    """A model's contributions on the encoded matrix.

    ``explain(X)`` → an array n × (raw columns + 1) × outputs, the bias last; outputs: one for regression and binary
    classification (the second class), one per class for multiclass. ``bias + sum`` is the model's output on
    ``scale`` (``SCALES``). ``estimate``, when set, gives the contributions and their standard errors (an estimate).
    """

    explain: Callable[[np.ndarray], np.ndarray]
    scale: str
    method: str
    exact: bool = True
    estimate: Callable | None = None

    def __call__(self, X: np.ndarray) -> np.ndarray:
        return self.explain(np.asarray(X, dtype=np.float64))


def explainer(est, layout: Layout, task: str, n_classes: int) -> Explainer:
    """``est``'s contributions: its kind's exact ones, or the model-agnostic estimate where its kind has none (or
    they need an extra that is not installed)."""
    made = kinds.kind_of(est).contributions
    try:
        made = made(est, layout, task, n_classes) if made is not None else None
    except MissingExtra:  # exact TreeSHAP needs shap (the `explain` extra); a slim runtime estimates instead
        made = None
    return made if made is not None else agnostic(est, layout, task, n_classes)


def outputs(task: str, n_classes: int) -> int:
    return n_classes if task == "multiclass" else 1


def output_of(scores: np.ndarray, scale: str, task: str) -> np.ndarray:
    """A scorer's answer (probabilities n × k, or values) on ``scale``: n × outputs, what ``bias + sum`` equals
    (margins are known up to a constant per row: centred)."""
    scores = np.asarray(scores, dtype=np.float64)
    natural = scores.reshape(-1, 1) if task == "regression" else scores[:, 1:2] if task == "binary" else scores
    return _from_natural(natural, scale, task)


def gap(phi: np.ndarray, scores: np.ndarray, scale: str, task: str) -> float:
    """The largest difference between ``bias + sum`` of ``phi`` and the scorer's answer ``scores`` on ``scale``."""
    total = phi.sum(axis=1)
    if scale == "margin":
        total = total - total.mean(axis=1, keepdims=True)
    return float(np.abs(total - output_of(scores, scale, task)).max(initial=0.0))


def on_scale(ex: Explainer, scale: str, task: str) -> Explainer:
    """The same contributions on another scale, the sum still exact: the change of the output on the new scale is
    shared among the contributions as they share it on the old one (where the old output did not move at all, by the
    contributions' sizes). Exact Shapley values on the old scale; on the new one, their proportional share."""
    if ex.scale == scale:
        return ex
    if scale == "margin" or ex.scale in ("clipped log-odds", "clipped log-probability"):
        raise WorkbenchError(f"contributions on the {ex.scale} scale cannot be turned into {scale}")

    def convert(totals):
        return _from_natural(_to_natural(totals, ex.scale), scale, task)
    return Explainer(lambda X: rescaled(ex(X), convert), scale, f"{ex.method}, carried to {scale}", ex.exact)


def rescaled(phi: np.ndarray, convert: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``phi`` (n × (columns + 1) × outputs, bias last) on the scale ``convert`` maps totals to, the sum exact."""
    bias = phi[:, -1, :]
    total = bias + phi[:, :-1, :].sum(axis=1)
    new_bias, new_total = convert(bias), convert(total)
    change, old = new_total - new_bias, total - bias
    out = np.empty_like(phi)
    flat = np.abs(old) <= 1e-12
    ratio = np.divide(change, old, out=np.zeros_like(old), where=~flat)
    out[:, :-1, :] = phi[:, :-1, :] * ratio[:, None, :]
    if flat.any():  # the old output did not move (its pushes cancel) while the new one did: share by size
        size = np.abs(phi[:, :-1, :])
        weight = np.divide(size, size.sum(axis=1, keepdims=True), out=np.full_like(size, 1.0 / max(size.shape[1], 1)),
                           where=size.sum(axis=1, keepdims=True) > 0)
        out[:, :-1, :] = np.where(flat[:, None, :], weight * change[:, None, :], out[:, :-1, :])
    out[:, -1, :] = new_bias
    return out


def combined(members: list[Explainer], weights: np.ndarray, intercept: np.ndarray, scale: str, method: str) -> Explainer:
    """A linear combination of the members' outputs: output c = intercept[c] + Σ weights[c, i·o + j] · member i's
    output j (``o`` outputs each). A weighted mean is ``weights`` (outputs × members·outputs) of its weights."""
    weights, intercept = np.asarray(weights, dtype=np.float64), np.asarray(intercept, dtype=np.float64).reshape(-1)

    def explain(X):
        phi = np.concatenate([m(X) for m in members], axis=2)  # n × (columns + 1) × members·outputs
        out = phi @ weights.T
        out[:, -1, :] += intercept
        return out
    return Explainer(explain, scale, method, all(m.exact for m in members))


def weighted(members: list[Explainer], weights, scale: str, n_outputs: int) -> Explainer:
    """The weighted sum of members' contributions on one scale (an average of probabilities or values)."""
    methods = "; ".join(sorted({m.method for m in members}))
    return combined(members, np.kron(np.asarray(weights, dtype=np.float64)[None, :], np.eye(n_outputs)),
                    np.zeros(n_outputs), scale, f"weighted sum of the members' contributions ({methods})")


# ---- LightGBM: its own TreeSHAP ----------------------------------------------------------------------------------

def lightgbm(est, layout: Layout, task: str, n_classes: int) -> Explainer | None:
    """LightGBM's native TreeSHAP on the raw margin; one row through its single-row fast path. A model text without
    its nodes' counts (the compact layout keeps only what prediction needs) has no path weights: None."""
    if "\nleaf_count=" not in getattr(est, "model_str", "\nleaf_count="):
        return None
    booster = est.booster_
    recode = _lightgbm_codes(booster.pandas_categorical, layout.columns)
    direct = DirectBooster(booster, contrib=True)
    k, f = booster.num_model_per_iteration(), booster.num_feature()
    fold = np.vstack([layout.folding(np.arange(f)), np.zeros((1, len(layout.groups)))])
    fold = np.hstack([fold, np.eye(f + 1)[:, -1:]])  # the bias stays the bias: (features + 1) × (columns + 1)

    def explain(X):
        if recode is not None:
            X = recode(X)
        raw = direct(X[0]).reshape(1, -1) if len(X) == 1 else direct.many(X, 1 if len(X) < 1000 else 0)
        phi = raw.reshape(len(X), k, f + 1).transpose(0, 2, 1)  # per class: the features, then the bias
        return np.einsum("nfo,fg->ngo", phi, fold)
    return Explainer(explain, _margin_scale(task, _objective(est)), "TreeSHAP (LightGBM's own, path-dependent)")


def _objective(est) -> str:
    if hasattr(est, "objective_"):
        return str(est.objective_)
    text = getattr(est, "model_str", "")
    at = text.find("\nobjective=")
    return text[at + 11:text.find("\n", at + 1)].split(" ")[0] if at >= 0 else ""


def _margin_scale(task: str, objective: str = "") -> str:
    if task == "binary":
        return "log-odds"
    if task == "multiclass":
        return "margin"
    return "log" if objective in ("poisson", "gamma", "tweedie") else "value"


# ---- scikit-learn: pipelines of one-hot columns, trees by TreeSHAP, linear models exactly --------------------------

def sklearn(est, layout: Layout, task: str, n_classes: int) -> Explainer | None:
    """A zoo model's exact contributions, or None where there are none (the model-agnostic estimate then)."""
    if isinstance(est, TransformedTargetRegressor):
        return _scaled_target(est, layout, task, n_classes)
    if isinstance(est, (HistGradientBoostingClassifier, HistGradientBoostingRegressor)):
        return _hist_gradient_boosting(est, layout, task, n_classes)
    if isinstance(est, Pipeline):
        *front, (_, final) = est.steps
        cts = [s for _, s in front if s is not None and s != "passthrough"]
        if len(cts) != 1 or not isinstance(cts[0], ColumnTransformer):
            return None
        sources = _column_sources(cts[0], layout.columns)
        prepare = est[:-1]
        return _on_features(final, layout, task, n_classes, sources,
                            lambda X: np.asarray(prepare.transform(frame_of(X, layout.columns)), dtype=np.float64))
    if any(levels is not None for _, levels in layout.columns):
        return None
    return _on_features(est, layout, task, n_classes, np.arange(len(layout.columns)), lambda X: X)


def _on_features(model, layout: Layout, task: str, n_classes: int, sources: np.ndarray, prepare) -> Explainer | None:
    """A linear or tree model on features computed from the matrix (``prepare``), each from one matrix feature."""
    classes = getattr(model, "classes_", None)
    if classes is not None and len(classes) != n_classes:  # a class it never saw scores 0: no margin gives that
        return None
    fold = np.vstack([layout.folding(sources), np.zeros((1, len(layout.groups)))])
    fold = np.hstack([fold, np.eye(len(sources) + 1)[:, -1:]])
    if isinstance(model, LINEAR):
        if layout.background is None:
            return None
        coef = np.atleast_2d(model.coef_)  # outputs × features
        intercept = np.atleast_1d(model.intercept_).astype(np.float64)
        mean = prepare(layout.background).mean(axis=0)
        bias = intercept + coef @ mean

        def explain(X):
            Z = prepare(X)
            phi = np.empty((len(Z), Z.shape[1] + 1, len(coef)))
            phi[:, :-1, :] = (Z - mean)[:, :, None] * coef.T[None]
            phi[:, -1, :] = bias
            return np.einsum("nfo,fg->ngo", phi, fold)
        return Explainer(explain, _margin_scale(task) if task != "regression" else "value",
                         "exact: coefficient × (value − training mean)")
    if isinstance(model, TREES):
        tree = _tree_explainer(_boosted_trees(model) if isinstance(model, GradientBoostingClassifier) else model)
        probability = isinstance(model, (RandomForestClassifier, ExtraTreesClassifier, DecisionTreeClassifier))
        scale = "value" if task == "regression" else "probability" if probability else _margin_scale(task)
        pick = slice(1, 2) if task == "binary" and probability else slice(None)

        def explain(X):
            Z = prepare(X)
            values = np.asarray(tree.shap_values(Z, check_additivity=False), dtype=np.float64)
            values = values.reshape(len(Z), Z.shape[1], -1)[:, :, pick]
            base = np.broadcast_to(np.asarray(tree.expected_value, dtype=np.float64).reshape(-1)[pick],
                                   (len(Z), values.shape[2]))
            return np.einsum("nfo,fg->ngo", np.concatenate([values, base[:, None, :]], axis=1), fold)
        return Explainer(explain, scale, "TreeSHAP (path-dependent, the shap package)")
    return None


def _tree_explainer(model):
    """The shap package's path-dependent TreeSHAP of a tree model (or of trees given as arrays)."""
    with extra("explain"):  # deferred: shap loads numba (seconds); only tree models other than LightGBM need it
        import shap

    return shap.TreeExplainer(model)


def _boosted_trees(est: GradientBoostingClassifier) -> dict:
    """Gradient boosting's trees as arrays (the shap package reads only a binary one itself): each stage's tree j
    adds learning rate × its leaf value to class j's margin, from the init estimator's margin."""
    stages, k = est.estimators_.shape
    trees = []
    for i in range(stages):
        for j in range(k):
            t = est.estimators_[i, j].tree_
            values = np.zeros((t.node_count, k))
            values[:, j] = est.learning_rate * t.value[:, 0, 0]
            trees.append({"children_left": t.children_left, "children_right": t.children_right,
                          "children_default": t.children_right,  # its own walk sends a missing value right
                          "features": t.feature, "thresholds": t.threshold, "values": values,
                          "node_sample_weight": t.weighted_n_node_samples.astype(np.float64)})
    base = est._raw_predict_init(np.zeros((1, est.n_features_in_), dtype=np.float32))[0]
    return {"trees": trees, "base_offset": base, "input_dtype": np.float32, "internal_dtype": np.float64}


def _column_sources(ct: ColumnTransformer, columns: list) -> np.ndarray:
    """Per output feature of a fitted ColumnTransformer, the matrix feature it comes from."""
    index = {name: j for j, (name, _) in enumerate(columns)}
    width = max((s.stop for s in ct.output_indices_.values()), default=0)
    sources = np.full(width, -1, dtype=np.intp)
    for name, trans, spec in ct.transformers_:
        out = ct.output_indices_.get(name, slice(0, 0))
        if trans == "drop" or out.stop == out.start:
            continue
        picked = _selected(spec, columns, index)
        if hasattr(trans, "categories_"):
            sources[out] = np.repeat(picked, [len(c) for c in trans.categories_])
        else:
            sources[out] = picked
    if (sources < 0).any():
        raise WorkbenchError("a column transformer's outputs could not be traced to its input columns")
    return sources


def _scaled_target(est: TransformedTargetRegressor, layout, task, n_classes) -> Explainer | None:
    inner = sklearn(est.regressor_, layout, task, n_classes)
    scaler = est.transformer_
    if inner is None or inner.scale != "value" or type(scaler).__name__ != "StandardScaler":
        return None
    scale = float(scaler.scale_[0]) if scaler.with_std else 1.0
    mean = float(scaler.mean_[0]) if scaler.with_mean else 0.0

    def explain(X):
        phi = inner(X) * scale
        phi[:, -1, :] += mean
        return phi
    return Explainer(explain, "value", inner.method, inner.exact)


def _hist_gradient_boosting(est, layout: Layout, task: str, n_classes: int) -> Explainer | None:
    """Histogram gradient boosting's trees handed to the shap package as plain arrays. A categorical split (a set of
    categories goes left) becomes a 0/1 feature of its own (1: the row goes right) that counts for its column."""
    if est.n_trees_per_iteration_ != outputs(task, n_classes):
        return None
    pre, n = est._preprocessor, est.n_features_in_
    if pre is None:
        if est.is_categorical_ is not None:
            return None
        source = np.arange(n)
    else:
        index = {name: j for j, (name, _) in enumerate(layout.columns)}
        ours = np.array([index[name] for name in est.feature_names_in_], dtype=np.intp)
        is_cat = np.asarray(est.is_categorical_, dtype=bool)
        source = np.empty(n, dtype=np.intp)
        source[pre.output_indices_["encoder"]] = ours[is_cat]
        source[pre.output_indices_["numerical"]] = ours[~is_cat]
    known_bits, f_idx_map = est._bin_mapper.make_known_categories_bitsets()
    k = est.n_trees_per_iteration_
    trees, splits = [], []  # splits: (model feature, its left set, its known set, missing goes left)
    for iteration in est._predictors:
        for j, predictor in enumerate(iteration):
            nodes = predictor.nodes
            leaf = nodes["is_leaf"].astype(bool)
            features = nodes["feature_idx"].astype(np.int64)
            thresholds = nodes["num_threshold"].astype(np.float64)
            for i in np.flatnonzero(nodes["is_categorical"].astype(bool) & ~leaf):
                f = int(nodes[i]["feature_idx"])
                features[i], thresholds[i] = n + len(splits), 0.5
                splits.append((f, predictor.raw_left_cat_bitsets[nodes[i]["bitset_idx"]], known_bits[f_idx_map[f]],
                               bool(nodes[i]["missing_go_to_left"])))
            left = np.where(leaf, -1, nodes["left"].astype(np.int64))
            right = np.where(leaf, -1, nodes["right"].astype(np.int64))
            values = np.zeros((len(nodes), k))
            values[:, j] = nodes["value"]
            trees.append({"children_left": left, "children_right": right,
                          "children_default": np.where(nodes["missing_go_to_left"].astype(bool), left, right),
                          "features": np.where(leaf, -1, features), "thresholds": thresholds, "values": values,
                          "node_sample_weight": nodes["count"].astype(np.float64)})
    tree = _tree_explainer({"trees": trees, "base_offset": 0.0, "input_dtype": np.float64,
                            "internal_dtype": np.float64})
    baseline = np.asarray(est._baseline_prediction, dtype=np.float64).reshape(-1)
    fold = layout.folding(np.concatenate([source, [source[f] for f, *_ in splits]]).astype(np.intp))

    def inputs(X):
        M = np.asarray(pre.transform(frame_of(X, layout.columns)), dtype=np.float64) if pre is not None else X
        went = [_goes_right(M[:, f], left_set, known, missing_left) for f, left_set, known, missing_left in splits]
        return np.column_stack([M, *went]) if went else M

    def explain(X):
        M = inputs(X)
        values = np.asarray(tree.shap_values(M, check_additivity=False), dtype=np.float64).reshape(len(M), M.shape[1], k)
        out = np.empty((len(M), len(layout.groups) + 1, k))
        out[:, :-1, :] = np.einsum("nfo,fg->ngo", values, fold)
        out[:, -1, :] = np.asarray(tree.expected_value, dtype=np.float64).reshape(-1) + baseline
        return out
    scale = _margin_scale(task) if task != "regression" else (
        "value" if type(est._loss.link).__name__ == "IdentityLink" else "log")
    return Explainer(explain, scale, "TreeSHAP (path-dependent, the shap package; a categorical split as its own "
                                     "0/1 feature)")


def _goes_right(v: np.ndarray, left_set: np.ndarray, known: np.ndarray, missing_left: bool) -> np.ndarray:
    """A categorical split's decision as its predictor makes it: a category in the left set goes left, another known
    one right, a missing or unknown one to the missing side."""
    def member(bits, codes):
        return ((bits[codes // 32].astype(np.int64) >> (codes % 32)) & 1).astype(bool)

    out = np.full(len(v), 0.0 if missing_left else 1.0)
    ok = ~np.isnan(v) & (v >= 0)
    codes = np.where(ok, v, 0).astype(np.int64)
    in_known = ok & (codes < 32 * len(known))
    in_known[in_known] = member(known, codes[in_known])
    in_left = in_known & (codes < 32 * len(left_set))
    in_left[in_left] = member(left_set, codes[in_left])
    out[in_known] = 1.0
    out[in_left] = 0.0
    return out


# ---- the model-agnostic estimate ---------------------------------------------------------------------------------

BACKGROUND_ROWS = 40
PERMUTATIONS = 8  # four orders and their reverses


def agnostic(est, layout: Layout, task: str, n_classes: int, *, rows: int = BACKGROUND_ROWS,
             permutations: int = PERMUTATIONS, seed: int = 0) -> Explainer:
    """Permutation Shapley values (interventional) against ``rows`` training rows: for each of ``permutations``
    orders of the raw columns (half of them the reverse of the other half), the row's values replace the training
    rows' one column at a time and each column gets the mean change of the output it causes. The sum over the
    columns telescopes to the output minus the training rows' mean output, exactly; each value is a mean over the
    orders, with its standard error. Cost: permutations × (columns + 1) × rows model evaluations per explained row.
    Outputs: probabilities (the second class's for binary) or values."""
    if layout.background is None or not len(layout.background):
        raise WorkbenchError("the model-agnostic contributions need training rows to compare with; give background "
                             "rows (a package's training sample)")
    score = kinds.scorer(est, layout.columns, task, n_classes)
    rng = np.random.default_rng(seed)
    bg = layout.background[rng.permutation(len(layout.background))[:rows]]
    g = len(layout.groups)
    half = [rng.permutation(g) for _ in range(max(1, permutations // 2))]
    orders = np.array(half + [o[::-1] for o in half])
    scale = "value" if task == "regression" else "probability"

    def natural(M):
        return output_of(score(M), scale, task)

    bias = natural(bg).mean(axis=0)

    def estimate(X):
        n, P, nb = len(X), len(orders), len(bg)
        phi = np.zeros((n, g + 1, len(bias)))
        se = np.zeros((n, g, len(bias)))
        for i in range(n):
            M = np.broadcast_to(bg, (P, g + 1, nb, bg.shape[1])).copy()
            for p, order in enumerate(orders):
                for s, col in enumerate(order):
                    M[p][s + 1:, :, layout.groups[col]] = X[i, layout.groups[col]]
            out = natural(M.reshape(-1, bg.shape[1])).reshape(P, g + 1, nb, -1).mean(axis=2)
            out[:, 0, :] = bias
            steps = np.diff(out, axis=1)  # P × g × outputs, in each order's column order
            per = np.empty_like(steps)
            per[np.arange(P)[:, None], orders] = steps
            phi[i, :-1] = per.mean(axis=0)
            se[i] = per.std(axis=0, ddof=1) / np.sqrt(P) if P > 1 else np.nan
        phi[:, -1] = bias
        return phi, se

    method = (f"permutation Shapley values against {len(bg)} training rows, {len(orders)} column orders: "
              f"{len(orders) * (g + 1) * len(bg):,} model evaluations per row; the sum is exact, each value an "
              "estimate with its standard error")
    return Explainer(lambda X: estimate(X)[0], scale, method, exact=False, estimate=estimate)


def _to_natural(t: np.ndarray, scale: str) -> np.ndarray:
    if scale == "log-odds":
        return expit(t)
    if scale == "margin":
        return softmax(t, axis=1)
    if scale == "log":
        return np.exp(t)
    return t


def _from_natural(p: np.ndarray, scale: str, task: str) -> np.ndarray:
    if scale in ("value", "probability"):
        return p
    if scale == "log-odds":
        return np.log(p) - np.log1p(-p)
    if scale == "log":
        return np.log(p)
    if scale == "margin":
        logp = np.log(p)
        return logp - logp.mean(axis=1, keepdims=True)
    if scale == "clipped log-odds":
        return np.log(np.clip(p, CLIP, 1 - CLIP) / np.clip(1 - p, CLIP, 1 - CLIP))
    if scale == "clipped log-probability":
        return np.log(np.clip(p, CLIP, 1 - CLIP))
    raise WorkbenchError(f"no way to give contributions on the {scale} scale for a {task} model")


# ---- a trained model's reasons: raw rows or records in, contributions per raw column out ---------------------------

REFERENCE_ROWS = 500  # training rows linear models are centred on (and the model-agnostic estimate draws from)


class RowExplainer:
    """A trained model's contributions per raw business column, for a table's rows (the library) and for checked
    records (the service): the same numbers both ways.

    Parameters
    ----------
    model : the TrainedModel.
    background : raw training rows (a package's ``sample``), or their encoded matrix.
    encoder : the row encoder to use (the service's, which checks records against the schema); default the model's.

    Attributes
    ----------
    names : the raw columns.  scale, method, exact : the explainer's (``Explainer``).
    output : what a row's reasons push up or down (the second class, the predicted class, the predicted value).
    row_seconds : what explaining one row took when it was made (the service explains cheap models inline).
    """

    def __init__(self, model, background, *, encoder=None):
        self.model = model
        self.encoder = encoder if encoder is not None else model.cleaner.encoder()
        keep = np.sort(np.random.default_rng(0).permutation(len(background))[:REFERENCE_ROWS])
        bg = (self.encoder.frame(background.iloc[keep]) if hasattr(background, "columns")  # images read once each
              else np.asarray(background, dtype=float)[keep])
        self.layout = Layout.of(self.encoder, bg)
        k = len(model.classes or []) if model.task != "regression" else 0
        self.explainer = explainer(model.estimator, self.layout, model.task, k)
        self.names, self.scale, self.method, self.exact = self.layout.names, self.explainer.scale, \
            self.explainer.method, self.explainer.exact
        self.output = ("the predicted value" if model.task == "regression" else
                       f"class {model.classes[1]}" if model.task == "binary" else "each row's predicted class")
        self.row_seconds = min(_timed(self.explainer, bg[:1]) for _ in range(3))  # the first call warms caches up

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """The encoded rows' contributions: n × (columns + 1) × outputs, the bias last."""
        return self.explainer(X)

    def frame(self, df, output=None):
        """A table's contributions, one column per raw column and ``(bias)``; for multiclass those to the class
        ``output`` (default: each row's predicted class)."""
        X = self.encoder.frame(df)
        phi = self.contributions(X)
        pick = self._outputs(phi, X, output)
        values = phi[np.arange(len(X)), :, pick]
        return pd.DataFrame(values, index=df.index, columns=[*self.names, BIAS])

    def reasons(self, X: np.ndarray, rows, k: int, scores: np.ndarray | None = None) -> list[list[dict]]:
        """Each row's ``k`` largest contributions, largest first: column, raw value (as the row gave it),
        contribution (on ``scale``; for multiclass to the predicted class) and direction (up / down). ``rows``:
        the raw records (dicts) or a table."""
        phi = self.contributions(X)
        pick = self._outputs(phi, X, None, scores)
        values = phi[np.arange(len(X)), :-1, pick]
        order = np.argsort(-np.abs(values), axis=1, kind="stable")[:, :k]
        records = rows.to_dict("records") if hasattr(rows, "to_dict") else rows
        out = []
        for i, (rec, top) in enumerate(zip(records, order.tolist())):
            out.append([{"column": self.names[j], "value": _plain(rec.get(self.names[j])),
                         "contribution": float(values[i, j]), "direction": "up" if values[i, j] >= 0 else "down"}
                        for j in top])
        return out

    def _outputs(self, phi: np.ndarray, X: np.ndarray, output=None, scores=None) -> np.ndarray:
        """Per row, which output to read: the only one, the class ``output``, or the predicted class."""
        if phi.shape[2] == 1:
            return np.zeros(len(phi), dtype=np.intp)
        if output is not None:
            return np.full(len(phi), list(map(str, self.model.classes)).index(str(output)), dtype=np.intp)
        scores = self.model.scorer(X) if scores is None else scores
        return np.asarray(scores).argmax(axis=1)


def _timed(call, *args) -> float:
    t0 = time.perf_counter()
    call(*args)
    return time.perf_counter() - t0


def _plain(v):
    """A raw value as JSON writes it (numpy scalars as Python's, a missing value as None)."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and v != v:
        return None
    return v if v is None or isinstance(v, (str, int, float, bool)) else str(v)
