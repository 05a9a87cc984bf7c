import numpy as np
import pandas as pd

from workbench import viz


def _binary(n=200, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p1 = np.clip(0.3 * y + rng.uniform(0, 0.7, n), 0, 1)
    return y, np.column_stack([1 - p1, p1])


def test_roc_runs_from_origin_to_corner_with_a_guessing_line():
    y, p = _binary()
    fig = viz.roc_curve(y, p, ["No", "Yes"], "lightgbm")
    curve, guess = fig.data
    assert curve.x[0] == 0 and curve.y[-1] == 1 and list(guess.x) == [0, 1]
    assert "lightgbm" in fig.layout.title.text and fig.layout.xaxis.title.text.startswith("False alarms")


def test_confusion_matrix_counts_every_row():
    y, p = _binary(150)
    fig = viz.confusion_matrix(y, p, ["No", "Yes"])
    assert np.asarray(fig.data[0].z).sum() == 150 and list(fig.data[0].x) == ["No", "Yes"]


def test_score_distribution_has_one_cloud_per_class():
    y, p = _binary()
    fig = viz.score_distribution(y, p, ["No", "Yes"])
    assert [t.name for t in fig.data] == ["No", "Yes"] and sum(sum(t.y) for t in fig.data) == len(y)


def test_leaderboard_bar_highlights_the_chosen_model_and_skips_failures():
    lb = pd.DataFrame({"model": ["a", "b", "c"], "status": ["ok", "ok", "failed"], "roc_auc": [0.9, 0.8, np.nan]})
    fig = viz.leaderboard_bar(lb, "roc_auc", highlight="b")
    assert list(fig.data[0].x) == ["a", "b"] and fig.data[0].marker.color[1] != fig.data[0].marker.color[0]


def test_regression_figures_show_the_perfect_line_and_zero_error():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    pred = np.array([1.1, 1.9, 3.2, 3.7])
    fig = viz.predicted_vs_actual(y, pred)
    assert list(fig.data[1].x) == list(fig.data[1].y)
    res = viz.residuals(y, pred)
    assert np.allclose(res.data[0].y, y - pred)


def test_learning_curve_and_importance_read_tidy_frames():
    curve = pd.DataFrame({"model": "m", "rows": [10, 20], "train_score": [0.9, 0.85], "validation_score": [0.7, 0.8],
                          "metric": "roc_auc"})
    fig = viz.learning_curve(curve)
    assert [t.name for t in fig.data] == ["on rows it learned from", "on unseen rows"]
    imp = pd.DataFrame({"model": "m", "feature": ["a", "b", "c"], "importance": [0.1, 0.3, 0.2], "std": 0.01})
    bar = viz.importance_bar(imp)
    assert list(bar.data[0].y) == ["a", "c", "b"]  # most important at the top of a horizontal bar chart


def test_calibration_and_pr_curves_per_class_for_multiclass():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 300)
    p = rng.dirichlet([1, 1, 1], 300)
    assert len(viz.calibration_curve(y, p, ["a", "b", "c"]).data) == 4  # three classes and the diagonal
    assert {t.name for t in viz.pr_curve(y, p, ["a", "b", "c"]).data} == {"class a", "class b", "class c"}


def test_a_dashboard_groups_a_models_charts_overview_quality_and_more():
    from workbench.viz.figures import SECTIONS, section_of

    explained = ["leaderboard", "importance", "scatter", "roc", "learning", "drivers", "why"]
    assert [SECTIONS[section_of(k, explained)] for k in explained] == [
        "Overview", "More", "Quality", "Quality", "More", "Overview", "Overview"]
    plain = ["leaderboard", "importance", "residuals"]  # no contributions: permutation importance is the overview's
    assert [section_of(k, plain) for k in plain] == [0, 0, 1]
