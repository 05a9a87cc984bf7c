"""Live quality and drift from the prediction log: windows over time, a timeline, quality by segment (an input column's
values), quality estimated from the model's confidence before outcomes arrive, drift of every input column and of the
predictions against the training sample stored in the package, and alerts against the settings' thresholds."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
from scipy import stats
from sklearn.metrics import auc

from workbench.data.columns import as_text, infer_kind
from workbench.data.encode import RowEncoder
from workbench.models.metrics import GREATER_IS_BETTER, loss, score
from workbench.monitor.store import MonitorError, PredictionLog
from workbench.registry import repository
from workbench.registry.package import load_package
from workbench.settings import Settings, get_settings

WINDOWS = {"last 15 minutes": 900, "last hour": 3600, "last day": 86400}
LIVE_METRICS = {"binary": ["accuracy", "roc_auc", "f1"], "multiclass": ["accuracy", "roc_auc", "f1"],
                "regression": ["rmse", "mae"]}
HEADLINE = {"binary": "accuracy", "multiclass": "accuracy", "regression": "mae"}  # the metric business users watch
ESTIMATED = ["accuracy", "roc_auc"]  # what the model's confidence estimates before outcomes arrive (classification)
TOP_SEGMENTS = 10  # a segment column's most frequent values; the rest are one segment, OTHER
OTHER = "(other)"  # the cleaner's own word for the values it did not keep
SEGMENT_LEVELS = (2, 20)  # the levels a category column has to be the segment column by default
NO_ESTIMATE = ("a regression's quality cannot be estimated before outcomes arrive (its answers carry no confidence): "
               "live quality shows once outcomes are fed back")
BINS = 10
EPS = 1e-4  # a share of zero would make the PSI infinite


@dataclass
class Thresholds:
    """When something is worth an alert (from the settings: ``WORKBENCH_ALERT_*``)."""

    psi: float = 0.2  # population stability index of a column, and its test's p-value below
    p_value: float = 0.01
    metric_drop: float = 0.05  # the headline metric below validation by this much (relative for errors)
    error_rate: float = 0.05
    latency_ms: float = 250.0  # 95th percentile over the last 15 minutes
    min_rows: int = 50  # fewer live rows (or outcomes) than this: not judged yet

    @classmethod
    def of(cls, s: Settings) -> "Thresholds":
        return cls(s.alert_psi, s.alert_p_value, s.alert_metric_drop, s.alert_error_rate, s.alert_latency_ms,
                   s.monitor_min_rows)


@dataclass
class Alert:
    kind: str  # drift | prediction drift | metric drop | estimated drop | error rate | latency
    subject: str
    value: float
    threshold: float
    message: str


@dataclass
class MonitorStatus:
    """How a served model is doing: ``windows`` (a row per window), ``timeline`` (a row per minute), ``drift`` (a row
    per input column and one for the predictions), ``feedback`` (predicted against actual), ``segments`` (a row per
    value of the ``segment`` column), and the ``alerts``. For classification, windows and timeline carry the quality
    estimated from the model's confidence (``estimated_accuracy``, ``estimated_roc_auc``) beside the realized one."""

    model: str
    version: str
    task: str
    headline: str
    validation: dict
    windows: pd.DataFrame
    timeline: pd.DataFrame
    drift: pd.DataFrame
    feedback: pd.DataFrame
    alerts: list[Alert] = field(default_factory=list)
    thresholds: Thresholds = field(default_factory=Thresholds)
    notes: list[str] = field(default_factory=list)
    value: dict | None = None  # with a decision rule: what it earned per row on live outcomes against its expectation
    segment: str | None = None  # the input column ``segments`` breaks the rows down by (None: no column fits)
    # the headline metric estimated from the model's confidence on the version's first rows (its reference period)
    # and on the newest rows after them: a fall is an early warning, estimate against estimate (a model that is over-
    # or under-confident is so in both)
    confidence: dict | None = None
    segments: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def estimated(self) -> bool:
        """Whether quality is estimated before outcomes arrive (``estimated_*`` columns of windows and timeline)."""
        return self.task != "regression"

    @property
    def validation_score(self) -> float:
        """The headline metric the model had before it was served (test if known, else cross-validated; NaN if none)."""
        return validation_metric(self.validation, self.headline)

    def to_frame(self) -> pd.DataFrame:
        return self.windows

    def figures(self) -> dict:
        from workbench.viz.monitor import monitor_figures  # start-up cost: no plotly in the CLI, service or workers

        return monitor_figures(self)

    def _repr_html_(self) -> str:
        alerts = "".join(f"<li>{a.message}</li>" for a in self.alerts) or "<li>no alerts</li>"
        notes = "".join(f"<p><i>{n}</i></p>" for n in self.notes)
        return (f"<h3>{self.model} (version {self.version})</h3>{notes}<h4>Alerts</h4><ul>{alerts}</ul>"
                f"<h4>Windows</h4>{self.windows.to_html(index=False, na_rep='—', float_format=lambda v: f'{v:.4g}')}"
                + (f"<h4>By {self.segment}</h4>"
                   f"{self.segments.to_html(index=False, na_rep='—', float_format=lambda v: f'{v:.4g}')}"
                   if self.segment else "") +
                f"<h4>Drift</h4>{self.drift.to_html(index=False, na_rep='—', float_format=lambda v: f'{v:.3g}')}")


