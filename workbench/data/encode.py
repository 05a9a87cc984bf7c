"""The row encoder: a fitted cleaner compiled into one function from raw values to the float matrix every scorer takes.

The matrix has the cleaned table's columns in order: a number (held to the training range; NaN where missing), a
category as its code among ``[*levels, "(other)", "(missing)"]``, a date as four numbers (year, month, day of week, days
since 1970; NaN where missing). A plan written before missing values were kept holds the median it imputed
(``"fill"``), and is replayed as it was trained.
Raw JSON records (the service) and a DataFrame's columns (``Cleaner.transform``, batch prediction, streaming) go
through the same readers of ``workbench.data.columns``; records are also checked against the schema on the way, and
every bad value is named by row and field.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from operator import itemgetter

import numpy as np
import pandas as pd

from workbench.data.columns import (date_or_none, date_parts, key_of, per_distinct, read_date, read_number,
                                    read_number_fast, read_text, shown, to_number)
from workbench.data.readers import READERS
from workbench.errors import DataError

MISSING, OTHER = "(missing)", "(other)"
DATE_PARTS = ("year", "month", "dayofweek", "days")
RANGE_MARGIN = 0.5  # numbers may lie this many training spans beyond the training min and max
_ABSENT = object()  # a column the row does not have
_NUMERIC_TYPES = frozenset({float, int, type(None)})


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


class RowEncoder:
    """Raw rows → the float matrix, compiled from a cleaner's plan (``Cleaner.encoder``).

    Parameters
    ----------
    plan : the cleaner's ``plan_`` (column → what to do with it).
    schema : the model's Schema (ranges, nullability, ignored columns), or None to check nothing beyond readability.
    allow_unseen : categories never seen in training map to "(other)" (True) or are refused (False).
    ignored : more columns a record may carry that the model does not read (the cleaner's dropped ones).

    Attributes
    ----------
    columns : [(feature, categories or None)] of the matrix, in order (a date is four features).
    required : the raw columns a row must have.
    """

    def __init__(self, plan: dict, schema=None, *, allow_unseen: bool = True, ignored=(), media_root=None):
        self.plan = plan
        self.allow_unseen = allow_unseen
        specs = {c.name: c for c in schema} if schema is not None else {}
        self.raw = [(col, p["kind"], p, specs.get(col)) for col, p in plan.items()]
        self.required = [c for c, *_ in self.raw]
        self._getter = itemgetter(*self.required) if len(self.required) > 1 else lambda rec: (rec[self.required[0]],)
        if schema is not None:
            ignored = {*ignored, *schema.ignored, *([schema.target] if schema.target else [])}
        self.known = set(self.required) | set(ignored)
        self.columns: list[tuple[str, list | None]] = []
        for col, kind, p, _ in self.raw:
            if kind == "date":
                self.columns += [(f"{col}_{part}", None) for part in DATE_PARTS]
            elif "outputs" in p:  # text, image, audio
                self.columns += [(f"{col}_{output}", None) for output in p["outputs"]]
            else:
                self.columns.append((col, [*p["levels"], OTHER, MISSING] if kind == "category" else None))
        self.bounds = {}
        for col, kind, p, spec in self.raw:
            if kind == "number" and spec is not None and spec.min is not None:
                span = max(spec.max - spec.min, abs(spec.max), 1.0)
                self.bounds[col] = (spec.min - RANGE_MARGIN * span, spec.max + RANGE_MARGIN * span)
        self.codes = {col: {level: i for i, level in enumerate([*p["levels"], OTHER, MISSING])}
                      for col, kind, p, _ in self.raw if kind == "category"}
        self.kinds = {col: kind for col, kind, _, _ in self.raw}
        self.nullable = {col: spec is None or spec.nullable for col, _, _, spec in self.raw}
        self.max_chars = {col: spec.max_chars if spec is not None and spec.max_chars else math.inf
                          for col, _, _, spec in self.raw}
        self.caches: dict[str, dict] = {}
        self.readers = {col: READERS.get(kind).reader(p, media_root) for col, kind, p, _ in self.raw if kind in READERS}
        self.encoders = [(col, len(DATE_PARTS) if kind == "date" else len(p["outputs"]) if "outputs" in p else 1,
                          self._encoder(col, kind, p)) for col, kind, p, _ in self.raw]
        # the number features of the matrix (features × rows while it is built), with their limits as columns
        first = np.cumsum([0] + [width for _, width, _ in self.encoders])
        self._num_columns = [j for j, (_, kind, _, _) in enumerate(self.raw) if kind == "number"]
        self._num = first[self._num_columns].astype(np.intp)
        numbers = [(col, p) for col, kind, p, _ in self.raw if kind == "number"]
        top = np.finfo(np.float64).max

        def limit(values):
            return np.array(values, dtype=np.float64).reshape(-1, 1)

        self._low = limit([self.bounds.get(c, (-top, top))[0] for c, _ in numbers])
        self._high = limit([self.bounds.get(c, (-top, top))[1] for c, _ in numbers])
        self._clip_low = limit([(p["clip"] or (-math.inf, math.inf))[0] for _, p in numbers])
        self._clip_high = limit([(p["clip"] or (-math.inf, math.inf))[1] for _, p in numbers])
        self._fill = limit([filled(p) for _, p in numbers])
        self._imputes = not np.isnan(self._fill).all()  # a plan of an older version
        required = np.array([not self.nullable[c] for c, _ in numbers], dtype=bool).reshape(-1, 1)
        self._required_num = required if required.any() else None

    # ---- records (the service): checked value by value where needed, every bad value named ----------------------

    def records(self, records: list) -> np.ndarray:
        """The matrix of ``records`` (JSON objects of column: raw value); raises InputError naming every bad field and
        row. A column of plain numbers (or text ``read_number_fast`` reads) or spellings its cache knows is taken at
        once, and the numbers are range-checked and clipped as one matrix; any other column goes value by
        value through its compiled encoder, which names what is wrong."""
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
            if width > 1:
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
        if self._imputes:
            np.copyto(num, self._fill, where=missing)
        X[self._num] = num
        return np.ascontiguousarray(X.T)

    def encodes(self, stored: list | None) -> bool:
        """Are a LightGBM model's stored categories (``pandas_categorical``) exactly the codes this encoder writes?"""
        ours = [list(levels) for _, levels in self.columns if levels is not None]
        return [list(map(str, s)) for s in stored or []] == ours

    # ---- a DataFrame's columns (transform, batch prediction, streaming) ----------------------------------------

    def frame(self, df: pd.DataFrame) -> np.ndarray:
        """The matrix of a table, column by column, each distinct raw value read once by the same readers as
        ``records``. Lenient like training's cleaning: an unreadable number or date is missing, an
        unseen category is "(other)"; nothing is range-checked (``problems`` says what a request would refuse)."""
        self._require(df)
        out = np.empty((len(df), len(self.columns)), dtype=np.float64)
        j = 0
        for col, kind, p, _ in self.raw:
            s = df[col]
            if kind == "number":
                x = to_number(s, p.get("comma", False)).to_numpy()
                if p["clip"]:
                    x = np.clip(x, *p["clip"])
                out[:, j] = np.where(np.isnan(x), filled(p), x)
                j += 1
            elif kind == "category":
                codes = self.codes[col]
                out[:, j] = per_distinct(s, lambda v: _category_code(v, p["keys"], codes))
                j += 1
            elif kind in READERS:
                read = self.readers[col]
                out[:, j:j + read.width] = per_distinct(s, lambda v: read.lenient(read_text(v)), width=read.width)
                j += read.width
            else:
                parts = per_distinct(s, lambda v: date_parts(date_or_none(v, p.get("dayfirst", False)), filled(p)),
                                     width=4)
                out[:, j:j + 4] = parts
                j += 4
        return out

    def problems(self, df: pd.DataFrame) -> list[RowError]:
        """Every value of a table that ``records`` would refuse, by row (0: the first row of ``df``) and column: the
        service's rules and messages, each distinct value read once (a column of numbers is checked as an array)."""
        self._require(df)
        errors = []
        for (col, kind, _, _), (_, _, encode) in zip(self.raw, self.encoders):
            s = df[col]
            if kind == "number" and pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
                x = s.to_numpy(dtype=np.float64, na_value=np.nan)
                low, high = self.bounds.get(col, (-math.inf, math.inf))
                bad = np.isnan(x) if not self.nullable[col] else np.zeros(len(x), dtype=bool)
                bad |= ~np.isnan(x) & ~((x >= low) & (x <= high))  # infinities fail here too
                messages = np.full(len(x), None, dtype=object)
                messages[bad] = [_refusal(encode, v) for v in x[bad].tolist()]
            else:  # a table's values have no JSON type: a category, date or text is its text, as ``frame`` reads it
                read = (lambda v: _refusal(encode, read_text(v))) if kind != "number" else (
                    lambda v: _refusal(encode, None if v is None or v is pd.NA or v is pd.NaT else v))
                messages = per_distinct(s, read, object)
            errors += [RowError(i, col, messages[i]) for i in np.flatnonzero(messages != None).tolist()]  # noqa: E711
        return sorted(errors, key=lambda e: e.row)

    def _require(self, df: pd.DataFrame) -> None:
        missing = [c for c in self.required if c not in df.columns]
        if missing:
            raise DataError(f"columns missing from the table: {', '.join(missing)}; "
                            "give every column the model was trained on")

    def to_frame(self, X: np.ndarray, index=None) -> pd.DataFrame:
        """The cleaned table of a matrix: numbers as floats, categories as pandas categories with the fixed levels."""
        return frame_of(X, self.columns, index)

    # ---- value by value ----------------------------------------------------------------------------------------

    @staticmethod
    def _encoded(col: str, width: int, encode, raw, errors: list) -> list:
        """A column value by value through its encoder; every bad value added to ``errors`` (and NaN in its place)."""
        values = []
        for i, v in enumerate(raw):
            try:
                values.append(encode(v))
            except ValueError as exc:
                errors.append(RowError(i, col, str(exc)))
                values.append((math.nan,) * width if width > 1 else math.nan)
        return values

    def _one(self, rec: dict) -> np.ndarray:
        """A single row (the latency case): one list, one array."""
        row, errors = [], []
        for col, width, encode in self.encoders:
            try:
                value = encode(rec.get(col, _ABSENT))
            except ValueError as exc:
                errors.append(RowError(0, col, str(exc)))
                value = (math.nan,) * width if width > 1 else math.nan
            if width > 1:
                row.extend(value)
            else:
                row.append(value)
        if errors:
            raise InputError(errors)
        return np.array([row], dtype=np.float64)

    def _known(self, col: str, raw):
        """A column's values at once when each is a plain number (or text ``read_number_fast`` reads), or a spelling
        its cache holds: numbers as they are (range checks and clipping follow for the whole matrix), categories
        and dates as their codes. None sends the column through its value-by-value encoder, which names what is
        wrong."""
        kind = self.kinds[col]
        if kind in READERS:  # texts seldom repeat, and a file's content may change: no cache
            return None
        if kind == "number":
            types = set(map(type, raw))
            if types <= _NUMERIC_TYPES:
                return raw
            if bool in types:  # refused: its encoder says why
                return None
            if self.plan[col].get("comma"):  # '1,234' is not what read_number_fast takes it for: value by value
                return None
            try:  # floats as they are, without a call each
                return [v if type(v) is float else read_number_fast(v) for v in raw]
            except ValueError:
                return None
        try:
            found = list(map(self.caches[col].get, raw))
        except TypeError:  # a JSON list or object where a value belongs
            return None
        return None if None in found else found

    def _encoder(self, col, kind, plan):
        """A function from one raw value to its cleaned number(s), raising ValueError with what is wrong."""
        nullable, max_chars = self.nullable[col], self.max_chars[col]

        def absent_or_single(v):
            if v is _ABSENT:
                raise ValueError("is missing (every row needs every model column; send null for an unknown value)")
            if isinstance(v, (dict, list)):
                raise ValueError(f"must be a single value, not a JSON {type(v).__name__}")

        def short_or_single(v):
            """A value of a text column: the text within the contract's length, or a single value of another type."""
            if type(v) is not str:
                absent_or_single(v)
            elif len(v) > max_chars:
                raise ValueError(f"is text of {len(v):,} characters; this column takes at most {max_chars:,}")

        def missing():
            if not nullable:
                raise ValueError("is missing, and training never had it missing")

        if kind == "number":
            fill, comma = filled(plan), plan.get("comma", False)
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
                    if t is bool or t is np.bool_:
                        raise ValueError(f"is {_spelled(v)}, a JSON boolean, not a number")
                    x = read_number(v, comma)
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
                short_or_single(v)
                t = read_text(v)
                if t is None:
                    missing()
                    code = codes[MISSING]
                elif (level := keys.get(key_of(t))) is not None:
                    code = codes[level]
                elif (other := _json_type(v)) is not None:  # a number or boolean only as a category's own spelling
                    levels = ", ".join(map(repr, plan["levels"][:5])) + (", ..." if len(plan["levels"]) > 5 else "")
                    raise ValueError(f"is {_spelled(v)}, a JSON {other}, not one of its categories ({levels}): "
                                     "send the category as text")
                elif self.allow_unseen:
                    code = codes[OTHER]
                else:
                    raise ValueError(f"has a category never seen in training ({shown(v)})")
                if type(v) is str and len(cache) < 10_000:
                    cache[v] = code
                return code
            return encode

        if kind in READERS:  # a text or a file, read by its column's reader
            read = self.readers[col]
            absent, wanted = read.absent, read.wanted

            def encode(v):
                short_or_single(v)
                if (other := _json_type(v)) is not None:
                    raise ValueError(f"is {_spelled(v)}, a JSON {other}: send {wanted}")
                t = read_text(v)
                if t is None:
                    missing()
                    return absent
                return read(t)
            return encode

        absent, dayfirst = date_parts(None, filled(plan)), plan.get("dayfirst", False)
        cache = self.caches[col] = {None: absent} if nullable else {}

        def encode(v):  # dates
            if type(v) is str:
                parts = cache.get(v)
                if parts is not None:
                    return parts
            short_or_single(v)
            t = read_text(v)
            if t is None:
                missing()
                parts = absent
            elif (other := _json_type(v)) is not None:
                raise ValueError(f"is {_spelled(v)}, a JSON {other}, not a date: send the date as text, "
                                 "such as '2024-01-31'")
            elif (d := read_date(t, dayfirst)) is None:
                raise ValueError(f"is not a date ({shown(v)})")
            else:
                parts = date_parts(d)
            if type(v) is str and len(cache) < 10_000:
                cache[v] = parts
            return parts
        return encode


def filled(plan: dict) -> float:
    """What a missing number (or a missing date's days) becomes: NaN, or the median a plan of an older version
    imputed."""
    return math.nan if plan["fill"] is None else plan["fill"]


ON_BAD_ROWS = ("fail", "skip", "missing")


def screen(encoder: RowEncoder, df: pd.DataFrame, on_bad_rows: str = "fail") -> tuple[pd.DataFrame, pd.DataFrame]:
    """A table's rows as batch prediction takes them, by the service's rules (``RowEncoder.problems``), and the refused
    values (row, column, value, problem). ``on_bad_rows``: ``fail`` raises DataError naming them; ``skip`` leaves
    their rows out; ``missing`` scores those rows with the refused values missing."""
    if on_bad_rows not in ON_BAD_ROWS:
        raise DataError(f"unknown policy for bad rows '{on_bad_rows}'; choose one of {', '.join(ON_BAD_ROWS)}")
    errors = encoder.problems(df)
    refused = pd.DataFrame([{"row": e.row, "column": e.field, "value": df[e.field].iloc[e.row], "problem": e.message}
                            for e in errors], columns=["row", "column", "value", "problem"])
    if not errors:
        return df, refused
    rows = sorted({e.row for e in errors})
    if on_bad_rows == "fail":
        raise DataError(f"{len(rows)} of {len(df)} rows hold values the model cannot take: {InputError(errors)}. "
                        "Fix them, or choose --on-bad-rows skip (leave those rows out) or missing (score them with "
                        "those values missing)")
    if on_bad_rows == "skip":  # by position: a table's index may repeat labels
        keep = np.ones(len(df), dtype=bool)
        keep[rows] = False
        return df.iloc[keep], refused
    fixed = df.copy()
    for col, at in refused.groupby("column")["row"]:
        values = fixed[col].astype(object) if fixed[col].dtype.kind in "biu" else fixed[col]
        values.iloc[at.to_numpy()] = None
        fixed[col] = values
    return fixed, refused


def frame_of(X: np.ndarray, columns: list, index=None) -> pd.DataFrame:
    """The table of an encoded matrix whose features are ``columns`` ([(name, levels or None)]): numbers as floats,
    categories as pandas categories with their levels."""
    index = pd.RangeIndex(len(X)) if index is None else index
    out = {}
    for j, (name, levels) in enumerate(columns):
        col = X[:, j]
        out[name] = (pd.Series(pd.Categorical.from_codes(col.astype(np.int64), categories=levels), index=index)
                     if levels is not None else pd.Series(col.copy(), index=index))
    return pd.DataFrame(out, index=index)


def matrix_of(frame: pd.DataFrame) -> tuple[np.ndarray, list]:
    """A cleaned table as the encoded matrix and its columns: ``frame_of``'s inverse (categories as their codes)."""
    columns = [(str(c), list(frame[c].cat.categories) if isinstance(frame[c].dtype, pd.CategoricalDtype) else None)
               for c in frame.columns]
    X = np.column_stack([frame[c].cat.codes.to_numpy(dtype=np.float64) if levels is not None
                         else frame[c].to_numpy(dtype=np.float64, na_value=np.nan)
                         for c, (_, levels) in zip(frame.columns, columns)]) if len(frame.columns) else np.empty((len(frame), 0))
    return np.ascontiguousarray(X), columns


def _json_type(v) -> str | None:
    """JSON's name for a number or boolean value ("number", "boolean"); None for text and anything else."""
    if isinstance(v, (bool, np.bool_)):
        return "boolean"
    return "number" if isinstance(v, (int, float, np.number)) else None


def _spelled(v) -> str:
    """A number or boolean as JSON writes it."""
    return str(v).lower() if isinstance(v, (bool, np.bool_)) else str(v)


def _refusal(encode, v) -> str | None:
    """What ``encode`` says is wrong with ``v``, or None when it takes it."""
    try:
        encode(v)
    except ValueError as exc:
        return str(exc)
    return None


def _category_code(v, keys: dict, codes: dict) -> int:
    t = read_text(v)
    if t is None:
        return codes[MISSING]
    level = keys.get(key_of(t))
    return codes[OTHER] if level is None else codes[level]
