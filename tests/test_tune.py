import time

import mlflow
import numpy as np
import pandas as pd
import pytest

from workbench.data import clean, load
from workbench.errors import ModelError, UnknownNameError
from workbench.models.space import Choice, Float, Int, When
from workbench.settings import get_settings
from workbench.tune import STRATEGIES, tune
from workbench.tune.search import UNSTARTED
from workbench.tune.strategies import GridSearch

TWO_WORKERS = get_settings(n_threads=2)  # the Dask path: a 2-worker LocalCluster


@pytest.fixture(scope="module")
def data():
    return clean(load("demo", n_rows=400), "churn")


def _params(result):
    return result.history.filter(like="param_").round(10).to_dict(orient="records")


@pytest.mark.parametrize("strategy", ["grid", "random", "tpe", "anneal", "genetic"])
def test_each_strategy_finds_a_scored_refit_candidate(data, strategy):
    r = tune("lightgbm", data.X, data.y, task="binary", strategy=strategy, max_trials=6, cv=3, log=False,
             settings=TWO_WORKERS)
    assert len(r.history) == 6 and (r.history["status"] == "ok").all()
    assert r.best_score == r.history["score"].max() and 0.5 < r.best_score <= 1
    assert r.candidate.name == f"lightgbm:{strategy}" and r.candidate.oof.shape == (len(data.X), 2)
    assert r.candidate.estimator.predict_proba(data.X.head(3)).shape == (3, 2)


@pytest.mark.parametrize("strategy", ["random", "tpe", "genetic"])
def test_the_same_seed_gives_the_same_trials_even_in_parallel(data, strategy):
    runs = [tune("linear", data.X, data.y, task="binary", strategy=strategy, max_trials=8, cv=3, seed=7, log=False,
                 settings=TWO_WORKERS) for _ in range(2)]
    assert _params(runs[0]) == _params(runs[1])
    other = tune("linear", data.X, data.y, task="binary", strategy=strategy, max_trials=8, cv=3, seed=8, log=False,
                 settings=TWO_WORKERS)
    assert _params(other) != _params(runs[0])


def test_a_failing_trial_is_recorded_and_the_search_goes_on(data):
    space = {"num_leaves": Choice(-5, 15, 31), "learning_rate": Float(0.05, 0.2)}
    r = tune("lightgbm", data.X, data.y, task="binary", strategy="random", space=space, max_trials=8, cv=3, log=False,
             settings=TWO_WORKERS)
    failed = r.history[r.history["status"] == "failed"]
    assert len(failed) and failed["error"].str.contains("num_leaves").all() and len(r.history) == 8
    assert r.best_params["num_leaves"] in {15, 31}


def test_the_time_budget_is_kept_within_a_few_seconds(data):
    space = {"n_estimators": Int(300, 400)}
    t0 = time.time()
    r = tune("random_forest", data.X, data.y, task="binary", strategy="random", space=space, max_trials=100,
             time_budget=4, cv=5, log=False, settings=TWO_WORKERS)
    assert time.time() - t0 < 4 + 10 and r.stopped == "time budget" and len(r.history) < 100


def test_a_trial_expected_past_the_deadline_on_a_large_table_is_not_started():
    """Its first fold would run past the end of the search (a fold cannot be stopped in this process)."""
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(20_000, 8)), columns=[f"x{i}" for i in range(8)])
    y = pd.Series(X.sum(axis=1) + rng.normal(size=len(X)))
    with pytest.raises(ModelError, match="no trial of random_forest finished.*expected to take .* not started"):
        tune("random_forest", X, y, task="regression", strategy="random", space={"n_estimators": Int(400, 500)},
             max_trials=3, cv=2, time_budget=1.0, log=False, parallel=False)


