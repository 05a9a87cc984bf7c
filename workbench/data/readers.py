"""Column kinds read value by value into several features: free text, images and sounds. Each kind is one entry
here: how cleaning fits it on the training column, and the reader that turns any later value (a table's, a
request's, a stream's) into the same features. Cleaning and the row encoder look kinds up here and have no branch
of their own for any of them; a new kind (a PDF's text, a video's frames) is one more entry.

A reader has ``width`` features named ``features``; ``reader(text)`` reads one value, raising ValueError that says
what is wrong (the service's refusal); ``reader.lenient(text)`` is cleaning's reading, where a missing or unreadable
value has the features ``reader.absent``; ``reader.wanted`` says what a request sends.

Examples
--------
>>> from workbench.data.readers import READERS
>>> sorted(READERS)
['audio', 'image', 'text']
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from workbench.data.columns import as_text
from workbench.data.media import MediaReader
from workbench.data.text import TextEncoder, fit_text
from workbench.lookup import Registry

Report = Callable[[str, int, str], None]  # (what was done, rows, detail): a line of the cleaning report


@dataclass(frozen=True)
class ReaderKind:
    """One kind of column read by a reader.

    fit : ``fit(values, y, task, report) -> (plan, training features or None)``; the plan is JSON and names its
        ``outputs``; training features, when given, replace the reader's (a text's out-of-fold scores). ValueError
        says why the column cannot be used (it is dropped with that reason).
    reader : ``reader(plan, media_root) -> reader`` (see the module's docstring).
    """

    name: str
    fit: Callable[..., tuple[dict, np.ndarray | None]]
    reader: Callable[[dict, str | Path | None], object]


READERS: Registry[ReaderKind] = Registry("column kind")


def _fit_text(s: pd.Series, y: pd.Series | None, task: str, report: Report) -> tuple[dict, np.ndarray]:
    if y is None:
        raise ValueError("a text column needs a target")
    fitted = fit_text(s, y, task)
    if fitted is None:
        raise ValueError("but no word of two letters or more is in two texts with a known target")
    plan, features = fitted
    report("text → TF-IDF score", int(as_text(s).notna().sum()),
           f"{len(plan['terms']):,} words and word pairs, a linear model's out-of-fold score and the length in words")
    return plan, features


def _media_fit(kind: str):
    def fit(s: pd.Series, y, task, report: Report) -> tuple[dict, None]:
        """Features read from every file once; what cannot be read is missing (the training medians), and counted."""
        reader = MediaReader(kind)
        texts = as_text(s)
        nan = (np.nan,) * reader.width
        features = np.array([reader.lenient(t, nan) for t in texts.dropna().unique()]).reshape(-1, reader.width)
        known = ~np.isnan(features).any(axis=1)
        fill = np.median(features[known], axis=0).tolist() if known.any() else [0.0] * reader.width
        report(f"{kind} → {reader.width} features", int(texts.notna().sum()), ", ".join(reader.features[:6]) + ", …")
        if (~known).sum():
            report(f"unreadable {kind} files → missing", int((~known).sum()), "their features are the training medians")
        return {"kind": kind, "outputs": list(reader.features), "fill": [0.0 if math.isnan(v) else v for v in fill]}, None
    return fit


READERS.register("text", ReaderKind("text", _fit_text, lambda plan, root: TextEncoder(plan)))
for _kind in ("image", "audio"):
    READERS.register(_kind, ReaderKind(_kind, _media_fit(_kind),
                                       lambda plan, root: MediaReader(plan["kind"], root, fill=plan["fill"])))
