"""Train / validation / test splits: stratified, group-aware or time-ordered."""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from sklearn.model_selection import GroupShuffleSplit, train_test_split

from workbench.data.load import resolve_target
from workbench.data.task import detect_task
from workbench.errors import DataError


@dataclass
class Split:
    train: pd.DataFrame
    valid: pd.DataFrame | None
    test: pd.DataFrame

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "valid": 0 if self.valid is None else len(self.valid), "test": len(self.test)}


def split(df: pd.DataFrame, target: str | int | None = None, *, test_size: float = 0.25, valid_size: float = 0.0,
          stratify: bool | None = None, groups: str | None = None, time: str | None = None, seed: int = 0) -> Split:
    """Split rows into train, validation (optional) and test.

    Classification targets are stratified by default; ``groups`` keeps all rows of a
    group on one side; ``time`` puts the latest rows in test (and validation before it).

    Examples
    --------
    >>> from workbench.data import load
    >>> s = split(load("demo", n_rows=400), "churn", test_size=0.25)
    >>> s.sizes()["test"] > 90
    True
    """
    if not 0 < test_size < 1 or not 0 <= valid_size < 1 or test_size + valid_size >= 1:
        raise DataError("test_size and valid_size are shares of the rows: each in (0, 1), together below 1")
    for col in (groups, time):
        if col is not None:
            resolve_target(df, col)
    target = resolve_target(df, target) if target is not None else None
    if time is not None:
        order = pd.to_datetime(df[time], errors="coerce", format="mixed").sort_values(kind="stable").index
        n_test, n_valid = int(round(len(df) * test_size)), int(round(len(df) * valid_size))
        ordered = df.loc[order]
        train, rest = ordered.iloc[: len(df) - n_test - n_valid], ordered.iloc[len(df) - n_test - n_valid:]
        return Split(train, rest.iloc[:n_valid] if n_valid else None, rest.iloc[n_valid:])
    if stratify is None and target is not None:
        stratify = detect_task(df[target].dropna()) != "regression"

    def cut(frame: pd.DataFrame, size: float):
        if groups is not None:
            gss = GroupShuffleSplit(n_splits=1, test_size=size, random_state=seed)
            a, b = next(gss.split(frame, groups=frame[groups].astype("string").fillna("")))
            return frame.iloc[a], frame.iloc[b]
        strat = frame[target].astype("string").fillna("") if stratify and target is not None else None
        if strat is not None and strat.value_counts().min() < 2:
            strat = None  # a class with one row cannot be split both ways
        return train_test_split(frame, test_size=size, random_state=seed, stratify=strat)

    train, test = cut(df, test_size)
    valid = None
    if valid_size:
        train, valid = cut(train, valid_size / (1 - test_size))
    return Split(train, valid, test)
