"""The input contract of a model: the columns it reads, their types, nullability, categories, ranges and the length
of their text."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import pandas as pd

from workbench.data.clean import Cleaner
from workbench.data.columns import as_text, to_number
from workbench.data.media import KINDS as MEDIA, MAX_BYTES

# a category or date takes text of at most TEXT_ROOM × its longest training value (room for other spellings of the
# same value: spaces, a date with its time and zone), at least MIN_CHARS (a one-letter code still takes a padded
# spelling) and at most MAX_CHARS (a label, not a document: the encoder keeps up to 10,000 spellings a column, and
# each is read by the key and date parsers)
TEXT_ROOM, MIN_CHARS, MAX_CHARS = 4, 64, 10_000
DEFAULT_MAX_CHARS = 1_000  # schemas stored before the limit was inferred
MAX_DOCUMENT_CHARS = 1_000_000  # a free-text column's documents: reviews, notes, tickets
MAX_MEDIA_CHARS = MAX_BYTES * 4 // 3 + 64  # an image or sound sent as a data: URI


@dataclass
class ColumnSpec:
    """One column of the contract; ``max_chars`` is the longest text a category or date takes (None for a number)."""

    name: str
    type: str  # number | category | date | text | image | audio
    nullable: bool
    categories: list[str] | None = None
    min: float | None = None
    max: float | None = None
    example: object = None
    max_chars: int | None = None

    def __post_init__(self):
        if self.max_chars is None and self.type != "number":
            self.max_chars = DEFAULT_MAX_CHARS


@dataclass
class Schema:
    """Inferred from the cleaned training data; JSON round-trips; the prediction service enforces it.

    Examples
    --------
    >>> from workbench.data import load, clean
    >>> df = load("demo", n_rows=200); c = clean(df, "churn")
    >>> s = Schema.infer(c.cleaner, df)
    >>> Schema.from_json(s.to_json()) == s
    True
    """

    columns: list[ColumnSpec]
    target: str | None = None
    task: str | None = None
    classes: list | None = None
    ignored: dict[str, str] = field(default_factory=dict)

    @classmethod
    def infer(cls, cleaner: Cleaner, raw: pd.DataFrame) -> "Schema":
        specs = []
        for col, plan in cleaner.plan_.items():
            s = raw[col]
            nullable = bool(as_text(s).isna().any())
            example = as_text(s).dropna().iloc[0] if as_text(s).notna().any() else None
            if plan["kind"] == "number":
                x = to_number(s, plan.get("comma", False))
                # the example is a value the column holds: the mean of the middle two printed as 53.355000000000004
                specs.append(ColumnSpec(col, "number", nullable, min=float(x.min()), max=float(x.max()),
                                        example=float(x.dropna().quantile(0.5, interpolation="lower"))))
            elif plan["kind"] == "date":
                specs.append(ColumnSpec(col, "date", nullable, example=str(example), max_chars=_max_chars(s)))
            elif plan["kind"] in MEDIA:
                specs.append(ColumnSpec(col, plan["kind"], nullable, example=str(example), max_chars=MAX_MEDIA_CHARS))
            elif plan["kind"] == "text":
                specs.append(ColumnSpec(col, "text", nullable, example=str(example),
                                        max_chars=_max_chars(s, MAX_DOCUMENT_CHARS)))
            else:
                specs.append(ColumnSpec(col, "category", nullable, categories=list(plan["levels"]),
                                        example=str(example), max_chars=_max_chars(s)))
        t = cleaner.target_ or {}
        return cls(specs, t.get("name"), t.get("task"), t.get("classes"), dict(cleaner.dropped_))

    def __iter__(self):
        return iter(self.columns)

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([asdict(c) for c in self.columns])

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, default=str)

    @classmethod
    def from_json(cls, text: str) -> "Schema":
        d = json.loads(text)
        d["columns"] = [ColumnSpec(**c) for c in d["columns"]]
        return cls(**d)

    def _repr_html_(self) -> str:
        return self.to_frame().to_html(index=False)


def _max_chars(s: pd.Series, most: int = MAX_CHARS) -> int:
    """The longest text a column takes: TEXT_ROOM × its longest training value, within [MIN_CHARS, ``most``]."""
    longest = as_text(s).str.len().max()
    return min(most, max(MIN_CHARS, TEXT_ROOM * (0 if pd.isna(longest) else int(longest))))
