"""Calibration and the decision that pays, measured on held-out rows: `auto` on adult (../shared/datasets) with a
stated value per outcome, then on the published test file the expected calibration error and log loss of the raw and
the calibrated probabilities, and the value per row of the decision rule against the likeliest class.

Values (a retention-style offer on the `>50K` class): a true positive earns 100, a false positive costs 20, a false
negative costs 100 (a lost customer), a true negative is 0.

    .venv/bin/python benchmarks/decide.py [--budget 60]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.auto import auto
from workbench.data import load
from workbench.models.decide import Calibrated, expected_calibration_error, value_matrix
from workbench.models.metrics import score

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
VALUES = {"tp": 100, "fp": -20, "fn": -100, "tn": 0}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget", type=float, default=60)
    args = ap.parse_args()
    train, test = load(DATASETS / "adult_train.csv"), load(DATASETS / "adult_test.csv")
    r = auto(train, "income", test=test, time_budget=args.budget, values=VALUES, log=False, progress=False)
    model, classes = r.model, [str(c) for c in r.model.classes]
    print(f"model {r.best.name} ({model.kind}); {r.calibration}")
    print(model.decision)
    X, y = test.drop(columns=["income"]), model.cleaner.transform_target(test["income"])
    codes = pd.Categorical(np.asarray(y).astype(str), categories=classes).codes
    keep = codes >= 0
    calibrated = model.scores(X)[keep]
    est = model.estimator
    raw = np.asarray(est.estimator.predict_proba(model.cleaner.encoder().frame(X)))[keep] \
        if isinstance(est, Calibrated) else calibrated
    codes = codes[keep]
    for name, p in [("raw", raw), ("calibrated", calibrated)]:
        print(f"test {name:10s}: log loss {score('binary', codes, p)['log_loss']:.4f}, expected calibration error "
              f"{expected_calibration_error(codes, p):.4f}")
    V = value_matrix(VALUES, classes)
    matrix = np.array([[V[a][d] for d in classes] for a in classes])
    decided = pd.Categorical(model.decision(calibrated), categories=classes).codes
    print(f"test value per row: decision rule {matrix[codes, decided].mean():.3f}, likeliest class "
          f"{matrix[codes, calibrated.argmax(axis=1)].mean():.3f} ({len(codes):,} rows)")


if __name__ == "__main__":
    main()
