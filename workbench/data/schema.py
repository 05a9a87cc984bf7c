"""The input contract of a model: the columns it reads, their types, nullability, categories and ranges."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import pandas as pd

from workbench.data.clean import Cleaner
from workbench.data.columns import as_text, category_key, to_date, to_number


@dataclass
class ColumnSpec:
    name: str
    type: str  # number | category | date
    nullable: bool
    categories: list[str] | None = None
    min: float | None = None
    max: float | None = None
    example: object = None


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
                x = to_number(s)
                specs.append(ColumnSpec(col, "number", nullable, min=float(x.min()), max=float(x.max()),
                                        example=float(x.dropna().median())))
            elif plan["kind"] == "date":
                specs.append(ColumnSpec(col, "date", nullable, example=str(example)))
            else:
                specs.append(ColumnSpec(col, "category", nullable, categories=list(plan["levels"]), example=str(example)))
        t = cleaner.target_ or {}
        return cls(specs, t.get("name"), t.get("task"), t.get("classes"), dict(cleaner.dropped_))

    def validate(self, df: pd.DataFrame, *, allow_unseen: bool = True) -> list[str]:
        """Problems with a table against this schema, each naming the column (and row); empty when fine."""
        problems = [f"missing column '{c.name}'" for c in self if c.name not in df.columns]
        known = {c.name for c in self} | set(self.ignored) | {self.target}
        problems += [f"unknown column '{c}'" for c in df.columns if c not in known]
        for c in self:
            if c.name not in df.columns:
                continue
            text = as_text(df[c.name])
            if not c.nullable:
                problems += [f"row {i}: '{c.name}' is missing" for i in text.index[text.isna()][:5]]
            if c.type == "number":
                x = to_number(df[c.name])
                problems += [f"row {i}: '{c.name}' is not a number ({df[c.name][i]!r})" for i in x.index[text.notna() & x.isna()][:5]]
            elif c.type == "date":
                d = to_date(text)
                problems += [f"row {i}: '{c.name}' is not a date ({df[c.name][i]!r})" for i in d.index[text.notna() & d.isna()][:5]]
            elif not allow_unseen:
                allowed = set(category_key(pd.Series(c.categories, dtype="string")))
                keys = category_key(text)
                bad = keys.notna() & ~keys.isin(allowed)
                problems += [f"row {i}: '{c.name}' has a category never seen in training ({df[c.name][i]!r})" for i in keys.index[bad][:5]]
        return problems

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
