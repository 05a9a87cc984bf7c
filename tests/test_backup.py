"""Backup and restore of the whole store: equality after restore, backups during logging, kills, full disk."""
import errno
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from workbench.registry import backup as bk
from workbench.registry import repository as repo
from workbench.registry.package import package_result, sha256
from workbench.settings import get_settings


def _state(settings) -> dict:
    """Everything a restore must bring back: versions with tags and aliases, runs with metrics, artifact files."""
    from mlflow import MlflowClient

    from workbench.registry.tracking import mlflow_client

    mlflow_client(settings)
    client = MlflowClient()
    models = {}
    for rm in client.search_registered_models():
        models[rm.name] = {"aliases": dict(rm.aliases), "description": rm.description,
                           "versions": {str(v.version): (dict(v.tags), v.description, v.run_id)
                                        for v in client.search_model_versions(f"name = '{rm.name}'")}}
    runs = {r.info.run_id: (r.data.metrics, r.data.params, r.data.tags.get("workbench.kind"))
            for r in client.search_runs([e.experiment_id for e in client.search_experiments()], max_results=5000)}
    art = settings.artifacts
    files = {str(p.relative_to(art)): sha256(p) for p in art.rglob("*") if p.is_file()}
    return {"models": models, "runs": runs, "files": files}


@pytest.fixture(scope="module")
def store(trained, tmp_path_factory):
    """The session store with a registered, promoted model in it."""
    out = tmp_path_factory.mktemp("bk")
    if "backed-up" not in repo.list_models()["name"].tolist():
        repo.register(package_result(trained, out / "pkg"), "backed-up", alias="champion")
    return out


def test_restore_into_a_new_folder_equals_the_original(store):
    snap = bk.backup(store / "snaps")
    original = _state(get_settings())
    target = store / "restored"
    bk.restore(snap, into=target)
    restored_settings = get_settings(home=target)
    restored = _state(restored_settings)
    assert restored["models"] == original["models"] and restored["runs"] == original["runs"]
    assert restored["files"] == original["files"]
    # every registered version of every model loads from the restored store and predicts as it did
    for name, info in restored["models"].items():
        for v in info["versions"]:
            assert repo.fetch(f"{name}/{v}", restored_settings).check_reference() == 0.0


def test_restore_refuses_a_non_empty_store_unless_replacing(store):
    snap = bk.backup(store / "snaps")
    target = store / "occupied"
    target.mkdir()
    (target / "precious.txt").write_text("keep")
    with pytest.raises(bk.BackupError, match="already holds a store.*--replace"):
        bk.restore(snap, into=target)
    assert (target / "precious.txt").read_text() == "keep"
    bk.restore(snap, into=target, replace=True)
    assert not (target / "precious.txt").exists() and (target / "mlflow.db").exists()
    assert not list(store.glob("occupied.*"))  # no half-built or replaced leftovers


def test_keep_prunes_old_snapshots(store):
    folder = store / "rotating"
    for _ in range(3):
        bk.backup(folder, keep=2)
    assert len(bk.snapshots(folder)) == 2 and len(list(folder.iterdir())) == 2


def test_tampered_and_newer_snapshots_are_refused(store):
    snap = bk.backup(store / "snaps2")
    m = json.loads((snap / bk.MANIFEST).read_text())
    (snap / bk.MANIFEST).write_text(json.dumps(m | {"format_version": 7}))
    with pytest.raises(bk.BackupError, match="snapshot format 7.*upgrade the workbench"):
        bk.restore(snap, into=store / "x")
    (snap / bk.MANIFEST).write_text(json.dumps(m))
    with open(snap / bk.DB, "r+b") as f:
        f.seek(200)
        f.write(b"\0garbage")
    with pytest.raises(bk.BackupError, match="mlflow.db is missing or changed"):
        bk.restore(snap, into=store / "x")
    assert not (store / "x").exists()