def status(model: str, *, log: PredictionLog | None = None, since: float | None = None, now: float | None = None,
           settings: Settings | None = None, record: bool = True, bucket_s: int = 60,
           newest: int | None = None, segment: str | None = None) -> MonitorStatus:
    """Everything the report and the dashboard show, computed from the log; with ``record`` new alerts are written
    to the log's alert table (one per kind and subject per hour). ``newest``: judge only the newest that many requests and
    rows together (a service checking its own alerts keeps the cost of a check bounded, whatever its traffic).
    ``segment``: the input column quality is broken down by (default: the ``WORKBENCH_MONITOR_SEGMENT`` setting, else
    the first category column with 2 to 20 levels)."""
    s = settings or get_settings()
    log = log or PredictionLog(create=False)
    now = time.time() if now is None else now
    info = log.model_info(model).iloc[0]
    task, labels = info["task"], orjson.loads(info["labels"])
    th = Thresholds.of(s)
    since = now - 86400 if since is None else since
    reqs, preds = log.read(model, min(since, now - max(WINDOWS.values())), newest=newest)
    if not (reqs["ts"] >= since).any():
        raise MonitorError(f"model '{model}' has no traffic since {pd.Timestamp(since, unit='s', tz='UTC'):%Y-%m-%d %H:%M} "
                           "UTC: send it some predictions, or choose an earlier --since")
    validation = orjson.loads(info["validation"] or "{}")
    windows_ = windows(reqs, preds, task, labels, now=now)
    hourly = log.query("SELECT hour AS time, SUM(requests) AS requests, SUM(errors) AS errors, SUM(rows) AS rows, "
                       "MAX(latency_p50) AS latency_p50_ms, MAX(latency_p95) AS latency_p95_ms, SUM(labelled) AS outcomes "
                       "FROM hourly WHERE model = ? AND hour >= ? GROUP BY hour", (model, since - 3600))
    reqs, preds = reqs[reqs["ts"] >= since], preds[preds["ts"] >= since]
    timeline_ = timeline(reqs, preds, task, labels, bucket_s=bucket_s, hourly=hourly)
    notes = []
    package = _package(info["package"], info["source"], model, str(info["version"]))
    version = str(info["version"])
    # the version's first rows are its reference period for the predictions; drift is judged on the newest rows after
    # it (the last hour, or everything since ``since`` when the hour holds too few), at most 5,000 of them
    first = log.first_rows(model, version, s.monitor_reference_rows)
    after = preds[(preds["version"] == version) & (preds["ts"] > (first["ts"].max() if len(first) else -np.inf))]
    recent = after[after["ts"] >= now - 3600] if (after["ts"] >= now - 3600).sum() >= th.min_rows else after
    recent = recent.tail(5000)
    baseline = first["score"] if len(first) >= s.monitor_reference_rows else None
    if baseline is None:
        notes.append(f"predictions are compared with this version's first {s.monitor_reference_rows} live rows: "
                     f"{len(first)} so far")
    if package is None:
        notes.append(f"the package {info['package']} is gone: no drift (serve from the repository to keep it)")
        drift_ = pd.DataFrame(columns=["column", "kind", "psi", "test", "p_value", "drifted"])
    else:
        if len(package.sample) < 200:
            notes.append(f"the package holds only {len(package.sample)} training rows: drift tests are weak; rebuild it")
        drift_ = drift(package, recent, th, baseline)
    if len(recent) < th.min_rows:
        notes.append(f"{len(recent)} new predictions to judge: drift is judged from {th.min_rows}")
    if task == "regression":
        notes.append(NO_ESTIMATE)
    setting = s.monitor_segment or None
    if not segment and setting and setting not in _inputs(package, preds):  # a setting for all models: not an error
        notes.append(f"WORKBENCH_MONITOR_SEGMENT names '{setting}', which this model does not read: its segments are "
                     "by the default column")
        setting = None
    column = segment_column(package, preds, segment or setting)
    key = f"estimated_{HEADLINE[task]}"
    confidence = None if baseline is None or task == "regression" else {
        "reference": estimated_quality(first, task, labels)[key], "recent": estimated_quality(recent, task, labels)[key],
        "reference_rows": len(first), "recent_rows": len(recent)}
    segments_ = segments(preds, task, labels, segment_values(preds, column, package)) if column else pd.DataFrame()
    decision = package.model.decision if package is not None else None
    status_ = MonitorStatus(model, version, task, HEADLINE[task], validation, windows_, timeline_, drift_,
                            feedback_pairs(preds, task, labels), thresholds=th, notes=notes,
                            value=realized_value(decision, preds[preds["version"] == version], labels),
                            segment=column, segments=segments_, confidence=confidence)
    status_.alerts = alerts_of(status_)
    if record and status_.alerts:
        raise_alerts(log, model, status_.version, status_.alerts, now)
    return status_


