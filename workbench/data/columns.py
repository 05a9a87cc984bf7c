"""Reading raw column values: missing spellings, numbers stored as text, dates, category keys.

One implementation of each rule, value by value (``read_text``, ``read_number``, ``read_date``, ``key_of``); the
column forms (``as_text``, ``to_number``, ``to_date``, ``category_key``) apply the same readers once per distinct
value. The profile, the cleaner, the row encoder, the schema and the service all read values through them.
"""
from __future__ import annotations

import math
import re
import warnings
from datetime import date
from functools import lru_cache

import numpy as np
import pandas as pd

from workbench.data.media import media_kind

MISSING_TOKENS = frozenset({"", "?", "na", "n/a", "nan", "null", "none", "-", "--", "missing", "#n/a", "nil", "<na>"})
_NUMBER = re.compile(r"^([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(?:[A-Za-z%]{1,5})?$")
_CURRENCY = re.compile(r"^[\$€£¥]\s*|\s*[\$€£¥]$")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?:\D|$))")
_GROUPED = re.compile(r"[\$€£¥]?[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?$")  # "2,673.34", "$1716.65"
_PLAIN_NUMBER = frozenset("0123456789.+-eE")
_KEY_SPACES = re.compile(r"[\s_\-]+")
_THOUSANDS_DOT = re.compile(r"(?<=\d)\.(?=\d{3}(?:\D|$))")
_DECIMAL_COMMA = re.compile(r"\d,(?:\d{1,2}|\d{4,})(?:\D|$)")  # "7,25", "1.234,5": a comma no thousands group explains
_DATE_LIKE = re.compile(r"\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}|(?<!\d)(?:1[89]|20)\d\d(?!\d)")  # 3 parts, or a year
_DAY_MONTH = re.compile(r"^(\d{1,2})[-/.](\d{1,2})[-/.]\d{2,4}")
DECIMAL_COMMAS = "numbers with decimal commas"
DAY_FIRST = "dates stored as text, day first"
_ISO_DATE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?$")
_EPOCH = date(1970, 1, 1)
# missing tokens as they are usually written (each is missing for ``read_text`` too: stripped, lowercased, a token)
_MISSING_SPELLINGS = frozenset(v for t in MISSING_TOKENS for v in (t, t.upper(), t.title(), t.capitalize()))


def read_text(v) -> str | None:
    """One raw value as stripped text; None for every missing spelling."""
    if v is None or (isinstance(v, float) and v != v) or v is pd.NA or v is pd.NaT:
        return None
    t = str(v).strip()
    return None if t.lower() in MISSING_TOKENS else t


def read_number(v, comma: bool = False) -> float | None:
    """One raw value as a float ('1,234.50', '$12', '15 USD', '30%' included; with ``comma``, text written with a
    decimal comma: '7,25', '1.234,50 €'); None when missing; ValueError saying what is wrong when it is not a finite
    number."""
    if isinstance(v, (bool, np.bool_)):
        return float(v)
    if isinstance(v, (int, float, np.integer, np.floating)):
        x = float(v)
        if x != x:
            return None
        if not math.isfinite(x):
            raise ValueError("is not a finite number")
        return x
    t = read_text(v)
    if t is None:
        return None
    if comma:  # a dot before a group of three digits separates thousands; any other is a decimal point
        t = _THOUSANDS_DOT.sub("", t).replace(",", ".")
    if _PLAIN_NUMBER.issuperset(t):  # "814.53", "-2e3": float() reads these exactly as the pattern below does
        try:
            x = float(t)
        except ValueError:
            pass
        else:
            if not math.isfinite(x):
                raise ValueError(f"is not a finite number ({shown(v)})")
            return x
    m = _NUMBER.match(_THOUSANDS.sub("", _CURRENCY.sub("", t)))
    if not m:
        raise ValueError(f"is not a number ({shown(v)})")
    x = float(m.group(1))
    if not math.isfinite(x):
        raise ValueError(f"is not a finite number ({shown(v)})")
    return x


def shown(v, most: int = 60) -> str:
    """A raw value as a message quotes it: its repr, cut short when long (a request may send a megabyte)."""
    r = repr(v)
    return r if len(r) <= most else f"{r[:most - 10]}… ({len(str(v)):,} characters)"


def read_number_fast(v) -> float:
    """``read_number`` for a whole column at once: NaN when missing; ValueError as ``read_number``. The common
    spellings take a short road with the same result: digits with at most one point, missing tokens, thousands
    commas and a leading currency sign."""
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
    x = read_number(v)
    return math.nan if x is None else x


def key_of(t: str) -> str:
    """The spelling-insensitive key of a category: case, spaces, '-' and '_' do not matter."""
    return _KEY_SPACES.sub(" ", t.casefold()).strip()


@lru_cache(maxsize=4096)
def read_date(t: str, dayfirst: bool = False) -> date | None:
    """One text value as a date; None when it is not one. ISO dates directly, any other spelling by pandas' parser
    ("Oct 26 2024", "26/10/2024" with ``dayfirst``)."""
    return _dates([t], dayfirst)[0]


def date_parts(d: date | None, fill: float = math.nan) -> tuple[float, float, float, float]:
    """(year, month, day of week, days since 1970) of a date; NaN parts (and ``fill`` days) when it is missing."""
    if d is None:
        return math.nan, math.nan, math.nan, fill
    return float(d.year), float(d.month), float(d.weekday()), float((d - _EPOCH).days)