def test_a_search_whose_trials_are_all_expected_past_the_deadline_stops_after_a_few():
    """Each trial not started still cost its probe: after UNSTARTED in a row the search stops, and the time left
    goes to what follows (auto: the next family's tuning)."""
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(20_000, 8)), columns=[f"x{i}" for i in range(8)])
    y = pd.Series(X.sum(axis=1) + rng.normal(size=len(X)))
    with pytest.raises(ModelError, match=f"{UNSTARTED} trials in a row expected to run over the time left"):
        tune("random_forest", X, y, task="regression", strategy="random", space={"n_estimators": Int(400, 500)},
             max_trials=50, cv=2, time_budget=5.0, log=False, parallel=False)


def test_early_stop_ends_a_search_that_stalls(data):
    r = tune("naive_bayes", data.X, data.y, task="binary", strategy="random", max_trials=40, early_stop=3, cv=3,
             space={"var_smoothing": Float(1e-12, 1e-11, log=True)}, log=False)
    assert r.stopped.startswith("early stop") and len(r.history) < 40


def test_grid_discretizes_ranges_and_keeps_conditions():
    space = {"a": Float(1, 100, log=True), "freq": Choice(0, 1), "sub": When("freq", 1, Float(0.5, 1.0))}
    points = GridSearch(space, resolution=3, max_trials=100).points
    assert sorted({p["a"] for p in points}) == pytest.approx([1, 10, 100])
    assert all(("sub" in p) == (p["freq"] == 1) for p in points) and len(points) == 3 * (1 + 3)


def test_conditional_parameters_only_appear_when_their_parent_allows(data):
    r = tune("lightgbm", data.X, data.y, task="binary", strategy="tpe", max_trials=10, cv=2, log=False)
    for _, row in r.history.iterrows():
        assert np.isnan(row["param_subsample"]) == (row["param_subsample_freq"] == 0)


def test_trials_are_logged_as_mlflow_child_runs(data):
    r = tune("linear", data.X, data.y, task="binary", strategy="random", max_trials=4, cv=2)
    children = mlflow.search_runs(filter_string=f"tags.mlflow.parentRunId = '{r.run_id}'", experiment_names=["workbench"])
    assert len(children) == 4 and set(children["status"]) == {"FINISHED"}
    figs = r.figures()
    assert len(figs["history"].data[0].x) == 4 and len(figs["parallel"].data[0].dimensions) == 2


@pytest.mark.parametrize("kwargs,needle", [
    ({"strategy": "bayes"}, "Valid names: grid, random, tpe, anneal, genetic"),
    ({"space": {}}, "search space is empty"),
    ({"space": {"C": Float(10, 1)}}, "range [10, 1] is empty"),
    ({"space": {"C": Float(0, 1, log=True)}}, "log-scale range must be positive"),
    ({"time_budget": 0}, "positive number of seconds"),
])
def test_bad_tuning_input_is_one_clear_error(data, kwargs, needle):
    with pytest.raises((ModelError, UnknownNameError), match=needle.replace("[", r"\[").replace("]", r"\]")):
        tune("linear", data.X, data.y, task="binary", log=False, **kwargs)


def test_adding_a_strategy_is_one_registration(data):
    from workbench.tune.strategies import RandomSearch

    STRATEGIES.register("my_random", RandomSearch)
    try:
        r = tune("linear", data.X, data.y, task="binary", strategy="my_random", max_trials=2, cv=2, log=False)
        assert len(r.history) == 2
    finally:
        STRATEGIES._items.pop("my_random")


def test_tune_cli_prints_json(tmp_path):
    import json

    from test_cli import workbench

    p = workbench("tune", "--data", "demo:300", "--target", "churn", "--model", "linear", "--strategy", "genetic",
                  "--trials", "4", "--cv", "2", "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["trials"] == 4 and out["strategy"] == "genetic" and out["run_id"]
    bad = workbench("tune", "--data", "demo:300", "--target", "churn", "--strategy", "bayes")
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith("error: unknown strategy 'bayes'")
