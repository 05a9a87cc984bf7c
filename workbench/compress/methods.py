"""The compression methods, registered by name: prune, quantize, distill, compile."""
from __future__ import annotations

import copy

import numpy as np
import pandas as pd

from workbench.compress.core import Data, Variant, method, scores_of, with_estimator
from workbench.compress.estimators import CompactBooster, CompiledBooster, to_onnx_model
from workbench.compress.lgbtext import ModelText, lgb_matrix, pack
from workbench.decompose.core import forest_of
from workbench.ensemble.estimators import StackEnsemble, WeightedEnsemble
from workbench.errors import ModelError
from workbench.models.booster import LightGBMBooster
from workbench.models.compare import predict_scores
from workbench.models.metrics import loss
from workbench.models.trained import TrainedModel

COMPILE_TOLERANCE = 1e-6
# the LightGBM settings a refit keeps (the rest are LightGBM's defaults or bookkeeping)
REFIT_PARAMS = ("objective", "num_class", "learning_rate", "num_leaves", "max_depth", "min_data_in_leaf",
                "min_sum_hessian_in_leaf", "lambda_l1", "lambda_l2", "feature_fraction", "bagging_fraction", "bagging_freq",
                "min_gain_to_split", "max_bin", "cat_smooth", "cat_l2", "max_cat_threshold", "seed")


def lightgbm_text(est) -> str | None:
    """The LightGBM text model of an estimator, or None when it is not a single LightGBM model."""
    if isinstance(est, CompiledBooster):
        return None
    if isinstance(est, LightGBMBooster):
        return est.model_str
    booster = getattr(est, "booster_", None)
    return booster.model_to_string() if booster is not None and hasattr(booster, "model_to_string") else None


def _booster(est):
    text = lightgbm_text(est)
    if text is None:
        return None
    import lightgbm as lgb

    return lgb.Booster(model_str=text)


def _proba(task: str, p: np.ndarray) -> np.ndarray:
    p = np.asarray(p, dtype=float)
    return np.column_stack([1 - p, p]) if task == "binary" else p


def _grid(n: int) -> list[int]:
    return sorted(set(np.unique(np.round(np.geomspace(1, n, 24)).astype(int)).tolist()) | {n})


@method("prune")
def prune(model: TrainedModel, data: Data) -> list[Variant]:
    """Boosted trees cut to the fewest iterations whose validation metric holds; forests to the fewest trees;
    weighted ensembles to the fewest members; LightGBM refitted without the features it barely uses."""
    est = model.estimator
    out = []
    booster = _booster(est)
    if booster is not None:
        out += _prune_iterations(model, booster, data)
        if data.X_train is not None:
            out += _prune_features(model, booster, data)
    elif forest_of(est) is not None:
        out += _prune_forest(model, data)
    elif callable(getattr(est, "first", None)):  # XGBoost and CatBoost: ``first(k)`` keeps their first k iterations
        out += _prune_boosted(model, data)
    elif isinstance(est, WeightedEnsemble) and (est.task == "regression" or est.voting == "soft"):
        out += _prune_members(model, data)
    else:
        raise ModelError(f"prune applies to LightGBM, XGBoost and CatBoost models, random forests / extra trees and "
                         f"weighted (averaging, soft voting, selected) ensembles; '{model.name}' is a {type(est).__name__}")
    return out


def _prune_iterations(model, booster, data: Data) -> list[Variant]:
    n = booster.current_iteration()
    M = lgb_matrix(booster, data.X_valid)
    for k in _grid(n):
        if k < n and data.keeps(_proba(data.task, booster.predict(M, num_iteration=k))):
            cut = LightGBMBooster(booster.model_to_string(num_iteration=k), model.task).fit()
            return [Variant("prune:iterations", with_estimator(model, cut, f"{model.name}, {k} iterations"),
                            f"{k} of {n} iterations")]
    return []


def _prune_boosted(model, data: Data) -> list[Variant]:
    """XGBoost or CatBoost cut to the fewest iterations whose validation metric holds."""
    est = model.estimator
    n = est.best_iteration_
    for k in _grid(n)[:-1]:  # the grid ends with all n
        cut = with_estimator(model, est.first(k), f"{model.name}, {k} iterations")
        if data.keeps(scores_of(cut, data.X_valid)):
            return [Variant("prune:iterations", cut, f"{k} of {n} iterations")]
    return []


