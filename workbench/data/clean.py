"""Cleaning: a transformer fitted on training data that replays identically on any later data."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from workbench.data.columns import (DAY_FIRST, DECIMAL_COMMAS, as_text, association, category_key, infer_kind,
                                    to_number)
from workbench.data.encode import DATE_PARTS, RowEncoder
from workbench.data.load import resolve_target
from workbench.data.readers import READERS
from workbench.data.task import infer_task, label_key
from workbench.errors import DataError


@dataclass
class Change:
    column: str
    action: str
    rows: int
    detail: str = ""


@dataclass
class CleaningReport:
    """Every change cleaning made, with the number of rows it touched."""

    changes: list[Change] = field(default_factory=list)
    rows_in: int = 0
    rows_out: int = 0

    def add(self, column: str, action: str, rows: int = 0, detail: str = "") -> None:
        self.changes.append(Change(column, action, int(rows), detail))

    @property
    def dropped(self) -> dict[str, str]:
        return {c.column: c.detail for c in self.changes if c.action == "dropped column"}

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([c.__dict__ for c in self.changes], columns=["column", "action", "rows", "detail"])

    def to_dict(self) -> dict:
        return {"rows_in": self.rows_in, "rows_out": self.rows_out, "changes": [c.__dict__ for c in self.changes]}

    @classmethod
    def from_dict(cls, d: dict) -> "CleaningReport":
        return cls([Change(**c) for c in d["changes"]], d["rows_in"], d["rows_out"])

    def _repr_html_(self) -> str:
        head = f"<p><b>Cleaning</b>: {self.rows_in} rows in, {self.rows_out} rows out, {len(self.changes)} changes</p>"
        return head + self.to_frame().to_html(index=False)

    def __str__(self) -> str:
        lines = [f"cleaning: {self.rows_in} rows in, {self.rows_out} out"]
        lines += [f"  {c.column}: {c.action}" + (f" ({c.rows} rows)" if c.rows else "") + (f" — {c.detail}" if c.detail else "")
                  for c in self.changes]
        return "\n".join(lines)


class Cleaner(TransformerMixin, BaseEstimator):
    """Fix types, spellings, missing values, rare categories, outliers; drop useless and leaking columns.

    Fitted on training data, it replays the same plan on any later table: the same
    output columns in the same order, categories with the training levels (unseen
    values become ``"(other)"``, missing ones ``"(missing)"``), numbers held to the
    training range and left missing where they are missing (the tree families read a
    missing value as such; the others impute it inside their own pipeline, with the
    median of the rows they are fitted on). Its whole learned state
    is plain JSON (``to_json`` / ``from_json``): no pickle needed to ship it.

    Parameters
    ----------
    rare_min_count : categories seen fewer times are grouped into ``"(other)"``.
    max_levels : at most this many levels per category column are kept.
    outlier_iqr : numbers beyond quartile ± this many interquartile ranges are reported as outliers (and kept; later
        values are held to the training range).
    leak_threshold : a column that alone predicts the target at least this well is dropped.

    Attributes
    ----------
    plan_ : dict of column → what to do with it.
    dropped_ : dict of dropped column → reason.
    target_ : dict with the target's name, task and (for classification) classes.
    report_ : CleaningReport of the fit data.

    Examples
    --------
    >>> from workbench.data import load
    >>> df = load("demo", n_rows=200)
    >>> c = Cleaner().fit(df.drop(columns="churn"), df["churn"])
    >>> "churn_reason" in c.dropped_
    True
    """

    def __init__(self, rare_min_count: int = 10, max_levels: int = 100, outlier_iqr: float = 3.0,
                 leak_threshold: float = 0.98, task: str | None = None):
        self.rare_min_count = rare_min_count
        self.max_levels = max_levels
        self.outlier_iqr = outlier_iqr
        self.leak_threshold = leak_threshold
        self.task = task

    def fit(self, X: pd.DataFrame, y: pd.Series | None = None):
        self.fit_transform(X, y)
        return self

    def fit_transform(self, X: pd.DataFrame, y: pd.Series | None = None, **_) -> pd.DataFrame:
        if not isinstance(X, pd.DataFrame):
            raise DataError("the cleaner takes a pandas DataFrame")
        report = CleaningReport(rows_in=len(X), rows_out=len(X))
        self.plan_, self.dropped_, self.target_ = {}, {}, None
        yt, self._oof = None, {}
        if y is not None:
            self.target_ = _fit_target(y, self.task, report)
            yt = self.transform_target(y)
        for col in X.columns:
            self._fit_column(str(col), X[col], yt, report)
        if not self.plan_:
            raise DataError("no usable feature columns are left after cleaning: " +
                            "; ".join(f"{c}: {r}" for c, r in self.dropped_.items()))
        self.feature_names_in_ = np.array([str(c) for c in X.columns], dtype=object)
        self.report_ = report
        out = self.transform(X)
        for col, features in self._oof.items():  # a text's training score comes from folds that did not see its row
            out[[f"{col}_{o}" for o in self.plan_[col]["outputs"]]] = features
        del self._oof
        return out

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """The cleaned table; a Dask DataFrame is cleaned lazily, partition by partition, with the same plan."""
        check_is_fitted(self, "plan_")
        missing = [c for c in self.plan_ if c not in X.columns]
        if missing:
            raise DataError(f"columns missing from the table: {', '.join(missing)}; give every column the model was trained on")
        if type(X).__module__.startswith("dask"):
            return X.map_partitions(self.transform, meta=self.transform(X._meta))
        encoder = self.encoder()
        return encoder.to_frame(encoder.frame(X), X.index)

    def encoder(self, schema=None, *, allow_unseen: bool = True, media_root=None) -> RowEncoder:
        """The fitted plan compiled into a row encoder: raw records or a table's columns → the float matrix every
        scorer takes; with a Schema it also checks records against the training ranges and nullability."""
        check_is_fitted(self, "plan_")
        return RowEncoder(self.plan_, schema, allow_unseen=allow_unseen, ignored=self.dropped_, media_root=media_root)

    def transform_target(self, y: pd.Series) -> pd.Series:
        """Target values in their training spelling (classification) or as numbers (regression)."""
        check_is_fitted(self, "plan_")
        if self.target_["task"] == "regression":
            return to_number(y)
        keys = label_key(y)
        return keys.map(self.target_["labels"]).astype("object").where(keys.notna(), None)

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        check_is_fitted(self, "plan_")
        names = []
        for col, plan in self.plan_.items():
            names += ([f"{col}_{p}" for p in DATE_PARTS] if plan["kind"] == "date" else
                      [f"{col}_{o}" for o in plan["outputs"]] if "outputs" in plan else [col])
        return np.array(names, dtype=object)

    def to_json(self) -> str:
        check_is_fitted(self, "plan_")
        return json.dumps({"params": self.get_params(), "plan": self.plan_, "dropped": self.dropped_,
                           "target": self.target_, "columns_in": list(self.feature_names_in_),
                           "report": self.report_.to_dict()}, indent=1)

    @classmethod
    def from_json(cls, text: str) -> "Cleaner":
        d = json.loads(text)
        c = cls(**d["params"])
        c.plan_, c.dropped_, c.target_ = d["plan"], d["dropped"], d["target"]
        c.feature_names_in_ = np.array(d["columns_in"], dtype=object)
        c.report_ = CleaningReport.from_dict(d["report"])
        return c

    def _drop(self, col: str, reason: str, report: CleaningReport) -> None:
        self.dropped_[col] = reason
        report.add(col, "dropped column", 0, reason)

    def _fit_column(self, col: str, s: pd.Series, y: pd.Series | None, report: CleaningReport) -> None:
        kind, detail = infer_kind(s)
        if kind in READERS:
            def add(action: str, rows: int, more: str) -> None:  # the profile's reason first: "free text: 13 words…"
                report.add(col, action, rows, "; ".join(filter(None, [detail, more])))

            try:
                task = self.target_["task"] if y is not None else None
                self.plan_[col], features = READERS.get(kind).fit(s, y, task, add)
            except ValueError as exc:
                self._drop(col, f"{detail}: {exc}", report)
                return
            if features is not None:
                self._oof[col] = features
            return
        if kind in {"empty", "constant", "id"}:
            self._drop(col, {"empty": "all values missing", "constant": "constant: one value only",
                             "id": f"ID-like: {detail}"}[kind], report)
            return
        if not pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
            t = s.astype("string")
            spaces = int((t.notna() & (t != t.str.strip())).sum())
            if spaces:
                report.add(col, "stripped spaces", spaces)
            tokens = int((t.notna() & as_text(s).isna()).sum())
            if tokens:
                spelled = sorted(set(t[t.notna() & as_text(s).isna()].str.strip()))[:5]
                report.add(col, "missing spellings → missing", tokens, ", ".join(repr(x) for x in spelled))
        if kind == "number":
            plan, values = _fit_number(s, detail, report, col, self.outlier_iqr)
        elif kind == "date":
            dayfirst = detail == DAY_FIRST
            plan = {"kind": "date", "fill": None} | ({"dayfirst": True} if dayfirst else {})  # missing stays missing
            values = None
            report.add(col, "date → year, month, weekday, days", int(as_text(s).notna().sum()))
        else:
            plan, values = _fit_category(s, report, col, self.rare_min_count, self.max_levels)
        if y is not None and kind != "date":
            strength = association(values, y, self.target_["task"])
            if strength >= self.leak_threshold:
                self._drop(col, f"leaks the target: alone it predicts '{y.name}' with strength {strength:.3f}", report)
                return
        self.plan_[col] = plan


def _fit_number(s, detail, report, col, k):
    comma = detail == DECIMAL_COMMAS
    x = to_number(s, comma)
    if detail:
        report.add(col, "text → number", int(x.notna().sum()), detail)
    bad = int((as_text(s).notna() & x.isna()).sum()) if detail else 0
    if bad:
        report.add(col, "unreadable numbers → missing", bad)
    q1, q3 = x.quantile([0.25, 0.75])
    if q3 > q1:  # outliers are reported, not changed: they may be the signal (fraud, a fare's total)
        fences = q1 - k * (q3 - q1), q3 + k * (q3 - q1)
        n_out = int(((x < fences[0]) | (x > fences[1])).sum())
        if n_out:
            report.add(col, "outliers kept", n_out, f"beyond [{fences[0]:.4g}, {fences[1]:.4g}]; models see them as "
                                                    "they are")
    # later values are held to the training range, which changes no training value (the service refuses far beyond)
    clip = [float(x.min()), float(x.max())] if x.notna().any() else None
    n_missing = int(x.isna().sum())
    if n_missing:  # a missing value may be the signal: the tree families split on it, the others impute in their pipeline
        report.add(col, "missing kept", n_missing, "tree models read them as missing; the others impute the median")
    # "fill": None — missing stays missing (a plan of an older version holds the median it imputed)
    plan = {"kind": "number", "fill": None, "clip": clip, "from_text": bool(detail)} | ({"comma": True} if comma else {})
    return plan, x


def _fit_category(s, report, col, rare_min_count, max_levels):
    t = as_text(s)
    keys = category_key(t)
    spelled = pd.DataFrame({"k": keys, "t": t}).dropna()
    canon = spelled.groupby("k")["t"].agg(lambda v: v.value_counts().index[0])
    variants = spelled.groupby("k")["t"].nunique()
    merged = variants[variants > 1]
    if len(merged):
        n_rows = int((spelled["t"] != spelled["k"].map(canon)).sum())
        report.add(col, "merged spellings", n_rows, "; ".join(f"→ '{canon[k]}'" for k in merged.index[:5]))
    counts = keys.value_counts()
    keep = counts[counts >= rare_min_count].index[:max_levels]
    if len(keep) == 0:
        keep = counts.index[:max_levels]
    rare = int(keys.notna().sum() - keys.isin(keep).sum())
    if rare:
        report.add(col, "rare categories → (other)", rare, f"{len(counts) - len(keep)} categories")
    n_missing = int(keys.isna().sum())
    if n_missing:
        report.add(col, "missing → (missing)", n_missing)
    plan = {"kind": "category", "levels": [canon[k] for k in keep], "keys": {k: canon[k] for k in keep}}
    return plan, _cleaned(col, plan, s)


def _cleaned(col: str, plan: dict, s: pd.Series) -> pd.Series:
    """One raw column cleaned by its plan (a category or a number)."""
    encoder = RowEncoder({col: plan})
    return encoder.to_frame(encoder.frame(s.to_frame(col)), s.index)[col]


def _fit_target(y: pd.Series, task: str | None, report: CleaningReport) -> dict:
    name = str(y.name)
    if as_text(y).isna().all():
        raise DataError(f"target '{name}' has no values; choose a column that holds the outcome to predict")
    if task is None:
        task, why = infer_task(y)
        report.add(name, f"task: {task}", 0, why)
    if task == "regression":
        x = to_number(y)
        if x.notna().sum() == 0:
            raise DataError(f"target '{name}' holds no numbers; use --task binary or multiclass for labels")
        return {"name": name, "task": task}
    keys = label_key(y)
    t = as_text(y)
    canon = pd.DataFrame({"k": keys, "t": t.str.rstrip(".").str.strip()}).dropna().groupby("k")["t"].agg(
        lambda v: v.value_counts().index[0])
    if len(canon) < 2:
        raise DataError(f"target '{name}' has only one class ({', '.join(map(str, canon.values)) or 'none'}); "
                        "a classifier needs at least two")
    if task == "binary" and len(canon) > 2:
        raise DataError(f"target '{name}' has {len(canon)} classes ({', '.join(map(str, canon.values[:10]))}); "
                        "a binary task needs two: use --task multiclass")
    spelled = pd.DataFrame({"k": keys, "t": t}).dropna()
    merged = spelled[spelled["t"] != spelled["k"].map(canon)]
    if len(merged):
        merges = merged.groupby("k")["t"].agg(lambda v: sorted(set(v))[:4])
        report.add(name, "merged target labels", len(merged), "; ".join(
            f"{', '.join(map(repr, v))} → {canon[k]!r}" for k, v in merges.items()) + " (case, spaces, a trailing '.' "
            "and how a number is written do not matter)")
    labels = {k: _native(v, y) for k, v in canon.items()}
    classes = sorted(set(labels.values()), key=lambda v: (str(type(v)), v))
    return {"name": name, "task": task, "labels": labels, "classes": classes}


def _native(label: str, y: pd.Series):
    """Numeric and boolean labels keep their type (titanic's 0/1 stays 0/1)."""
    if pd.api.types.is_bool_dtype(y):
        return label.lower() == "true"
    if pd.api.types.is_integer_dtype(y):
        return int(float(label))
    if pd.api.types.is_float_dtype(y):
        v = float(label)
        return int(v) if v.is_integer() else v
    return label


@dataclass
class Cleaned:
    """What `clean` returns: the cleaned features and target, the fitted cleaner and its report."""

    X: pd.DataFrame
    y: pd.Series | None
    cleaner: Cleaner
    report: CleaningReport
    target: str | None = None

    @property
    def task(self) -> str | None:
        return self.cleaner.target_["task"] if self.cleaner.target_ else None

    def _repr_html_(self) -> str:
        return self.report._repr_html_()


def clean(df: pd.DataFrame, target: str | int | None = None, *, task: str | None = None,
          drop_duplicates: bool = False, **params) -> Cleaned:
    """Fit a Cleaner on a training table and return the cleaned table with the report.

    Rows without a target are removed here (training data only); repeated rows are observations and stay, counted
    in the report, unless ``drop_duplicates``. The fitted cleaner itself never drops rows, so it can score any later
    table.
    """
    report = CleaningReport(rows_in=len(df))
    if target is not None:
        target = resolve_target(df, target)
    dup = df.duplicated()
    if dup.any() and drop_duplicates:
        report.add("(rows)", "removed duplicate rows", int(dup.sum()))
        df = df[~dup]
    elif dup.any():
        report.add("(rows)", "kept duplicate rows", int(dup.sum()), "repeated rows are observations; "
                   "drop_duplicates=True removes them")
    y = None
    if target is not None:
        missing_y = as_text(df[target]).isna()
        if missing_y.all():
            raise DataError(f"target '{target}' has no values; choose a column that holds the outcome to predict")
        if missing_y.any():
            report.add(target, "removed rows with missing target", int(missing_y.sum()))
            df = df[~missing_y]
        y = df[target]
        df = df.drop(columns=[target])
    cleaner = Cleaner(task=task, **params)
    X = cleaner.fit_transform(df, y)
    report.changes += cleaner.report_.changes
    report.rows_out = len(X)
    cleaner.report_ = report
    yt = cleaner.transform_target(y) if y is not None else None
    if yt is not None and cleaner.target_["task"] == "regression" and yt.isna().any():
        keep = yt.notna()
        report.add(target, "removed rows whose target is not a number", int((~keep).sum()))
        X, yt = X[keep], yt[keep]
        report.rows_out = len(X)
    return Cleaned(X.reset_index(drop=True), None if yt is None else yt.reset_index(drop=True).rename(target),
                   cleaner, report, target)


def preview_changes(raw: pd.DataFrame, cleaner: Cleaner, n: int = 3) -> pd.DataFrame:
    """A few rows per column where cleaning changed the value: column, row, before, after."""
    rows = []
    for col, plan in cleaner.plan_.items():
        if plan["kind"] not in ("number", "category") or col not in raw.columns:
            continue
        after = _cleaned(col, plan, raw[col]).astype("string")
        before = raw[col].astype("string")
        changed = before.fillna("<missing>") != after.fillna("<missing>")
        if plan["kind"] == "number":  # 3 and 3.0 are the same number
            changed &= ~(to_number(raw[col], plan.get("comma", False)) == to_number(after))
        for i in before.index[changed][:n]:
            rows.append({"column": col, "row": i, "before": before[i], "after": after[i]})
    return pd.DataFrame(rows, columns=["column", "row", "before", "after"])
