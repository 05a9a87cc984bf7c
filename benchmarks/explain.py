"""What explanations cost: the service's reasons for one row, and 100,000 rows explained at once.

(1) A LightGBM churn package (demo data) served by `workbench serve --no-log` on 127.0.0.1; single-row requests
    without and with ``?explain=3``, in alternation (ABBA) for --rounds rounds of --requests requests each: the
    median of each round's p50 (this box's run-to-run noise is ±20 % on p50). Target: explain adds ≤ 1 ms.
(2) LightGBM trained on adult (../shared/datasets, skipped without it); 100,000 rows (the train and test files,
    repeated) explained per raw column by the workbench (``RowExplainer``) and, beside it on the same model and
    matrix, by the shap package's TreeExplainer. Target: ≤ 60 s on 2 cores.

    .venv/bin/python benchmarks/explain.py [--rounds 4] [--requests 400] [--rows 100000 (0: skip (2))]
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ROOT.parent / "shared" / "datasets"
sys.path.insert(0, str(ROOT / "tests"))

from servers import Server  # noqa: E402
from workbench import train  # noqa: E402
from workbench.data import load  # noqa: E402
from workbench.models.contrib import RowExplainer  # noqa: E402
from workbench.registry.package import package_result  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--rows", type=int, default=100_000)
    args = ap.parse_args()
    service(args.rounds, args.requests)
    if not args.rows:
        return
    if (DATASETS / "adult_train.csv").exists():
        many_rows(args.rows)
    else:
        print(f"(2) skipped: {DATASETS} has no adult_train.csv")


def service(rounds: int, requests: int) -> None:
    demo = load("demo", n_rows=5000)
    result = train(demo, "churn", models=["lightgbm"], folds=3, log=False, progress=False, time_budget=120)
    with tempfile.TemporaryDirectory() as tmp:
        path = package_result(result, Path(tmp) / "churn", name="churn")
        row = {k: (None if isinstance(v, float) and math.isnan(v) else v)
               for k, v in demo.drop(columns=["churn"]).iloc[0].to_dict().items()}
        server = Server("--package", path, "--no-log")
        try:
            url = f"{server.url}/v1/models/churn/predict"
            plain, explained = [], []
            with httpx.Client() as client:
                for _ in range(50):
                    client.post(url, json=row)
                    client.post(url + "?explain=3", json=row)
                for r in range(rounds):
                    order = [("", plain), ("?explain=3", explained)]
                    for query, into in (order if r % 2 == 0 else order[::-1]):
                        into.append(_p50(client, url + query, row, requests))
        finally:
            server.stop()
    a, e = statistics.median(plain), statistics.median(explained)
    trees = result.model.estimator.booster_.num_trees()
    print(f"(1) one row over HTTP, LightGBM with {trees} trees, median of {rounds} rounds' p50: without explain "
          f"{a:.3f} ms, with ?explain=3 {e:.3f} ms: +{e - a:.3f} ms (target ≤ 1 ms); rounds: "
          f"{[round(x, 3) for x in plain]} / {[round(x, 3) for x in explained]}")


def _p50(client: httpx.Client, url: str, row: dict, n: int) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        client.post(url, json=row).raise_for_status()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def many_rows(n: int) -> None:
    import shap

    train_df = load(DATASETS / "adult_train.csv")
    test_df = load(DATASETS / "adult_test.csv").drop(columns=["income"])
    result = train(train_df, "income", models=["lightgbm"], folds=3, log=False, progress=False, time_budget=300)
    model = result.model
    raw = pd.concat([train_df.drop(columns=["income"]), test_df], ignore_index=True)
    raw = raw.iloc[np.arange(n) % len(raw)].reset_index(drop=True)
    re = RowExplainer(model, result.reference)
    X = re.encoder.frame(raw)
    t0 = time.perf_counter()
    phi = re.contributions(X)
    ours = time.perf_counter() - t0
    booster = model.estimator.booster_
    t0 = time.perf_counter()
    theirs_values = shap.TreeExplainer(booster).shap_values(X)
    theirs = time.perf_counter() - t0
    proba = model.scorer(X)[:, 1]
    gap = np.abs(phi.sum(axis=1)[:, 0] - np.log(proba / (1 - proba))).max()
    leaves = booster.dump_model()["tree_info"]
    print(f"(2) adult, LightGBM ({len(leaves)} trees, up to {max(t['num_leaves'] for t in leaves)} leaves), {n:,} rows: "
          f"the workbench {ours:.1f} s ({len(re.names)} raw columns + bias; sum check {gap:.1e}), shap's TreeExplainer "
          f"{theirs:.1f} s ({np.asarray(theirs_values).shape[1]} encoded features) (target ≤ 60 s)")


if __name__ == "__main__":
    main()
