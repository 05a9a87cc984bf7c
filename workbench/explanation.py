"""Why a model predicts what it does: the drivers of all its predictions (``explain``: importance per raw column and
dependence curves) and each row's reasons (``reasons``, what the service answers to ``?explain=k``), from the
contributions of ``workbench.models.contrib`` (exact for most kinds; which, and on what scale, is always stated).

Examples
--------
>>> from workbench import train                                    # doctest: +SKIP
>>> result = train(load("demo"), "churn", models=["lightgbm"])     # doctest: +SKIP
>>> e = explain(result.model, load("demo"))                        # doctest: +SKIP
>>> e.to_frame().head(3)                                           # doctest: +SKIP
>>> reasons(result.model, load("demo").head(2), k=3, background=load("demo"))  # doctest: +SKIP
"""
from __future__ import annotations

import html
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from workbench.errors import WorkbenchError
from workbench.models.contrib import BIAS, SCALES, RowExplainer


PAIR_COLUMNS, PAIR_ROWS = 4, 50  # interactions: among the top columns' pairs, measured at this many rows
ESTIMATED_ROWS = 100  # rows the model-agnostic estimate explains in a global view (each costs thousands of scorings)


@dataclass
class Explanation:
    """What drives a model's predictions, from each row's contributions per raw column.

    Attributes
    ----------
    model : the model's name.  scale, method, exact : what the contributions are (``workbench.models.contrib``).
    contributions : rows × (raw columns + ``(bias)``): each explained row's contributions to ``output``.
    importance : per raw column, the mean size of its contribution (``importance``), its mean signed value and its
        share of the total, largest first.
    dependence : per column shown, how the output moves when only that column changes (``row`` -1: the mean over
        the explained rows, PDP; other rows: single rows, ICE).
    output : what the dependence curves show (a class's probability, or the predicted value).
    interactions : for each pair of the top columns, Friedman's H (0: the pair's effects add up; 1: all of their joint
        effect is interaction), strongest first.
    """

    model: str
    scale: str
    method: str
    exact: bool
    contributions: pd.DataFrame
    importance: pd.DataFrame
    dependence: pd.DataFrame
    output: str
    seconds: float
    interactions: pd.DataFrame | None = None

    def to_frame(self) -> pd.DataFrame:
        return self.importance

    def _repr_html_(self) -> str:
        note = "exact" if self.exact else "estimated"
        head = (f"<h4>What drives the predictions of {html.escape(self.model)}</h4><p>{len(self.contributions):,} rows "
                f"explained in {self.seconds:.1f} s; contributions ({note}: {html.escape(self.method)}) on the "
                f"{html.escape(self.scale)} scale ({html.escape(SCALES.get(self.scale, ''))}): for every row the bias "
                "plus the contributions is the model's output.</p>")
        pairs = "" if self.interactions is None or self.interactions.empty else (
            "<h4>Which columns act together</h4><p>Friedman's H of each pair (0: their effects add up).</p>"
            + self.interactions.to_html(index=False, float_format=lambda v: f"{v:.3f}"))
        return head + self.importance.to_html(index=False, float_format=lambda v: f"{v:.4g}") + pairs

    def figure(self, column: str | None = None):
        """The drivers bar chart; with ``column``, how the prediction moves with that column (PDP and ICE)."""
        from workbench.viz.explain import dependence_lines, drivers_bar  # start-up cost: no plotly in the service

        if column is None:
            return drivers_bar(self.importance, self.scale)
        if column not in set(self.dependence["column"]):
            raise WorkbenchError(f"no dependence curve for '{column}'; curves were made for: "
                                 f"{', '.join(dict.fromkeys(self.dependence['column'])) or 'none'}")
        return dependence_lines(self.dependence, column, self.output)


def explain(model, data: pd.DataFrame | None = None, *, rows: int = 1000, columns: list[str] | None = None,
            top: int = 5, ice_rows: int = 30, grid: int = 20, background: pd.DataFrame | None = None,
            seed: int = 0) -> Explanation:
    """Explain ``model`` (a TrainedModel, a loaded Package or a training result) on up to ``rows`` rows of ``data``
    (raw rows; default: the package's or result's training sample): importance per raw column from the rows'
    contributions, and dependence curves (PDP/ICE) for ``columns`` (default: the ``top`` most important number and
    category columns). ``background``: raw training rows (default: the package's or result's sample, else ``data``).
    A model without exact contributions is explained on at most ESTIMATED_ROWS rows."""
    t0 = time.perf_counter()
    trained, sample = _model_and_sample(model)
    data = data if data is not None else sample
    if data is None:
        raise WorkbenchError("give the rows to explain: explain(model, data)")
    re = RowExplainer(trained, background if background is not None else sample if sample is not None else data)
    limit = rows if re.exact else min(rows, ESTIMATED_ROWS)
    picked = data.iloc[np.sort(np.random.default_rng(seed).permutation(len(data))[:limit])]
    X = re.encoder.frame(picked)
    phi = re.contributions(X)
    pick = re._outputs(phi, X)
    values = phi[np.arange(len(X)), :, pick]
    contributions = pd.DataFrame(values, index=picked.index, columns=[*re.names, BIAS])
    size = np.abs(phi[:, :-1, :]).mean(axis=(0, 2))
    importance = pd.DataFrame({"column": re.names, "importance": size, "mean_contribution": values[:, :-1].mean(axis=0),
                               "share": size / size.sum() if size.sum() > 0 else size})
    importance = importance.sort_values("importance", ascending=False, ignore_index=True)
    kinds = re.encoder.kinds
    shown = columns if columns is not None else [c for c in importance["column"] if kinds[c] in ("number", "category")][:top]
    unknown = [c for c in shown if c not in kinds or kinds[c] not in ("number", "category")]
    if unknown:
        raise WorkbenchError(f"no dependence curve for {', '.join(unknown)}: curves are drawn for number and "
                             "category columns")
    dependence, output = _dependence(re, X, shown, ice_rows, grid)
    interactions = _interactions(re, X, shown[:PAIR_COLUMNS], seed)
    return Explanation(getattr(trained, "name", "") or type(trained.estimator).__name__, re.scale, re.method, re.exact,
                       contributions, importance, dependence, output, time.perf_counter() - t0, interactions)


