"""A first look at a table: what each column is, how dirty, how related to the target."""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from workbench.data.columns import DECIMAL_COMMAS, as_text, association, infer_kind, to_number
from workbench.data.lazy import is_lazy, sample
from workbench.data.load import resolve_target
from workbench.data.task import detect_task

LEAK_WARNING = 0.98


@dataclass
class Profile:
    """Per-column facts about a table; ``to_frame()`` for the numbers, ``warnings`` for what needs a look."""

    columns: pd.DataFrame
    rows: int
    target: str | None
    task: str | None
    duplicate_rows: int
    sampled: int | None = None  # a lazy table: the rows of the uniform sample the statistics come from

    @property
    def source(self) -> str:
        """Where the statistics come from (every row, or a sample)."""
        return f"statistics from a uniform sample of {self.sampled:,} of {self.rows:,} rows" if self.sampled else ""

    def to_frame(self) -> pd.DataFrame:
        return self.columns.copy()

    @property
    def warnings(self) -> list[str]:
        out = [f"{self.duplicate_rows} duplicate rows" + (" in the sample" if self.sampled else "")] if self.duplicate_rows else []
        for _, r in self.columns.iterrows():
            if r["warning"]:
                out.append(f"{r['column']}: {r['warning']}")
        return out

    def to_dict(self) -> dict:
        return {"rows": self.rows, "target": self.target, "task": self.task, "duplicate_rows": self.duplicate_rows,
                "sampled": self.sampled, "columns": self.columns.to_dict(orient="records"), "warnings": self.warnings}

    @classmethod
    def from_dict(cls, d: dict) -> "Profile":
        return cls(pd.DataFrame(d["columns"]), d["rows"], d["target"], d["task"], d["duplicate_rows"], d.get("sampled"))

    def __str__(self) -> str:
        head = f"{self.rows} rows, {len(self.columns)} columns" + (f", target '{self.target}' ({self.task})" if self.target else "")
        head += f" ({self.source})" if self.sampled else ""
        body = self.columns.drop(columns=["examples"]).to_string(index=False)
        warn = "\n".join(f"! {w}" for w in self.warnings)
        return "\n".join(x for x in [head, body, warn] if x)

    def _repr_html_(self) -> str:
        head = f"<p><b>{self.rows}</b> rows, <b>{len(self.columns)}</b> columns"
        head += f", target <b>{self.target}</b> ({self.task})" if self.target else ""
        head += f" ({self.source})</p>" if self.sampled else "</p>"
        warn = "".join(f"<li>{w}</li>" for w in self.warnings)
        return head + (f"<ul style='color:#b45309'>{warn}</ul>" if warn else "") + self.columns.to_html(index=False)


def profile(df: pd.DataFrame, target: str | int | None = None, *, task: str | None = None) -> Profile:
    """Profile a raw table: per column the inferred type, missing share, cardinality, examples,
    outliers, association with the target and a leakage warning.

    A lazy table (a Dask DataFrame from ``load`` of a folder or glob) is profiled from one pass: its exact row count
    and a seeded uniform sample of ``workbench.data.lazy.SAMPLE_ROWS`` rows (``Profile.sampled``).

    Examples
    --------
    >>> from workbench.data import load
    >>> p = profile(load("demo", n_rows=300), "churn")
    >>> p.to_frame().set_index("column").loc["churn_reason", "warning"].startswith("leaks")
    True
    """
    if is_lazy(df):
        return profile_sample(*sample(df), target, task=task)
    if target is not None:
        target = resolve_target(df, target)
        task = task or detect_task(df[target].dropna())
    y = as_text(df[target]) if target is not None else None
    rows = []
    for col in df.columns:
        s = df[col]
        kind, detail = infer_kind(s)
        text = as_text(s)
        missing = float(text.isna().mean())
        numbers = s.astype("float64") if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s) else (
            to_number(text, detail == DECIMAL_COMMAS) if kind == "number" else None)
        outliers = 0
        if numbers is not None:
            q1, q3 = numbers.quantile([0.25, 0.75])
            if q3 > q1:
                outliers = int(((numbers < q1 - 3 * (q3 - q1)) | (numbers > q3 + 3 * (q3 - q1))).sum())
        strength = None
        warning = ""
        if y is not None and col != target and kind not in {"empty", "constant"}:
            values = numbers if numbers is not None else text
            strength = round(association(values, y, task), 3)
            if strength >= LEAK_WARNING:
                warning = f"leaks the target (alone it predicts '{target}' with strength {strength:.3f})"
        if not warning and kind in {"empty", "constant", "id"}:
            warning = {"empty": "all values missing", "constant": "one value only", "id": "ID-like"}[kind]
        rows.append({
            "column": str(col), "type": kind + (f" ({detail})" if detail and kind in {"number", "date", "text"} else ""),
            "missing": round(missing, 4), "distinct": int(text.nunique()),
            "examples": ", ".join(map(str, text.dropna().unique()[:3])), "outliers": outliers,
            "target_strength": strength, "warning": warning,
        })
    return Profile(pd.DataFrame(rows), len(df), target, task, int(df.duplicated().sum()))


def profile_sample(rows: pd.DataFrame, total: int, target: str | int | None = None, *, task: str | None = None) -> Profile:
    """The profile of a table of ``total`` rows from a uniform sample of them (``rows``); it says so when it is one."""
    p = profile(rows, target, task=task)
    p.rows, p.sampled = total, (len(rows) if len(rows) < total else None)
    return p
