"""Tuning strategies against each other and against FLAML, and the parallel efficiency of trials on Dask.

For each table: LightGBM tuned by every strategy with the same trial budget and seed
(3-fold CV inside, the benchmark protocol's hold-out for test), then FLAML's tuner
(LightGBM only) given the same wall time as our slowest strategy. Then N trials of a
fixed-cost objective, one by one and on a 2-worker LocalCluster.

    .venv/bin/pip install -e '.[bench]'     # FLAML, for this script only
    .venv/bin/python benchmarks/tuning.py [--trials 30] [--only titanic,penguins]
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pandas as pd

from accuracy import DATASETS, REPORTED, _split
from workbench import compute
from workbench.models.metrics import GREATER_IS_BETTER, score
from workbench.models.train import prepare
from workbench.settings import get_settings
from workbench.tune import tune

TABLES = ["titanic", "penguins", "winequality_red", "diamonds"]
STRATEGY_NAMES = ["random", "grid", "tpe", "anneal", "genetic"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--only", default="")
    args = ap.parse_args()
    manifest = json.loads((DATASETS / "manifest.json").read_text())
    rows = []
    for name in [t for t in TABLES if not args.only or t in args.only.split(",")]:
        info = manifest[name]
        train_df, test_df = _split(info)
        p = prepare(train_df, info["target"], test=test_df)
        c = p.cleaned
        metric = REPORTED[c.task] if c.task != "multiclass" else "log_loss"
        walls = []
        for strategy in STRATEGY_NAMES:
            t0 = time.time()
            r = tune("lightgbm", c.X, c.y, task=c.task, strategy=strategy, metric=metric, cv=3, max_trials=args.trials,
                     seed=0, log=False)
            wall = time.time() - t0
            walls.append(wall)
            test = _test_score(r.candidate.estimator, p, metric)
            rows.append({"table": name, "tuner": strategy, "metric": metric, "cv": r.best_score, "test": test,
                         "trials": len(r.history), "wall_s": round(wall, 1)})
            print(pd.DataFrame(rows[-1:]).to_string(index=False, header=len(rows) == 1), flush=True)
        rows.append(_flaml(name, p, metric, max(walls)))
        print(pd.DataFrame(rows[-1:]).to_string(index=False, header=False), flush=True)
    frame = pd.DataFrame(rows)
    print("\nper table (test metric)")
    print(frame.pivot(index="table", columns="tuner", values="test").round(4).to_string())
    print("\nper table (best cross-validated score: what the search optimizes)")
    print(frame.pivot(index="table", columns="tuner", values="cv").round(4).to_string())
    for col in ["test", "cv"]:
        print(f"\nmean rank on the {col} metric (1 = best), per tuner")
        ranks = []
        for _, g in frame.dropna(subset=[col]).groupby("table"):
            asc = not GREATER_IS_BETTER[g["metric"].iloc[0]]
            ranks.append(g.set_index("tuner")[col].rank(ascending=asc))
        print(pd.concat(ranks, axis=1).mean(axis=1).sort_values().round(2).to_string())
    parallel_efficiency()


def _test_score(estimator, p, metric):
    c = p.cleaned
    X = c.cleaner.transform(p.test)
    y = c.cleaner.transform_target(p.test[c.target])
    keep = y.notna().to_numpy()
    if c.task == "regression":
        return score("regression", y[keep].to_numpy(float), np.asarray(estimator.predict(X[keep]), float))[metric]
    classes = sorted(c.y.unique(), key=lambda v: (str(type(v)), v))
    codes = pd.Categorical(y[keep], categories=classes).codes
    return score(c.task, codes, np.asarray(estimator.predict_proba(X[keep]), float))[metric]


def _flaml(name, p, metric, wall):
    from flaml import AutoML

    c = p.cleaned
    flaml_metric = {"roc_auc": "roc_auc", "log_loss": "log_loss", "rmse": "rmse"}[metric]
    automl = AutoML()
    t0 = time.time()
    y = c.y if c.task == "regression" else pd.Series(pd.Categorical(c.y).codes)
    automl.fit(c.X, y, task="regression" if c.task == "regression" else "classification", estimator_list=["lgbm"],
               metric=flaml_metric, time_budget=wall, eval_method="cv", n_splits=3, seed=0, verbose=0,
               n_jobs=get_settings().n_threads)
    test = _test_score(automl, p, metric)  # AutoML itself: it replays its own preprocessing
    return {"table": name, "tuner": "flaml", "metric": metric, "cv": np.nan, "test": test,
            "trials": len(automl.config_history), "wall_s": round(time.time() - t0, 1)}


def _fixed_cost(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def parallel_efficiency(n: int = 16, seconds: float = 0.5) -> None:
    """N trials of a fixed-cost objective, one by one in this process and on a 2-worker LocalCluster."""
    s = get_settings(n_threads=2)
    compute.start(2, s)
    timings = {}
    for label, parallel in [("sequential", False), ("2 Dask workers", True)]:
        t0 = time.time()
        list(compute.run(_fixed_cost, [(seconds,)] * n, settings=s)) if parallel else [
            _fixed_cost(seconds) for _ in range(n)]
        timings[label] = time.time() - t0
    ratio = timings["2 Dask workers"] / timings["sequential"]
    print(f"\nparallel efficiency: {n} trials of {seconds} s — sequential {timings['sequential']:.2f} s, "
          f"2 workers {timings['2 Dask workers']:.2f} s, ratio {ratio:.2f} (target ≤ 0.6)")


if __name__ == "__main__":
    main()
