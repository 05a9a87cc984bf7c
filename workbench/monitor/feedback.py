"""True outcomes for earlier predictions, checked against the model's task before they reach the log."""
from __future__ import annotations

import math
import time
from pathlib import Path

import pandas as pd

from workbench.data.columns import read_number
from workbench.data.load import load
from workbench.data.task import key_of_label
from workbench.monitor.store import MonitorError, PredictionLog


class FeedbackError(MonitorError):
    """Outcomes that cannot be stored: every bad row is named in ``errors``."""

    def __init__(self, message: str, errors: list[str]):
        super().__init__(message + ": " + "; ".join(errors[:5]) + (f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""))
        self.errors = errors


def check_outcomes(records, task: str, labels: list[str]) -> list[tuple[str, str]]:
    """``[{"request_id": ..., "actual": ...}, ...]`` (or one such object) → ``(request_id, actual as stored)``.
    Classification: ``actual`` must be one of the model's classes; regression: a finite number."""
    if isinstance(records, dict):
        records = [records]
    if not isinstance(records, list) or not records:
        raise FeedbackError("send outcomes as JSON records", ['[{"request_id": "...", "actual": ...}, ...] (at least one)'])
    out, errors = [], []
    for i, r in enumerate(records):
        if not isinstance(r, dict) or "request_id" not in r or "actual" not in r:
            errors.append(f"row {i}: needs 'request_id' and 'actual'")
            continue
        rid, actual = r["request_id"], r["actual"]
        if not isinstance(rid, str) or not rid:
            errors.append(f"row {i}: request_id must be the text id a prediction returned, got {rid!r}")
            continue
        value = _outcome(actual, task, labels)
        if value is None:
            want = "a finite number" if task == "regression" else f"one of the classes {', '.join(labels)}"
            errors.append(f"row {i} ({rid}): actual {actual!r} is not {want}")
            continue
        out.append((rid, value))
    if errors:
        raise FeedbackError(f"{len(errors)} of {len(records)} outcomes are not valid, none was stored", errors)
    return out


def _outcome(actual, task: str, labels: list[str]) -> str | None:
    """An outcome as the log stores it: a class in its training spelling ("yes", "YES " and "Yes." are "Yes"; 1.0 is
    "1"), or a number's repr; None when it is neither (the cleaner's rules for target labels)."""
    if actual is None or isinstance(actual, (list, dict)) or (isinstance(actual, bool) and task == "regression"):
        return None
    if task == "regression":
        try:
            v = read_number(actual)
        except ValueError:
            return None
        return repr(v) if v is not None and math.isfinite(v) else None
    return {key_of_label(c): c for c in labels}.get(key_of_label(actual))


def feed_back(model: str, records, *, log: PredictionLog | None = None) -> dict:
    """Store outcomes for ``model``'s earlier predictions; unknown ids are returned, not ignored."""
    log = log or PredictionLog(create=False)
    info = log.model_info(model).iloc[0]
    import orjson

    outcomes = check_outcomes(records, info["task"], orjson.loads(info["labels"]))
    stored, unknown = log.feedback(model, outcomes)
    if unknown:  # a service writes its log every 0.2 s: outcomes for a prediction of this instant get one more look
        time.sleep(1.0)
        late = set(unknown)
        more, unknown = log.feedback(model, [o for o in outcomes if o[0] in late])
        stored += more
    return {"model": model, "stored": stored, "unknown": unknown}


def feed_back_file(model: str, path: str | Path, *, log: PredictionLog | None = None) -> dict:
    """``workbench monitor feedback``: a CSV (or any table ``load`` reads) with ``request_id`` and ``actual``."""
    df = load(path)
    missing = [c for c in ("request_id", "actual") if c not in df.columns]
    if missing:
        raise MonitorError(f"{path} has no column {' or '.join(missing)}; it needs request_id and actual "
                           f"(it has {', '.join(map(str, df.columns[:10]))})")
    records = [{"request_id": str(r), "actual": None if pd.isna(a) else a}
               for r, a in zip(df["request_id"].tolist(), df["actual"].tolist())]
    return feed_back(model, records, log=log)
