"""What compression buys and costs: the `auto` winner and every variant, on adult and the other shared tables.

For each table: `auto` (same protocol as benchmarks/accuracy.py: the published test file, else a 25 % hold-out) on
80 % of the training rows; the other 20 % are the validation rows that decide pruning and which variant qualifies;
the test rows only report. Every variant is measured in the same run: bytes of its model files, single-row and
1,000-row latency on cleaned rows (median of repeats), validation and test metric, largest change of a predicted
probability or value, label agreement, relative change of the log loss.

Targets on adult: a variant ≥ 4× smaller than the winner with test ROC AUC at most 0.002 below it, and a compiled
variant ≥ 3× faster for single rows with max difference ≤ 1e-6 from the model it compiles.

    .venv/bin/python benchmarks/compression.py [--budget 60] [--only adult,diamonds]
"""
from __future__ import annotations

import argparse
import json
import re
import time

import pandas as pd
from sklearn.model_selection import train_test_split

from accuracy import DATASETS, _split
from workbench.auto import auto
from workbench.compress import compress

TABLES = ["adult", "diamonds", "winequality_red", "titanic", "penguins"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget", type=float, default=60)
    ap.add_argument("--only", default=",".join(TABLES))
    args = ap.parse_args()
    manifest = json.loads((DATASETS / "manifest.json").read_text())
    summary = []
    for name in args.only.split(","):
        info = manifest[name]
        train_df, test_df = _split(info)
        strat = train_df[info["target"]] if info["task"] != "regression" else None
        fit_df, valid_df = train_test_split(train_df, test_size=0.2, random_state=0, stratify=strat)
        t0 = time.time()
        res = auto(fit_df, info["target"], time_budget=args.budget, log=False, progress=False)
        auto_s = time.time() - t0
        t0 = time.time()
        rep = compress(res, valid_df, test=test_df)
        f = rep.to_frame()
        print(f"\n## {name} ({info['task']}, metric {rep.metric}; winner {res.best.name}, auto {auto_s:.0f} s, "
              f"compression {time.time() - t0:.0f} s)")
        print(f.drop(columns=["note"]).to_string(float_format=lambda v: f"{v:.4g}"))
        print(rep.verdict)
        for k, why in rep.skipped.items():
            print(f"  skipped {k}: {why[:140]}")
        summary.append(_targets(name, rep))
    print("\n## targets")
    print(pd.DataFrame(summary).to_string(index=False, float_format=lambda v: f"{v:.4g}"))


def _targets(name: str, rep) -> dict:
    """The smallest variant within 0.002 of the winner's test metric, and the fastest compiled one among those."""
    f = rep.to_frame()
    o = f.loc["original"]
    greater = rep.metric not in ("rmse", "mae", "log_loss")
    loss = (o.test_metric - f.test_metric) if greater else (f.test_metric - o.test_metric) / abs(o.test_metric)
    ok = f[(loss <= 0.002) & (f.index != "original")]
    small = ok.sort_values("size_bytes").head(1)
    compiled = ok[ok.index.str.contains("compile")]
    row = {"table": name, "winner_bytes": o.size_bytes, "winner_test": o.test_metric}
    if len(small):
        row |= {"smallest_ok": small.index[0], "size_ratio": small.size_ratio.iloc[0], "its_test": small.test_metric.iloc[0]}
    if len(compiled):
        best = compiled.sort_values("latency_1_ms").head(1)
        diff = re.search(r"max difference ([\d.e+-]+)", best.note.iloc[0])
        row |= {"compiled": best.index[0], "speedup_1": best.speedup_1.iloc[0],
                "compiled_max_diff": float(diff.group(1)) if diff else float("nan"), "compiled_test": best.test_metric.iloc[0]}
    return row


if __name__ == "__main__":
    main()