def _prune_features(model, booster, data: Data) -> list[Variant]:
    import lightgbm as lgb

    gain = booster.feature_importance("gain")
    names = booster.feature_name()
    share = gain / gain.sum() if gain.sum() > 0 else np.zeros_like(gain)
    order = np.argsort(share)
    drop = [names[i] for i in order[np.cumsum(share[order]) <= 0.01]]
    if not drop:
        return []
    columns = dict(zip(names, data.X_train.columns))  # LightGBM's (sanitized) names → the cleaned columns
    X = data.X_train.copy()
    for name in drop:
        col = columns[name]
        X[col] = X[col].iloc[:0].reindex(X.index)  # all missing: nothing to split on, same dtype and categories
    params = {k: v for k, v in booster.params.items() if k in REFIT_PARAMS} | {"verbosity": -1, "num_threads": 1}
    y = data.y_train
    refit = lgb.train(params, lgb.Dataset(X, y), num_boost_round=booster.current_iteration())
    est = LightGBMBooster(refit.model_to_string(), model.task).fit()
    variant = with_estimator(model, est, f"{model.name}, {len(drop)} features fewer")
    if not data.keeps(scores_of(variant, data.X_valid)):
        return []
    return [Variant("prune:features", variant, f"refit without {len(drop)} features holding ≤1% of the gain: "
                    + ", ".join(columns[d] for d in drop[:6]) + (" ..." if len(drop) > 6 else ""))]


def _prune_forest(model, data: Data) -> list[Variant]:
    est = model.estimator
    forest = forest_of(est)
    Z = est[:-1].transform(data.X_valid) if hasattr(est, "steps") else data.X_valid
    trees = forest.estimators_
    each = np.stack([t.predict(Z) if data.task == "regression" else t.predict_proba(Z) for t in trees])
    running = np.cumsum(each, axis=0)
    for k in _grid(len(trees)):
        if k < len(trees) and data.keeps(_full(running[k - 1] / k, forest, data)):
            small = copy.deepcopy(est)
            f = forest_of(small)
            f.estimators_, f.n_estimators = f.estimators_[:k], k
            return [Variant("prune:trees", with_estimator(model, small, f"{model.name}, {k} trees"),
                            f"{k} of {len(trees)} trees")]
    return []


def _full(p, forest, data: Data):
    if data.task == "regression":
        return p
    full = np.zeros((len(p), data.n_classes))
    full[:, np.asarray(forest.classes_, dtype=int)] = p
    return full


def _prune_members(model, data: Data) -> list[Variant]:
    est = model.estimator
    k = 0 if data.task == "regression" else data.n_classes
    scores = [predict_scores(e, data.X_valid, data.task, k) for e in est.estimators_]
    keep = [i for i, w in enumerate(est.weights_) if w > 0]
    removed = []
    while len(keep) > 1:
        trials = []
        for i in keep:
            rest = [j for j in keep if j != i]
            w = np.array([est.weights_[j] for j in rest])
            p = sum(wj * scores[j] for wj, j in zip(w / w.sum(), rest))
            trials.append((data.metric_of(p), i, p))
        best, i, p = min(trials, key=lambda t: loss(data.metric, t[0]))
        if not data.keeps(p):
            break
        keep.remove(i)
        removed.append(est.estimators[i][0])
    if len(keep) == len(est.estimators):
        return []
    if len(keep) == 1:  # one member with weight one predicts exactly as the member alone
        small = est.estimators_[keep[0]]
    else:
        small = WeightedEnsemble.from_fitted([(est.estimators[i][0], est.estimators_[i]) for i in keep],
                                             [est.weights_[i] for i in keep], task=est.task, voting=est.voting,
                                             n_classes=est.n_classes)
    return [Variant("prune:members", with_estimator(model, small, f"{model.name}, {len(keep)} members"),
                    f"kept {len(keep)} of {len(est.estimators)} members; removed {', '.join(map(str, removed))}")]


def _map_lightgbm(est, make):
    """``est`` with every LightGBM model in it — itself, or the members of an ensemble (and a stack's meta-learner) —
    replaced by ``make(text)``; None when it holds no LightGBM model."""
    text = lightgbm_text(est)
    if text is not None:
        return make(text)
    if isinstance(est, (WeightedEnsemble, StackEnsemble)):
        members = [_map_lightgbm(e, make) for e in est.estimators_]
        meta = _map_lightgbm(est.meta_, make) if isinstance(est, StackEnsemble) else None
        if all(m is None for m in members) and meta is None:
            return None
        fitted = [(name, m if m is not None else e) for (name, _), e, m in zip(est.estimators, est.estimators_, members)]
        if isinstance(est, WeightedEnsemble):
            return WeightedEnsemble.from_fitted(fitted, est.weights_, task=est.task, voting=est.voting,
                                                n_classes=est.n_classes)
        return StackEnsemble.from_fitted(fitted, meta if meta is not None else est.meta_, task=est.task,
                                         n_classes=est.n_classes, passthrough=est.passthrough, cv=est.cv)
    return None


@method("quantize")
def quantize(model: TrainedModel, data: Data) -> list[Variant]:
    """LightGBM trees (the model, or an ensemble's LightGBM members) in a compact binary layout: exact (float64
    leaves), float16 leaves, int8 leaves with a scale. Thresholds stay exact (indices into a table of the distinct
    thresholds)."""
    out = []
    for precision, label in (("float64", "quantize:compact"), ("float16", "quantize:float16"), ("int8", "quantize:int8")):
        try:
            est = _map_lightgbm(model.estimator, lambda text: CompactBooster(pack(ModelText(text), precision), model.task).fit())
        except ValueError as exc:
            raise ModelError(f"quantize: {exc}") from None
        if est is None:
            return _quantize_onnx(model, data)
        out.append(Variant(label, with_estimator(model, est, f"{model.name}, {precision} leaves"),
                           "compact layout, exact" if precision == "float64" else f"leaf values as {precision}"))
    return out


