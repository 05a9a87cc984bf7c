"""Contributions, explanations and the service's reasons: bias + contributions equal the model's output for every
kind and task, one number per raw business column, and the service answers what the library answers."""
import math

import httpx
import numpy as np
import pandas as pd
import pytest

from servers import Server
from workbench.compress.estimators import CompactBooster
from workbench.compress.lgbtext import ModelText, pack
from workbench.data import clean, load
from workbench.decompose.core import decompose
from workbench.ensemble.estimators import StackEnsemble, WeightedEnsemble
from workbench.models import contrib
from workbench.models.compare import encode_target, predict_scores
from workbench.explanation import explain, reasons
from workbench.models.trained import TrainedModel
from workbench.models.zoo import get_model
from workbench.registry.package import load_package, package_result

TARGETS = {"binary": "churn", "multiclass": "contract", "regression": "monthly_charges"}
EXACT = ["lightgbm", "hist_gb", "linear", "random_forest", "extra_trees", "boost"]
ESTIMATED = ["knn", "mlp", "svm", "naive_bayes"]


@pytest.fixture(scope="module")
def demo():
    return load("demo", n_rows=300)


@pytest.fixture(scope="module")
def setups(demo):
    """Per task: the cleaned table, class codes, the encoder's layout with training rows, and 15 rows to explain."""
    out = {}
    for task, target in TARGETS.items():
        c = clean(demo, target, task=task)
        codes, classes = encode_target(c.y, task)
        enc = c.cleaner.encoder()
        raw = demo.drop(columns=[target])
        out[task] = (c, codes, classes, contrib.Layout.of(enc, enc.frame(raw)), enc.frame(raw.head(15)))
    return out


def _check(est, setup, task, name=""):
    """The explainer of ``est``: bias + contributions equal its kind's scorer's answer on the stated scale."""
    c, codes, classes, layout, X = setup
    k = len(classes) if task != "regression" else 0
    model = TrainedModel(c.cleaner, est, task, classes, name)
    ex = contrib.explainer(est, layout, task, k)
    phi = ex(X)
    assert phi.shape == (len(X), len(layout.names) + 1, k if task == "multiclass" else 1)
    assert contrib.gap(phi, model.scorer(X), ex.scale, task) <= 1e-6, (name, task, ex.scale)
    return ex, phi


@pytest.mark.parametrize("task", list(TARGETS))
@pytest.mark.parametrize("name", EXACT + ESTIMATED)
def test_contributions_add_up_to_the_output_for_every_zoo_model(setups, task, name):
    if task not in get_model(name).tasks:
        pytest.skip(f"{name} does not do {task}")
    c, codes, *_ = setups[task]
    ex, _ = _check(get_model(name).make(task).fit(c.X, codes), setups[task], task, name)
    assert ex.exact == (name in EXACT), ex.method
    assert ex.scale == ("value" if task == "regression" else "probability" if name in ESTIMATED + ["random_forest", "extra_trees"]
                        else "log-odds" if task == "binary" else "margin")


@pytest.mark.parametrize("task", list(TARGETS))
def test_ensembles_stacks_decomposed_and_compressed_models_add_up_exactly(setups, task):
    c, codes, classes, layout, X = setups[task]
    k = len(classes) if task != "regression" else 0
    members = [(n, get_model(n).make(task).fit(c.X, codes)) for n in ("lightgbm", "linear", "random_forest")]
    oof = [predict_scores(e, c.X, task, k) for _, e in members]
    weighted = WeightedEnsemble.from_fitted(members, [0.5, 0.3, 0.2], task=task, n_classes=k or 2)
    stack = StackEnsemble.from_oof(members, oof, c.X, codes, task=task, n_classes=k or 2)
    lgb = members[0][1]
    int8 = CompactBooster(pack(ModelText(lgb.booster_.model_to_string()), "int8"), task).fit()
    exact = [weighted, stack]
    for m, parts in ((lgb, 2), (members[2][1], 2), (weighted, 3), (stack, 3)):
        exact.append(decompose(TrainedModel(c.cleaner, m, task, classes, "m"), parts).estimator)
    for est in exact:
        ex, _ = _check(est, setups[task], task, type(est).__name__)
        assert ex.exact, ex.method
    ex, _ = _check(int8, setups[task], task)  # the compact layout keeps no node counts: estimated, the sum exact
    assert not ex.exact
    if task != "regression":  # a hard vote is not linear in its members: estimated, its sum still exact
        ex, _ = _check(WeightedEnsemble.from_fitted(members, [0.5, 0.3, 0.2], task=task, n_classes=k, voting="hard"),
                       setups[task], task)
        assert not ex.exact


