"""CatBoost and XGBoost: zoo families and model kinds that round-trip, score and explain exactly."""
import importlib.util
import subprocess
import sys

import numpy as np
import pytest

from conftest import need
from workbench import kinds
from workbench.compress import compress
from workbench.data import clean, load
from workbench.data.encode import matrix_of
from workbench.models.compare import compare, encode_target, predict_scores
from workbench.models.contrib import Layout, explainer, gap
from workbench.models.trained import TrainedModel
from workbench.models.zoo import EARLY_STOP, get_model, models_for


@pytest.fixture(autouse=True, scope="module")
def boost_extra():
    """The `boost` extra is part of `.[all,test]`: missing, these tests skip locally and fail in CI."""
    for module in ("catboost", "xgboost"):
        need(importlib.util.find_spec(module) is not None, f"the `boost` extra ({module}) is not installed")


FAMILIES = ["catboost", "xgboost"]
TASKS = ["binary", "multiclass", "regression"]


@pytest.fixture(scope="module")
def tables():
    """The demo table cleaned for each task: churn (two classes), contract (three), monthly charges (a number)."""
    raw = load("demo", n_rows=400)
    out = {}
    for task, target in (("binary", "churn"), ("multiclass", "contract"), ("regression", "monthly_charges")):
        c = clean(raw, target, task=task)
        y, classes = encode_target(c.y, task)
        out[task] = (c, y, 0 if task == "regression" else len(classes))
    return out


@pytest.fixture(scope="module")
def fitted(tables):
    """Each family fitted on each task with early stopping on an inner hold-out."""
    out = {}
    for family in FAMILIES:
        spec = get_model(family)
        for task in TASKS:
            c, y, k = tables[task]
            params = {"n_estimators": 300, EARLY_STOP: 20}
            est = spec.make(task, params, n_jobs=2)
            learned = spec.fit(est, params, c.X, y)
            out[family, task] = est, learned
    return out


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("family", FAMILIES)
def test_a_written_and_read_model_predicts_identically(family, task, tables, fitted, tmp_path):
    c, y, k = tables[task]
    est, _ = fitted[family, task]
    spec = kinds.write(est, tmp_path, "model", task)
    assert spec["format"] == family and spec["file"].endswith(".cbm" if family == "catboost" else ".ubj")
    back = kinds.read(spec, tmp_path, task)
    assert np.array_equal(predict_scores(back, c.X, task, k), predict_scores(est, c.X, task, k))


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("family", FAMILIES)
def test_the_scorer_on_the_encoded_matrix_equals_predict_proba(family, task, tables, fitted):
    c, y, k = tables[task]
    est, _ = fitted[family, task]
    M, columns = matrix_of(c.X)
    score = kinds.scorer(est, columns, task, k)
    assert np.abs(score(M) - predict_scores(est, c.X, task, k)).max() <= 1e-9
    assert np.abs(score(M[:1]) - score(M)[:1]).max() <= 1e-9  # one row scores as it does among many


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("family", FAMILIES)
def test_contributions_sum_to_the_output(family, task, tables, fitted):
    c, y, k = tables[task]
    est, _ = fitted[family, task]
    encoder = c.cleaner.encoder()
    M, columns = matrix_of(c.X)
    ex = explainer(est, Layout.of(encoder), task, k)
    phi = ex(M[:80])
    assert ex.exact and "TreeSHAP" in ex.method
    assert phi.shape == (80, len(Layout.of(encoder).names) + 1, k if task == "multiclass" else 1)
    assert gap(phi, kinds.scorer(est, columns, task, k)(M[:80]), ex.scale, task) < 1e-9
    assert np.abs(phi[:, :-1, :]).sum() > 0  # the columns, not the bias, carry the differences


def test_xgboost_walked_by_the_workbench_agrees_with_its_own_predictor(tables, fitted):
    """The scorer walks XGBoost's trees itself (its own predictor costs ~70 µs a call): same splits, categories
    included, the sums in float64 against XGBoost's float32."""
    for task in TASKS:
        c, y, k = tables[task]
        est, _ = fitted["xgboost", task]
        M, _ = matrix_of(c.X)
        own = est.booster_.inplace_predict(M, predict_type="margin").reshape(len(M), -1)
        ours = est._margin(M).reshape(len(M), -1)
        assert np.abs(ours - own).max() <= 1e-5 * max(1.0, np.abs(own).max())