def windows(reqs: pd.DataFrame, preds: pd.DataFrame, task: str, labels: list[str], *, now: float | None = None,
            spans: dict = WINDOWS) -> pd.DataFrame:
    """From ``PredictionLog.read``'s requests and rows: a row per window — requests, errors, error rate, rows, latency
    percentiles, what was predicted, for the rows with outcomes the task's metrics, and for classification the
    quality estimated on all rows from the model's confidence (``estimated_quality``)."""
    now = time.time() if now is None else now
    out = []
    for name, span in spans.items():
        r = reqs[reqs["ts"] >= now - span]
        p = preds[preds["ts"] >= now - span]
        lat = r["latency_ms"].to_numpy(float)
        row = {"window": name, "requests": len(r), "errors": int((r["status"] >= 400).sum()),
               "error_rate": float((r["status"] >= 400).mean()) if len(r) else np.nan, "rows": int(r["rows"].sum()),
               **dict(zip(["latency_p50_ms", "latency_p95_ms", "latency_p99_ms"],
                          np.percentile(lat, [50, 95, 99]).tolist() if len(lat) else [np.nan] * 3))}
        row |= _distribution(p, task, labels) | {"outcomes": int(p["actual"].notna().sum())} | live_metrics(p, task, labels)
        row |= estimated_quality(p, task, labels)
        out.append(row)
    return pd.DataFrame(out)


