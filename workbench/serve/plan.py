"""Raw JSON records → checked, cleaned model input, compiled once per model so that a request builds no DataFrame.

The plan replays the package's cleaner value by value (the same parsing, spelling keys, clipping and imputation
as ``Cleaner.transform``) and checks every value against the schema on the way. For a LightGBM model it hands
the booster a float matrix directly (categories as the codes LightGBM stored with the model); any other model
gets the same checked rows through the cleaner's own DataFrame path.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

import numpy as np
import pandas as pd

from workbench.data.clean import MISSING, OTHER
from workbench.data.columns import MISSING_TOKENS, _NUMBER
from workbench.data.schema import Schema
from workbench.models.trained import TrainedModel
from workbench.registry.modelio import LightGBMBooster

_CURRENCY = re.compile(r"^[\$€£¥]\s*|\s*[\$€£¥]$")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?:\D|$))")
_KEY_SPACES = re.compile(r"[\s_\-]+")
RANGE_MARGIN = 0.5  # numbers may lie this many training spans beyond the training min and max


@dataclass
class RowError(Exception):
    """One bad value: the row, the field and what is wrong with it."""

    row: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"row {self.row}: '{self.field}' {self.message}" if self.field else f"row {self.row}: {self.message}"


class InputError(Exception):
    """Every problem found in a request's rows (at most a few per column)."""

    def __init__(self, errors: list[RowError]):
        self.errors = errors
        super().__init__("; ".join(map(str, errors[:10])) + (f"; and {len(errors) - 10} more" if len(errors) > 10 else ""))


def _text(v) -> str | None:
    """``as_text`` for one value: stripped text, None for every missing spelling."""
    if v is None or (isinstance(v, float) and v != v):
        return None
    t = str(v).strip()
    return None if t.lower() in MISSING_TOKENS else t


def _number(v) -> float | None:
    """``_numbers`` for one value: a float, None when missing; ValueError when it is not a number."""
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, (int, float)):
        if isinstance(v, float) and not math.isfinite(v):
            if v != v:
                return None
            raise ValueError("is not a finite number")
        return float(v)
    t = _text(v)
    if t is None:
        return None
    m = _NUMBER.match(_THOUSANDS.sub("", _CURRENCY.sub("", t)))
    if not m:
        raise ValueError(f"is not a number ({v!r})")
    x = float(m.group(1))
    if not math.isfinite(x):
        raise ValueError(f"is not a finite number ({v!r})")
    return x


_ISO_DATE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?$")
_EPOCH = date(1970, 1, 1)


@lru_cache(maxsize=4096)
def _date_parts(t: str):
    """(year, month, day of week, days since 1970) as the cleaner computes them; None when it is not a date."""
    m = _ISO_DATE.match(t)
    if m:
        try:
            d = date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        except ValueError:
            return None
    else:  # any other spelling: pandas' own parser, exactly as in training
        try:
            ts = pd.to_datetime(pd.Series([t]), errors="coerce", format="mixed").iloc[0]
            if pd.isna(ts):
                return None
            d = ts.date()
        except (ValueError, OverflowError, NotImplementedError):  # beyond the calendar Python knows
            return None
    return float(d.year), float(d.month), float(d.weekday()), float((d - _EPOCH).days)


def _key(t: str) -> str:
    return _KEY_SPACES.sub(" ", t.casefold()).strip()