@pytest.mark.parametrize("task", TASKS)
def test_catboost_on_numbers_walked_by_the_workbench_agrees_with_its_own_predictor(task, tables):
    """On number columns the scorer walks CatBoost's oblivious trees itself; with category columns (target statistics)
    CatBoost's own predictor scores."""
    c, y, k = tables[task]
    numbers = c.X[[n for n in c.X if c.X[n].dtype != "category"]]
    est = get_model("catboost").make(task, {"n_estimators": 50}, n_jobs=2).fit(numbers, y)
    M, _ = matrix_of(numbers)
    own = est.booster_.predict(M.astype(np.float32), prediction_type="RawFormulaVal")
    assert np.abs(est._margin(M) - own).max() <= 1e-9 and est._walker is not None
    mixed = get_model("catboost").make(task, {"n_estimators": 50}, n_jobs=2).fit(c.X, y)
    mixed._margin(matrix_of(c.X)[0][:1])
    assert mixed._walker is None


@pytest.mark.parametrize("family", FAMILIES)
def test_early_stopping_learns_the_number_of_trees_a_refit_repeats(family, fitted):
    est, learned = fitted[family, "binary"]
    assert 1 <= learned["n_estimators"] < 300 and est.best_iteration_ == learned["n_estimators"]


def test_by_name_they_compare_with_their_portfolio_and_learn_their_trees(tables):
    c, y, k = tables["binary"]
    assert models_for("binary")[:2] == ["lightgbm", "catboost"] and "xgboost" not in models_for("binary")  # zoo.py
    board = compare(c.X, c.y, task="binary", models=["xgboost", "catboost"], folds=3, portfolio=True, parallel=False,
                    progress=False)
    done = {x.name: x for x in board.candidates if x.status == "ok"}
    assert {"xgboost", "catboost", "xgboost:p1", "catboost:p1"} <= set(done)
    assert all(EARLY_STOP not in x.params and x.params["n_estimators"] < 2000 for n, x in done.items() if ":p" in n)


@pytest.mark.parametrize("family", FAMILIES)
def test_a_category_never_seen_in_training_is_scored_not_refused(family, tables, fitted):
    c, y, k = tables["binary"]
    est, _ = fitted[family, "binary"]
    X = c.X.head(3).copy()
    col = next(n for n in X if X[n].dtype == "category")
    X[col] = X[col].cat.add_categories(["never seen"])
    X.loc[X.index[0], col] = "never seen"
    p = est.predict_proba(X)
    assert p.shape == (3, 2) and np.isfinite(p).all()


def test_a_missing_boost_extra_is_one_line_naming_it_and_leaves_the_rest_working():
    """Without the extra: the defaults leave the families out, every other kind still loads, and making one of the
    models or reading one from a package says in one line what to install."""
    code = ("import sys\nsys.modules['catboost'] = sys.modules['xgboost'] = None\n"
            "from workbench import kinds\nfrom workbench.models.zoo import get_model, models_for\n"
            "assert 'catboost' not in models_for('binary') and 'xgboost' not in models_for('binary')\n"
            "kinds.KINDS.load_all()\n"
            "for attempt in (lambda: get_model('xgboost').make('binary'),\n"
            "                lambda: kinds.read({'format': 'catboost', 'file': 'm.cbm'}, '.', 'binary')):\n"
            "    try:\n        attempt()\n    except Exception as exc:\n        print(type(exc).__name__, exc)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().split("\n")
    assert len(lines) == 2
    for line in lines:
        assert line.startswith("MissingExtra catboost is not installed") and "pip install 'aims-workbench[boost]'" in line


@pytest.mark.parametrize("family", FAMILIES)
def test_compression_prunes_iterations_and_skips_what_does_not_apply_with_a_reason(family):
    raw = load("demo", n_rows=500)
    fit_rows, valid = raw.iloc[:350], raw.iloc[350:]
    c = clean(fit_rows, "churn")
    y, classes = encode_target(c.y, "binary")
    model = TrainedModel(c.cleaner, get_model(family).make("binary", n_jobs=2).fit(c.X, y), "binary", classes, family)
    report = compress(model, valid, methods=["prune", "quantize", "compile"])
    assert {"quantize", "compile"} <= set(report.skipped)  # and after pruning, the same two, for the same reason
    assert all(type(model.estimator).__name__ in reason for reason in report.skipped.values())
    pruned = [v for v in report.variants if v.name == "prune:iterations"]
    assert pruned, report
    for v in pruned:  # fewer trees, scored and explained like the original
        assert v.model.estimator.best_iteration_ < model.estimator.best_iteration_
        assert v.model.predict_frame(valid.drop(columns=["churn"])).shape[0] == len(valid)
