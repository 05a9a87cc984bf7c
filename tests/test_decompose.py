"""Decomposition for real: every kind the zoo and the ensembles produce, split, stored, loaded, scored on Dask."""
import json
import os

import httpx
import numpy as np
import pytest

from test_cli import workbench
from workbench import train
from workbench.data import clean, load
from workbench.decompose import DecomposedModel, PartError, decompose, load_part, predict_parallel
from workbench.decompose.core import decompose_package, max_difference
from workbench.ensemble import ensemble
from workbench.errors import ModelError
from workbench.models.compare import compare
from workbench.models.trained import TrainedModel
from workbench.registry.package import PackageError, load_package, package_result


@pytest.fixture(scope="module")
def boards():
    """Leaderboards for a binary, a multiclass and a regression table (three fast families each)."""
    out = {}
    for key, source, target in [("binary", "demo:500", "churn"), ("multiclass", "sklearn:iris", "target"),
                                ("regression", "sklearn:diabetes", "target")]:
        df = load(source)
        c = clean(df, target)
        lb = compare(c.X, c.y, task=c.task, models=["lightgbm", "linear", "random_forest", "extra_trees"], folds=3,
                     progress=False)
        out[key] = (df, c, lb)
    return out


def _model(c, lb, name):
    from workbench.models.compare import refit

    cand = lb[name]
    if cand.estimator is None:
        refit(cand, c.X, c.y)
    return TrainedModel(c.cleaner, cand.estimator, c.task, lb.classes, name)


CASES = [(task, kind) for task in ("binary", "multiclass", "regression")
         for kind in ("lightgbm", "random_forest", "extra_trees", "select", "stack", "stack+passthrough")] + \
        [("regression", "average"), ("binary", "vote"), ("binary", "vote:hard"), ("multiclass", "vote")]


@pytest.mark.parametrize("task,kind", CASES)
def test_every_kind_splits_into_parts_that_combine_to_the_same_answer(boards, task, kind):
    df, c, lb = boards[task]
    if kind in ("lightgbm", "random_forest", "extra_trees"):
        model, parts = _model(c, lb, kind), 3
    else:
        method, _, option = kind.partition(":")
        options = {"passthrough": True} if kind == "stack+passthrough" else {"voting": "hard"} if option else {}
        method = "stack" if kind.startswith("stack") else method
        e = ensemble(method, lb, c.X, c.y, **options)
        model = TrainedModel(c.cleaner, e.candidate.estimator, c.task, lb.classes, method)
        est = model.estimator
        parts = int((est.weights_ > 0).sum()) if hasattr(est, "weights_") else len(est.estimators_)
    d = decompose(model, parts)
    assert isinstance(d.estimator, DecomposedModel) and len(d.estimator.parts) == parts
    assert max_difference(model, d, df.drop(columns=[c.target])) <= 1e-9
    if kind == "lightgbm":  # raw scores are summed, then the link: never probabilities added
        assert d.estimator.combiner == "sum_link"


def test_a_decomposed_package_stores_parts_with_checksums_and_scores_on_dask(tmp_path):
    df = load("demo", n_rows=600)
    r = train(df, "churn", models=["lightgbm"], folds=3, log=False, progress=False, time_budget=60)
    source = load_package(package_result(r, tmp_path / "whole", name="churn"))
    out, diff = decompose_package(source, tmp_path / "parts", 2)
    assert diff <= 1e-9
    pkg = load_package(out)  # checksums and reference predictions
    parts = sorted(p for p in out.iterdir() if p.is_dir())
    assert len(parts) == 2 and all((p / "part.json").exists() for p in parts)
    assert [p.name for p in pkg.model.estimator.parts] == [load_part(p).name for p in parts]
    whole = source.model.predict_frame(df)
    got = pkg.model.frame_of(predict_parallel(out, df), df.index)  # each part on a Dask worker
    assert list(got.columns) == list(whole.columns)
    assert np.abs(got[["No", "Yes"]].to_numpy() - whole[["No", "Yes"]].to_numpy()).max() <= 1e-9
    # a changed part file is refused, by the package and by the part itself
    victim = next(parts[0].glob("*.lgb.txt"))
    victim.write_text(victim.read_text().replace("leaf_value=", "leaf_value=0 ", 1))
    with pytest.raises(PartError, match="checksum"):
        load_part(parts[0])
    with pytest.raises(PackageError, match="estimator.part-0"):
        load_package(out)


def test_bad_decompositions_are_clear_errors(boards):
    df, c, lb = boards["binary"]
    lgbm = _model(c, lb, "lightgbm")
    n = lgbm.estimator.booster_.current_iteration()
    with pytest.raises(ModelError, match=f"has {n} boosting iterations"):
        decompose(lgbm, n + 1)
    with pytest.raises(ModelError, match="unknown decomposition"):
        decompose(lgbm, 2, "layers")
    with pytest.raises(ModelError, match="applies to averaging, voting and selected ensembles"):
        decompose(lgbm, 2, "members")
    e = ensemble("select", lb, c.X, c.y)
    sel = TrainedModel(c.cleaner, e.candidate.estimator, c.task, lb.classes, "select")
    n_members = int((sel.estimator.weights_ > 0).sum())
    with pytest.raises(ModelError, match=f"has {n_members} members with weight: it cannot be split into 99 parts"):
        decompose(sel, 99)
    if n_members > 2:
        with pytest.raises(ModelError, match=f"use --parts {n_members}"):
            decompose(sel, 2)
    linear = _model(c, lb, "linear")
    with pytest.raises(ModelError, match="not to a"):
        decompose(linear, 2)


