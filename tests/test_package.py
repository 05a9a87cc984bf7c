"""Packages: every model kind round-trips through a fresh process; tampering and bad archives are refused."""
import json
import subprocess
import sys
import tarfile

import numpy as np
import pandas as pd
import pytest

from workbench.data import clean, load
from workbench.ensemble import ensemble
from workbench.models import compare
from workbench.models.compare import refit
from workbench.models.train import reference_rows
from workbench.models.trained import TrainedModel
from workbench.data.schema import Schema
from workbench.registry.package import PackageError, build_package, load_package, make_archive

ZOO_BINARY = ["lightgbm", "hist_gb", "linear", "naive_bayes", "knn", "mlp", "random_forest", "extra_trees", "svm"]
ENSEMBLES = [("select", {}), ("stack", {}), ("stack", {"passthrough": True}), ("vote", {}), ("vote", {"voting": "hard"}),
             ("bag", {"base": "linear"}), ("boost", {"base": "naive_bayes"}), ("boost", {}), ("random_forest", {})]


def _packages(raw, target, models, ensembles, out, task=None):
    """Package every zoo model and ensemble trained on ``raw``; returns {kind: (folder, predictions on raw rows)}."""
    c = clean(raw, target, task=task)
    board = compare(c.X, c.y, task=c.task, models=models, folds=3, progress=False)
    candidates = [x for x in board.candidates if x.status == "ok"]
    members = [x.name for x in candidates if x.name in ("lightgbm", "linear", "knn")]
    for method, options in ensembles:
        candidates.append(ensemble(method, board, c.X, c.y, members=members if method in ("select", "stack", "vote", "average")
                                   else None, **options).candidate)
    schema, reference = Schema.infer(c.cleaner, raw), reference_rows(raw, target)
    probe = raw.drop(columns=[target]).sample(60, random_state=3)
    probe = probe.astype({col: "string" for col in probe if probe[col].dtype == object})  # Parquet: one type per column
    built = {}
    for i, cand in enumerate(candidates):
        if cand.estimator is None:
            refit(cand, c.X, c.y)
        model = TrainedModel(c.cleaner, cand.estimator, c.task, board.classes, cand.name)
        kind = f"{c.task}-{i}-{cand.name.replace(':', '_')}-{json.dumps(cand.params.get('voting', ''))}"
        folder = build_package(model, out / kind, schema=schema, reference=reference, name=f"m{i}", target=target)
        built[kind] = (folder, model.predict_frame(probe).reset_index(drop=True))
    return built, probe


@pytest.fixture(scope="module")
def packages(tmp_path_factory):
    out = tmp_path_factory.mktemp("packages")
    built, probes = {}, {}
    for task, raw, target, models, ens in [
        ("binary", load("demo", n_rows=300), "churn", ZOO_BINARY, ENSEMBLES),
        ("multiclass", load("sklearn:iris"), "target", ["lightgbm", "linear"], [("select", {}), ("stack", {})]),
        ("regression", load("sklearn:diabetes"), "target", ["lightgbm", "linear", "knn"], [("average", {}), ("stack", {})]),
    ]:
        b, probe = _packages(raw, target, models, ens, out, task="multiclass" if task == "multiclass" else None)
        probe.to_parquet(out / f"probe-{task}.parquet")
        built |= b
        probes[task] = probe
    return out, built


