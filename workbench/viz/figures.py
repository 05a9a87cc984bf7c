"""The figures. Inputs are plain arrays and tidy frames, so each figure is tested on its data."""
from __future__ import annotations

import numpy as np
import pandas as pd
from workbench.extras import extra

with extra("notebook"):
    import plotly.graph_objects as go

from workbench.models import metrics as M

METRIC_WORDS = {
    "roc_auc": "ROC AUC (ranking quality, 0.5 = guessing, 1 = perfect)", "accuracy": "Accuracy (share predicted right)",
    "balanced_accuracy": "Balanced accuracy", "precision": "Precision", "recall": "Recall", "f1": "F1 score",
    "pr_auc": "PR AUC", "log_loss": "Log loss (lower is better)", "rmse": "Typical error (RMSE, lower is better)",
    "mae": "Average error (MAE, lower is better)", "r2": "Share of variation explained (R²)", "mape": "Average % error (MAPE)",
}
SHARES = {"accuracy", "balanced_accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc"}  # between 0 and 1
MAX_POINTS = 400  # a curve's points drawn at most
_LAYOUT = dict(template="plotly_white", margin=dict(l=60, r=20, t=60, b=50), height=420)


def _fig(title: str, x: str, y: str, **layout) -> go.Figure:
    return go.Figure(layout=go.Layout(title=title, xaxis_title=x, yaxis_title=y, **(_LAYOUT | layout)))


def leaderboard_bar(leaderboard: pd.DataFrame, metric: str, highlight: str | None = None,
                    spread: str | None = None) -> go.Figure:
    """One bar per model that finished, best first; ``highlight`` marks the chosen one; ``spread`` names a column of
    each model's standard deviation over the folds, drawn as error bars."""
    ok = leaderboard[leaderboard["status"] == "ok"]
    colors = ["#f59e0b" if m == highlight else "#2563eb" for m in ok["model"]]
    fig = _fig(f"How the models compare: {METRIC_WORDS.get(metric, metric)}", "Model", METRIC_WORDS.get(metric, metric))
    fig.add_bar(x=ok["model"], y=ok[metric], marker_color=colors, text=ok[metric].round(4), textposition="outside",
                error_y={"type": "data", "array": ok[spread].tolist()} if spread else None)
    return fig


def metric_by_model(leaderboard: pd.DataFrame, metrics: list[str]) -> go.Figure:
    """Grouped bars: several metrics side by side for every model that finished."""
    ok = leaderboard[leaderboard["status"] == "ok"]
    fig = _fig("Every metric, model by model", "Model", "Score", barmode="group")
    for m in metrics:
        fig.add_bar(x=ok["model"], y=ok[m], name=METRIC_WORDS.get(m, m))
    return fig


def importance_bar(importance: pd.DataFrame, top: int = 15) -> go.Figure:
    """What the model relies on most: the score lost when a column's values are shuffled."""
    f = importance.sort_values("importance", ascending=False).head(top).iloc[::-1]
    model = str(f["model"].iloc[0]) if len(f) else ""  # a numpy str_ here hangs Voila's output widgets
    fig = _fig(f"What drives the predictions of {model}", "Score lost when the column is scrambled", "Column",
               height=max(300, 28 * len(f) + 120))
    fig.add_bar(x=f["importance"], y=f["feature"].astype(str).tolist(), orientation="h", error_x=dict(type="data", array=f["std"]),
                marker_color="#2563eb")
    fig.update_yaxes(automargin=True)  # long column names stay readable
    return fig


def roc_curve(y, proba, classes, name: str = "") -> go.Figure:
    fig = _fig(f"How well {name or 'the model'} separates the classes (ROC)", "False alarms (false positive rate)",
               "Cases found (true positive rate)")
    return _per_class_lines(fig, M.roc_data(y, proba, classes), "false_positive_rate", "true_positive_rate", "guessing")


def pr_curve(y, proba, classes, name: str = "") -> go.Figure:
    fig = _fig(f"Precision against recall for {name or 'the model'}", "Share of real cases found (recall)",
               "Share of flagged cases that are real (precision)")
    return _per_class_lines(fig, M.pr_data(y, proba, classes), "recall", "precision")


def calibration_curve(y, proba, classes, name: str = "") -> go.Figure:
    fig = _fig(f"Can {name or 'the model'}'s probabilities be taken at face value?", "Predicted probability",
               "Observed frequency")
    return _per_class_lines(fig, M.calibration_data(y, proba, classes), "predicted", "observed", "perfectly calibrated",
                            mode="lines+markers")


def _per_class_lines(fig: go.Figure, data: pd.DataFrame, x: str, y: str, diagonal: str | None = None,
                     mode: str = "lines") -> go.Figure:
    """One line per class from a tidy curve frame, and optionally the dashed diagonal as a reference."""
    for c, g in data.groupby("class", sort=False):
        if len(g) > MAX_POINTS:  # a 700-pixel line needs no more: adult's PR curve was 700 KB of JSON
            g = g.iloc[np.unique(np.linspace(0, len(g) - 1, MAX_POINTS).round().astype(int))]
        fig.add_scatter(x=g[x], y=g[y], mode=mode, name=f"class {c}")
    if diagonal:
        fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dash", color="grey"), name=diagonal)
    return fig


