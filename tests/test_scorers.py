"""Compiled scorers give what the pandas path gives, on the demo table and the shared datasets, one row or many."""
import time
from functools import lru_cache

import numpy as np
import pandas as pd
import pytest
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.dummy import DummyClassifier
from threadpoolctl import threadpool_limits

from workbench.data import clean, load
from workbench.ensemble.estimators import StackEnsemble
from workbench.models.compare import encode_target, predict_scores
from workbench.models.booster import LightGBMBooster
from workbench.models.scorers import compile_scorer
from workbench.models.zoo import ZOO, get_model

TOLERANCE = 1e-9
# lightgbm, hist_gb, linear, naive_bayes, knn, mlp, random_forest, extra_trees, svm, bag, boost; the `boost` extra's
# XGBoost and CatBoost have their own scorers and tests (tests/test_boost.py)
FAMILIES = [f for f in ZOO if f not in ("xgboost", "catboost")]
TASKS = ("binary", "multiclass", "regression")
DEMO_TARGETS = {"binary": "churn", "multiclass": "internet_service", "regression": "tenure_months"}
SHARED = {"binary": "titanic", "multiclass": "penguins", "regression": "winequality_red"}
SLOW_PER_ROW = {"knn", "svm"}  # scikit-learn's own distance and kernel code: not held to the 1 ms of the rest


def encoded(X: pd.DataFrame) -> np.ndarray:
    """The encoded matrix: the cleaned columns in order as float64, a category as its code."""
    return np.column_stack([X[c].cat.codes.to_numpy(np.float64) if isinstance(X[c].dtype, pd.CategoricalDtype)
                            else X[c].to_numpy(np.float64) for c in X])


def layout(X: pd.DataFrame) -> list:
    return [(c, list(X[c].cat.categories) if isinstance(X[c].dtype, pd.CategoricalDtype) else None) for c in X]


class Case:
    """A table cleaned for a task: the training rows, the class codes, and held-out rows through the same cleaner."""

    def __init__(self, df: pd.DataFrame, target: str, task: str):
        df = df.sample(min(len(df), 800), random_state=0)
        cut = int(len(df) * 0.75)
        c = clean(df.iloc[:cut], target, task=task)
        self.task, self.X, self.columns = task, c.X, layout(c.X)
        self.y, classes = encode_target(c.y, task)
        self.k = len(classes) if classes else 0
        self.test = c.cleaner.transform(df.iloc[cut:].drop(columns=[target]))
        self.matrix = encoded(self.test)

    def fit(self, family: str, params: dict | None = None):
        return get_model(family).make(self.task, dict(params or {}), n_jobs=1).fit(self.X, self.y)

    def scorer(self, est):
        return compile_scorer(est, self.columns, self.task, self.k)

    def assert_same(self, est, test: pd.DataFrame | None = None):
        """The scorer on the encoded rows equals ``predict_scores`` on the cleaned rows: all of them and the first alone."""
        test = self.test if test is None else test
        score, matrix = self.scorer(est), encoded(test)
        for rows in (slice(None), slice(0, 1)):
            want = predict_scores(est, test.iloc[rows], self.task, self.k)
            got = score(matrix[rows])
            assert got.shape == want.shape
            assert np.abs(got - want).max() <= TOLERANCE


@pytest.fixture(autouse=True)
def one_thread():
    """Fit and score on one thread, as a worker does: OpenMP's threads fight over a shared machine's cores."""
    with threadpool_limits(1):
        yield


@lru_cache(maxsize=None)
def demo_case(task: str) -> Case:
    return Case(load("demo", n_rows=800), DEMO_TARGETS[task], task)


@lru_cache(maxsize=None)
def demo_model(family: str, task: str):
    return demo_case(task).fit(family)


def family_task_pairs():
    return [pytest.param(f, t, id=f"{f}-{t}") for f in FAMILIES for t in TASKS if t in get_model(f).tasks]


@pytest.fixture(scope="module")
def shared_cases(datasets, manifest):
    return {task: Case(load(datasets / manifest[name]["file"]), manifest[name]["target"], task)
            for task, name in SHARED.items()}


@pytest.mark.parametrize("family, task", family_task_pairs())
def test_every_zoo_family_scores_the_demo_matrix_as_its_pandas_path(family, task):
    demo_case(task).assert_same(demo_model(family, task))


@pytest.mark.parametrize("family, task", family_task_pairs())
def test_every_zoo_family_scores_the_shared_datasets_as_its_pandas_path(shared_cases, family, task):
    case = shared_cases[task]
    case.assert_same(case.fit(family))


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("family, params", [
    ("bag", {"base": "random_forest", "base_params": {"n_estimators": 10}}),
    ("bag", {"base": "lightgbm", "n_estimators": 5}),
    ("bag", {"base": "hist_gb", "n_estimators": 3}),
    ("boost", {"base": "linear", "n_estimators": 20}),
    ("boost", {"base": "random_forest", "base_params": {"n_estimators": 5}, "n_estimators": 10}),
    ("boost", {"base": "hist_gb", "n_estimators": 3}),
], ids=["bag-forests", "bag-lightgbm", "bag-hist_gb", "adaboost-linear", "adaboost-forests", "adaboost-hist_gb"])
def test_bagging_and_adaboost_over_other_bases_score_as_their_pandas_path(family, params, task):
    case = demo_case(task)
    case.assert_same(case.fit(family, params))


