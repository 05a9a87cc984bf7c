"""Reading raw column values: missing spellings, numbers stored as text, dates, category keys.

Shared by the profile, the cleaner and the schema so that all three agree on what a
column is.
"""
from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd

MISSING_TOKENS = frozenset({"", "?", "na", "n/a", "nan", "null", "none", "-", "--", "missing", "#n/a", "nil", "<na>"})
_NUMBER = re.compile(r"^([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(?:[A-Za-z%]{1,5})?$")


def as_text(s: pd.Series) -> pd.Series:
    """Values as stripped strings, with every missing spelling turned into NA."""
    t = s.astype("string").str.strip()
    return t.mask(t.str.lower().isin(MISSING_TOKENS))


def to_number(t: pd.Series) -> pd.Series:
    """Parse text such as '1,234.50', '$12', '15 USD' or '30%' into floats (NaN where it is not a number)."""
    t = t.str.replace(r"^[\$€£¥]\s*|\s*[\$€£¥]$", "", regex=True)
    t = t.str.replace(r"(?<=\d),(?=\d{3}(?:\D|$))", "", regex=True)
    return pd.to_numeric(t.str.extract(_NUMBER, expand=False), errors="coerce").astype("float64")


def to_date(t: pd.Series) -> pd.Series:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pd.to_datetime(t, errors="coerce", format="mixed")


def category_key(t: pd.Series) -> pd.Series:
    """The spelling-insensitive key of a category: case, spaces, '-' and '_' do not matter."""
    return t.str.casefold().str.replace(r"[\s_\-]+", " ", regex=True).str.strip()


def infer_kind(s: pd.Series) -> tuple[str, str]:
    """(kind, detail) for a raw column: number, category, date, id, text, constant or empty."""
    if pd.api.types.is_bool_dtype(s):
        return ("category", "true/false") if s.nunique() > 1 else ("constant", "one value")
    if pd.api.types.is_numeric_dtype(s):
        v = s.dropna()
        if v.empty:
            return "empty", "all values missing"
        if v.nunique() <= 1:
            return "constant", "one value"
        if pd.api.types.is_integer_dtype(v) and len(v) >= 20 and v.nunique() == len(v) and v.is_monotonic_increasing:
            return "id", "unique increasing integers (a row number or ID)"
        return "number", ""
    t = as_text(s)
    v = t.dropna()
    if v.empty:
        return "empty", "all values missing"
    nunique = v.nunique()
    if nunique <= 1:
        return "constant", "one value"
    sample = v.sample(min(len(v), 500), random_state=0) if len(v) > 500 else v
    if to_number(sample).notna().mean() >= 0.95:
        return "number", "numbers stored as text"
    if sample.str.contains(r"\d[-/.]\d", regex=True).mean() >= 0.95 and to_date(sample).notna().mean() >= 0.95:
        return "date", "dates stored as text"
    keys = category_key(v).nunique()
    if len(v) >= 20 and keys >= 0.9 * len(v):
        return "id", f"{nunique} distinct values in {len(v)} rows (an ID or free text)"
    if keys > 1000 and keys >= 0.5 * len(v):
        return "text", f"{keys} distinct values (free text)"
    return "category", ""


def association(x: pd.Series, y: pd.Series, task: str) -> float:
    """How well one column alone predicts the target, from 0 (not at all) to 1 (exactly).

    Classification: the share of errors the column removes when each of its values
    (numbers in quantile bins) predicts its most frequent class (Goodman–Kruskal λ).
    Regression: |Spearman ρ| for numbers, the correlation ratio η for categories.
    """
    ok = y.notna().to_numpy()
    x, y = x[ok].reset_index(drop=True), y[ok].reset_index(drop=True)
    if len(x) < 10:
        return 0.0
    numeric = pd.api.types.is_numeric_dtype(x) and not pd.api.types.is_bool_dtype(x)
    if task == "regression":
        yv = pd.to_numeric(y, errors="coerce")
        if numeric:
            r = pd.concat([x, yv], axis=1).corr(method="spearman").iloc[0, 1]
            return 0.0 if pd.isna(r) else float(abs(r))
        groups = x.astype("string").fillna("(missing)")
        total = ((yv - yv.mean()) ** 2).sum()
        between = yv.groupby(groups).agg(["count", "mean"])
        eta2 = (between["count"] * (between["mean"] - yv.mean()) ** 2).sum() / total if total > 0 else 0.0
        return float(np.sqrt(eta2))
    if numeric:
        bins = max(2, min(50, len(x) // 20))
        groups = x if x.nunique() <= bins else pd.qcut(x.rank(method="first"), bins, labels=False)
        groups = groups.astype("float").fillna(-np.inf)
    else:
        groups = x.astype("string").fillna("(missing)")
        counts = groups.value_counts()
        groups = groups.where(groups.map(counts) >= 10, "(rare)")
    table = pd.crosstab(groups, y.astype("string"))
    base = table.sum(axis=0).max()
    n = table.to_numpy().sum()
    if n == base:
        return 0.0
    return float((table.max(axis=1).sum() - base) / (n - base))