def test_model_agnostic_estimate_is_exact_where_shapley_values_are_known(setups):
    """For a linear regression the Shapley value of a column is coefficient × (value − mean) whatever the order:
    the permutation estimate must give it, with zero standard error."""
    c, codes, classes, layout, X = setups["regression"]
    est = get_model("linear").make("regression").fit(c.X, codes)
    few = contrib.Layout(layout.columns, layout.names, layout.groups, layout.background[:contrib.BACKGROUND_ROWS])
    exact = contrib.explainer(est, few, "regression", 0)
    estimated = contrib.agnostic(est, few, "regression", 0)
    phi, se = estimated.estimate(X)
    np.testing.assert_allclose(phi, exact(X), atol=1e-9)
    assert np.abs(se).max() <= 1e-9


def test_contributions_are_one_number_per_raw_column(setups):
    """A date's four parts, a text's scores and a category's one-hot indicators each come back as one column."""
    c, codes, classes, layout, X = setups["binary"]
    assert {"signup_date", "ticket_notes", "contract"} <= set(layout.names)
    assert len(layout.groups[layout.names.index("signup_date")]) == 4
    assert len(layout.names) < len(layout.columns)
    est = get_model("linear").make("binary").fit(c.X, codes)
    phi = contrib.explainer(est, layout, "binary", 2)(X)
    coef = est[-1].coef_[0]
    Z = est[:-1].transform(c.cleaner.encoder().to_frame(X))
    mean = est[:-1].transform(c.cleaner.encoder().to_frame(layout.background)).mean(axis=0)
    names = list(est[:-1].get_feature_names_out())
    onehot = [i for i, n in enumerate(names) if n.startswith("contract_")]
    np.testing.assert_allclose(phi[:, layout.names.index("contract"), 0], (Z[:, onehot] - mean[onehot]) @ coef[onehot],
                               atol=1e-12)


def test_explain_gives_drivers_dependence_and_a_figure(demo, setups):
    c, codes, classes, _, _ = setups["binary"]
    model = TrainedModel(c.cleaner, get_model("lightgbm").make("binary").fit(c.X, codes), "binary", classes, "lightgbm")
    e = explain(model, demo, ice_rows=400)
    frame = e.to_frame()
    assert list(frame.columns[:2]) == ["column", "importance"] and set(frame["column"]) == set(c.cleaner.encoder().required)
    assert frame["importance"].is_monotonic_decreasing and frame["share"].sum() == pytest.approx(1)
    raw = demo.loc[e.contributions.index]
    logodds = np.log(model.predict_proba(raw)[:, 1] / model.predict_proba(raw)[:, 0])
    np.testing.assert_allclose(e.contributions.sum(axis=1), logodds, atol=1e-6)
    top = e.dependence["column"].iloc[0]
    d = e.dependence[e.dependence["column"] == top]
    pdp, ice = d[d["row"] < 0], d[d["row"] >= 0]  # every explained row drawn: the mean of the ICE lines is the PDP
    np.testing.assert_allclose(ice.groupby("value", sort=False)["output"].mean().to_numpy(), pdp["output"].to_numpy())
    assert "log-odds" in e._repr_html_() and "contract" in e._repr_html_()
    assert len(e.figure().data) == 1 and len(e.figure(top).data) == len(e.contributions) + 1


@pytest.fixture(scope="module")
def package(demo, tmp_path_factory):
    from workbench import train

    r = train(load("demo", n_rows=600), "churn", models=["lightgbm"], folds=3, log=False, progress=False, time_budget=60)
    return package_result(r, tmp_path_factory.mktemp("explain") / "churn", name="churn")


