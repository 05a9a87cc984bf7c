"""Streaming batch scoring of partitioned files, locally and on the embedded Dask cluster; the cluster's address."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pandas as pd
import pytest

from workbench.cli import main
from workbench.data import load
from workbench.errors import DataError, WorkbenchError
from workbench.registry.package import load_package, package_result
from workbench.stream import PROGRESS, SUCCESS, open_outputs, score_partitions


@pytest.fixture(scope="module")
def package(trained, tmp_path_factory):
    return package_result(trained, tmp_path_factory.mktemp("stream") / "churn", name="churn")


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    """Three Parquet partitions of raw rows (text columns as text, as files from a business system hold them)."""
    folder = tmp_path_factory.mktemp("parts")
    df = load("demo", n_rows=900, seed=8).drop(columns=["churn"])
    df = df.astype({c: "string" for c in df.columns if df[c].dtype == object})
    bounds = [0, len(df) // 3, 2 * len(df) // 3, len(df)]
    for k in range(3):
        df.iloc[bounds[k]:bounds[k + 1]].to_parquet(folder / f"day-{k}.parquet", index=False)
    return folder, df


def test_partitions_are_scored_like_the_whole_table(package, parts, tmp_path):
    folder, df = parts
    r = score_partitions(package, str(folder / "*.parquet"), tmp_path / "preds", progress=False)
    assert r == r | {"partitions": 3, "scored": 3, "skipped": 0, "rows": len(df), "complete": True}
    got = open_outputs(tmp_path / "preds")
    expected = load_package(package).model.predict_frame(df.reset_index(drop=True))
    expected.columns = [str(c) for c in expected.columns]
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)


def test_an_interrupted_run_resumes_without_scoring_a_partition_twice(package, parts, tmp_path):
    folder, df = parts
    out = tmp_path / "preds"
    first = score_partitions(package, folder, out, limit=1, progress=False)
    assert first["complete"] is False and not (out / SUCCESS).exists()
    with pytest.raises(WorkbenchError, match="not complete"):
        open_outputs(out)
    done = {f.name: f.stat().st_mtime_ns for f in out.glob("*.parquet")}
    assert len(done) == 1
    second = score_partitions(package, folder, out, progress=False)
    assert second | {"out": ""} == {"partitions": 3, "scored": 2, "skipped": 1, "rows": len(df), "complete": True,
                                    "refused_rows": 0, "out": ""}
    assert all(out.joinpath(n).stat().st_mtime_ns == t for n, t in done.items())  # the finished one untouched
    assert (out / SUCCESS).exists() and (out / PROGRESS).exists()


def test_scoring_on_the_dask_workers_gives_the_same_predictions(package, parts, tmp_path):
    folder, df = parts
    local = score_partitions(package, folder, tmp_path / "local", progress=False)
    dist = score_partitions(package, folder, tmp_path / "dask", distributed=True, progress=False)
    assert local["rows"] == dist["rows"] == len(df) and dist["complete"]
    pd.testing.assert_frame_equal(open_outputs(tmp_path / "local"), open_outputs(tmp_path / "dask"))


def test_bad_inputs_are_clear_errors_and_nothing_is_marked_complete(package, parts, tmp_path):
    folder, df = parts
    with pytest.raises(DataError, match="no Parquet or CSV files match"):
        score_partitions(package, str(tmp_path / "nothing-*.parquet"), tmp_path / "p0", progress=False)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    df.head(50).to_parquet(mixed / "a.parquet", index=False)
    df.head(50).drop(columns=["age"]).to_parquet(mixed / "b.parquet", index=False)
    with pytest.raises(DataError, match=r"b.parquet has other columns than a.parquet: missing \['age'\]"):
        score_partitions(package, mixed, tmp_path / "p1", progress=False)
    assert not (tmp_path / "p1").exists()
    score_partitions(package, folder, tmp_path / "p2", limit=1, progress=False)
    other = package_result(_other_model(), tmp_path / "other", name="churn")
    with pytest.raises(WorkbenchError, match="choose another --out folder"):
        score_partitions(other, folder, tmp_path / "p2", progress=False)


def _other_model():
    from workbench import train

    return train(load("demo", n_rows=300), "churn", models=["linear"], folds=2, progress=False, log=False,
                 time_budget=60)


def test_the_cli_streams_a_glob_and_says_where_work_runs(package, parts, tmp_path, capsys):
    folder, df = parts
    assert main(["predict", "--model", str(package), "--data", str(folder / "day-*.parquet"), "--out",
                 str(tmp_path / "cli")]) == 0
    assert f"{len(df)} predictions in 3 partitions" in capsys.readouterr().out
    assert main(["cluster", "info"]) == 0
    assert "embedded LocalCluster" in capsys.readouterr().out
    t0 = time.time()
    p = subprocess.run([sys.executable, "-m", "workbench.cli", "cluster", "info"], capture_output=True, text=True,
                       env=os.environ | {"WORKBENCH_DASK_ADDRESS": "tcp://127.0.0.1:9"}, timeout=60)
    assert p.returncode == 2 and "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in p.stderr
    assert time.time() - t0 < 20


@pytest.fixture()
def real_cluster():
    """A real `dask scheduler` and two `dask worker` processes on 127.0.0.1 (no nanny: a killed worker stays dead)."""
    from servers import DaskCluster

    cluster = DaskCluster(2)
    yield cluster.address, cluster.workers
    cluster.stop()


def test_a_worker_killed_while_scoring_loses_nothing(package, parts, tmp_path, real_cluster):
    """Twenty-four partitions on a real scheduler with two workers; one worker is killed by process id after the first
    partitions are written. Dask gives its work to the other: the result is complete and equal to a local run."""
    import threading

    from workbench.settings import get_settings

    address, workers = real_cluster
    _, df = parts
    many = tmp_path / "many"
    many.mkdir()
    big = pd.concat([df] * 30, ignore_index=True)
    for k in range(24):
        big.iloc[k::24].to_parquet(many / f"p{k:02d}.parquet", index=False)
    out = tmp_path / "killed"
    result = {}
    run = threading.Thread(target=lambda: result.update(score_partitions(
        package, many, out, distributed=True, progress=False, settings=get_settings(dask_address=address))))
    run.start()
    deadline = time.time() + 120
    while time.time() < deadline and len(list(out.glob("p*.parquet"))) < 2:
        time.sleep(0.05)
    workers[0].kill()  # SIGKILL, by process id
    written_at_kill = len(list(out.glob("p*.parquet")))
    run.join(timeout=300)
    assert written_at_kill < 24  # killed in the middle of the work
    assert result.get("complete") and result["rows"] == len(big)
    local = score_partitions(package, many, tmp_path / "local", progress=False)
    assert local["rows"] == result["rows"]
    pd.testing.assert_frame_equal(open_outputs(out), open_outputs(tmp_path / "local"))
    assert workers[0].poll() is not None  # it really died
