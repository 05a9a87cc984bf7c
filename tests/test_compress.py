"""Compression for real: every method on small data, variants packaged, loaded and served, the chooser, bad input."""
import json

import numpy as np
import pytest

from servers import Server
from test_cli import workbench
from workbench import train
from workbench.compress import METHODS, compress, save_variant
from workbench.compress.core import scores_of
from workbench.data import load
from workbench.errors import DataError, UnknownNameError
from workbench.registry.package import PackageError, load_package, package_result


def _split(df, seed=0):
    idx = np.random.default_rng(seed).permutation(len(df))
    n = len(df)
    return df.iloc[idx[: n * 6 // 10]], df.iloc[idx[n * 6 // 10: n * 8 // 10]], df.iloc[idx[n * 8 // 10:]]


@pytest.fixture(scope="module")
def churn():
    return _split(load("demo", n_rows=1200))


@pytest.fixture(scope="module")
def lgb_result(churn):
    return train(churn[0], "churn", models=["lightgbm"], folds=3, log=False, progress=False, time_budget=60)


@pytest.fixture(scope="module")
def report(lgb_result, churn):
    return compress(lgb_result, churn[1], test=churn[2])


def test_every_method_gives_measured_variants_and_the_chooser_respects_the_tolerance(report):
    f = report.to_frame()
    names = set(f.index)
    assert {"original", "quantize:compact", "quantize:float16", "quantize:int8", "distill", "compile",
            "distill → compile"} <= names, names
    assert all(n in names for n in ("prune:iterations", "prune:iterations → quantize:int8")) or "prune:iterations" not in names
    o = report.original
    assert f.loc["compile", "max_change"] <= 1e-6 and f.loc["compile", "valid_metric"] == pytest.approx(o.valid_metric)
    assert f.loc["quantize:compact", "max_change"] < 1e-12  # the compact layout alone is exact
    assert 0 < f.loc["quantize:float16", "max_change"] < 1e-3
    assert f.loc["quantize:compact", "size_bytes"] * 4 < o.size_bytes  # counts and gains dropped, thresholds indexed
    assert f.loc["quantize:int8", "size_bytes"] < f.loc["quantize:compact", "size_bytes"]
    assert (f["size_bytes"] > 0).all() and (f["latency_1_ms"] > 0).all() and f["test_metric"].notna().all()
    chosen = report.chosen
    assert chosen is not None and chosen.qualifies
    assert report.original.valid_metric - chosen.valid_metric <= 0.002 + 1e-12
    assert chosen.size_bytes <= 1.05 * min(v.size_bytes for v in report.variants if v.qualifies)
    assert "smaller" in report.verdict and "<table" in report._repr_html_()
    fig = report.figure()
    assert fig.layout.xaxis.type == "log" and len(fig.data[0].x) == len(report.variants)


def test_variants_package_load_verify_and_serve_equal(report, lgb_result, churn, tmp_path):
    source = load_package(package_result(lgb_result, tmp_path / "source", name="churn"))
    X_valid = lgb_result.model.cleaner.transform(churn[1])
    for name in ("quantize:float16", "compile", "distill"):
        v = next(x for x in report.variants if x.name == name)
        out = save_variant(report, source, tmp_path / name.replace(":", "_"), variant=v)
        pkg = load_package(out)  # checksums and reference predictions verified
        assert pkg.manifest["params"]["compression"] == name
        assert np.array_equal(scores_of(pkg.model, X_valid), scores_of(v.model, X_valid))
    compiled = tmp_path / "compile"
    files = {p.name for p in compiled.iterdir()}
    assert not any(f.endswith((".so", ".dll", ".dylib")) for f in files)  # never native code in a package
    raw = churn[2].drop(columns=["churn"]).head(40)
    expected = load_package(compiled).model.predict_proba(raw)
    s = Server("--package", compiled)
    try:
        recs = json.loads(raw.to_json(orient="records"))
        import httpx

        body = httpx.post(f"{s.url}/v1/models/churn/predict", json=recs, timeout=30).json()
        got = np.array([[p["probabilities"]["No"], p["probabilities"]["Yes"]] for p in body["predictions"]])
        assert np.abs(got - expected).max() <= 1e-12
    finally:
        s.stop()


def test_a_tampered_compact_file_is_refused(report, lgb_result, tmp_path):
    source = load_package(package_result(lgb_result, tmp_path / "source", name="churn"))
    v = next(x for x in report.variants if x.name == "quantize:int8")
    out = save_variant(report, source, tmp_path / "int8", variant=v)
    f = next(out.glob("*.lgbz"))
    f.write_bytes(f.read_bytes()[:-40])
    with pytest.raises(PackageError, match="lgbz"):
        load_package(out)


@pytest.mark.parametrize("source,target,models", [("sklearn:iris", "target", ["lightgbm"]),
                                                   ("sklearn:diabetes", "target", ["lightgbm"]),
                                                   ("demo:900", "churn", ["random_forest"])])
def test_multiclass_regression_and_forests(source, target, models):
    tr, va, te = _split(load(source))
    r = train(tr, target, models=models, folds=3, log=False, progress=False, time_budget=60)
    methods = ["prune", "quantize", "compile"] if models == ["lightgbm"] else ["prune", "distill"]
    rep = compress(r, va, test=te, methods=methods, max_metric_loss=0.01)
    f = rep.to_frame()
    if models == ["lightgbm"]:
        assert f.loc["compile", "max_change"] <= 1e-6 and f.loc["quantize:compact", "max_change"] < 1e-9
    else:
        assert "distill" in f.index and f.loc["distill", "size_bytes"] * 4 < rep.original.size_bytes
        if "prune:trees" in f.index:
            assert f.loc["prune:trees", "size_bytes"] < rep.original.size_bytes
    assert rep.chosen is None or rep.chosen.qualifies


def test_weighted_ensembles_lose_members_while_the_metric_holds(churn):
    from workbench.ensemble import ensemble
    from workbench.models.trained import TrainedModel

    r = train(churn[0], "churn", models=["lightgbm", "linear", "naive_bayes", "knn"], folds=3, log=False, progress=False,
              time_budget=60)
    c = r.cleaned
    e = ensemble("vote", r.leaderboard, c.X, c.y)
    model = TrainedModel(c.cleaner, e.candidate.estimator, c.task, r.leaderboard.classes, "vote")
    rep = compress(model, churn[1], methods=["prune"], max_metric_loss=0.01)
    v = next(x for x in rep.variants if x.name == "prune:members")  # a 4-member vote on a noisy table: some go
    kept = getattr(v.model.estimator, "estimators_", [v.model.estimator])  # one member left is the member itself
    assert len(kept) < len(model.estimator.estimators_) and v.qualifies


def test_bad_input_is_a_clear_error(lgb_result, churn):
    with pytest.raises(DataError, match="validation rows"):
        compress(lgb_result, None)
    with pytest.raises(UnknownNameError, match="Valid names: prune"):
        compress(lgb_result, churn[1], methods=["shrink"])
    with pytest.raises(DataError, match="no target column"):
        compress(lgb_result, churn[1].drop(columns=["churn"]))
    rep = compress(lgb_result.model, churn[1], methods=["distill"])  # a bare model has no training rows
    assert "needs the training rows" in rep.skipped["distill"] and rep.chosen is None
    assert set(METHODS) == {"prune", "quantize", "distill", "compile"}


def test_cli_compresses_a_package_and_registers_the_variant(lgb_result, churn, tmp_path):
    pkg = package_result(lgb_result, tmp_path / "churn", name="churn")
    churn[1].to_csv(tmp_path / "valid.csv", index=False)
    p = workbench("compress", "--package", pkg, "--data", tmp_path / "valid.csv", "--methods", "quantize",
                  "--out", tmp_path / "small", "--register", "--json")
    assert p.returncode == 0, p.stderr[-2000:]
    out = json.loads(p.stdout)
    assert out["chosen"].startswith("quantize:") and out["registered_version"]
    assert load_package(tmp_path / "small").manifest["params"]["compressed_from"].startswith("churn/")
    p = workbench("compress", "--package", pkg, "--data", tmp_path / "valid.csv", "--methods", "squash")
    assert p.returncode != 0 and "unknown compression method 'squash'" in p.stderr


def test_mlp_and_linear_models_go_to_onnx_float32_and_int8(churn, tmp_path):
    for family in ("mlp", "linear"):
        r = train(churn[0], "churn", models=[family], folds=3, log=False, progress=False, time_budget=60)
        rep = compress(r, churn[1], methods=["quantize"], max_metric_loss=0.01)
        f = rep.to_frame()
        assert f.loc["quantize:onnx", "max_change"] < 1e-5  # float32 arithmetic only
        assert "quantize:onnx-int8" in f.index and f.loc["quantize:onnx-int8", "latency_1_ms"] > 0
        if family == "mlp":  # int8 weights: smaller, and the report says how far probabilities moved
            assert f.loc["quantize:onnx-int8", "size_bytes"] < f.loc["quantize:onnx", "size_bytes"]
            assert f.loc["quantize:onnx-int8", "max_change"] > f.loc["quantize:onnx", "max_change"]
        source = load_package(package_result(r, tmp_path / family, name="churn"))
        v = next(x for x in rep.variants if x.name == "quantize:onnx-int8")
        pkg = load_package(save_variant(rep, source, tmp_path / f"{family}-int8", variant=v))
        assert next(pkg.path.glob("*.onnx")).stat().st_size > 0
        X = r.model.cleaner.transform(churn[1])
        assert np.array_equal(scores_of(pkg.model, X), scores_of(v.model, X))