def test_a_full_disk_is_a_clear_error_and_loses_nothing(store, monkeypatch):
    out = store / "full"
    snap = bk.backup(out)
    before = _state(get_settings())

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(shutil, "copytree", no_space)
    with pytest.raises(bk.BackupError, match="No space left on device.*no snapshot was written"):
        bk.backup(out)
    assert bk.snapshots(out) == [snap] and len(list(out.iterdir())) == 1
    with pytest.raises(bk.BackupError, match="No space left on device.*untouched"):
        bk.restore(snap, into=store / "full-restore")
    assert not (store / "full-restore").exists() and not (store / "full-restore.restoring").exists()
    monkeypatch.undo()
    assert _state(get_settings()) == before


LOG_LOOP = """
import sys
from pathlib import Path
from workbench.registry.tracking import log_run
for i in range(10000):
    log_run(params={"i": i}, metrics={"m": float(i)}, artifacts={"a.txt": "x" * 20000}, run_name=f"busy {i}")
    Path(sys.argv[1]).write_text(str(i + 1))
"""


def test_backups_taken_while_runs_are_logged_restore_to_a_sound_store(store):
    logged = store / "logged.txt"
    proc = subprocess.Popen([sys.executable, "-c", LOG_LOOP, str(logged)], env=os.environ)

    def runs_logged() -> int:
        try:
            return int(logged.read_text() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    try:
        snaps, seen = [], 0
        for _ in range(3):
            deadline = time.time() + 120
            while runs_logged() < seen + 2 and time.time() < deadline:  # two more runs since the last snapshot
                time.sleep(0.05)
            seen = runs_logged()
            snaps.append(bk.backup(store / "busy"))
    finally:
        proc.kill()
        proc.wait()
    counts = []
    for i, snap in enumerate(snaps):
        target = store / f"busy-restored-{i}"
        bk.restore(snap, into=target)
        with sqlite3.connect(target / "mlflow.db") as con:
            assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        state = _state(get_settings(home=target))
        counts.append(sum(1 for r in state["runs"].values() if "i" in r[1]))
        assert "backed-up" in state["models"]
    assert counts[0] >= 2 and counts[0] < counts[1] < counts[2]  # each snapshot saw the logging go on


def _kill_when(proc, appears: callable, timeout=60):
    end = time.time() + timeout
    while time.time() < end and proc.poll() is None:
        if appears():
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.002)
    proc.wait(timeout=30)


def test_a_backup_killed_mid_way_leaves_no_snapshot_and_the_store_intact(store):
    out = store / "killed-backup"
    out.mkdir()
    before = _state(get_settings())
    proc = subprocess.Popen([sys.executable, "-c", "from workbench.registry.backup import backup; import sys; "
                             "backup(sys.argv[1])", str(out)], env=os.environ)
    _kill_when(proc, lambda: any(p.name.startswith(".snapshot-") for p in out.iterdir()))
    assert bk.snapshots(out) == []  # the temporary folder is not a snapshot
    assert _state(get_settings()) == before


def test_a_restore_killed_mid_way_leaves_a_whole_store(store):
    """Killed while building the new store: the old store stays; the next open cleans up."""
    snap = bk.backup(store / "snaps3")
    target = store / "victim"
    bk.restore(snap, into=target)
    before = _state(get_settings(home=target))
    proc = subprocess.Popen([sys.executable, "-c", "from workbench.registry.backup import restore; import sys; "
                             "restore(sys.argv[1], into=sys.argv[2], replace=True)", str(snap), str(target)], env=os.environ)
    _kill_when(proc, lambda: (store / "victim.restoring").exists())
    after = _state(get_settings(home=target))  # opening the store settles whatever the kill left
    assert after == before and not (store / "victim.restoring").exists() and not (store / "victim.replaced").exists()


def test_an_interrupted_swap_is_finished_or_undone_when_the_store_opens(store):
    snap = bk.backup(store / "snaps4")
    target = store / "swap"
    bk.restore(snap, into=target)
    expected = _state(get_settings(home=target))
    # killed between the two renames, after the new store was complete: it is put in place
    os.replace(target, store / "swap.restoring")
    (store / "swap.restoring" / ".complete").touch()
    assert _state(get_settings(home=target)) == expected and not Path(store / "swap.restoring").exists()
    # killed between the renames before the new store was complete: the old store comes back
    os.replace(target, store / "swap.replaced")
    (store / "swap.restoring").mkdir()
    assert _state(get_settings(home=target)) == expected
    assert not (store / "swap.replaced").exists() and not (store / "swap.restoring").exists()
