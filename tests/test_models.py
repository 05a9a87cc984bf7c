import importlib

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from workbench import compute
from workbench.data import clean
from workbench.errors import ModelError, UnknownNameError
from workbench.models import compare, models_for
from workbench.models.compare import cross_validate, make_folds
from workbench.models.metrics import roc_auc, score
from workbench.data.task import detect_task
from workbench.settings import get_settings
from workbench.tune import tune


@pytest.fixture(scope="module")
def cleaned(demo_df):
    return clean(demo_df, "churn")


def test_task_is_detected_from_the_target():
    assert detect_task(pd.Series(["a", "b", "a"])) == "binary"
    assert detect_task(pd.Series([0, 1, 1])) == "binary"
    assert detect_task(pd.Series(["x", "y", "z"])) == "multiclass"
    assert detect_task(pd.Series(np.linspace(0, 1, 50))) == "regression"


def test_leaderboard_ranks_every_model_with_out_of_fold_predictions(trained, demo_df):
    lb = trained.leaderboard
    frame = lb.to_frame()
    assert list(frame["model"]) == sorted(frame["model"], key=lambda m: -lb[m].cv["roc_auc"])
    assert {"roc_auc", "log_loss", "f1", "fit_time_s", "predict_time_s"} <= set(frame.columns)
    codes = pd.Categorical(trained.cleaned.y, categories=lb.classes).codes
    for c in lb.candidates:
        assert c.status == "ok" and c.oof.shape == (len(trained.cleaned.X), 2)
        assert np.allclose(c.oof.sum(axis=1), 1)
        assert score("binary", codes, c.oof)["roc_auc"] == pytest.approx(c.cv["roc_auc"], abs=0.03)
    assert trained.test_metrics["roc_auc"] > 0.7


def test_trained_model_scores_raw_rows(trained, demo_df):
    pred = trained.model.predict_frame(demo_df.drop(columns="churn").head(50))
    assert list(pred.columns) == ["prediction", "No", "Yes"] and np.allclose(pred[["No", "Yes"]].sum(axis=1), 1)
    assert set(pred["prediction"]) <= {"No", "Yes"}


def test_all_zoo_models_run_on_multiclass_and_regression():
    from workbench.data import load

    iris = clean(load("sklearn:iris"), "target")
    lb = compare(iris.X, iris.y, task="multiclass", folds=3, progress=False)
    assert {c.name for c in lb.candidates} == set(models_for("multiclass")) and all(c.status == "ok" for c in lb.candidates)
    assert lb.best.cv["accuracy"] > 0.9 and lb.metric == "log_loss"
    diab = clean(load("sklearn:diabetes"), "target")
    lb = compare(diab.X, diab.y, task="regression", models=["lightgbm", "linear", "mlp"], folds=3, progress=False)
    assert lb.best.name == "linear" and lb.best.cv["r2"] > 0.4 and lb.best.oof.ndim == 1


def test_a_tight_budget_stops_slow_models_and_keeps_the_rest(cleaned):
    slow = {"n_estimators": 3000}
    lb = compare(cleaned.X, cleaned.y, task="binary", models=["naive_bayes", "random_forest", "extra_trees"], folds=5,
                 time_budget=4.0, params={"random_forest": slow, "extra_trees": slow}, progress=False)
    statuses = {c.name: c.status for c in lb.candidates}
    assert statuses["naive_bayes"] == "ok"
    assert statuses["random_forest"] in {"timeout", "cancelled"} and statuses["extra_trees"] in {"timeout", "cancelled"}
    assert all(c.error and c.oof is None for c in lb.candidates if c.status != "ok")


def test_a_model_expected_over_its_time_on_a_large_table_is_not_started():
    """A fit on an eighth of a fold's rows tells that the forest's folds cannot fit its share of the budget: without
    the probe its first fold ran to the end and was thrown away."""
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(20_000, 8)), columns=[f"x{i}" for i in range(8)])
    y = pd.Series(X.sum(axis=1) + rng.normal(size=len(X)))
    lb = compare(X, y, task="regression", models=["linear", "random_forest"], folds=2, time_budget=4.0,
                 params={"random_forest": {"n_estimators": 300, "min_samples_leaf": 1}}, parallel=False, progress=False)
    assert lb["linear"].status == "ok"  # the first model has no estimate: it runs while the budget lasts
    forest = lb["random_forest"]
    assert forest.status == "timeout" and "not started" in forest.error and "expected to take" in forest.error
    assert np.isnan(forest.fit_time) and forest.oof is None