def timeline(reqs: pd.DataFrame, preds: pd.DataFrame, task: str, labels: list[str], *, bucket_s: int = 60,
             hourly: pd.DataFrame | None = None) -> pd.DataFrame:
    """A row per ``bucket_s`` seconds: requests, errors, rows, latency p50/p95, outcomes and the headline metric on
    them (and ROC AUC for classification, with both estimated from the model's confidence on all the bucket's rows).
    Compacted hours (``hourly``) appear as one row each (their counts; the latency percentiles of that hour)."""
    reqs = reqs.assign(bucket=reqs["ts"] - reqs["ts"] % bucket_s)
    preds = preds.assign(bucket=preds["ts"] - preds["ts"] % bucket_s)
    names = [HEADLINE[task]] if task == "regression" else ESTIMATED
    rows = []
    for b, r in reqs.groupby("bucket"):
        p = preds[preds["bucket"] == b]
        lat = r["latency_ms"].to_numpy(float)
        rows.append({"time": b, "requests": len(r), "errors": int((r["status"] >= 400).sum()), "rows": int(r["rows"].sum()),
                     "latency_p50_ms": float(np.percentile(lat, 50)), "latency_p95_ms": float(np.percentile(lat, 95)),
                     "outcomes": int(p["actual"].notna().sum()), **live_metrics(p, task, labels, names),
                     **estimated_quality(p, task, labels)})
    out = pd.concat([hourly, pd.DataFrame(rows)], ignore_index=True) if hourly is not None and len(hourly) \
        else pd.DataFrame(rows)
    if out.empty:
        return pd.DataFrame(columns=["time", "requests", "errors", "rows", "latency_p50_ms", "latency_p95_ms", "outcomes",
                                     *names, *(f"estimated_{m}" for m in names if task != "regression")])
    out["time"] = pd.to_datetime(out["time"], unit="s", utc=True)
    return out.sort_values("time").reset_index(drop=True)


def live_metrics(preds: pd.DataFrame, task: str, labels: list[str], names: list[str] | None = None) -> dict:
    """The task's metrics over the rows with outcomes (NaN where there are none, or a metric is undefined)."""
    names = names or LIVE_METRICS[task]
    done = preds[preds["actual"].notna()]
    if done.empty:
        return {m: np.nan for m in names}
    if task == "regression":
        m = score(task, done["actual"].astype(float).to_numpy(), done["score"].to_numpy(float))
    else:
        code = {c: k for k, c in enumerate(labels)}
        m = score(task, done["actual"].map(code).to_numpy(), _probabilities(done, labels))
    return {k: m.get(k, np.nan) for k in names}


def estimated_quality(preds: pd.DataFrame, task: str, labels: list[str]) -> dict:
    """Quality expected from the logged probabilities alone, before any outcome arrives: confidence-based performance
    estimation (CBPE, as NannyML does). It holds when the probabilities are calibrated (``auto`` calibrates
    them when that helps out of fold) and the link from inputs to outcomes has not changed; input drift alone it
    follows. Accuracy is the mean probability of the predicted class; ROC AUC comes from the expected confusion
    matrices over all thresholds (``expected_roc_auc``). A regression has no estimate: an empty dict."""
    if task == "regression":
        return {}
    if preds.empty:
        return {f"estimated_{m}": np.nan for m in ESTIMATED}
    proba = _probabilities(preds, labels)
    return {"estimated_accuracy": float(proba.max(axis=1).mean()), "estimated_roc_auc": expected_roc_auc(proba)}


def expected_roc_auc(proba: np.ndarray) -> float:
    """The ROC AUC expected if the probabilities (n × classes) are right; one-vs-rest macro average for more than two
    classes, as the realized one. At each threshold t on a class's probability p the expected confusion matrix is
    TP = Σ p and FP = Σ (1 − p) over the rows with p ≥ t, FN = Σ p and TN = Σ (1 − p) over the rest: its true and false
    positive rates trace the expected ROC curve.

    Examples
    --------
    >>> round(expected_roc_auc(np.array([[0.9, 0.1], [0.1, 0.9]])), 3)  # each row's class 90 % sure
    0.9
    """
    proba = np.asarray(proba, dtype=np.float64)
    ks = [1] if proba.shape[1] == 2 else range(proba.shape[1])
    areas = [_expected_auc(proba[:, k]) for k in ks]
    return float(np.nanmean(areas)) if np.isfinite(areas).any() else np.nan


def _expected_auc(p: np.ndarray) -> float:
    p = np.sort(p)[::-1]
    positives, negatives = p.sum(), (1 - p).sum()
    if positives <= 0 or negatives <= 0:
        return np.nan
    last = np.append(p[1:] != p[:-1], True)  # rows tied at a threshold are all on its positive side
    tpr = np.append(0.0, np.cumsum(p)[last] / positives)
    fpr = np.append(0.0, np.cumsum(1 - p)[last] / negatives)
    return float(auc(fpr, tpr))  # np.trapezoid is numpy 2 only; numpy 1.26 is allowed


