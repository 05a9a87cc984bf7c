"""Which kind of problem a target poses, and the one spelling-insensitive key of a class label."""
from __future__ import annotations

import pandas as pd

from workbench.data.columns import per_distinct, read_text, to_number
from workbench.errors import ModelError

TASKS = ("binary", "multiclass", "regression")
MAX_CODES = 10  # at most this many integer codes, counted from -1, 0 or 1, are taken for classes


def detect_task(y: pd.Series) -> str:
    """binary, multiclass or regression for a raw target (``infer_task`` says why)."""
    return infer_task(y)[0]


def infer_task(y: pd.Series) -> tuple[str, str]:
    """(task, why) for a raw target, as a careful analyst would decide.

    Two distinct labels (case, spaces, a trailing '.' and "1" against "1.0" ignored) are binary. Numbers are a
    regression, except a few integer codes counted from -1, 0 or 1 (1, 2, 3; 0…4; -1, 0, 1): those are classes. Text labels are
    multiclass, unless nearly all of them are many distinct numbers. AutoGluon's ``infer_problem_type`` also takes
    integers for classes, by their share of distinct values; codes from 0 or 1 keep a measured integer such as a
    quality score from 3 to 8 a regression.
    """
    if pd.api.types.is_numeric_dtype(y) and not pd.api.types.is_bool_dtype(y):
        numbers = y.dropna().astype("float64")  # no text to read: a regression's million values stay an array
    else:
        keys = label_key(y).dropna()
        numbers = to_number(keys)
        if numbers.isna().any():  # labels
            n = keys.nunique()
            if n <= 2:
                return "binary", f"{n} distinct labels"
            if numbers.notna().mean() > 0.95 and n > 20:
                return "regression", f"numbers written as text, {n} distinct values"
            return "multiclass", f"{n} distinct labels"
    n = numbers.nunique()
    if n <= 2:
        return "binary", f"{n} distinct values"
    codes = sorted(numbers.unique())
    if n <= MAX_CODES and all(c == int(c) for c in codes) and codes[0] in (-1, 0, 1) and codes[-1] - codes[0] == n - 1:
        return "multiclass", (f"{n} integer codes ({', '.join(f'{c:g}' for c in codes)}) are taken for classes; "
                              "use --task regression for a quantity")
    return "regression", f"numbers with {n} distinct values"


def label_key(y: pd.Series) -> pd.Series:
    """The key that decides which raw labels are one class: case, surrounding spaces and a trailing '.' do not matter
    ('<=50K.' in adult's test file is '<=50K'), nor how a number is written ("1", "1.0", 1)."""
    return pd.Series(per_distinct(y, key_of_label, object), index=y.index, dtype="string", name=y.name)


def key_of_label(v) -> str | None:
    """One raw label's key (``label_key``); None when it is missing."""
    t = read_text(v)
    if t is None:
        return None
    t = t.rstrip(".").strip()
    if t[1:].lstrip("+-") == t[1:] and t.lstrip("+-").replace(".", "", 1).isdecimal():  # "1", "1.0", "-2"
        x = float(t)
        return str(int(x)) if x.is_integer() else repr(x)
    return t.casefold()


def check_task(task: str | None) -> str | None:
    if task is not None and task not in TASKS:
        raise ModelError(f"unknown task '{task}'. Valid tasks: {', '.join(TASKS)}")
    return task