def test_a_model_put_off_for_its_expected_time_runs_once_the_cheaper_ones_are_done(monkeypatch):
    """Expected over its share of the time left, the forest waits for the cheaper ones and then has the rest of the
    budget: it is not lost for being listed early. The expectation is given (the probe's own test is above): the
    order must not hang on how fast this machine is."""
    comparing = importlib.import_module("workbench.models.compare")  # the module, not the package's function

    monkeypatch.setattr(comparing, "expected_fold", lambda spec, *_: 10.0 if spec.name == "random_forest" else 0.0)
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(2_000, 4)), columns=[f"x{i}" for i in range(4)])
    y = pd.Series(X.sum(axis=1) + rng.normal(size=len(X)))
    order = []
    lb = compare(X, y, task="regression", models=["linear", "random_forest"], portfolio=True, folds=2, time_budget=30,
                 params={"random_forest": {"n_estimators": 20}}, parallel=False, progress=False,
                 on_result=lambda c, _: order.append(c.name))
    # 20 s expected: over half the time left as the second of five configurations, within all of it in the last
    # round; its portfolio configuration (larger) waits with it
    assert order[-2:] == ["random_forest", "random_forest:p1"] and len(order) == 5
    assert all(lb[name].status == "ok" and lb[name].oof is not None for name in order)


def test_models_put_off_run_cheapest_first_each_with_all_the_time_left(monkeypatch):
    """Ten configurations each expected to take 8 s (two folds of 4 s): a share of the first round's 20 s turns most
    away; together they take a few real seconds, so the last round, with no share, runs every one of them."""
    comparing = importlib.import_module("workbench.models.compare")

    monkeypatch.setattr(comparing, "expected_fold", lambda spec, *_: 0.0 if spec.name == "naive_bayes" else 4.0)
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(2_000, 4)), columns=[f"x{i}" for i in range(4)])
    y = pd.Series(np.where(X.sum(axis=1) + rng.normal(size=len(X)) > 0, "yes", "no"))
    lb = compare(X, y, task="binary", models=["naive_bayes", "linear", "knn", "random_forest"], portfolio=True,
                 folds=2, time_budget=20, params={"random_forest": {"n_estimators": 20}}, parallel=False,
                 progress=False)
    put_off = [c for c in lb.candidates if "over its time" in c.error]
    assert len(lb.candidates) >= 10 and not put_off, [(c.name, c.error) for c in put_off]
    assert all(c.status == "ok" for c in lb.candidates)


def test_a_model_that_cannot_finish_its_folds_stops_after_the_first():
    """A model whose folds are not all done in its time is thrown away: its first fold tells what the others cost, so
    it stops there rather than after the third (each of them wasted)."""
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(3_000, 8)), columns=[f"x{i}" for i in range(8)])
    y = X.sum(axis=1).to_numpy() + rng.normal(size=len(X))
    split = make_folds(pd.Series(y), "regression", 5)
    forest = {"n_estimators": 60, "min_samples_leaf": 1}
    one = cross_validate(X, y, "random_forest", forest, "regression", split[:1], 1, 0)
    fold = one.fit_time + one.predict_time
    # time for three and a half folds: one fold at a time it ran three, then stopped
    cand = cross_validate(X, y, "random_forest", forest, "regression", split, 1, 0, timeout=3.5 * fold)
    assert cand.status == "timeout" and cand.error.startswith("stopped after 1 of 5 folds"), cand.error
    assert cand.oof is None


def test_a_family_too_slow_to_serve_is_not_tried_in_its_other_configurations(cleaned):
    lb = compare(cleaned.X, cleaned.y, task="binary", models=["linear", "knn"], portfolio=True, folds=3,
                 progress=False, parallel=False, max_latency_ms=0.001)
    assert lb["knn"].status == "skipped" and lb["knn"].fit_time > 0  # its defaults ran a fold, measured
    for name in ("knn:p1", "knn:p2"):
        assert lb[name].status == "skipped" and lb[name].error.startswith("not tried: knn's defaults")
        assert np.isnan(lb[name].fit_time) and lb[name].latency_ms == lb["knn"].latency_ms


def test_a_model_too_slow_to_serve_stops_after_its_first_fold(cleaned):
    """Under a latency limit, the folds after the first would buy a candidate that cannot be chosen."""
    lb = compare(cleaned.X, cleaned.y, task="binary", models=["linear", "random_forest"], folds=5, progress=False,
                 params={"random_forest": {"n_estimators": 300}}, max_latency_ms=0.001)
    forest = lb["random_forest"]
    assert forest.status == "skipped" and "after its first fold" in forest.error and forest.latency_ms > 0.001
    assert forest.oof is None and forest.fit_time > 0
    allowed, slow = lb.within_latency(0.001)
    assert "random_forest" in slow and "its other folds not run" in slow["random_forest"]
    assert all(c.name != "random_forest" for c in allowed)


