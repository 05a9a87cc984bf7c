import json

import mlflow
import numpy as np
import pytest

from workbench.errors import WorkbenchError
from workbench.registry import load_model, save_model
from workbench.registry.tracking import mlflow_client


def test_saved_model_reloads_with_identical_predictions(trained, demo_df, tmp_path):
    save_model(trained.model, tmp_path / "m")
    again = load_model(tmp_path / "m")
    raw = demo_df.drop(columns="churn")
    assert np.array_equal(again.predict_proba(raw), trained.model.predict_proba(raw))
    assert not list(tmp_path.glob("m/*.pkl"))


def test_sklearn_model_is_stored_with_skops_and_reloads(demo_df, tmp_path):
    from workbench import train

    r = train(demo_df, "churn", models=["random_forest"], folds=2, log=False, progress=False)
    save_model(r.model, tmp_path / "rf")
    assert json.loads((tmp_path / "rf" / "model.json").read_text())["estimator"]["format"] == "skops"
    raw = demo_df.drop(columns="churn")
    assert np.allclose(load_model(tmp_path / "rf").predict_proba(raw), r.model.predict_proba(raw))


def test_incomplete_model_folder_is_refused(trained, tmp_path):
    save_model(trained.model, tmp_path / "m")
    (tmp_path / "m" / "cleaner.json").unlink()
    with pytest.raises(WorkbenchError, match="cleaner.json is missing"):
        load_model(tmp_path / "m")


def test_training_run_logs_a_loadable_mlflow_model(trained, demo_df):
    mlflow_client()
    run = mlflow.get_run(trained.run_id)
    assert run.data.params["best_model"] == trained.best.name
    assert run.data.metrics["cv_roc_auc"] == pytest.approx(trained.best.cv["roc_auc"])
    loaded = mlflow.pyfunc.load_model(f"runs:/{trained.run_id}/model")
    raw = demo_df.drop(columns="churn").head(30)
    assert np.allclose(loaded.predict(raw)[["No", "Yes"]].to_numpy(), trained.model.predict_proba(raw))


def test_a_skops_file_holding_a_type_no_kind_lists_is_refused_by_name(demo_df, tmp_path):
    """Trust is by exact type, never by module: 'builtins.eval' passed the old 'builtins.' prefix."""
    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    from workbench import train

    r = train(demo_df, "churn", models=["linear"], folds=2, log=False, progress=False)
    save_model(r.model, tmp_path / "m")
    spec = json.loads((tmp_path / "m" / "model.json").read_text())["estimator"]
    assert spec["format"] == "skops"
    sio.dump(FunctionTransformer(func=eval), tmp_path / "m" / spec["file"])
    with pytest.raises(WorkbenchError, match="not trusted: builtins.eval"):
        load_model(tmp_path / "m")


def test_an_unknown_model_format_is_refused_with_the_known_ones(trained, tmp_path):
    save_model(trained.model, tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    meta["estimator"]["format"] = "pickle"
    (tmp_path / "m" / "model.json").write_text(json.dumps(meta))
    with pytest.raises(WorkbenchError, match="unknown model format 'pickle'.*lightgbm, skops"):
        load_model(tmp_path / "m")