def learning_curve(curve: pd.DataFrame) -> go.Figure:
    """Score on the rows it learned from and on unseen rows, as the training rows grow."""
    metric, model = str(curve["metric"].iloc[0]), str(curve["model"].iloc[0])
    fig = _fig(f"Would more data help {model}?", "Training rows", METRIC_WORDS.get(metric, metric))
    fig.add_scatter(x=curve["rows"], y=curve["train_score"], mode="lines+markers", name="on rows it learned from")
    fig.add_scatter(x=curve["rows"], y=curve["validation_score"], mode="lines+markers", name="on unseen rows")
    return fig


def score_distribution(y, proba, classes, name: str = "") -> go.Figure:
    """How each row's predicted probability of the positive (or its true) class spreads, one histogram per actual
    class, counted here: the figure's size does not grow with the rows (a point per row drew 1,600 SVG markers, the
    slowest chart of the dashboard to draw)."""
    y = np.asarray(y)
    proba = np.asarray(proba)
    k = 1 if len(classes) == 2 else None
    score = proba[:, 1] if k else proba[np.arange(len(y)), y]
    what = f"Predicted probability of '{classes[1]}'" if k else "Predicted probability of the actual class"
    fig = _fig(f"Scores by actual outcome ({name or 'the model'})", what, "Rows", barmode="overlay")
    edges = np.linspace(0, 1, 21)
    for code, c in enumerate(classes):
        counts, _ = np.histogram(score[y == code], bins=edges)
        fig.add_bar(x=(edges[:-1] + 0.025).round(3), y=counts, width=0.05, name=str(c), opacity=0.6)
    return fig


def predicted_vs_actual(y, pred, name: str = "") -> go.Figure:
    y, pred = np.asarray(y, dtype=float), np.asarray(pred, dtype=float)
    fig = _fig(f"Predicted against actual ({name or 'the model'})", "Actual value", "Predicted value")
    fig.add_scatter(x=y, y=pred, mode="markers", marker=dict(size=4, opacity=0.5), name="rows")
    lo, hi = float(min(y.min(), pred.min())), float(max(y.max(), pred.max()))
    fig.add_scatter(x=[lo, hi], y=[lo, hi], mode="lines", line=dict(dash="dash", color="grey"), name="perfect")
    return fig


def residuals(y, pred, name: str = "") -> go.Figure:
    d = M.residual_data(y, pred)
    fig = _fig(f"Where {name or 'the model'} is off, and by how much", "Predicted value", "Error (actual − predicted)")
    fig.add_scatter(x=d["predicted"], y=d["residual"], mode="markers", marker=dict(size=4, opacity=0.5), name="rows")
    fig.add_hline(y=0, line_dash="dash", line_color="grey")
    return fig


def confusion_matrix(y, proba, classes, name: str = "") -> go.Figure:
    """Counts of actual against predicted class (the most probable one)."""
    from sklearn.metrics import confusion_matrix as cm

    k = len(classes)
    counts = cm(np.asarray(y), np.asarray(proba).argmax(axis=1), labels=list(range(k)))
    labels = [str(c) for c in classes]
    fig = _fig(f"Right and wrong calls of {name or 'the model'}", "Predicted", "Actual")
    fig.add_heatmap(z=counts, x=labels, y=labels, text=counts, texttemplate="%{text}", colorscale="Blues", showscale=False)
    fig.update_yaxes(autorange="reversed")
    return fig


def figures_for(results, model: str) -> dict[str, go.Figure]:
    """The dashboard's charts for one model of a saved run: scatter, bars and lines suited to its task."""
    y, s = results.scores(model)
    figs = {"leaderboard": leaderboard_bar(results.leaderboard, results.meta["metric"], highlight=model)}
    imp = results.importance[results.importance["model"] == model]
    if len(imp):
        figs["importance"] = importance_bar(imp)
    if results.task == "regression":
        figs["scatter"] = predicted_vs_actual(y, s, model)
        figs["residuals"] = residuals(y, s, model)
    else:
        figs["scatter"] = score_distribution(y, s, results.classes, model)
        figs["roc"] = roc_curve(y, s, results.classes, model)
        figs["pr"] = pr_curve(y, s, results.classes, model)
        figs["calibration"] = calibration_curve(y, s, results.classes, model)
        figs["confusion"] = confusion_matrix(y, s, results.classes, model)
    curve = results.learning_curve
    if len(curve) and curve["model"].iloc[0] == model:
        figs["learning"] = learning_curve(curve)
    return figs


SECTIONS = ("Overview", "Quality", "More")  # how a dashboard groups a model's charts (``section_of``)
QUALITY = ("scatter", "residuals", "roc", "pr", "confusion", "calibration")  # how right the model is, by the task


def section_of(key: str, keys) -> int:
    """Which of ``SECTIONS`` shows the chart ``key`` among a model's ``keys``: the overview has the leaderboard and
    what drives the model (its contributions and one row's reasons, else permutation importance); the quality section
    the task's error charts; the rest is "More"."""
    drivers = ("drivers", "why") if "drivers" in keys else ("importance",)
    return 0 if key == "leaderboard" or key in drivers else 1 if key in QUALITY else 2


def member_correlation(corr: pd.DataFrame) -> go.Figure:
    """How alike the ensemble members' predictions are (1 = the same; lower = more diverse)."""
    names = [str(c) for c in corr.columns]
    fig = _fig("How alike the members' predictions are (lower = more diverse)", "Member", "Member")
    fig.add_heatmap(z=corr.to_numpy().round(3).tolist(), x=names, y=names, zmin=-1, zmax=1, colorscale="RdBu",
                    text=corr.to_numpy().round(2).tolist(), texttemplate="%{text}")
    return fig
