"""Which kind of problem a target poses."""
from __future__ import annotations

import pandas as pd

from workbench.data.columns import as_text, to_number
from workbench.errors import ModelError

TASKS = ("binary", "multiclass", "regression")


def detect_task(y: pd.Series) -> str:
    """binary for two values, multiclass for labels, regression for numbers with more than two values."""
    values = y.dropna()
    if pd.api.types.is_bool_dtype(values) or values.nunique() <= 2:
        return "binary"
    if pd.api.types.is_numeric_dtype(values):
        return "regression"
    t = as_text(values).dropna()
    if to_number(t).notna().mean() > 0.95 and t.nunique() > 20:
        return "regression"
    return "multiclass"


def check_task(task: str | None) -> str | None:
    if task is not None and task not in TASKS:
        raise ModelError(f"unknown task '{task}'. Valid tasks: {', '.join(TASKS)}")
    return task
