"""Raw JSON records → checked, cleaned model input, compiled once per model so that a request builds no DataFrame.

The plan replays the package's cleaner value by value (the same parsing, spelling keys, clipping and imputation
as ``Cleaner.transform``) and checks every value against the schema on the way. For a LightGBM model it hands
the booster a float matrix directly (categories as the codes LightGBM stored with the model); any other model
gets the same checked rows through the cleaner's own DataFrame path.
"""
from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from operator import itemgetter

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
_GROUPED = re.compile(r"[\$€£¥]?[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?$")  # "2,673.34", "$1716.65"
_PLAIN_NUMBER = frozenset("0123456789.+-eE")
_ABSENT = object()  # a column the row does not have
# missing tokens as they are usually written (each is missing for ``_text`` too: stripped, lowercased, a token)
_MISSING_SPELLINGS = frozenset(v for t in MISSING_TOKENS for v in (t, t.upper(), t.title(), t.capitalize()))
_NAN_PARTS = (math.nan,) * 4
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
    if _PLAIN_NUMBER.issuperset(t):  # "814.53", "-2e3": float() reads these exactly as the pattern below does
        try:
            x = float(t)
        except ValueError:
            pass
        else:
            if not math.isfinite(x):
                raise ValueError(f"is not a finite number ({v!r})")
            return x
    m = _NUMBER.match(_THOUSANDS.sub("", _CURRENCY.sub("", t)))
    if not m:
        raise ValueError(f"is not a number ({v!r})")
    x = float(m.group(1))
    if not math.isfinite(x):
        raise ValueError(f"is not a finite number ({v!r})")
    return x


_NUMERIC_TYPES = frozenset({float, int, type(None)})


def _loose_number(v) -> float:
    """``_number`` for a whole column at once: NaN when missing; ValueError for anything the encoder must explain.
    The common spellings take a short road with the same result: digits with at most one point, missing tokens,
    thousands commas and a leading currency sign."""
    if type(v) is str:
        if v.replace(".", "", 1).isdecimal():  # "630.91", "12", ".5": what float() and the full parser both read
            x = float(v)
            if x - x == 0:  # finite (400 digits are not: the full parser says so)
                return x
        elif v in _MISSING_SPELLINGS:
            return math.nan
        elif _GROUPED.match(v):  # every comma separates thousands; a currency sign only in front
            return float(v.lstrip("$€£¥").replace(",", ""))
        elif _PLAIN_NUMBER.issuperset(v):  # "-2e3", "+7"
            try:
                x = float(v)
            except ValueError:  # "-", "+", "1-2" and the like: the full parser decides
                pass
            else:
                if x - x == 0:
                    return x
    elif type(v) is float or type(v) is int:
        return v
    x = _number(v)
    return math.nan if x is None else x


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


