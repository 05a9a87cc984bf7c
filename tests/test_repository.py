"""The model repository on a real MLflow store: versions, tags, aliases, compare, promote, archive, export, import."""
import os
import signal
import subprocess
import sys
import time

import mlflow
import numpy as np
import pytest

from test_cli import workbench
from workbench.errors import UnknownNameError, WorkbenchError
from workbench.registry import repository as repo
from workbench.registry.package import package_result


@pytest.fixture(scope="module")
def churn(trained, demo_df, tmp_path_factory):
    """'churn' with two versions: the session model (v1, staging), then a naive Bayes model (v2)."""
    from workbench import train

    out = tmp_path_factory.mktemp("repo")
    first = package_result(trained, out / "v1", name="repo-churn")
    other = train(demo_df.head(300), "churn", models=["naive_bayes"], folds=3,
                  log=False, progress=False, time_budget=60)
    second = package_result(other, out / "v2", name="repo-churn", archive=True)
    v1 = repo.register(first, alias="staging", description="session model")
    v2 = repo.register(second.with_name("v2.tar.gz"))
    return out, v1, v2


def test_registered_versions_carry_tags_description_and_aliases(churn):
    _, v1, v2 = churn
    assert (v1.version, v2.version) == ("1", "2") or (int(v1.version), int(v2.version)) == (1, 2)
    assert v1.tags["validation"] == "passed" and v1.tags["who"] and len(v1.tags["data_fingerprint"]) == 64
    assert v1.description == "session model"
    table = repo.versions("repo-churn")
    assert table["version"].tolist() == [1, 2] and table["aliases"].tolist() == ["staging", ""]
    assert (table["size_bytes"] > 0).all() and "cv_roc_auc" in table
    models = repo.list_models()
    assert "repo-churn" in models["name"].tolist()


def test_compare_promote_resolve_and_archive(churn):
    frame = repo.compare("repo-churn", 1, 2)
    assert {"model", "size_bytes", "metric.cv_roc_auc"} <= set(frame.index) and frame.loc["model", "differs"]
    repo.promote("repo-churn", 2, "champion")
    assert repo.resolve("repo-churn@champion").version in ("2", 2) and repo.resolve("repo-churn").version in ("2", 2)
    # the champion alias is what MLflow's own loader sees too
    model = mlflow.pyfunc.load_model("models:/repo-churn@champion")
    assert {"prediction", "No", "Yes"} <= set(model.predict(repo.fetch("repo-churn@champion").reference).columns)
    repo.archive("repo-churn", 2)
    assert repo.versions("repo-churn").set_index("version").loc[2, "aliases"] == ""
    assert repo.resolve("repo-churn").version in ("1", 1)  # the newest version that is not archived
    with pytest.raises(WorkbenchError, match="archived"):
        repo.promote("repo-churn", 2, "champion")


def test_unknown_names_aliases_and_versions_are_clear_errors(churn):
    with pytest.raises(UnknownNameError, match="no registered model 'repo-chrun'. Did you mean 'repo-churn'"):
        repo.resolve("repo-chrun@staging")
    with pytest.raises(UnknownNameError, match="no alias 'prod'.*@staging"):
        repo.resolve("repo-churn@prod")
    with pytest.raises(UnknownNameError, match="no version '99'"):
        repo.resolve("repo-churn/99")
    with pytest.raises(WorkbenchError, match="alias 'bad alias' is not valid"):
        repo.promote("repo-churn", 1, "bad alias")


def test_export_and_import_give_the_same_predictions(churn, tmp_path):
    archive = repo.export("repo-churn@staging", tmp_path / "churn.tar.gz")
    mv = repo.import_package(archive, "churn-copy")
    a, b = repo.fetch("repo-churn@staging"), repo.fetch(f"churn-copy/{mv.version}")
    assert a.manifest["files"] == b.manifest["files"]
    assert np.array_equal(a.model.predict_proba(a.reference), b.model.predict_proba(a.reference))


def test_models_cli(churn, tmp_path):
    p = workbench("models", "list", "repo-churn")
    assert p.returncode == 0 and "staging" in p.stdout and "passed" in p.stdout, p.stderr
    p = workbench("models", "promote", "repo-churn", "1", "--alias", "champion")
    assert p.returncode == 0 and "repo-churn@champion → version 1" in p.stdout, p.stderr
    p = workbench("models", "export", "repo-churn@champion", "--out", tmp_path / "c.tar.gz")
    assert p.returncode == 0 and (tmp_path / "c.tar.gz").exists(), p.stderr
    p = workbench("models", "show", "nope@champion")
    assert p.returncode == 2 and "no registered model 'nope'" in p.stderr and "Traceback" not in p.stderr


def test_registry_panel_shows_versions_promotes_and_compares(churn):
    from widgets import RegistryPanel

    panel = RegistryPanel("repo-churn")
    assert panel.model.value == "repo-churn" and "passed" in panel.versions.value and panel.version.options == ("1", "2")
    panel.version.value, panel.alias.value = "1", "staging"
    panel.promote()
    assert "repo-churn@staging → version 1" in panel.status.value and repo.resolve("repo-churn@staging").version in ("1", 1)
    panel.alias.value = "not valid!"
    panel.promote()
    assert "is not valid" in panel.status.value
    panel.version.value, panel.other.value = "1", "2"
    panel.compare()
    assert list(panel.result.columns) == ["v1", "v2", "differs"] and "size_bytes" in panel.comparison.value


REGISTER_LOOP = """
import sys
from workbench.registry import repository
for i in range(100):
    print("registering", i, flush=True)
    repository.register(sys.argv[1], "killed")
"""


@pytest.mark.parametrize("delay", [0.0, 0.15, 0.4])
def test_a_registration_killed_mid_way_leaves_earlier_versions_intact(churn, delay):
    """Kill a process that registers in a loop at different points of a registration; the store stays sound."""
    out, _, _ = churn
    before = repo.versions("killed") if "killed" in repo.list_models()["name"].tolist() else None
    proc = subprocess.Popen([sys.executable, "-c", REGISTER_LOOP, str(out / "v1")], stdout=subprocess.PIPE, text=True,
                            env=os.environ)
    seen = 0
    for line in proc.stdout:
        seen += line.startswith("registering")
        if seen == 3:  # two registrations done, the third under way
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    table = repo.versions("killed")
    assert len(table) >= 2 + (0 if before is None else len(before))
    # a version exists only once its files are complete: every one, old and new, loads and predicts as stored
    for v in table["version"]:
        assert repo.fetch(f"killed/{v}").check_reference() == 0.0


def test_a_registered_version_is_downloaded_once_into_the_home_cache_not_a_new_temporary_folder(churn):
    import tempfile
    from pathlib import Path

    leaked = lambda: set(Path(tempfile.gettempdir()).glob("workbench-version-*"))  # noqa: E731
    before = leaked()
    _, first = repo.download("repo-churn/1")
    _, again = repo.download("repo-churn/1")
    assert first == again and (first / "manifest.json").exists() and "cache" in first.parts
    assert leaked() == before
    assert not list([p for p in first.parents if p.name == "versions"][0].glob(".download-*"))  # nothing half-written
    assert Path(repo.fetch("repo-churn/1").path) == first
