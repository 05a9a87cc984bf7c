"""The panels drive the library and expose what they produced; no notebook front end needed to check that."""
from widgets import DataPanel, ResultsPanel, TrainPanel
from workbench.viz.saved import MIME, saved_figures


def test_data_panel_loads_profiles_and_cleans():
    panel = DataPanel("demo:300", "churn")
    panel.load()
    assert "churn" in panel.target.options and "rows" in panel.status.value
    panel.clean()
    assert panel.result.cleaned.task == "binary" and "customer_id" in panel.result.cleaned.report.dropped
    assert panel.clean_button.disabled is False


def test_data_panel_shows_a_bad_path_as_a_message():
    panel = DataPanel("nowhere.csv", "y")
    panel.load()
    assert "no such file" in panel.status.value and panel.result is None


def test_train_panel_fills_the_leaderboard_live():
    data = DataPanel("demo:300", "churn")
    data.load()
    data.clean()
    panel = TrainPanel(data, time_budget=60, folds=3)
    panel.models.value = ("linear", "naive_bayes")
    panel.train()
    assert panel.progress.value == 2 and panel.result.best.name in {"linear", "naive_bayes"}
    assert "naive_bayes" in panel.board.value and "Best" in panel.status.value
    assert panel.result.run_id and f"MLflow run <code>{panel.result.run_id}</code>" in panel.board.value  # kept in MLflow


def test_results_panel_switches_model_and_charts(pipeline_run):
    panel = ResultsPanel(pipeline_run["run_id"])
    assert panel.model.value == panel.result.meta["best_model"]
    drawn = lambda tab: [c.outputs[0]["data"][MIME] for c in panel.charts.children[tab].children if hasattr(c, "outputs")]
    titles = lambda: [f["layout"]["title"]["text"] for f in drawn(0)]
    before = titles()  # the overview: the leaderboard and what drives the run's model, drawn on arrival
    assert len(before) == 3 and any(t.startswith("What drives the predictions") for t in before), before
    assert [tab.children for tab in panel.charts.children[1:]] == [(), ()]  # the other tabs wait until opened
    other = next(m for m in panel.model.options if m != panel.model.value)
    panel.model.value = other
    after = titles()
    assert before != after  # the leaderboard now marks the other model, and its drivers (if any) are its own
    panel.charts.selected_index = 1
    assert len(drawn(1)) >= 4 and all(other in f["layout"]["title"]["text"] for f in drawn(1))
    panel.charts.selected_index = 2
    # the pipeline saved every model's charts: the panel shows them as saved, not rebuilt, each in one tab
    saved = saved_figures(pipeline_run["report_dir"], other).values()
    assert sorted(map(str, drawn(0) + drawn(1) + drawn(2))) == sorted(map(str, saved))


def test_tuning_panel_draws_the_history_as_trials_finish():
    from widgets import TuningPanel

    data = DataPanel("demo:300", "churn")
    data.load()
    data.clean()
    panel = TuningPanel(data, model="linear", strategy="random", max_trials=4, time_budget=60)
    panel.tune()
    assert len(panel.result.history) == 4 and len(panel.chart.data[0].x) == 4
    assert "best roc_auc" in panel.status.value


def test_ensemble_panel_adds_its_ensemble_to_the_leaderboard():
    from widgets import EnsemblePanel

    data = DataPanel("demo:300", "churn")
    data.load()
    data.clean()
    train = TrainPanel(data, time_budget=60, folds=3)
    train.models.value = ("linear", "naive_bayes", "lightgbm")
    train.train()
    panel = EnsemblePanel(train, method="stack")
    panel.build()
    assert panel.result.candidate.name == "ensemble:stack"
    assert train.result.leaderboard["ensemble:stack"] is panel.result.candidate and len(panel.chart.children) == 1


def test_compression_and_decomposition_panels(tmp_path):
    from widgets import CompressionPanel, DecompositionPanel
    from workbench.data import load
    from workbench import train
    from workbench.registry.package import package_result

    lgbm = train(load("demo", n_rows=400), "churn", models=["lightgbm"], folds=3, log=False, progress=False)
    pkg = package_result(lgbm, tmp_path / "churn", name="churn")
    load("demo", n_rows=300, seed=7).to_csv(tmp_path / "valid.csv", index=False)
    panel = CompressionPanel(pkg, tmp_path / "valid.csv")
    panel.methods.value = ("quantize",)
    panel.compress()
    assert panel.result is not None and "quantize:compact" in panel.table.value
    assert panel.result.chosen is not None and not panel.save_button.disabled  # the compact layout alone is exact
    panel.out.value = str(tmp_path / "small")
    panel.save()
    assert (tmp_path / "small" / "manifest.json").exists() and "packaged" in panel.status.value
    bad = CompressionPanel(pkg, tmp_path / "nowhere.csv")
    bad.compress()
    assert "nowhere.csv" in bad.status.value and bad.result is None
    d = DecompositionPanel(pkg, tmp_path / "parts")
    d.decompose()
    assert d.result[1] <= 1e-9 and "equal" in d.status.value and "trees 0-" in d.table.value
    again = DecompositionPanel(pkg, tmp_path / "parts")  # the folder is taken now: a clear message, nothing lost
    again.decompose()
    assert "already exists" in again.status.value and again.result is None