def segment_column(package, preds: pd.DataFrame, wanted: str | None = None) -> str | None:
    """The input column to break quality down by: ``wanted`` if the model reads it, else the first category column of
    the package's schema with 2 to 20 levels (without the package: the first logged text column with that many values);
    None when no column fits."""
    names = _inputs(package, preds)
    if wanted:
        if wanted not in names:
            raise MonitorError(f"the model reads no input column '{wanted}' to break quality down by; choose one of "
                               f"{', '.join(names)}")
        return wanted
    lo, hi = SEGMENT_LEVELS
    if package is not None:
        return next((c.name for c in package.schema if c.type == "category" and lo <= len(c.categories or []) <= hi), None)
    raw = pd.DataFrame.from_records([r for r in preds["input"] if isinstance(r, dict)], columns=names)
    for name in names:  # the kind cleaning would give it
        if infer_kind(raw[name])[0] == "category" and lo <= as_text(raw[name]).nunique() <= hi:
            return name
    return None


def _inputs(package, preds: pd.DataFrame) -> list[str]:
    """The model's input columns: its package's schema, else the keys of the logged rows."""
    return [c.name for c in package.schema] if package is not None else \
        list(dict.fromkeys(k for r in preds["input"].head(100) if isinstance(r, dict) for k in r))


def segment_values(preds: pd.DataFrame, column: str, package=None) -> pd.Series:
    """Each logged row's segment: its ``column`` value as the model read it when the package is there (spellings
    merged, unseen values "(other)", missing ones "(missing)"), else the raw value as text."""
    raw = pd.Series([r.get(column) if isinstance(r, dict) else None for r in preds["input"]], index=preds.index,
                    name=column, dtype=object)
    plan = package.model.cleaner.plan_.get(column) if package is not None else None
    if plan is not None and plan["kind"] == "category":
        encoder = RowEncoder({column: plan})
        return encoder.to_frame(encoder.frame(raw.to_frame()), raw.index)[column].astype(str)
    return as_text(raw).fillna("(missing)").astype(str)


def segments(preds: pd.DataFrame, task: str, labels: list[str], values: pd.Series, top: int = TOP_SEGMENTS) -> pd.DataFrame:
    """Live quality per segment (``values``: each row's, as ``segment_values`` gives them): rows, outcomes, the task's
    metrics on the outcomes, the quality estimated from confidence (classification), and for two classes the share
    predicted positive and, on the outcomes, the share that was. The ``top`` most frequent values each, the rest as
    one "(other)" segment; largest first, "(other)" last."""
    keep = values.value_counts().index[:top]
    seg = values.where(values.isin(keep), OTHER)
    positive = labels[1] if task == "binary" else None
    rows = []
    for name, p in preds.groupby(seg, sort=False):
        done = p["actual"].dropna()
        row = {"segment": name, "rows": len(p), "outcomes": len(done), **live_metrics(p, task, labels),
               **estimated_quality(p, task, labels)}
        if positive is not None:
            row |= {"predicted_positive_rate": float((p["prediction"] == positive).mean()),
                    "positive_rate": float((done == positive).mean()) if len(done) else np.nan}
        rows.append(row)
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    return out.sort_values(["rows"], ascending=False, key=lambda v: v.where(out["segment"] != OTHER, -1)) \
        .reset_index(drop=True)


def realized_value(decision, preds: pd.DataFrame, labels: list[str]) -> dict | None:
    """What the package's decision rule earned per row on the live rows whose outcomes came back, beside what it was
    expected to earn (out of fold, in training); None without a rule."""
    if decision is None:
        return None
    done = preds[preds["actual"].notna()]
    expected = {"expected_per_row": decision.value_per_row, "outcomes": len(done)}
    if done.empty:
        return expected | {"realized_per_row": np.nan}
    decided = decision(_probabilities(done, labels))
    earned = [decision.values[str(a)][str(d)] for a, d in zip(done["actual"], decided)]
    return expected | {"realized_per_row": float(np.mean(earned))}


