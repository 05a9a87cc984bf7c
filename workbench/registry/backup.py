"""Backup and restore of the whole store: the MLflow database, every artifact, and a manifest with checksums.

A snapshot is one folder ``snapshot-<UTC time>`` written under a hidden temporary name and renamed when
complete, so a backup killed half-way leaves no snapshot that looks whole. The database is copied with
sqlite's online backup API: one consistent state even while runs are being logged. A restore builds the new
store beside the old one, checks it, then swaps the two folders; an interrupted swap is finished (or undone)
the next time the store is opened.
"""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from workbench.errors import WorkbenchError
from workbench.registry.package import fsync_tree, read_manifest, sha256
from workbench.settings import Settings, get_settings

FORMAT = "aims-workbench-snapshot"
FORMAT_VERSION = 1
DB = "mlflow.db"
ARTIFACTS = "artifacts"
MANIFEST = "snapshot.json"
PREFIX = "snapshot-"


class BackupError(WorkbenchError):
    """A snapshot that cannot be written, read or restored: says why, and that the store is untouched."""


def backup(out: str | Path | None = None, *, keep: int | None = None, settings: Settings | None = None) -> Path:
    """Write a consistent snapshot of the store into ``out`` (default ``<home>/../backups``); ``keep`` prunes
    all but the newest ``keep`` snapshots. Returns the snapshot folder."""
    s = settings or get_settings()
    db = _local_db(s)
    if not db.exists():
        raise BackupError(f"there is no store to back up at {db.parent} (nothing has been logged yet)")
    if keep is not None and keep < 1:
        raise BackupError("--keep must be at least 1")
    out = Path(out) if out else s.home.resolve().parent / "backups"
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc)
    final = out / f"{PREFIX}{stamp.strftime('%Y%m%dT%H%M%S.%fZ')}"
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=out))
    try:
        _copy_db(db, tmp / DB)
        artifacts = s.artifacts
        if artifacts.exists():
            # files logged after the database copy are not referenced by it: harmless extras
            shutil.copytree(artifacts, tmp / ARTIFACTS, symlinks=False)
        else:
            (tmp / ARTIFACTS).mkdir()
        files = {str(p.relative_to(tmp)): {"sha256": sha256(p), "bytes": p.stat().st_size}
                 for p in sorted(tmp.rglob("*")) if p.is_file()}
        manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "created": stamp.isoformat(),
                    "source_home": str(s.home.resolve()), "artifact_root": s.artifacts.as_uri(), "files": files}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
        fsync_tree(tmp)
        os.replace(tmp, final)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise BackupError(f"backup to {out} failed ({exc.strerror or exc}); no snapshot was written and the store "
                          "is untouched. Free space or choose another --out") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if keep:
        for old in snapshots(out)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def snapshots(folder: str | Path) -> list[Path]:
    """Complete snapshots in ``folder``, oldest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.name.startswith(PREFIX) and (p / MANIFEST).exists())


def verify_snapshot(snapshot: str | Path) -> dict:
    """The snapshot's manifest, after checking its format version and every file's checksum."""
    snapshot = Path(snapshot)
    manifest = read_manifest(snapshot / MANIFEST, FORMAT, FORMAT_VERSION, BackupError, "snapshot")
    for rel, info in manifest["files"].items():
        p = snapshot / rel
        if not p.is_file() or p.stat().st_size != info["bytes"] or sha256(p) != info["sha256"]:
            raise BackupError(f"{snapshot}: {rel} is missing or changed since the backup; use another snapshot")
    return manifest


def restore(snapshot: str | Path, *, into: str | Path | None = None, replace: bool = False,
            settings: Settings | None = None) -> Path:
    """Rebuild a store from ``snapshot`` in ``into`` (default: the workbench home). Refuses a non-empty
    store unless ``replace``; the old store is swapped out only once the new one is complete and opens."""
    s = settings or get_settings()
    snapshot = Path(snapshot)
    manifest = verify_snapshot(snapshot)
    home = Path(into).resolve() if into else s.home.resolve()
    settle(home)
    if home.exists() and any(home.iterdir()) and not replace:
        raise BackupError(f"{home} already holds a store; restore into an empty folder (--into DIR) or pass "
                          "--replace to swap it for the snapshot (the old store is removed only after success)")
    home.parent.mkdir(parents=True, exist_ok=True)
    new = home.with_name(home.name + ".restoring")
    shutil.rmtree(new, ignore_errors=True)
    try:
        new.mkdir()
        shutil.copy2(snapshot / DB, new / DB)
        shutil.copytree(snapshot / ARTIFACTS, new / ARTIFACTS)
        _rewrite_paths(new / DB, manifest["artifact_root"], (home / ARTIFACTS).as_uri())
        with sqlite3.connect(new / DB) as con:  # the restored database opens and is sound
            if con.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
                raise BackupError(f"{snapshot / DB} does not pass sqlite's integrity check")
        fsync_tree(new)
        (new / ".complete").touch()
    except OSError as exc:
        shutil.rmtree(new, ignore_errors=True)
        raise BackupError(f"restore into {home} failed ({exc.strerror or exc}); the store is untouched") from None
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
        raise
    old = home.with_name(home.name + ".replaced")
    if home.exists():
        os.replace(home, old)
    os.replace(new, home)
    (home / ".complete").unlink()
    shutil.rmtree(old, ignore_errors=True)
    return home


def settle(home: str | Path) -> None:
    """Finish or undo a restore that was interrupted between its two renames (called before the store opens)."""
    home = Path(home).resolve()
    new, old = home.with_name(home.name + ".restoring"), home.with_name(home.name + ".replaced")
    if not home.exists():
        if (new / ".complete").exists():
            os.replace(new, home)
            (home / ".complete").unlink()
        elif old.exists():
            os.replace(old, home)
    if home.exists():  # the swap happened, or never began: leftovers of either side go
        (home / ".complete").unlink(missing_ok=True)
        shutil.rmtree(old, ignore_errors=True)
        shutil.rmtree(new, ignore_errors=True)


def _local_db(s: Settings) -> Path:
    uri = s.tracking_uri
    if not uri.startswith("sqlite:///"):
        raise BackupError(f"the store is {uri}: back up that server's own database and artifact store; "
                          "workbench backup copies the embedded sqlite store")
    return Path(uri.removeprefix("sqlite:///"))


def _copy_db(src: Path, dest: Path) -> None:
    """sqlite's online backup: a consistent copy while other processes write."""
    source = sqlite3.connect(f"file:{src}?mode=ro", uri=True, timeout=30)
    target = sqlite3.connect(dest)
    try:
        source.backup(target, pages=1024)
    finally:
        target.close()
        source.close()


def _rewrite_paths(db: Path, old_root: str, new_root: str) -> None:
    """The database holds absolute artifact URIs (in several tables): point them at the restored folder."""
    pairs = [(old_root, new_root)]
    old_path, new_path = old_root.removeprefix("file://"), new_root.removeprefix("file://")
    if "%" in old_root + new_root:  # escaped URIs: the plain paths may be stored too
        from urllib.parse import unquote

        pairs.append((unquote(old_path), unquote(new_path)))
    else:
        pairs = [(old_path, new_path)]  # covers the file:// form as well
    with sqlite3.connect(db) as con:
        for old, new in pairs:
            if old != new:
                _replace_everywhere(con, old, new)


def _replace_everywhere(con, old_root: str, new_root: str) -> None:
    for (table,) in con.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall():
        cols = [r[1] for r in con.execute(f'PRAGMA table_info("{table}")')
                if "CHAR" in r[2].upper() or "TEXT" in r[2].upper()]
        for col in cols:
            con.execute(f'UPDATE "{table}" SET "{col}" = replace("{col}", ?, ?) WHERE instr("{col}", ?) > 0',
                        (old_root, new_root, old_root))
