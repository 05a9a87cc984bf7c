"""The model zoo: every model family by name, with its defaults, its portfolio of proven configurations and its
search space."""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from sklearn.base import BaseEstimator, is_classifier
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.impute import SimpleImputer
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from workbench.errors import ModelError
from workbench.lookup import Registry
from workbench.models.space import Choice, Float, Int, Space, When

CLASSIFICATION = ("binary", "multiclass")
ALL_TASKS = ("binary", "multiclass", "regression")


@dataclass(frozen=True)
class Config:
    """A proven configuration of a family, for the tasks (and table sizes) where it is worth a try."""

    params: dict
    tasks: tuple[str, ...] = ("binary", "multiclass", "regression")
    max_rows: int | None = None


@dataclass(frozen=True)
class ModelSpec:
    """A zoo entry: how to build the estimator for a task, its defaults, its portfolio and its search space.

    ``portfolio``: configurations known to do well across many tables (AutoGluon's zero-shot portfolio, FLAML's
    cheap-first start), tried in order after the defaults and before any search. A configuration with
    ``early_stopping_rounds`` stops adding trees where an inner hold-out of each fold's training rows stops
    improving; the refit uses the folds' mean number of trees.
    """

    name: str
    label: str
    tasks: tuple[str, ...]
    build: Callable[..., BaseEstimator]
    space: Space = field(default_factory=dict)
    max_rows: int | None = None  # slower than that many rows allows in a default run
    portfolio: tuple[Config, ...] = ()
    stop: Callable | None = None  # stop(est, X, y, (X_valid, y_valid), rounds) -> trees kept: how it stops early
    default: bool = True  # compared when no models are named (False: by name only)
    requires: tuple[str, ...] = ()  # modules from an extra that it needs

    def make(self, task: str, params: dict | None = None, *, n_jobs: int = 1, seed: int = 0) -> BaseEstimator:
        params = {k: v for k, v in (params or {}).items() if k != EARLY_STOP}
        return self.build(task, params, n_jobs, seed)

    def fit(self, est: BaseEstimator, params: dict, X, y, seed: int = 0) -> dict:
        """Fit ``est`` (made from ``params``); with early stopping, on an inner hold-out of its own training rows
        (``EARLY_STOP_SHARE``, stratified for classes), never on the rows it is then scored on: their out-of-fold
        predictions stay honest for the leaderboard, the ensembles and calibration. Returns what the fit learned
        that a refit must repeat (the number of trees)."""
        rounds = params.get(EARLY_STOP)
        y = np.asarray(y)
        if not rounds or self.stop is None or len(y) < EARLY_STOP_MIN_ROWS:
            est.fit(X, y)
            return {}
        classes = is_classifier(est) and np.unique(y, return_counts=True)[1].min() >= 2
        fit, valid = train_test_split(np.arange(len(y)), test_size=EARLY_STOP_SHARE, random_state=seed,
                                      stratify=y if classes else None)
        trees = self.stop(est, X.iloc[fit], y[fit], (X.iloc[valid], y[valid]), rounds)
        return {"n_estimators": int(trees)}

    @property
    def available(self) -> bool:
        """Its library is installed (a family from an extra that is not is left out of the defaults)."""
        return all(importlib.util.find_spec(m) is not None for m in self.requires)


EARLY_STOP = "early_stopping_rounds"
EARLY_STOP_SHARE = 0.15  # of a fold's training rows, held out to stop adding trees
EARLY_STOP_MIN_ROWS = 100  # fewer: no early stopping (the configured trees are fitted on all rows)


# registration order is run order: fast families first, so a tight budget still sees them
ZOO: Registry[ModelSpec] = Registry("model")


def get_model(name: str, task: str | None = None) -> ModelSpec:
    """The model ``name``; given ``task``, refused with every model that does it (asked-for-by-name ones too)."""
    spec = ZOO.get(name)
    if task is not None and task not in spec.tasks:
        able = [n for n in ZOO if n not in META_MODELS and task in ZOO.get(n).tasks]
        raise ModelError(f"model '{name}' does not do {task}. Models for {task}: {', '.join(able)}")
    return spec


META_MODELS = ("bag", "boost")  # ensembles over a base model: built by workbench.ensemble, not compared by default


def models_for(task: str, n_rows: int | None = None) -> list[str]:
    """The zoo models that apply to a task (and, given ``n_rows``, fit in a default run): those compared when none
    are named (families asked for by name only, or whose extra is not installed, are left out)."""
    return [n for n in ZOO if n not in META_MODELS and task in ZOO.get(n).tasks and ZOO.get(n).default
            and (n_rows is None or ZOO.get(n).max_rows is None or n_rows <= ZOO.get(n).max_rows)
            and ZOO.get(n).available]