def _probabilities(done: pd.DataFrame, labels: list[str]) -> np.ndarray:
    """The logged probabilities (n × classes) of logged rows: two classes keep the second one's as the score."""
    if len(labels) == 2:
        p1 = done["score"].to_numpy(float)
        return np.column_stack([1 - p1, p1])
    return np.array([[d[c] for c in labels] for d in done["probabilities"]])


def validation_metric(validation: dict, metric: str) -> float:
    """The metric the model had before it was served: on its test rows if known, else cross-validated."""
    for key in (f"test_{metric}", f"cv_{metric}", metric, f"validation_{metric}"):
        if key in validation and validation[key] is not None:
            return float(validation[key])
    return np.nan


def drift(package, preds: pd.DataFrame, th: Thresholds, baseline: pd.Series | None = None) -> pd.DataFrame:
    """Each input column's drift against the package's training sample — population stability index over the
    training deciles (or categories), with a missing-value bin, and a two-sample test: Kolmogorov–Smirnov for numbers
    and dates, chi-square for categories (scipy.stats). A column drifted when both say so: the PSI at or over its
    threshold and the p-value under its own.

    The predictions are compared with ``baseline``, the scores of the version's first live rows (its reference
    period), not with its predictions on the training rows: those are in-sample, more confident than any new row
    (measured on the demo: PSI 0.41 for traffic drawn from the training distribution)."""
    columns = ["column", "kind", "psi", "test", "statistic", "p_value", "drifted", "live_rows"]
    if len(preds) < th.min_rows:
        return pd.DataFrame(columns=columns)
    ref_X = _reference(package)
    raw = pd.DataFrame.from_records(list(preds["input"]), columns=[c.name for c in package.schema])
    live_X = package.model.cleaner.transform(raw)
    out = []
    for c in package.schema:
        feature = f"{c.name}_days" if c.type == "date" else c.name
        if feature not in live_X.columns:
            continue
        kind = "category" if c.type == "category" else "number"
        out.append({"column": c.name, "kind": kind, **_compare(ref_X[feature], live_X[feature], kind)})
    if baseline is not None and len(baseline) >= th.min_rows:
        out.append({"column": "(prediction)", "kind": "number", **_compare(baseline, preds["score"], "number")})
    df = pd.DataFrame(out)
    df["drifted"] = (df["psi"] >= th.psi) & (df["p_value"] < th.p_value)
    df["live_rows"] = len(preds)
    return df[columns]


def _compare(ref: pd.Series, live: pd.Series, kind: str) -> dict:
    if kind == "number":
        r, lv = pd.to_numeric(ref, errors="coerce").to_numpy(float), pd.to_numeric(live, errors="coerce").to_numpy(float)
        edges = np.unique(np.nanquantile(r, np.linspace(0, 1, BINS + 1)[1:-1])) if np.isfinite(r).any() else np.array([])
        rc, lc = _binned(r, edges), _binned(lv, edges)
        rf, lf = r[np.isfinite(r)], lv[np.isfinite(lv)]
        test = stats.ks_2samp(rf, lf) if len(rf) and len(lf) else None
        name = "Kolmogorov-Smirnov"
    else:
        r, lv = ref.astype(object).where(ref.notna(), "(missing)"), live.astype(object).where(live.notna(), "(missing)")
        cats = sorted(set(r) | set(lv), key=str)
        rc = np.array([(r == k).sum() for k in cats], float)
        lc = np.array([(lv == k).sum() for k in cats], float)
        keep = (rc + lc) > 0
        table = np.vstack([rc[keep], lc[keep]])
        test = stats.chi2_contingency(table) if table.shape[1] > 1 else None
        name = "chi-square"
    rs, ls = np.maximum(rc / max(rc.sum(), 1), EPS), np.maximum(lc / max(lc.sum(), 1), EPS)
    psi = float(np.sum((ls - rs) * np.log(ls / rs)))
    return {"psi": psi, "test": name, "statistic": float(test.statistic) if test is not None else np.nan,
            "p_value": float(test.pvalue) if test is not None else 1.0}


