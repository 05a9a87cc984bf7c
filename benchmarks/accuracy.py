"""Accuracy and time of `workbench.train` against LightGBM defaults, on every table in ../shared/datasets.

Protocol (../shared/datasets/README.md): the published test file where there is one,
else a 25% hold-out (random_state=0, stratified for classification). Both contenders
run in this process, on the same split, one after the other.

    .venv/bin/python benchmarks/accuracy.py [--budget 120] [--only adult,titanic]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn import metrics as skm
from sklearn.model_selection import train_test_split

import workbench as wb

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
REPORTED = {"binary": "roc_auc", "multiclass": "accuracy", "regression": "rmse"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget", type=float, default=120)
    ap.add_argument("--only", default="")
    args = ap.parse_args()
    manifest = json.loads((DATASETS / "manifest.json").read_text())
    rows = []
    for name, info in manifest.items():
        if args.only and name not in args.only.split(","):
            continue
        train_df, test_df = _split(info)
        t0 = time.time()
        res = wb.train(train_df, info["target"], test=test_df, time_budget=args.budget, log=False, progress=False)
        ours = time.time() - t0
        t0 = time.time()
        # the baseline gets the same columns: what the cleaner found leaking would flatter it
        leaks = [c for c, why in res.cleaned.cleaner.dropped_.items() if why.startswith("leaks")]
        base = _lightgbm_defaults(train_df.drop(columns=leaks), test_df.drop(columns=leaks), info["target"], info["task"])
        base_time = time.time() - t0
        m = REPORTED[info["task"]]
        extra = "log_loss" if info["task"] == "multiclass" else ("r2" if info["task"] == "regression" else None)
        rows.append({"table": name, "task": info["task"], "metric": m, "workbench": res.test_metrics[m], "lgbm_defaults": base[m],
                     "best_model": res.best.name, "workbench_s": round(ours, 1), "lgbm_s": round(base_time, 1),
                     **({f"workbench_{extra}": res.test_metrics[extra], f"lgbm_{extra}": base[extra]} if extra else {})})
        print(pd.DataFrame(rows[-1:]).to_string(index=False, float_format=lambda v: f"{v:.4f}"), flush=True)
    print("\nsummary")
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.4f}"))


def _split(info):
    df = pd.read_csv(DATASETS / info["file"])
    if "test_file" in info:
        return df, pd.read_csv(DATASETS / info["test_file"])
    strat = df[info["target"]] if info["task"] != "regression" else None
    return train_test_split(df, test_size=0.25, random_state=0, stratify=strat)


def _lightgbm_defaults(train_df, test_df, target, task):
    """The baseline: LightGBM defaults on the raw table, text columns as pandas categories, labels as given."""
    def prep(df):
        X = df.drop(columns=[target]).copy()
        for c in X.columns:
            if not pd.api.types.is_numeric_dtype(X[c]):
                X[c] = X[c].astype("string").str.strip()
        return X
    Xtr, Xte = prep(train_df), prep(test_df)
    for c in Xtr.columns:
        if not pd.api.types.is_numeric_dtype(Xtr[c]):
            cats = Xtr[c].dropna().unique()
            Xtr[c] = pd.Categorical(Xtr[c], categories=cats)
            Xte[c] = pd.Categorical(Xte[c], categories=cats)
    ytr, yte = train_df[target], test_df[target]
    if task == "regression":
        p = lgb.LGBMRegressor(verbose=-1).fit(Xtr, ytr).predict(Xte)
        return {"rmse": float(np.sqrt(skm.mean_squared_error(yte, p))), "r2": skm.r2_score(yte, p)}
    norm = lambda y: y.astype("string").str.strip().str.rstrip(".")
    ytr, yte = norm(ytr), norm(yte)
    model = lgb.LGBMClassifier(verbose=-1).fit(Xtr, ytr)
    proba = model.predict_proba(Xte)
    out = {"accuracy": skm.accuracy_score(yte, model.classes_[proba.argmax(1)]),
           "log_loss": skm.log_loss(yte, proba, labels=model.classes_)}
    if task == "binary":
        out["roc_auc"] = skm.roc_auc_score((yte == model.classes_[1]).astype(int), proba[:, 1])
    return out


if __name__ == "__main__":
    main()