def test_every_model_kind_loads_in_a_fresh_process_with_equal_predictions(packages):
    out, built = packages
    assert len(built) >= 9 + 9 + 4 + 5  # every zoo family and every ensemble method, on three tasks
    script = """
import json, sys
from pathlib import Path
import pandas as pd
from workbench.registry.package import load_package
out = Path(sys.argv[1])
for folder in sorted(p for p in out.iterdir() if (p / "manifest.json").exists()):
    pkg = load_package(folder)                       # checksums, then the reference rows against the stored predictions
    task = folder.name.split("-")[0]
    probe = pd.read_parquet(out / f"probe-{task}.parquet")
    pkg.model.predict_frame(probe).reset_index(drop=True).to_parquet(out / f"{folder.name}.pred.parquet")
print("ok")
"""
    p = subprocess.run([sys.executable, "-c", script, str(out)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stderr[-3000:]
    for kind, (folder, expected) in built.items():
        got = pd.read_parquet(out / f"{kind}.pred.parquet")
        assert list(got.columns) == list(expected.columns), kind
        for col in got:
            if pd.api.types.is_numeric_dtype(expected[col]):
                np.testing.assert_allclose(got[col], expected[col], rtol=0, atol=1e-12, err_msg=kind)
            else:
                assert got[col].astype(str).tolist() == expected[col].astype(str).tolist(), kind
    assert not list(out.rglob("*.pkl")) and not list(out.rglob("*.pickle"))


def test_manifest_lists_what_the_model_is_needs_and_every_file(packages):
    _, built = packages
    folder, _ = next(v for k, v in built.items() if "ensemble_stack" in k)
    m = json.loads((folder / "manifest.json").read_text())
    assert m["format_version"] == 1 and m["task"] == "binary" and m["target"] == "churn" and m["classes"] == ["No", "Yes"]
    assert {"numpy", "pandas", "scikit-learn", "lightgbm", "skops"} <= set(m["requirements"]) and m["python"]
    files = {p.name for p in folder.iterdir()} - {"manifest.json"}
    assert set(m["files"]) == files and all(len(f["sha256"]) == 64 for f in m["files"].values())
    structure = json.loads((folder / "model.json").read_text())["estimator"]
    assert structure["format"] == "ensemble" and structure["kind"] == "stack" and len(structure["members"]) == 3
    # LightGBM members keep LightGBM's own text format inside an ensemble
    assert any(mem["format"] == "lightgbm" for mem in structure["members"])


@pytest.fixture
def one_package(packages, tmp_path):
    import shutil

    _, built = packages
    folder, _ = next(v for k, v in built.items() if k.startswith("binary") and "lightgbm" in k)
    return shutil.copytree(folder, tmp_path / "pkg")


def test_a_changed_file_is_refused_with_its_name(one_package):
    f = next(one_package.glob("*.lgb.txt"))
    text = f.read_text()
    f.write_text(text.replace("num_leaves=31", "num_leaves=30", 1) if "num_leaves=31" in text else text[:-2] + "0\n")
    with pytest.raises(PackageError, match=f"{f.name} (has .* bytes|does not match its sha256)"):
        load_package(one_package)


def test_a_truncated_file_and_a_foreign_file_are_refused(one_package):
    (one_package / "extra.skops").write_bytes(b"not ours")
    with pytest.raises(PackageError, match="extra.skops is not listed in the manifest"):
        load_package(one_package)
    (one_package / "extra.skops").unlink()
    cleaner = one_package / "cleaner.json"
    cleaner.write_bytes(cleaner.read_bytes()[:100])
    with pytest.raises(PackageError, match="cleaner.json has 100 bytes.*truncated"):
        load_package(one_package)


def test_a_package_from_a_newer_format_or_without_manifest_is_refused(one_package):
    m = json.loads((one_package / "manifest.json").read_text())
    (one_package / "manifest.json").write_text(json.dumps(m | {"format_version": 99}))
    with pytest.raises(PackageError, match="package format 99.*upgrade the workbench"):
        load_package(one_package)
    (one_package / "manifest.json").unlink()
    with pytest.raises(PackageError, match="manifest.json is missing"):
        load_package(one_package)


def test_archives_round_trip_and_corrupt_or_escaping_archives_are_refused(one_package, tmp_path):
    archive = make_archive(one_package)
    assert load_package(archive).check_reference() == 0.0
    (tmp_path / "cut.tar.gz").write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(PackageError, match="damaged or truncated|not a readable"):
        load_package(tmp_path / "cut.tar.gz")
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        tar.add(one_package / "manifest.json", arcname="pkg/../../escape.json")
    with pytest.raises(PackageError, match="not a plain file inside the package"):
        load_package(evil)
    from workbench.settings import get_settings

    cache = get_settings().home.resolve() / "cache" / "packages"
    assert load_package(archive).path == load_package(archive).path  # unpacked once, then reused
    assert sorted(p.name for p in cache.iterdir() if p.name.startswith(".")) == []  # refused ones left nothing


def test_changed_predictions_fail_the_reference_check(one_package):
    """Model files swapped for another model's, with the manifest rewritten to match: the reference rows catch it."""
    from workbench.registry.package import sha256

    ref = json.loads((one_package / "reference.json").read_text())
    col = next(c for c in ref["predictions"] if c != "prediction")
    ref["predictions"][col]["values"][0] += 0.01
    (one_package / "reference.json").write_text(json.dumps(ref))
    m = json.loads((one_package / "manifest.json").read_text())
    m["files"]["reference.json"] = {"sha256": sha256(one_package / "reference.json"),
                                    "bytes": (one_package / "reference.json").stat().st_size}
    (one_package / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(PackageError, match=f"reference predictions differ in '{col}'"):
        load_package(one_package)


def test_building_into_a_non_empty_folder_is_refused(trained, tmp_path):
    from workbench.registry.package import package_result

    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "keep.txt").write_text("mine")
    with pytest.raises(PackageError, match="already exists and is not empty"):
        package_result(trained, tmp_path / "p")
    assert (tmp_path / "p" / "keep.txt").read_text() == "mine" and not list(tmp_path.glob(".p.*"))