def test_cli_decomposes_and_predicts_with_the_parts(tmp_path):
    df = load("demo", n_rows=400)
    r = train(df, "churn", models=["lightgbm"], folds=3, log=False, progress=False, time_budget=60)
    whole = package_result(r, tmp_path / "whole", name="churn")
    df.drop(columns=["churn"]).to_csv(tmp_path / "rows.csv", index=False)
    p = workbench("decompose", "--package", whole, "--parts", "4", "--out", tmp_path / "parts")
    assert p.returncode == 0 and "4 parts (sum_link)" in p.stdout, p.stderr[-2000:]
    p = workbench("predict", "--model", tmp_path / "parts", "--data", tmp_path / "rows.csv", "--out", tmp_path / "a.csv")
    assert p.returncode == 0, p.stderr[-2000:]
    p = workbench("predict", "--model", whole, "--data", tmp_path / "rows.csv", "--out", tmp_path / "b.csv")
    import pandas as pd

    a, b = pd.read_csv(tmp_path / "a.csv"), pd.read_csv(tmp_path / "b.csv")
    assert list(a.columns) == list(b.columns) and (a["prediction"] == b["prediction"]).all()
    assert np.abs(a["Yes"] - b["Yes"]).max() <= 1e-9
    p = workbench("decompose", "--package", whole, "--parts", "100000", "--out", tmp_path / "too-many")
    assert p.returncode != 0 and "cannot be split into 100000 parts" in p.stderr
    assert not (tmp_path / "too-many").exists()
    assert json.loads((tmp_path / "parts" / "manifest.json").read_text())["params"]["combiner"] == "sum_link"
    p = workbench("serve", "--decomposed", whole, "--port", "1")  # a whole package is not served as parts
    assert p.returncode != 0 and "is not a decomposed package" in p.stderr


def _fire(url: str, rows: list, seconds: float, out: list) -> None:
    """Requests one after the other for ``seconds``; every answer (status, body) is kept."""
    import time

    end = time.time() + seconds
    with httpx.Client(timeout=30) as c:
        while time.time() < end:
            r = c.post(f"{url}/v1/models/churn/predict", json=rows)
            out.append((r.status_code, r.json()))


def _kill_part(front_url: str, index: int) -> str:
    import signal

    parts = next(iter(httpx.get(f"{front_url}/readyz").json()["parts"].values()))
    name, info = list(parts.items())[index]
    os.kill(httpx.get(f"{info['url']}/healthz").json()["pid"], signal.SIGKILL)
    return name


@pytest.mark.parametrize("optional", [True, False])
def test_decomposed_serving_survives_a_killed_part(tmp_path, optional):
    """Optional members: every request answered (degraded while a member is down). Required tree ranges: clear 503s
    naming the part. Either way full answers return once the front's supervisor has restarted the part."""
    import threading
    import time

    from servers import Server

    df = load("demo", n_rows=600)
    models = ["lightgbm", "linear", "naive_bayes"] if optional else ["lightgbm"]
    r = train(df, "churn", models=models, folds=3, log=False, progress=False, time_budget=60)
    model = r.model
    if optional:
        e = ensemble("vote", r.leaderboard, r.cleaned.X, r.cleaned.y)
        model = TrainedModel(r.cleaned.cleaner, e.candidate.estimator, "binary", r.leaderboard.classes, "vote")
        r.model = model
    source = load_package(package_result(r, tmp_path / "whole", name="churn"))
    out, _ = decompose_package(source, tmp_path / "parts", 3 if optional else 2, optional_members=optional)
    rows = json.loads(df.drop(columns=["churn"]).head(20).to_json(orient="records"))
    expected = source.model.predict_proba(df.drop(columns=["churn"]).head(20))
    s = Server("--decomposed", out, "--part-timeout", "2")
    try:
        first = httpx.post(f"{s.url}/v1/models/churn/predict", json=rows).json()
        got = np.array([[p["probabilities"]["No"], p["probabilities"]["Yes"]] for p in first["predictions"]])
        assert np.abs(got - expected).max() <= 1e-9 and "degraded" not in first
        answers: list = []
        t = threading.Thread(target=_fire, args=(s.url, rows, 12, answers))
        t.start()
        time.sleep(2)
        killed = _kill_part(s.url, 0)
        t.join()
        statuses = {code for code, _ in answers}
        if optional:
            assert statuses == {200}, statuses
            assert any(b.get("degraded") and b["missing_parts"] == [killed] for _, b in answers)
        else:
            assert statuses <= {200, 503} and 503 in statuses, statuses
            assert all(killed in b["error"] for code, b in answers if code == 503)
        assert answers[-1][0] == 200 and "degraded" not in answers[-1][1]  # the part is back: full answers again
        metrics = httpx.get(f"{s.url}/metrics").text
        assert "workbench_part_failures_total" in metrics and killed.split()[0] in metrics
        parts = next(iter(httpx.get(f"{s.url}/readyz").json()["parts"].values()))
        pids = [httpx.get(f"{p['url']}/healthz").json()["pid"] for p in parts.values()]
    finally:
        s.stop()
    time.sleep(1)
    for pid in pids:  # stopping the front stops its part servers
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