@pytest.fixture(scope="module")
def server(package):
    s = Server("--package", package, "--no-log")
    yield s
    s.stop()


def _records(df: pd.DataFrame) -> list[dict]:
    return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
            for r in df.to_dict(orient="records")]


def test_service_reasons_equal_the_library_reasons(server, package, demo):
    rows = demo.drop(columns=["churn"]).head(8)
    r = httpx.post(f"{server.url}/v1/models/churn/predict?explain=3", json=_records(rows), timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    pkg = load_package(package)
    assert [p["reasons"] for p in body["predictions"]] == reasons(pkg, rows, 3)
    assert body["explanation"]["scale"] == "log-odds" and body["explanation"]["exact"]
    first = body["predictions"][0]["reasons"]
    assert len(first) == 3 and abs(first[0]["contribution"]) >= abs(first[2]["contribution"])
    assert first[0]["value"] == _records(rows.head(1))[0][first[0]["column"]]
    assert all(w["direction"] == ("up" if w["contribution"] >= 0 else "down") for w in first)
    plain = httpx.post(f"{server.url}/v1/models/churn/predict", json=_records(rows.head(1))).json()
    assert "reasons" not in plain["predictions"][0] and "explanation" not in plain
    bad = httpx.post(f"{server.url}/v1/models/churn/predict?explain=many", json=_records(rows.head(1)))
    assert bad.status_code == 422 and "whole number" in bad.json()["error"]


def test_v2_answers_contributions_when_asked(server, package, demo):
    rows = demo.drop(columns=["churn", "churn_reason"]).head(4)
    recs = _records(rows)
    pkg = load_package(package)
    types = {c.name: ("FP64" if c.type == "number" else "BYTES") for c in pkg.schema}
    inputs = []
    for col in types:  # a number column with text numbers ("2,691.63") goes as BYTES, as V2 allows
        data = [r[col] for r in recs]
        text = types[col] == "BYTES" or any(isinstance(v, str) for v in data)
        inputs.append({"name": col, "shape": [len(recs)], "datatype": "BYTES" if text else "FP64",
                       "data": [None if v is None else str(v) for v in data] if text else data})
    asked = httpx.post(f"{server.url}/v2/models/churn/infer",
                       json={"inputs": inputs, "outputs": [{"name": "probabilities"}, {"name": "contributions"}]}).json()
    out = {o["name"]: o for o in asked["outputs"]}
    got = np.array(out["contributions"]["data"]).reshape(out["contributions"]["shape"])
    proba = np.array(out["probabilities"]["data"]).reshape(-1, 2)
    np.testing.assert_allclose(got.sum(axis=1), np.log(proba[:, 1] / proba[:, 0]), atol=1e-6)
    assert out["contributions"]["parameters"]["scale"] == "log-odds"
    ex = contrib.RowExplainer(pkg.model, pkg.sample)
    np.testing.assert_allclose(got, ex.contributions(ex.encoder.frame(rows))[:, :, 0], atol=1e-12)
    default = httpx.post(f"{server.url}/v2/models/churn/infer", json={"inputs": inputs}).json()
    assert "contributions" not in {o["name"] for o in default["outputs"]}


def test_the_pair_that_acts_together_is_found_first():
    """y = 3·a·b + c: only a and b interact (Friedman's H near 1); c adds on its own."""
    from workbench import train

    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.uniform(-1, 1, 1500), "b": rng.uniform(-1, 1, 1500), "c": rng.uniform(-1, 1, 1500)})
    df["y"] = 3 * df.a * df.b + df.c + 0.05 * rng.normal(size=len(df))
    r = train(df, "y", models=["lightgbm"], folds=3, log=False, progress=False, task="regression")
    pairs = explain(r, df).interactions
    top = pairs.iloc[0]
    assert {top["column_a"], top["column_b"]} == {"a", "b"} and top["h"] > 0.8
    assert pairs["h"].iloc[1:].max() < 0.3, pairs
    assert "act together" in explain(r, df)._repr_html_()