def reasons(model, rows: pd.DataFrame, k: int = 3, *, background: pd.DataFrame | None = None) -> list[list[dict]]:
    """Each row's ``k`` largest contributions (column, raw value, contribution, direction), as the service answers
    ``?explain=k``: ``model`` a loaded Package (its training sample is the background) or a TrainedModel with
    ``background`` rows."""
    trained, sample = _model_and_sample(model)
    bg = background if background is not None else sample
    if bg is None:
        raise WorkbenchError("give background rows (raw training rows) to explain a bare TrainedModel")
    re = RowExplainer(trained, bg)
    return re.reasons(re.encoder.frame(rows), rows, k)


def _model_and_sample(model):
    """The TrainedModel inside ``model`` and the raw training rows that came with it (None for a bare model)."""
    if hasattr(model, "manifest") and hasattr(model, "sample"):  # a Package
        return model.model, model.sample
    if hasattr(model, "model") and hasattr(model, "reference"):  # a training result
        return model.model, model.reference
    if hasattr(model, "cleaner") and hasattr(model, "estimator"):
        return model, None
    raise WorkbenchError(f"cannot explain a {type(model).__name__}: give a TrainedModel, a Package or a training result")


def _dependence(re: RowExplainer, X: np.ndarray, columns: list[str], ice_rows: int, grid: int) -> tuple[pd.DataFrame, str]:
    """PDP and ICE: each column set to each value of its grid in every explained row, scored at once."""
    model = re.model
    scores = model.scorer(X)
    if model.task == "regression":
        j_out, output = None, "predicted value"
    else:
        j_out = 1 if model.task == "binary" else int(np.asarray(scores).mean(axis=0).argmax())
        output = f"probability of {model.classes[j_out]}"
    bg = re.layout.background
    frames = []
    ice = np.arange(min(ice_rows, len(X)))
    for col in columns:
        j = int(re.layout.groups[re.names.index(col)][0])
        levels = re.layout.columns[j][1]
        if levels is not None:
            values = np.unique(bg[:, j])
        else:
            values = np.unique(np.nanquantile(bg[:, j], np.linspace(0, 1, grid)))  # a missing value is no grid point
        M = np.repeat(X[None], len(values), axis=0)
        M[:, :, j] = values[:, None]
        out = np.asarray(model.scorer(M.reshape(-1, X.shape[1])), dtype=float)
        out = (out if j_out is None else out[:, j_out]).reshape(len(values), len(X))
        shown = [levels[int(v)] for v in values] if levels is not None else values.tolist()
        frames.append(pd.DataFrame({"column": col, "value": shown * (len(ice) + 1),
                                    "row": np.repeat(np.r_[-1, ice], len(values)),
                                    "output": np.concatenate([out.mean(axis=1), *(out[:, i] for i in ice)]),
                                    "categorical": levels is not None}))
    empty = pd.DataFrame(columns=["column", "value", "row", "output", "categorical"])
    return (pd.concat(frames, ignore_index=True) if frames else empty), output




def _interactions(re: RowExplainer, X: np.ndarray, columns: list[str], seed: int) -> pd.DataFrame:
    """Friedman's H for each pair of ``columns``: partial dependences at ``PAIR_ROWS`` of the explained rows, each
    column (and each pair) set to every row's value in all of them; H² is the share of the pair's joint, centred
    partial dependence that the two single ones do not explain."""
    rows = X[np.random.default_rng(seed).permutation(len(X))[:PAIR_ROWS]]
    n = len(rows)
    if n < 2 or len(columns) < 2:
        return pd.DataFrame(columns=["column_a", "column_b", "h"])
    task = re.model.task
    j_out = None if task == "regression" else 1 if task == "binary" else int(
        np.asarray(re.model.scorer(rows)).mean(axis=0).argmax())  # the class most predicted, as the curves show
    features = {c: int(re.layout.groups[re.names.index(c)][0]) for c in columns}

    def pd_at(cols: list[str]) -> np.ndarray:
        """The centred partial dependence on ``cols`` at each row's own values of them."""
        M = np.repeat(rows[None], n, axis=0)  # M[i]: every row, with ``cols`` set to row i's values
        for c in cols:
            M[:, :, features[c]] = rows[:, features[c]][:, None]
        out = np.asarray(re.model.scorer(M.reshape(-1, rows.shape[1])), dtype=float)
        f = (out if j_out is None else out[:, j_out]).reshape(n, n).mean(axis=1)
        return f - f.mean()

    single = {c: pd_at([c]) for c in columns}
    found = []
    for a_i, a in enumerate(columns):
        for b in columns[a_i + 1:]:
            joint = pd_at([a, b])
            total = float((joint ** 2).sum())
            h2 = float(((joint - single[a] - single[b]) ** 2).sum()) / total if total > 1e-12 else 0.0
            found.append((a, b, float(np.sqrt(min(max(h2, 0.0), 1.0)))))
    return pd.DataFrame(found, columns=["column_a", "column_b", "h"]).sort_values("h", ascending=False,
                                                                                  ignore_index=True)