def test_a_failing_model_is_recorded_and_the_others_go_on(cleaned):
    lb = compare(cleaned.X, cleaned.y, task="binary", models=["linear", "lightgbm"], folds=3, progress=False,
                 params={"lightgbm": {"num_leaves": -5}})
    assert lb["lightgbm"].status == "failed" and "num_leaves" in lb["lightgbm"].error
    assert lb.best.name == "linear"


def test_unknown_model_and_wrong_task_are_clear_errors(cleaned):
    with pytest.raises(UnknownNameError, match=r"Did you mean .xgboost.\?.*Valid names: lightgbm"):
        compare(cleaned.X, cleaned.y, task="binary", models=["xgbost"])
    # the models that do the task, those asked for by name too (CatBoost is not in the defaults)
    with pytest.raises(ModelError, match="does not do regression. Models for regression: lightgbm.*catboost"):
        compare(cleaned.X, cleaned.y.eq("Yes").astype(float), task="regression", models=["naive_bayes"])
    with pytest.raises(ModelError, match="does not do regression"):
        tune("naive_bayes", cleaned.X, cleaned.y.eq("Yes").astype(float), task="regression", log=False)
    with pytest.raises(ModelError, match="Valid metrics"):
        compare(cleaned.X, cleaned.y, task="binary", metric="rmse")


def test_thread_budget_never_exceeds_the_cores():
    s = get_settings(n_threads=2)
    assert compute.threads_per_task(9, s) == 1 and compute.threads_per_task(1, s) == 2
    s = get_settings(n_threads=8)
    assert compute.threads_per_task(3, s) * 3 <= 8


def test_metrics_cover_each_task():
    y = np.array([0, 1, 1, 0])
    p = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.45, 0.55]])
    m = score("binary", y, p)
    assert m["accuracy"] == 0.75 and m["roc_auc"] == 1.0 and m["recall"] == 1.0
    r = score("regression", [1, 2, 4], [1, 2, 3])
    assert r["mae"] == pytest.approx(1 / 3) and r["rmse"] == pytest.approx(np.sqrt(1 / 3))


def test_the_portfolio_comes_after_the_defaults_and_early_stopping_learns_the_trees(cleaned):
    from workbench.models.compare import refit
    from workbench.models.zoo import EARLY_STOP, portfolio

    entries = portfolio("binary", ["lightgbm", "linear"])
    assert [e[0] for e in entries[:2]] == ["lightgbm:p1", "linear:p1"]  # in rounds: every family's first, then ...
    assert all(e[0] != "linear:p2" or "class_weight" in e[2] for e in entries)
    assert not any("class_weight" in p for _, _, p in portfolio("regression", ["lightgbm", "linear"]))
    lb = compare(cleaned.X, cleaned.y, task="binary", models=["lightgbm"], folds=3, portfolio=True, progress=False)
    assert {c.name for c in lb.candidates} == {"lightgbm"} | {e[0] for e in portfolio("binary", ["lightgbm"])}
    stopped = lb["lightgbm:p1"]
    # each fold stopped where its held-out rows stopped improving; the refit repeats the folds' mean
    assert stopped.status == "ok" and EARLY_STOP not in stopped.params and 1 <= stopped.params["n_estimators"] < 2000
    assert refit(stopped, cleaned.X, cleaned.y).n_estimators == stopped.params["n_estimators"]


def test_a_model_asked_for_alone_runs_while_the_budget_lasts(cleaned):
    from workbench.models.compare import fair_share

    assert fair_share(0, 1, 1) is None and fair_share(1, 2, 2) is None  # the first on each worker: the deadline only
    assert fair_share(5, 10, 1) == pytest.approx(0.4) and fair_share(8, 30, 1) == pytest.approx(0.25)
    lb = compare(cleaned.X, cleaned.y, task="binary", models=["random_forest"], folds=5, time_budget=120,
                 params={"random_forest": {"n_estimators": 300}}, progress=False)
    assert lb["random_forest"].status == "ok"


def test_roc_auc_is_scikit_learns_with_ties():
    rng = np.random.default_rng(3)
    for n in (7, 500, 20_000):
        y = (rng.random(n) < 0.1).astype(int)
        y[:2] = (0, 1)
        p = np.round(rng.random(n) + 0.2 * y, 2)  # ties on purpose: they count half
        assert abs(roc_auc(y, p) - roc_auc_score(y, p)) < 1e-12