def portfolio(task: str, models: list[str], n_rows: int | None = None) -> list[tuple[str, str, dict]]:
    """(candidate name, model, params) of the portfolio configurations of ``models`` for this task and table size,
    in rounds: every family's first, then every family's second, ... (cheap families first, as registered)."""
    ranked = []
    for name in models:
        configs = [c for c in ZOO.get(name).portfolio
                   if task in c.tasks and (n_rows is None or c.max_rows is None or n_rows <= c.max_rows)]
        ranked += [(i, f"{name}:p{i + 1}", name, dict(c.params)) for i, c in enumerate(configs)]
    return [entry[1:] for entry in sorted(ranked, key=lambda e: e[0])]  # sorted is stable: registration order holds


def _onehot(estimator: BaseEstimator, scale: bool = True) -> Pipeline:
    """Numbers imputed (the median of the rows fitted on) and scaled, categories one-hot encoded: for models that read
    neither a missing value nor a category. The tree families (LightGBM, CatBoost, XGBoost, HGB) read both as they are."""
    numbers = Pipeline([("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                        ("scale", StandardScaler() if scale else "passthrough")])
    prep = ColumnTransformer([
        ("num", numbers, make_column_selector(dtype_exclude="category")),
        ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), make_column_selector(dtype_include="category")),
    ], verbose_feature_names_out=False)
    return Pipeline([("prep", prep), ("model", estimator)])


def _scaled_target(model: BaseEstimator) -> BaseEstimator:
    """Regressors that learn by gradient or distance need a target on a unit scale (prices are not)."""
    from sklearn.compose import TransformedTargetRegressor

    return TransformedTargetRegressor(regressor=model, transformer=StandardScaler())


def _register(name: str, label: str, tasks, space: Space | None = None, max_rows: int | None = None,
              portfolio: tuple[Config, ...] = (), stop: Callable | None = None, default: bool = True,
              requires: tuple[str, ...] = ()):
    def deco(build):
        ZOO.register(name, ModelSpec(name, label, tuple(tasks), build, space or {}, max_rows, portfolio, stop, default,
                                     requires))
        return build
    return deco


def _stop_lightgbm(est, X, y, valid, rounds) -> int:
    import lightgbm as lgb  # loaded with the first LightGBM model, as the zoo's builders do

    est.fit(X, y, eval_set=[valid], callbacks=[lgb.early_stopping(rounds, first_metric_only=True, verbose=False)])
    return est.best_iteration_ or est.n_estimators


def _stop_boosted(est, X, y, valid, rounds) -> int:
    est.fit(X, y, eval_set=[valid], early_stopping_rounds=rounds)
    return est.best_iteration_


# boosting with many small steps, stopped on an inner hold-out of each fold's training rows (trees learned, not guessed)
_BOOSTED = {"n_estimators": 2000, "learning_rate": 0.05, EARLY_STOP: 50}


@_register("lightgbm", "LightGBM", ALL_TASKS, {
    "n_estimators": Int(50, 1000, log=True), "learning_rate": Float(0.01, 0.3, log=True),
    "num_leaves": Int(7, 255, log=True), "min_child_samples": Int(5, 100, log=True),
    "subsample_freq": Choice(0, 1), "subsample": When("subsample_freq", 1, Float(0.5, 1.0)),
    "colsample_bytree": Float(0.4, 1.0),
    "reg_lambda": Float(1e-3, 10.0, log=True),
}, portfolio=(
    Config(_BOOSTED),
    Config(_BOOSTED | {"num_leaves": 7, "min_child_samples": 10, "colsample_bytree": 0.7, "reg_lambda": 1.0}),
    Config(_BOOSTED | {"extra_trees": True}),
    Config(_BOOSTED | {"class_weight": "balanced"}, tasks=CLASSIFICATION),
    Config(_BOOSTED | {"learning_rate": 0.03, "num_leaves": 128, "min_child_samples": 3, "colsample_bytree": 0.9}),
), stop=_stop_lightgbm)
def _lightgbm(task, params, n_jobs, seed):
    import lightgbm as lgb

    cls = lgb.LGBMRegressor if task == "regression" else lgb.LGBMClassifier
    return cls(**{"n_jobs": n_jobs, "random_state": seed, "verbose": -1, **params})


# XGBoost and CatBoost come with the `boost` extra; AutoGluon's zero-shot portfolio supplies their proven configurations.
# CatBoost is compared by default, second: its defaults are the best family where a target is a smooth function of
# numbers (friedman1, 5,000 rows: CV RMSE 1.08, LightGBM 1.25, the MLP 1.15; 0.3 s a fold), and the walker scores
# them in ~0.015 ms a row. It had been left out (2026-12-05) when OpenMP's passive wait made every fit 2-25x slower.
# On a large table with category columns its own predictor scores a row in ~0.13 ms, over auto's default limit: it is
# then not started (the probe) or skipped after a fold, and its proven configurations are not tried. XGBoost, by name
# only: on the same tables it was no better than LightGBM (friedman1: 1.28) and costs 3x its time.
_BOOST = ("catboost", "xgboost")


def _boosted(library: str) -> Callable:
    """The builder of a `boost` extra family: ``workbench.models.boost``'s ``<library>Classifier`` or ``...Regressor``."""
    def build(task, params, n_jobs, seed):
        from workbench.models import boost  # XGBoost and CatBoost (the `boost` extra) load with the first model

        boost.require()
        cls = getattr(boost, f"{library}{'Regressor' if task == 'regression' else 'Classifier'}")
        return cls(params, n_jobs=n_jobs, random_state=seed)
    return build


_register("catboost", "CatBoost", ALL_TASKS, {
    "n_estimators": Int(100, 1500, log=True), "learning_rate": Float(0.02, 0.3, log=True), "depth": Int(4, 8),
    "l2_leaf_reg": Float(1.0, 10.0, log=True), "one_hot_max_size": Choice(2, 10),
}, portfolio=(
    Config({"n_estimators": 2000, "learning_rate": 0.05, EARLY_STOP: 50}),
    Config({"n_estimators": 2000, "learning_rate": 0.069, "depth": 6, "l2_leaf_reg": 2.15, "max_ctr_complexity": 4,
            "one_hot_max_size": 10, EARLY_STOP: 50}),
    Config({"n_estimators": 2000, "learning_rate": 0.049, "depth": 4, "l2_leaf_reg": 4.56, "max_ctr_complexity": 3,
            "one_hot_max_size": 3, EARLY_STOP: 50}),
), stop=_stop_boosted, default=True, requires=_BOOST)(_boosted("CatBoost"))


@_register("hist_gb", "Histogram gradient boosting", ALL_TASKS, {
    "learning_rate": Float(0.01, 0.3, log=True), "max_leaf_nodes": Int(7, 127, log=True),
    "min_samples_leaf": Int(5, 100, log=True), "l2_regularization": Float(1e-4, 10.0, log=True),
})
def _hist_gb(task, params, n_jobs, seed):
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    cls = HistGradientBoostingRegressor if task == "regression" else HistGradientBoostingClassifier
    return cls(**{"categorical_features": "from_dtype", "random_state": seed, **params})


_register("xgboost", "XGBoost", ALL_TASKS, {
    "n_estimators": Int(50, 1000, log=True), "learning_rate": Float(0.01, 0.3, log=True), "max_depth": Int(3, 10),
    "min_child_weight": Float(0.5, 10.0, log=True), "subsample": Float(0.5, 1.0), "colsample_bytree": Float(0.5, 1.0),
    "reg_lambda": Float(1e-3, 10.0, log=True),
}, portfolio=(
    Config({"n_estimators": 2000, "learning_rate": 0.1, EARLY_STOP: 50}),
    Config({"n_estimators": 2000, "learning_rate": 0.088, "max_depth": 5, "min_child_weight": 0.63,
            "colsample_bytree": 0.66, EARLY_STOP: 50}),
    Config({"n_estimators": 2000, "learning_rate": 0.018, "max_depth": 10, "min_child_weight": 0.6,
            "colsample_bytree": 0.69, EARLY_STOP: 50}),
), stop=_stop_boosted, default=False, requires=_BOOST)(_boosted("XGBoost"))


@_register("linear", "Logistic / ridge regression", ALL_TASKS, {"C": Float(1e-3, 100.0, log=True)}, portfolio=(
    Config({"C": 0.1}), Config({"class_weight": "balanced"}, tasks=CLASSIFICATION), Config({"C": 10.0}),
))
def _linear(task, params, n_jobs, seed):
    from sklearn.linear_model import LogisticRegression, Ridge

    if task == "regression":
        alpha = 1.0 / params.pop("C", 1.0)
        return _onehot(Ridge(alpha=alpha, **params))
    return _onehot(LogisticRegression(**{"max_iter": 2000, **params}))


@_register("naive_bayes", "Naive Bayes", CLASSIFICATION, {"var_smoothing": Float(1e-12, 1e-3, log=True)})
def _naive_bayes(task, params, n_jobs, seed):
    from sklearn.naive_bayes import GaussianNB

    return _onehot(GaussianNB(**params))


@_register("knn", "k-nearest neighbours", ALL_TASKS, {"n_neighbors": Int(3, 100, log=True), "weights": Choice("uniform", "distance")}, max_rows=50_000,
           portfolio=(Config({"n_neighbors": 5, "weights": "distance"}), Config({"n_neighbors": 40, "weights": "distance"})))
def _knn(task, params, n_jobs, seed):
    from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

    cls = KNeighborsRegressor if task == "regression" else KNeighborsClassifier
    return _onehot(cls(**{"n_neighbors": 15, "n_jobs": n_jobs, **params}))


@_register("mlp", "Neural network (MLP)", ALL_TASKS, {
    "hidden_layer_sizes": Choice((64,), (128,), (64, 32)), "alpha": Float(1e-6, 1e-1, log=True),
    "learning_rate_init": Float(1e-4, 1e-2, log=True),
})
def _mlp(task, params, n_jobs, seed):
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    cls = MLPRegressor if task == "regression" else MLPClassifier
    model = _onehot(cls(**{"hidden_layer_sizes": (64,), "early_stopping": True, "max_iter": 300, "random_state": seed, **params}))
    return _scaled_target(model) if task == "regression" else model


@_register("random_forest", "Random forest", ALL_TASKS, {
    "n_estimators": Int(50, 500, log=True), "max_features": Choice("sqrt", 0.5, 1.0), "min_samples_leaf": Int(1, 20, log=True),
}, portfolio=(Config({"n_estimators": 300, "min_samples_leaf": 1}, max_rows=20_000),
              Config({"class_weight": "balanced_subsample"}, tasks=CLASSIFICATION)))
def _random_forest(task, params, n_jobs, seed):
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    cls = RandomForestRegressor if task == "regression" else RandomForestClassifier
    return _onehot(cls(**{"n_estimators": 100, "min_samples_leaf": 2, "n_jobs": n_jobs, "random_state": seed, **params}), scale=False)


@_register("extra_trees", "Extra trees", ALL_TASKS, {
    "n_estimators": Int(50, 500, log=True), "max_features": Choice("sqrt", 0.5, 1.0), "min_samples_leaf": Int(1, 20, log=True),
}, portfolio=(Config({"n_estimators": 300, "min_samples_leaf": 1}, max_rows=20_000),))
def _extra_trees(task, params, n_jobs, seed):
    from sklearn.ensemble import ExtraTreesClassifier, ExtraTreesRegressor

    cls = ExtraTreesRegressor if task == "regression" else ExtraTreesClassifier
    return _onehot(cls(**{"n_estimators": 100, "min_samples_leaf": 2, "n_jobs": n_jobs, "random_state": seed, **params}), scale=False)


@_register("svm", "Support vector machine", ALL_TASKS, {"C": Float(1e-2, 100.0, log=True), "gamma": Choice("scale", "auto")}, max_rows=5_000)
def _svm(task, params, n_jobs, seed):
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.svm import SVC, SVR

    if task == "regression":
        return _scaled_target(_onehot(SVR(**params)))
    return _onehot(CalibratedClassifierCV(SVC(**{"random_state": seed, **params}), ensemble=False, cv=3))


@_register("bag", "Bagging over a base model", ALL_TASKS, {
    "n_estimators": Int(5, 50, log=True), "max_samples": Float(0.5, 1.0), "max_features": Float(0.5, 1.0),
})
def _bag(task, params, n_jobs, seed):
    from sklearn.ensemble import BaggingClassifier, BaggingRegressor

    base = _core(get_model(params.pop("base", "linear")).make(task, params.pop("base_params", {}), n_jobs=1, seed=seed))
    cls = BaggingRegressor if task == "regression" else BaggingClassifier
    return _onehot(cls(**{"estimator": base, "n_estimators": 10, "n_jobs": n_jobs, "random_state": seed, **params}))


@_register("boost", "Boosting (AdaBoost over a base, or gradient boosting)", ALL_TASKS, {
    "n_estimators": Int(20, 300, log=True), "learning_rate": Float(0.01, 1.0, log=True),
})
def _boost(task, params, n_jobs, seed):
    from sklearn.ensemble import AdaBoostClassifier, AdaBoostRegressor, GradientBoostingClassifier, GradientBoostingRegressor

    base = params.pop("base", "gradient")
    if base == "gradient":  # scikit-learn's gradient boosting, on one-hot inputs
        cls = GradientBoostingRegressor if task == "regression" else GradientBoostingClassifier
        return _onehot(cls(**{"random_state": seed, **params}), scale=False)
    base_est = _core(get_model(base).make(task, params.pop("base_params", {}), n_jobs=1, seed=seed))
    cls = AdaBoostRegressor if task == "regression" else AdaBoostClassifier
    return _onehot(cls(**{"estimator": base_est, "n_estimators": 50, "random_state": seed, **params}))


def _core(est: BaseEstimator) -> BaseEstimator:
    """The model without its column preprocessing: bagging and AdaBoost hand their base plain arrays,
    so the one-hot preprocessing runs once, in front of the ensemble."""
    return est.steps[-1][1] if isinstance(est, Pipeline) else est