class DirectBooster:
    """LightGBM's C API called directly, its arguments prepared once. One row through the single-row fast path:
    ~3 µs where ``Booster.predict`` spends ~16 µs on argument handling; many rows through ``PredictForMat``
    without the predictor object ``Booster.predict`` builds and frees on every call. Same trees, same numbers."""

    def __init__(self, booster):
        import ctypes

        from lightgbm.basic import _LIB, _c_str, _safe_call

        self._booster, self._lib, self._check, self._ctypes = booster, _LIB, _safe_call, ctypes
        self.n_out = booster.num_model_per_iteration()
        self._config = ctypes.c_void_p()
        _safe_call(_LIB.LGBM_BoosterPredictForMatSingleRowFastInit(
            booster._handle, ctypes.c_int(0), ctypes.c_int(0), ctypes.c_int(-1),  # normal prediction, all iterations
            ctypes.c_int(1), ctypes.c_int32(booster.num_feature()), _c_str("num_threads=1"), ctypes.byref(self._config)))
        self._predict = _LIB.LGBM_BoosterPredictForMatSingleRowFast
        self._n = ctypes.c_int64(0)
        self._lock = threading.Lock()
        self._params: dict[int, bytes] = {}

    def __call__(self, row: np.ndarray) -> np.ndarray:
        """One row: its scores (one per class for multiclass, else one)."""
        ct = self._ctypes
        row = np.ascontiguousarray(row, dtype=np.float64)
        out = np.empty(self.n_out)
        with self._lock:
            self._check(self._predict(self._config, row.ctypes.data_as(ct.c_void_p), ct.byref(self._n),
                                      out.ctypes.data_as(ct.POINTER(ct.c_double))))
        return out

    def many(self, X: np.ndarray, threads: int = 1) -> np.ndarray:
        """Rows × features → scores, as ``Booster.predict`` returns them (n, or n × classes)."""
        ct = self._ctypes
        X = np.ascontiguousarray(X, dtype=np.float64)
        param = self._params.get(threads)
        if param is None:
            param = self._params[threads] = f"num_threads={threads}".encode()
        out = np.empty(len(X) * self.n_out)
        n = ct.c_int64(0)
        self._check(self._lib.LGBM_BoosterPredictForMat(
            self._booster._handle, X.ctypes.data_as(ct.c_void_p), ct.c_int(1), ct.c_int32(X.shape[0]),
            ct.c_int32(X.shape[1]), ct.c_int(1), ct.c_int(0), ct.c_int(0), ct.c_int(-1),  # float64, row-major, normal
            ct.c_char_p(param), ct.byref(n), out.ctypes.data_as(ct.POINTER(ct.c_double))))
        return out if self.n_out == 1 else out.reshape(len(X), self.n_out)

    def __del__(self):
        config = getattr(self, "_config", None)
        if config is not None and config.value:
            self._lib.LGBM_FastConfigFree(config)


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
        self._getter = itemgetter(*self.required) if len(self.required) > 1 else lambda rec: (rec[self.required[0]],)
        self.ignored = set(schema.ignored) | ({schema.target} if schema.target else set())
        self.known = set(self.required) | self.ignored
        self.bounds = {}
        for col, kind, plan, spec in self.columns:
            if kind == "number" and spec is not None and spec.min is not None:
                span = max(spec.max - spec.min, abs(spec.max), 1.0)
                self.bounds[col] = (spec.min - RANGE_MARGIN * span, spec.max + RANGE_MARGIN * span)
        self.codes = {col: {level: i for i, level in enumerate([*plan["levels"], OTHER, MISSING])}
                      for col, kind, plan, _ in self.columns if kind == "category"}
        self.kinds = {col: kind for col, kind, _, _ in self.columns}
        self.nullable = {col: spec is None or spec.nullable for col, _, _, spec in self.columns}
        self.caches: dict[str, dict[str, float]] = {}
        self.encoders = [(col, 4 if kind == "date" else 1, self._encoder(col, kind, plan, spec))
                         for col, kind, plan, spec in self.columns]
        self.booster = self._fast_booster()
        self.direct = DirectBooster(self.booster) if self.booster is not None else None
        est = model.estimator
        self.compiled = est._scores if self.booster is not None and hasattr(est, "predictor_") else None
        # the number features of the matrix ``check`` builds (features × rows), with their limits as columns
        first = np.cumsum([0] + [width for _, width, _ in self.encoders])
        self._num_columns = [j for j, (_, kind, _, _) in enumerate(self.columns) if kind == "number"]
        self._num = first[self._num_columns].astype(np.intp)
        numbers = [(col, plan) for col, kind, plan, _ in self.columns if kind == "number"]

        def limit(values):
            return np.array(values, dtype=np.float64).reshape(-1, 1)

        top = np.finfo(np.float64).max
        self._low = limit([self.bounds.get(c, (-top, top))[0] for c, _ in numbers])
        self._high = limit([self.bounds.get(c, (-top, top))[1] for c, _ in numbers])
        self._clip_low = limit([(p["clip"] or (-math.inf, math.inf))[0] for _, p in numbers])
        self._clip_high = limit([(p["clip"] or (-math.inf, math.inf))[1] for _, p in numbers])
        self._fill = limit([p["fill"] for _, p in numbers])
        required = np.array([not self.nullable[c] for c, _ in numbers], dtype=bool).reshape(-1, 1)
        self._required_num = required if required.any() else None

    def _fast_booster(self):
        """The LightGBM booster when its stored categories are exactly the cleaner's levels (else None)."""
        est = self.model.estimator
        if not isinstance(est, LightGBMBooster):
            return None
        return est.booster_ if self.encodes(est.booster_.pandas_categorical) else None

    def encodes(self, stored: list | None) -> bool:
        """Are a LightGBM model's stored categories (``pandas_categorical``) exactly the codes this plan writes?"""
        ours = [list(self.codes[col]) for col, kind, _, _ in self.columns if kind == "category"]
        return [list(map(str, s)) for s in stored or []] == ours

    @property
    def fast(self) -> bool:
        return self.booster is not None

    def check(self, records: list) -> np.ndarray:
        """The cleaned feature matrix (categories as LightGBM's codes) of ``records``; raises InputError naming
        every bad field and row. A column of plain numbers (or text ``_loose_number`` reads) or spellings its cache
        knows is taken at once, and the numbers are range-checked, clipped and imputed as one matrix; any other column
        goes value by value through its compiled encoder, which names what is wrong."""
        errors: list[RowError] = []
        if not (set(map(type, records)) == {dict} and set().union(*records) <= self.known):
            for i, rec in enumerate(records):
                if type(rec) is not dict:
                    errors.append(RowError(i, "", f"is not a JSON object of column: value (got {type(rec).__name__})"))
                else:
                    errors += [RowError(i, k, "is not a column of this model (unknown column)")
                               for k in rec if k not in self.known]
            raise InputError(errors)
        if len(records) == 1:
            return self._one(records[0])
        try:  # the records turned into columns in C; a row without some column takes the slower road
            columns = list(zip(*map(self._getter, records)))
        except KeyError:
            columns = [[rec.get(col, _ABSENT) for rec in records] for col in self.required]
        features = []  # one sequence per feature (a date is four), row values in order; None and NaN are missing
        for (col, width, encode), raw in zip(self.encoders, columns):
            values = self._known(col, raw)
            if values is None:
                values = self._encoded(col, width, encode, raw, errors)
                if len(errors) > 50:
                    break
            if width == 4:
                features.extend(zip(*values))
            else:
                features.append(values)
        if errors:
            raise InputError(sorted(errors, key=lambda e: e.row))
        X = np.array(features, dtype=np.float64)  # features × rows: one conversion for the whole request
        num = X[self._num]
        missing = np.isnan(num)
        bad = ~(((num >= self._low) & (num <= self._high)) | missing)  # limits are finite: inf fails here too
        if self._required_num is not None:
            bad |= missing & self._required_num
        if bad.any():  # the value-by-value encoders of those columns say what is wrong
            for k in np.flatnonzero(bad.any(axis=1)).tolist():
                j = self._num_columns[k]
                self._encoded(*self.encoders[j], columns[j], errors)
            if errors:
                raise InputError(sorted(errors, key=lambda e: e.row))
        np.clip(num, self._clip_low, self._clip_high, out=num)
        np.copyto(num, self._fill, where=missing)
        X[self._num] = num
        return np.ascontiguousarray(X.T)

    @staticmethod
    def _encoded(col: str, width: int, encode, raw, errors: list) -> list:
        """A column value by value through its encoder; every bad value added to ``errors`` (and NaN in its place)."""
        values = []
        for i, v in enumerate(raw):
            try:
                values.append(encode(v))
            except ValueError as exc:
                errors.append(RowError(i, col, str(exc)))
                values.append(_NAN_PARTS if width == 4 else math.nan)
        return values

    def _one(self, rec: dict) -> np.ndarray:
        """A single row (the latency case): one list, one array."""
        row, errors = [], []
        for col, width, encode in self.encoders:
            try:
                value = encode(rec.get(col, _ABSENT))
            except ValueError as exc:
                errors.append(RowError(0, col, str(exc)))
                value = _NAN_PARTS if width == 4 else math.nan
            if width == 4:
                row.extend(value)
            else:
                row.append(value)
        if errors:
            raise InputError(errors)
        return np.array([row], dtype=np.float64)

    def _known(self, col: str, raw):
        """A column's values at once when each is a plain number (or text ``_loose_number`` reads), or a spelling its
        cache holds: numbers as they are (range, clipping and imputation follow for the whole matrix), categories and
        dates as their codes. None sends the column through its value-by-value encoder, which names what is wrong."""
        kind = self.kinds[col]
        if kind == "number":
            if set(map(type, raw)) <= _NUMERIC_TYPES:
                return raw
            try:  # floats as they are, without a call each
                return [v if type(v) is float else _loose_number(v) for v in raw]
            except ValueError:
                return None
        try:
            found = list(map(self.caches[col].get, raw))
        except TypeError:  # a JSON list or object where a value belongs
            return None
        return None if None in found else found

    def _encoder(self, col, kind, plan, spec):
        """A function from one raw value to its cleaned number(s), raising ValueError with what is wrong."""
        nullable = self.nullable[col]

        def absent_or_single(v):
            if v is _ABSENT:
                raise ValueError("is missing (every row needs every model column; send null for an unknown value)")
            if isinstance(v, (dict, list)):
                raise ValueError(f"must be a single value, not a JSON {type(v).__name__}")

        def missing():
            if not nullable:
                raise ValueError("is missing, and training never had it missing")

        if kind == "number":
            fill = plan["fill"]
            lo, hi = plan["clip"] or (-math.inf, math.inf)
            low, high = self.bounds.get(col, (-math.inf, math.inf))

            def encode(v):
                t = type(v)
                if t is float or t is int:
                    x = float(v)
                    if x != x:
                        x = None
                    elif x in (math.inf, -math.inf):
                        raise ValueError("is not a finite number")
                else:
                    absent_or_single(v)
                    x = _number(v)
                if x is None:
                    missing()
                    return fill
                if not low <= x <= high:
                    raise ValueError(f"is {x:g}, outside the allowed range [{low:.4g}, {high:.4g}]")
                return lo if x < lo else hi if x > hi else x
            return encode
        if kind == "category":
            codes, keys = self.codes[col], plan["keys"]
            cache = self.caches[col] = {None: codes[MISSING]} if nullable else {}  # a known spelling: one lookup

            def encode(v):
                if type(v) is str:
                    code = cache.get(v)
                    if code is not None:
                        return code
                absent_or_single(v)
                t = _text(v)
                if t is None:
                    missing()
                    code = codes[MISSING]
                elif (level := keys.get(_key(t))) is not None:
                    code = codes[level]
                elif self.allow_unseen:
                    code = codes[OTHER]
                else:
                    raise ValueError(f"has a category never seen in training ({v!r})")
                if type(v) is str and len(cache) < 10_000:
                    cache[v] = code
                return code
            return encode

        absent = (math.nan, math.nan, math.nan, plan["fill"])
        cache = self.caches[col] = {None: absent} if nullable else {}

        def encode(v):  # dates
            absent_or_single(v)
            t = _text(v)
            if t is None:
                missing()
                parts = absent
            elif (parts := _date_parts(t)) is None:
                raise ValueError(f"is not a date ({v!r})")
            if type(v) is str and len(cache) < 10_000:
                cache[v] = parts
            return parts
        return encode

    def scores(self, records: list[dict], threads: int = 1) -> np.ndarray:
        """Probabilities (n × classes) or predicted values (n); raises InputError for bad records."""
        task = self.model.task
        if self.booster is not None:
            return self.scored(self.check(records), threads)
        self.check(records)
        frame = pd.DataFrame.from_records(records, columns=self.required)
        if task == "regression":
            return np.asarray(self.model.predict(frame), dtype=float)
        if not hasattr(self.model.estimator, "predict_proba"):  # a hard vote: the chosen class gets probability 1
            codes = np.asarray(self.model.estimator.predict(self.model.cleaner.transform(frame)), dtype=int)
            return np.eye(len(self.model.classes))[codes]
        return self.model.predict_proba(frame)

    def scored(self, X: np.ndarray, threads: int = 1) -> np.ndarray:
        """``scores`` of a checked matrix (``check``), by the booster (``fast`` plans only). No Python objects per row
        and LightGBM lets go of the interpreter: a service scores batches on another thread while it reads the next."""
        if self.compiled is not None:  # native code: the same encoded matrix, scored by the compiled library
            p = self.compiled(X)
            p = p[:, 0] if p.shape[1] == 1 else p
        else:
            p = self.direct(X[0]) if len(X) == 1 else self.direct.many(X, threads)
        if self.model.task == "binary":
            out = np.empty((len(p), 2))
            out[:, 1] = p
            out[:, 0] = 1 - p
            return out
        return p.reshape(len(X), -1) if self.model.task == "multiclass" else p
