"""The peers `benchmarks/accuracy.py` measures `auto` against, each in a virtual environment of its own (created on
first use under benchmarks/.venvs/, never a dependency of the workbench), run as a child process with the budget.

Run inside a peer's environment, this file fits that peer on a training CSV and prints one JSON line: the test
metrics and the seconds the fit took.

    benchmarks/.venvs/flaml/bin/python benchmarks/peers.py flaml TRAIN.csv TEST.csv TARGET TASK BUDGET
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENVS = HERE / ".venvs"
# what each peer's environment installs: AutoGluon's tabular models without the neural networks (no torch wheel
# here), FLAML's AutoML with its LightGBM and XGBoost learners
PEERS = {"flaml": ["flaml[automl]>=2.1", "pandas", "scikit-learn"],
         "autogluon": ["autogluon.tabular[lightgbm,catboost,xgboost]>=1.1"]}


def python_of(peer: str) -> Path:
    """The peer environment's python, created and installed the first time (a few minutes for AutoGluon)."""
    venv = VENVS / peer
    python = venv / "bin" / "python"
    if not (venv / ".installed").exists():
        print(f"creating {venv} for {peer} (once)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *PEERS[peer]], check=True)
        (venv / ".installed").touch()
    return python


def run(peer: str, train: Path, test: Path, target: str, task: str, budget: float, timeout: float) -> dict:
    """The peer's test metrics, fit seconds and wall seconds (its process, start to exit); {} when it failed."""
    t0 = time.time()
    try:
        p = subprocess.run([str(python_of(peer)), __file__, peer, str(train), str(test), target, task, str(budget)],
                           capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"no answer in {timeout:.0f} s"}
    if p.returncode != 0:
        return {"error": p.stderr.strip().splitlines()[-1] if p.stderr.strip() else f"exit {p.returncode}"}
    return json.loads(p.stdout.strip().splitlines()[-1]) | {"wall_s": time.time() - t0}


def labels(y):
    """Class labels as every contender reads them: text, without spaces around or a trailing '.'."""
    return y.astype("string").str.strip().str.rstrip(".").astype(str)


def categories(Xtr, Xte):
    """Text columns as pandas categories (the training values' categories), as LightGBM and FLAML take them."""
    import pandas as pd

    Xtr, Xte = Xtr.copy(), Xte.copy()
    for c in Xtr.columns:
        if not pd.api.types.is_numeric_dtype(Xtr[c]):
            cats = Xtr[c].astype("string").str.strip().dropna().unique()
            Xtr[c] = pd.Categorical(Xtr[c].astype("string").str.strip(), categories=cats)
            Xte[c] = pd.Categorical(Xte[c].astype("string").str.strip(), categories=cats)
    return Xtr, Xte


def _fit_flaml(tr, te, target, task, budget):
    from flaml import AutoML

    Xtr, Xte = categories(tr.drop(columns=[target]), te.drop(columns=[target]))
    automl = AutoML()
    if task == "regression":
        automl.fit(Xtr, tr[target], task="regression", time_budget=budget, metric="rmse", seed=0, verbose=0)
        return automl.predict(Xte), None
    automl.fit(Xtr, labels(tr[target]), task="classification", time_budget=budget,
               metric="roc_auc" if task == "binary" else "log_loss", seed=0, verbose=0)
    return automl.predict_proba(Xte), list(automl.classes_)


def _fit_autogluon(tr, te, target, task, budget):
    import tempfile

    from autogluon.tabular import TabularPredictor

    if task != "regression":
        tr = tr.assign(**{target: labels(tr[target])})
    problem = {"binary": "binary", "multiclass": "multiclass", "regression": "regression"}[task]
    with tempfile.TemporaryDirectory(prefix="ag-") as folder:  # its models on disk, removed after the test rows
        predictor = TabularPredictor(target, problem_type=problem, path=folder, verbosity=0,
                                     eval_metric={"binary": "roc_auc", "multiclass": "log_loss",
                                                  "regression": "root_mean_squared_error"}[task])
        predictor.fit(tr, time_limit=budget, presets="medium_quality", num_cpus=2)
        X = te.drop(columns=[target])
        if task == "regression":
            return predictor.predict(X).to_numpy(), None
        proba = predictor.predict_proba(X)
        return proba.to_numpy(), [str(c) for c in proba.columns]


def _main(peer, train, test, target, task, budget) -> None:
    import numpy as np
    import pandas as pd
    from sklearn import metrics as skm

    tr, te = pd.read_csv(train), pd.read_csv(test)
    t0 = time.time()
    pred, classes = {"flaml": _fit_flaml, "autogluon": _fit_autogluon}[peer](tr, te, target, task, float(budget))
    fit_s = time.time() - t0
    if task == "regression":
        y = te[target].to_numpy(float)
        out = {"rmse": float(np.sqrt(skm.mean_squared_error(y, pred))), "r2": float(skm.r2_score(y, pred))}
    else:
        y = labels(te[target])
        out = {"accuracy": float(skm.accuracy_score(y, np.asarray(classes)[pred.argmax(1)])),
               "log_loss": float(skm.log_loss(y, np.clip(pred, 1e-15, 1), labels=classes))}
        if task == "binary":
            out["roc_auc"] = float(skm.roc_auc_score((y == classes[1]).astype(int), pred[:, 1]))
    print(json.dumps(out | {"fit_s": fit_s}))


if __name__ == "__main__":
    _main(*sys.argv[1:7])