def _binned(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    finite = np.isfinite(values)
    counts = np.bincount(np.searchsorted(edges, values[finite], side="right"), minlength=len(edges) + 1).astype(float)
    return np.append(counts, (~finite).sum())


def alerts_of(st: MonitorStatus) -> list[Alert]:
    th, out = st.thresholds, []
    for _, d in st.drift[st.drift["drifted"].astype(bool)].iterrows() if len(st.drift) else []:
        kind = "prediction drift" if d["column"] == "(prediction)" else "drift"
        what = "the predictions have" if kind == "prediction drift" else f"column '{d['column']}' has"
        out.append(Alert(kind, d["column"], float(d["psi"]), th.psi,
                         f"{what} drifted from training: stability index {d['psi']:.2f} (alert at {th.psi:g}), "
                         f"{d['test']} p = {d['p_value']:.2g}"))
    last15, hour = st.windows.iloc[0], st.windows.iloc[1]
    if last15["requests"] >= th.min_rows and last15["error_rate"] > th.error_rate:
        out.append(Alert("error rate", "requests", float(last15["error_rate"]), th.error_rate,
                         f"{last15['error_rate']:.1%} of the requests in the last 15 minutes failed (alert over "
                         f"{th.error_rate:.0%})"))
    if last15["requests"] >= th.min_rows and last15["latency_p95_ms"] > th.latency_ms:
        out.append(Alert("latency", "p95", float(last15["latency_p95_ms"]), th.latency_ms,
                         f"95% of the requests in the last 15 minutes took up to {last15['latency_p95_ms']:.0f} ms "
                         f"(alert over {th.latency_ms:g} ms)"))
    m, base = st.headline, st.validation_score
    if hour["outcomes"] >= th.min_rows and _drop(m, hour[m], base) > th.metric_drop:
        out.append(Alert("metric drop", m, float(hour[m]), base,
                         f"{m} over the last hour is {hour[m]:.3f} against {base:.3f} at validation "
                         f"(alert when worse by more than {th.metric_drop:g})"))
    c = st.confidence  # an early warning, before the outcomes come back
    if c is not None and c["recent_rows"] >= th.min_rows and _drop(m, c["recent"], c["reference"]) > th.metric_drop:
        out.append(Alert("estimated drop", m, float(c["recent"]), float(c["reference"]),
                         f"{m} estimated from the model's confidence on the newest {c['recent_rows']:,} rows is "
                         f"{c['recent']:.3f} against {c['reference']:.3f} on this version's first "
                         f"{c['reference_rows']:,}, before outcomes arrive (alert when worse by more than "
                         f"{th.metric_drop:g})"))
    return out


def _drop(metric: str, live: float, base: float) -> float:
    """How much worse ``live`` is than ``base`` (relative for errors); NaN when either is unknown."""
    if not (np.isfinite(live) and np.isfinite(base)):
        return np.nan
    drop = loss(metric, live) - loss(metric, base)
    return drop if GREATER_IS_BETTER[metric] else drop / abs(base or 1)


def raise_alerts(log: PredictionLog, model: str, version: str, alerts: list[Alert], now: float) -> list[Alert]:
    """Write the alerts not already raised in the last hour (same kind and subject); returns the new ones."""
    recent = log.query("SELECT kind, subject FROM alerts WHERE model = ? AND ts >= ?", (model, now - 3600))
    seen = set(map(tuple, recent.values.tolist()))
    new = [a for a in alerts if (a.kind, a.subject) not in seen]
    if new:
        log.add_alerts([(now, model, version, a.kind, a.subject, a.value, a.threshold, a.message) for a in new])
    return new


def alert_history(log: PredictionLog, model: str, since: float) -> pd.DataFrame:
    df = log.query("SELECT ts, version, kind, subject, value, threshold, message FROM alerts WHERE model = ? AND ts >= ? "
                   "ORDER BY ts DESC", (model, since))
    df["ts"] = pd.to_datetime(df["ts"], unit="s", utc=True)
    return df


def feedback_pairs(preds: pd.DataFrame, task: str, labels: list[str], limit: int = 2000) -> pd.DataFrame:
    """Predicted against actual for the newest rows with outcomes (the scatter on the dashboard)."""
    done = preds[preds["actual"].notna()].tail(limit)
    out = pd.DataFrame({"time": pd.to_datetime(done["ts"], unit="s", utc=True), "request_id": done["request_id"],
                        "predicted": done["prediction"], "score": done["score"], "actual": done["actual"]})
    if task == "regression":
        out["predicted"] = out["predicted"].astype(float)
        out["actual"] = out["actual"].astype(float)
    return out.reset_index(drop=True)


def _distribution(p: pd.DataFrame, task: str, labels: list[str]) -> dict:
    if task == "regression":
        v = p["score"].to_numpy(float)
        return {"prediction_mean": float(v.mean()) if len(v) else np.nan,
                "prediction_std": float(v.std()) if len(v) else np.nan}
    shares = p["prediction"].value_counts(normalize=True)
    return {f"share_{c}": float(shares.get(c, 0.0)) if len(p) else np.nan for c in labels}


_REFERENCES: dict = {}


def _reference(package) -> pd.DataFrame:
    """The package's training sample, cleaned as the model cleans its rows; once per package."""
    key = (str(package.path), package.manifest["version"])
    if key not in _REFERENCES:
        _REFERENCES[key] = package.model.cleaner.transform(package.sample)
    return _REFERENCES[key]


@lru_cache(maxsize=8)
def _package_cached(path: str):
    return load_package(path)


def _package(path: str | None, source: str | None, model: str, version: str):
    """The package the traffic was served from: its folder if it is still there, else the repository's copy."""
    if path and Path(path).exists():
        return _package_cached(path)
    if source and not Path(source).exists():
        try:
            return repository.fetch(f"{model}/{version}")
        except Exception:  # noqa: BLE001 - no package means no drift; the status says so
            return None
    return None


class Checker:
    """A service's alert checks in a process of their own: judging the newest requests costs about a second of
    pandas work, which in the service's process would hold the interpreter and stall the requests in flight.

    ``check(models)`` → ``{model: (version, alerts)}`` for the models with traffic; ``close()`` ends the process (it
    also ends by itself when the service's process goes). Its output goes nowhere: the service's log is the parent's.
    """

    def __init__(self, path: str | Path, newest: int):
        self._args = (str(path), newest)
        self._lock = threading.Lock()
        self._start()

    def _start(self) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")  # never fork a process that runs threads and an event loop
        self._conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_check_forever, args=(child, *self._args), daemon=True,
                                   name="workbench-alert-checker")
        self.process.start()
        child.close()

    def check(self, models: list[str]) -> dict[str, tuple[str, list[Alert]] | str]:
        """Each model's ``(version, alerts)``, or the message of what went wrong with it; models without traffic
        are left out. A checker process that ended (killed, out of memory) is started again: this check raises,
        the next one is answered."""
        with self._lock:
            if not self.process.is_alive():
                self._conn.close()
                self._start()
            try:
                self._conn.send(models)
                return self._conn.recv()
            except (EOFError, OSError) as exc:
                self._conn.close()
                self._start()
                raise RuntimeError(f"the alert checker's process ended ({type(exc).__name__}); a new one is started "
                                   "for the next check") from None

    def close(self) -> None:
        self.process.terminate()
        self.process.join(5)
        self._conn.close()


def _check_forever(conn, path: str, newest: int) -> None:
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)  # let go of the service's stdout/stderr (a reader waits for its end)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    log = PredictionLog(path, create=False, cache_rows=2 * newest)
    while True:
        try:
            models = conn.recv()
        except (EOFError, OSError):  # the service is gone
            return
        out: dict = {}
        for name in models:
            try:
                st = status(name, log=log, record=False, newest=newest)
                out[name] = (st.version, st.alerts)
            except MonitorError:
                continue  # no traffic yet
            except Exception as exc:  # noqa: BLE001 - said to the service, which logs it and goes on
                out[name] = f"{type(exc).__name__}: {exc}"
        conn.send(out)