ONNX_FAMILIES = ("MLPClassifier", "MLPRegressor", "LogisticRegression", "Ridge")


def _quantize_onnx(model: TrainedModel, data: Data) -> list[Variant]:
    """MLP and linear pipelines: ONNX (float32) and ONNX with onnxruntime's dynamic int8 weights."""
    est = model.estimator
    last = est.steps[-1][1] if hasattr(est, "steps") else est
    if type(last).__name__ not in ONNX_FAMILIES:
        raise ModelError(f"quantize applies to LightGBM models (and ensembles' LightGBM members) and to MLP and linear "
                         f"models (ONNX); '{model.name}' is a {type(last).__name__}")
    out = []
    for int8, label in ((False, "quantize:onnx"), (True, "quantize:onnx-int8")):
        try:
            onnx = to_onnx_model(est, data.X_valid, model.task, int8=int8)
        except ValueError as exc:
            raise ModelError(f"quantize: {exc}") from None
        out.append(Variant(label, with_estimator(model, onnx, f"{model.name}, ONNX{' int8' if int8 else ''}"),
                           "ONNX float32 (onnxruntime)" if not int8 else "ONNX, int8 weights (dynamic quantization)"))
    return out


@method("distill")
def distill(model: TrainedModel, data: Data, *, trees: int = 100, leaves: int = 15, extra: float = 1.0) -> list[Variant]:
    """A small LightGBM (``trees`` × ``leaves``) trained on the model's soft predictions: out-of-fold ones on the
    training rows when known, plus ``extra`` × as many rows sampled around the training data (each column taken
    from a random training row) labelled by the model."""
    import lightgbm as lgb

    if data.X_train is None:
        raise ModelError("distill needs the training rows: pass train=... (raw labelled rows) or a training result")
    X = data.X_train
    teacher = data.teacher_oof if data.teacher_oof is not None and len(data.teacher_oof) == len(X) else None
    how = "out-of-fold" if teacher is not None else "in-sample"
    if teacher is None:
        teacher = scores_of(model, X)
    rng = np.random.default_rng(data.seed)
    n_extra = int(extra * len(X))
    if n_extra:
        picks = rng.integers(0, len(X), size=(n_extra, X.shape[1]))
        sampled = pd.DataFrame({c: X[c].iloc[picks[:, j]].to_numpy() for j, c in enumerate(X.columns)})
        sampled = sampled.astype(X.dtypes.to_dict())
        X = pd.concat([X.reset_index(drop=True), sampled], ignore_index=True)
        teacher = np.concatenate([teacher, scores_of(model, sampled)])
    params = {"learning_rate": 0.1, "num_leaves": leaves, "min_data_in_leaf": 20, "verbosity": -1, "num_threads": 1,
              "seed": data.seed}
    if data.task == "regression":
        ds = lgb.Dataset(X, np.asarray(teacher, dtype=float))
        params["objective"] = "regression"
    else:  # soft labels: each row once per class, weighted by the teacher's probability (cross-entropy on soft targets)
        k = data.n_classes
        ds = lgb.Dataset(pd.concat([X] * k, ignore_index=True), np.repeat(np.arange(k), len(X)),
                         weight=np.asarray(teacher, dtype=float).T.reshape(-1))
        params |= {"objective": "binary"} if k == 2 else {"objective": "multiclass", "num_class": k}
    student = lgb.train(params, ds, num_boost_round=trees)
    est = LightGBMBooster(student.model_to_string(), model.task).fit()
    return [Variant("distill", with_estimator(model, est, f"{model.name} distilled"),
                    f"{trees} trees × {leaves} leaves on {len(data.X_train)} rows ({how} teacher) + {n_extra} sampled")]


@method("compile")
def compile_native(model: TrainedModel, data: Data) -> list[Variant]:
    """LightGBM trees (the model, or an ensemble's LightGBM members) compiled to native code (treelite + tl2cgen,
    gcc); refused unless its predictions stay within 1e-6 of the model's."""
    est = _map_lightgbm(model.estimator, lambda text: CompiledBooster(text, model.task).fit())
    if est is None:
        raise ModelError(f"compile applies to LightGBM models and ensembles with LightGBM members; '{model.name}' is a "
                         f"{type(model.estimator).__name__} without one")
    variant = with_estimator(model, est, f"{model.name}, compiled")
    diff = float(np.abs(scores_of(variant, data.X_valid) - scores_of(model, data.X_valid)).max())
    if diff > COMPILE_TOLERANCE:
        raise ModelError(f"the compiled model differs from the original by {diff:.2e} (> {COMPILE_TOLERANCE:g}); not used")
    return [Variant("compile", variant, f"native code (treelite/tl2cgen); max difference {diff:.1e}")]