class RowPlan:
    """What a model needs from a raw row, compiled from its cleaner and schema.

    Parameters
    ----------
    model : the package's TrainedModel (cleaner + estimator).
    schema : the package's schema.
    allow_unseen : categories never seen in training map to "(other)" (True) or are refused (False).
    """

    def __init__(self, model: TrainedModel, schema: Schema, *, allow_unseen: bool = True):
        self.model = model
        self.allow_unseen = allow_unseen
        specs = {c.name: c for c in schema}
        self.columns = []  # (name, kind, plan, spec)
        for col, plan in model.cleaner.plan_.items():
            self.columns.append((col, plan["kind"], plan, specs.get(col)))
        self.required = [c for c, *_ in self.columns]
        self.ignored = set(schema.ignored) | ({schema.target} if schema.target else set())
        self.known = set(self.required) | self.ignored
        self.bounds = {}
        for col, kind, plan, spec in self.columns:
            if kind == "number" and spec is not None and spec.min is not None:
                span = max(spec.max - spec.min, abs(spec.max), 1.0)
                self.bounds[col] = (spec.min - RANGE_MARGIN * span, spec.max + RANGE_MARGIN * span)
        self.codes = {col: {level: i for i, level in enumerate([*plan["levels"], OTHER, MISSING])}
                      for col, kind, plan, _ in self.columns if kind == "category"}
        self.booster = self._fast_booster()
        self.n_features = sum(4 if kind == "date" else 1 for _, kind, _, _ in self.columns)

    def _fast_booster(self):
        """The LightGBM booster when its stored categories are exactly the cleaner's levels (else None)."""
        est = self.model.estimator
        if not isinstance(est, LightGBMBooster):
            return None
        stored = est.booster_.pandas_categorical or []
        ours = [list(self.codes[col]) for col, kind, _, _ in self.columns if kind == "category"]
        return est.booster_ if [list(map(str, s)) for s in stored] == ours else None

    @property
    def fast(self) -> bool:
        return self.booster is not None

    def check(self, records: list) -> np.ndarray:
        """The cleaned feature matrix (categories as LightGBM's codes) of ``records``; raises InputError naming
        every bad field and row. One pass: each value is parsed once, checked and encoded."""
        X = np.empty((len(records), self.n_features), dtype=np.float64)
        errors: list[RowError] = []
        for i, rec in enumerate(records):
            if not isinstance(rec, dict):
                errors.append(RowError(i, "", f"is not a JSON object of column: value (got {type(rec).__name__})"))
                continue
            if len(rec) != len(self.required) or any(k not in self.known for k in rec):
                errors += [RowError(i, k, "is not a column of this model (unknown column)") for k in rec if k not in self.known]
            j = 0
            for col, kind, plan, spec in self.columns:
                width = 4 if kind == "date" else 1
                try:
                    v = rec[col]
                except KeyError:
                    errors.append(RowError(i, col, "is missing (every row needs every model column; send null for an "
                                                    "unknown value)"))
                    j += width
                    continue
                try:
                    X[i, j:j + width] = self._encode(col, kind, plan, spec, v)
                except ValueError as exc:
                    errors.append(RowError(i, col, str(exc)))
                j += width
            if len(errors) > 50:
                break
        if errors:
            raise InputError(errors)
        return X

    def _encode(self, col, kind, plan, spec, v):
        if isinstance(v, (dict, list)):
            raise ValueError(f"must be a single value, not a JSON {type(v).__name__}")
        if kind == "number":
            x = _number(v)
            if x is None:
                if spec is not None and not spec.nullable:
                    raise ValueError("is missing, and training never had it missing")
                return plan["fill"]
            bounds = self.bounds.get(col)
            if bounds and not bounds[0] <= x <= bounds[1]:
                raise ValueError(f"is {x:g}, outside the allowed range [{bounds[0]:.4g}, {bounds[1]:.4g}]")
            clip = plan["clip"]
            return min(max(x, clip[0]), clip[1]) if clip else x
        t = _text(v)
        if t is None and spec is not None and not spec.nullable:
            raise ValueError("is missing, and training never had it missing")
        if kind == "category":
            codes = self.codes[col]
            if t is None:
                return codes[MISSING]
            level = plan["keys"].get(_key(t))
            if level is None:
                if not self.allow_unseen:
                    raise ValueError(f"has a category never seen in training ({v!r})")
                return codes[OTHER]
            return codes[level]
        parts = _date_parts(t) if t is not None else None
        if t is not None and parts is None:
            raise ValueError(f"is not a date ({v!r})")
        return parts if parts is not None else (np.nan, np.nan, np.nan, plan["fill"])

    def scores(self, records: list[dict], threads: int = 1) -> np.ndarray:
        """Probabilities (n × classes) or predicted values (n); raises InputError for bad records."""
        task = self.model.task
        X = self.check(records)
        if self.booster is not None:
            p = self.booster.predict(X, num_threads=threads)
            return np.column_stack([1 - p, p]) if task == "binary" else p
        frame = pd.DataFrame.from_records(records, columns=self.required)
        if task == "regression":
            return np.asarray(self.model.predict(frame), dtype=float)
        if not hasattr(self.model.estimator, "predict_proba"):  # a hard vote: the chosen class gets probability 1
            codes = np.asarray(self.model.estimator.predict(self.model.cleaner.transform(frame)), dtype=int)
            return np.eye(len(self.model.classes))[codes]
        return self.model.predict_proba(frame)
