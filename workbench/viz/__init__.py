"""Plotly figure builders: pure functions from results to figures, titled in words a business reader uses."""
from workbench.extras import extra
from workbench.viz.figures import (calibration_curve, confusion_matrix, figures_for, importance_bar, leaderboard_bar, member_correlation,
                                   learning_curve, metric_by_model, pr_curve, predicted_vs_actual, residuals, roc_curve,
                                   score_distribution)

__all__ = ["leaderboard_bar", "metric_by_model", "importance_bar", "roc_curve", "pr_curve", "calibration_curve",
           "learning_curve", "score_distribution", "predicted_vs_actual", "residuals", "confusion_matrix", "figures_for",
           "use_offline_renderer", "member_correlation"]


def use_offline_renderer() -> None:
    """Figures that show in JupyterLab and Voila and also in the HTML copy of a notebook, with no network."""
    with extra("notebook"):
        import plotly.io as pio

    pio.renderers.default = "plotly_mimetype+notebook"