@pytest.mark.parametrize("task", TASKS)
def test_a_loaded_lightgbm_model_scores_as_its_pandas_path(task):
    trained = demo_model("lightgbm", task)
    demo_case(task).assert_same(LightGBMBooster(trained.booster_.model_to_string(), task).fit())


@pytest.mark.parametrize("family", ["lightgbm", "hist_gb", "random_forest", "extra_trees"])
@pytest.mark.parametrize("task", TASKS)
def test_missing_numbers_take_the_trees_missing_value_branches(family, task):
    case = demo_case(task)
    test = case.test.copy()
    numbers = [j for j, (_, cats) in enumerate(case.columns) if cats is None]
    test.iloc[:40, numbers[:3]] = np.nan
    test.iloc[40:60, numbers] = np.nan
    case.assert_same(demo_model(family, task), test)


@pytest.mark.parametrize("family", ["lightgbm", "hist_gb", "linear", "random_forest", "boost"])
def test_categories_the_model_never_saw_score_as_their_pandas_path(family):
    case = demo_case("binary")
    unseen = {c: [v for v in case.X[c].cat.categories if not (case.X[c] == v).any()]
              for c in case.X if isinstance(case.X[c].dtype, pd.CategoricalDtype)}
    unseen = {c: levels[0] for c, levels in unseen.items() if levels}
    assert unseen, "the demo's training rows use every level of every category column"
    test = case.test.copy()
    for c, level in unseen.items():
        test.loc[test.index[::3], c] = level
    case.assert_same(demo_model(family, "binary"), test)


@pytest.mark.parametrize("family", ["lightgbm", "hist_gb", "linear", "random_forest", "boost", "bag"])
def test_a_class_the_training_rows_lacked_scores_zero_as_in_the_pandas_path(family):
    case = demo_case("multiclass")
    keep = case.y != 1
    est = get_model(family).make("multiclass", n_jobs=1).fit(case.X[keep], case.y[keep])
    case.assert_same(est)
    assert np.all(case.scorer(est)(case.matrix)[:, 1] == 0)


@pytest.mark.parametrize("task", TASKS)
def test_a_stacks_meta_learner_has_a_scorer_of_its_own(task):
    """The stack's default meta-learner (RidgeCV, logistic regression) is compiled, not scored through
    scikit-learn's predict: that cost 0.07 ms a row, most of auto's latency limit, and left regression stacks out."""
    case = demo_case(task)
    F = np.random.default_rng(0).normal(size=(len(case.y), 3))
    meta = StackEnsemble([], task=task, n_classes=max(case.k, 2))._meta().fit(F, case.y)
    score = compile_scorer(meta, [(f"member_{i}", None) for i in range(3)], task, case.k)
    assert np.abs(score(F[:7]) - predict_scores(meta, F[:7], task, case.k)).max() <= TOLERANCE


def test_a_model_without_a_scorer_is_refused_by_name():
    case = demo_case("binary")
    numbers = case.X[[c for c, cats in case.columns if cats is None]]
    dummy = DummyClassifier().fit(numbers, case.y)
    with pytest.raises(TypeError, match="DummyClassifier"):
        compile_scorer(dummy, layout(numbers), "binary", 2)
    piped = get_model("linear").make("binary")
    piped.steps[-1] = ("model", LinearDiscriminantAnalysis())
    piped.fit(case.X, case.y)
    with pytest.raises(TypeError, match="LinearDiscriminantAnalysis"):
        compile_scorer(piped, case.columns, "binary", 2)


def test_a_matrix_of_the_wrong_width_is_refused():
    case = demo_case("binary")
    score = case.scorer(demo_model("linear", "binary"))
    with pytest.raises(ValueError, match="one column per cleaned column"):
        score(case.matrix[:, :-1])


def test_one_row_scores_in_under_a_millisecond():
    """Median of 200 single-row calls per family and task (and of 20 calls on 100 rows, reported): see them with -s."""
    def median(score, X, calls):
        spent = []
        for _ in range(calls):
            start = time.perf_counter()
            score(X)
            spent.append(time.perf_counter() - start)
        return float(np.median(spent))

    lines, slow = [f"{'family':14} {'task':11} {'1 row µs':>9} {'100 rows µs':>12}"], []
    for family in FAMILIES:
        for task in TASKS:
            if task not in get_model(family).tasks:
                continue
            case = demo_case(task)
            score = case.scorer(demo_model(family, task))
            hundred = np.resize(case.matrix, (100, case.matrix.shape[1]))
            one = median(score, case.matrix[:1], 200)
            lines.append(f"{family:14} {task:11} {one * 1e6:9.0f} {median(score, hundred, 20) * 1e6:12.0f}")
            if one >= 1e-3 and family not in SLOW_PER_ROW:
                slow.append(f"{family}/{task}: {one * 1e6:.0f} µs")
    print("\n" + "\n".join(lines))
    assert not slow, f"over 1 ms for one row: {', '.join(slow)}"