def _dates(texts: list[str], dayfirst: bool = False) -> list[date | None]:
    out: list[date | None] = [None] * len(texts)
    rest = []
    for i, t in enumerate(texts):
        m = _ISO_DATE.match(t)
        if m is None:
            rest.append(i)
            continue
        try:
            out[i] = date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        except ValueError:
            pass
    if dayfirst:  # only a day/month/year spelling is read day first ("2024-01-05T10:00Z" stays year first)
        first = [i for i in rest if _DAY_MONTH.match(texts[i])]
        _parse(texts, [i for i in rest if not _DAY_MONTH.match(texts[i])], False, out)
        _parse(texts, first, True, out)
    else:
        _parse(texts, rest, False, out)
    return out


def _parse(texts: list[str], at: list[int], dayfirst: bool, out: list) -> None:
    """The spellings at ``at`` by pandas' parser, each value read on its own ("mixed"), into ``out``."""
    if not at:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            found = list(pd.to_datetime(pd.Series([texts[i] for i in at], dtype=object), errors="coerce",
                                        format="mixed", dayfirst=dayfirst))
        except (ValueError, OverflowError, NotImplementedError, TypeError):  # mixed time zones: one at a time
            found = [_one_date(texts[i], dayfirst) for i in at]
    for i, ts in zip(at, found):
        out[i] = None if ts is None or pd.isna(ts) else ts.date()


def _one_date(t: str, dayfirst: bool):
    try:
        return pd.to_datetime(t, errors="coerce", format="mixed", dayfirst=dayfirst)
    except (ValueError, OverflowError, NotImplementedError, TypeError):  # beyond the calendar Python knows
        return None


def per_distinct(s: pd.Series, read, dtype=np.float64, width: int = 1) -> np.ndarray:
    """``read`` applied once per distinct value of ``s`` (every missing one as None), spread back to every row."""
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    values = [read(u) for u in uniques] + [read(None)]  # code -1 (missing) takes the last
    if dtype is object:  # filled element by element: numpy would unpack dates or tuples into a second axis
        table = np.empty(len(values), dtype=object)
        table[:] = values
    else:
        table = np.array(values, dtype=dtype).reshape(len(values), width) if width > 1 else np.array(values, dtype=dtype)
    return table[codes]


def as_text(s: pd.Series) -> pd.Series:
    """Values as stripped strings, with every missing spelling turned into NA."""
    return pd.Series(per_distinct(s, read_text, object), index=s.index, dtype="string", name=s.name)


def number_or_nan(v, comma: bool = False) -> float:
    """``read_number`` that says NaN for a missing or unreadable value (cleaning's rule: it is missing)."""
    try:
        x = read_number(v, comma)
    except ValueError:
        return math.nan
    return math.nan if x is None else x


def to_number(s: pd.Series, comma: bool = False) -> pd.Series:
    """A raw column as floats: numbers as they are, text such as '1,234.50', '$12', '15 USD' or '30%' (with
    ``comma``: '7,25') read once per distinct value (NaN where missing or not a number)."""
    if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
        return pd.Series(s.to_numpy(dtype=np.float64, na_value=np.nan), index=s.index, name=s.name)
    return pd.Series(per_distinct(s, lambda v: number_or_nan(v, comma)), index=s.index, name=s.name)


def date_or_none(v, dayfirst: bool = False) -> date | None:
    t = read_text(v)
    return None if t is None else read_date(t, dayfirst)


def to_date(s: pd.Series, dayfirst: bool = False) -> pd.Series:
    """A raw column as dates (NaT where missing or not a date)."""
    found = per_distinct(s, lambda v: date_or_none(v, dayfirst), object)
    return pd.Series(pd.to_datetime(pd.Series(found, dtype=object), errors="coerce").to_numpy(), index=s.index, name=s.name)


def category_key(s: pd.Series) -> pd.Series:
    """The spelling-insensitive key of every value (NA where missing)."""
    return pd.Series(per_distinct(s, lambda v: None if (t := read_text(v)) is None else key_of(t), object),
                     index=s.index, dtype="string", name=s.name)


def infer_kind(s: pd.Series) -> tuple[str, str]:
    """(kind, detail) for a raw column: number, category, date, id, text, image, audio, constant or empty."""
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
    if (media := media_kind(sample)) is not None:
        return media, f"{media} files"
    if to_number(sample).notna().mean() >= 0.95:
        return "number", "numbers stored as text"
    if sample.str.contains(_DECIMAL_COMMA).any() and to_number(sample, comma=True).notna().mean() >= 0.95:
        return "number", DECIMAL_COMMAS
    if sample.str.contains(_DATE_LIKE).mean() >= 0.95:
        dayfirst = day_first(sample)
        if to_date(sample, dayfirst).notna().mean() >= 0.95:
            return "date", DAY_FIRST if dayfirst else "dates stored as text"
    keys = category_key(v).nunique()
    words = sample.str.count(r"\s+").mean() + 1
    if words >= 5 and keys >= 0.5 * len(v):  # sentences, not labels: a model reads their words
        return "text", f"free text: {words:.0f} words on average, {keys / len(v):.0%} distinct"
    if len(v) >= 20 and keys >= 0.9 * len(v):
        return "id", f"{nunique} distinct values in {len(v)} rows (an ID or free text)"
    if keys > 1000 and keys >= 0.5 * len(v):
        return "text", f"{keys} distinct values (free text)"
    return "category", ""


def day_first(texts: pd.Series) -> bool:
    """Whether a column's dates are written day first: some d/m/y date has a first part over 12, none a second."""
    parts = texts.str.extract(_DAY_MONTH).dropna().astype(int)
    return bool(len(parts)) and bool((parts[0] > 12).any()) and not bool((parts[1] > 12).any())


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
