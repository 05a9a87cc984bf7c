"""Packages: what a trained model becomes when it leaves the notebook.

A package is a folder (or a ``.tar.gz`` of it) with the model files (safe formats only), the fitted cleaner,
the schema, reference inputs with the predictions they must give, and ``manifest.json``: what the model is,
what it needs, and the sha256 of every file. Loading checks the format version and every checksum first.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.data.media import KINDS as MEDIA, embedded
from workbench.data.schema import Schema
from workbench.errors import WorkbenchError
from workbench.models.train import SAMPLE_ROWS
from workbench.models.trained import TrainedModel
from workbench.registry.modelio import _jsonable, load_model, save_model
from workbench.settings import get_settings

FORMAT = "aims-workbench-package"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
REFERENCE = "reference.json"
SAMPLE = "training_sample.json"  # raw training rows: the drift reference of the monitoring
# what a package needs at run time; their exact versions go into the manifest
REQUIREMENTS = ("aims-workbench", "numpy", "pandas", "pyarrow", "scikit-learn", "lightgbm", "skops", "scipy", "treelite",
                "tl2cgen", "onnxruntime")
REFERENCE_ROWS = 25
TOLERANCE = 1e-9  # reference predictions must agree to this (they agree exactly on the same machine)


class PackageError(WorkbenchError):
    """A package that cannot be trusted or read: names the file and the reason."""


@dataclass
class Package:
    """A loaded, verified package: its manifest, model, schema and reference rows."""

    path: Path
    manifest: dict
    model: TrainedModel
    schema: Schema
    reference: pd.DataFrame
    expected: pd.DataFrame

    @property
    def name(self) -> str:
        return self.manifest["name"]

    def check_reference(self) -> float:
        """Score the reference inputs; raise unless the predictions equal the stored ones. Returns the largest difference."""
        got = self.model.predict_frame(self.reference).reset_index(drop=True)
        return compare_predictions(got, self.expected, where=str(self.path))

    @property
    def sample(self) -> pd.DataFrame:
        """Raw training rows (up to SAMPLE_ROWS; the reference rows for packages made before there was a sample)."""
        path = self.path / SAMPLE
        return _frame(json.loads(path.read_text())) if path.exists() else self.reference


def build_package(model: TrainedModel, out: str | Path, *, schema: Schema, reference: pd.DataFrame, name: str | None = None,
                  version: str | None = None, target: str | None = None, metrics: dict | None = None,
                  params: dict | None = None, fingerprint: dict | None = None, archive: bool = False) -> Path:
    """Write a package folder at ``out`` (and ``out.tar.gz`` with ``archive=True``); returns the folder.

    The folder appears whole or not at all: it is written beside ``out`` and renamed into place.
    """
    out = check_free(out)
    sample = _records(reference.head(SAMPLE_ROWS).reset_index(drop=True))
    # through JSON and back first, so that the stored predictions are those of exactly the stored rows
    media = {c: p["kind"] for c, p in model.cleaner.plan_.items() if p["kind"] in MEDIA}  # files travel inside
    reference = _frame(_records(embedded(reference.head(REFERENCE_ROWS), media).reset_index(drop=True)))
    if reference.empty:
        raise PackageError("a package needs at least one reference row to check its predictions against")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        save_model(model, tmp)
        (tmp / "schema.json").write_text(schema.to_json())
        expected = model.predict_frame(reference).reset_index(drop=True)
        (tmp / REFERENCE).write_text(json.dumps({"inputs": _records(reference), "predictions": _records(expected)},
                                                indent=1, default=_jsonable))
        (tmp / SAMPLE).write_text(json.dumps(sample, default=_jsonable))
        created = datetime.now(timezone.utc)
        manifest = {
            "format": FORMAT, "format_version": FORMAT_VERSION,
            "name": name or model.name, "version": version or created.strftime("%Y.%m.%d.%H%M%S"),
            "model": model.name, "task": model.task, "target": target, "classes": model.classes,
            "metrics": metrics or {}, "params": params or {}, "data_fingerprint": fingerprint or {},
            "python": platform.python_version(), "requirements": requirements(),
            "created": created.isoformat(timespec="seconds"),
            "files": {p: {"sha256": sha256(tmp / p), "bytes": (tmp / p).stat().st_size} for p in _files(tmp)},
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, default=_jsonable))
        fsync_tree(tmp)
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if archive:
        make_archive(out)
    return out


def make_archive(folder: str | Path, dest: str | Path | None = None) -> Path:
    """``folder`` as a ``.tar.gz`` (written under a temporary name, then renamed)."""
    folder = Path(folder)
    dest = Path(dest) if dest else folder.with_name(folder.name + ".tar.gz")
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        # the fastest gzip level: model files are mostly float arrays that level 9 shrinks barely more, 5× slower
        with tarfile.open(tmp, "w:gz", compresslevel=1) as tar:
            for p in _files(folder):
                tar.add(folder / p, arcname=f"{folder.name}/{p}", recursive=False)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def load_package(path: str | Path, *, check: bool = True, model_loader=None) -> Package:
    """Open a package folder or archive: format and checksums first, then the model; ``check`` also replays
    the reference inputs and compares with the stored predictions. ``model_loader(folder)`` replaces the
    ordinary model loading (a decomposed package's front loads its parts as remote part servers)."""
    path = Path(path)
    if not path.exists():
        raise PackageError(f"{path} does not exist; give a package folder or a .tar.gz archive")
    if path.is_file():
        return _load_archive(path, check, model_loader)
    manifest = verify_files(path)
    model = (model_loader or load_model)(path)
    ref = json.loads((path / REFERENCE).read_text())
    pkg = Package(path, manifest, model, Schema.from_json((path / "schema.json").read_text()),
                  _frame(ref["inputs"]), _frame(ref["predictions"]))
    if check:
        pkg.check_reference()
    return pkg


def verify_files(folder: Path) -> dict:
    """The manifest, after checking the format version and that the files are exactly those listed, unchanged."""
    manifest = read_manifest(folder / MANIFEST, FORMAT, FORMAT_VERSION, PackageError, "package")
    listed = manifest.get("files", {})
    present = set(_files(folder)) - {MANIFEST}
    if foreign := sorted(present - set(listed)):
        raise PackageError(f"{folder}: {foreign[0]} is not listed in the manifest (a foreign file); refusing the package")
    for rel, info in listed.items():
        p = folder / rel
        if not p.is_file():
            raise PackageError(f"{folder}: {rel} is listed in the manifest but missing")
        if p.stat().st_size != info["bytes"]:
            raise PackageError(f"{folder}: {rel} has {p.stat().st_size} bytes, the manifest says {info['bytes']} "
                               "(truncated or replaced)")
        if sha256(p) != info["sha256"]:
            raise PackageError(f"{folder}: {rel} does not match its sha256 in the manifest (changed after packaging)")
    return manifest


def read_manifest(path: Path, fmt: str, readable: int, error: type[WorkbenchError], what: str) -> dict:
    """A package's or snapshot's manifest, refused unless it is ours and of a format version this code reads."""
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise error(f"{path.parent} is not a {what}: {path.name} is missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise error(f"{path} is damaged ({exc}); make the {what} again") from None
    if not isinstance(manifest, dict) or manifest.get("format") != fmt:
        raise error(f"{path} is not a workbench {what} manifest")
    fv = manifest.get("format_version")
    if not isinstance(fv, int) or fv > readable:
        raise error(f"{path.parent} has {what} format {fv}, this workbench reads up to {readable}; "
                    "upgrade the workbench (pip install -U aims-workbench)")
    return manifest


def compare_predictions(got: pd.DataFrame, expected: pd.DataFrame, *, where: str = "") -> float:
    """Largest difference between two prediction frames; raises if labels differ or numbers move by more than TOLERANCE."""
    if list(got.columns) != list(expected.columns) or len(got) != len(expected):
        raise PackageError(f"{where}: predictions have columns {list(got.columns)} × {len(got)} rows, "
                           f"the reference has {list(expected.columns)} × {len(expected)}")
    worst = 0.0
    for c in got.columns:
        a, b = got[c], expected[c]
        if pd.api.types.is_numeric_dtype(a) and pd.api.types.is_numeric_dtype(b):
            diff = float(np.max(np.abs(a.to_numpy(float) - b.to_numpy(float)))) if len(a) else 0.0
            if not diff <= TOLERANCE:
                raise PackageError(f"{where}: reference predictions differ in '{c}' by {diff:.3g} (allowed {TOLERANCE})")
            worst = max(worst, diff)
        elif a.astype(str).tolist() != b.astype(str).tolist():
            raise PackageError(f"{where}: reference predictions differ in '{c}'")
    return worst


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def requirements() -> dict[str, str]:
    out = {}
    for dist in REQUIREMENTS:
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            pass
    return out


def _load_archive(path: Path, check: bool, model_loader=None) -> Package:
    """Unpack once into ``<home>/cache/packages/<the archive's sha256>`` (beside, then renamed: whole or absent),
    refusing links, absolute paths and paths that climb out; later loads of the same archive reuse the folder."""
    try:
        tar = tarfile.open(path, "r:gz")
        digest = sha256(path)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise PackageError(f"{path} is not a readable .tar.gz package ({exc})") from None
    cache = Path(get_settings().home).resolve() / "cache" / "packages"
    dest = cache / digest[:32]
    with tar:
        if not dest.is_dir():
            cache.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=cache))
            try:
                members = tar.getmembers()
                tops = {Path(m.name).parts[0] for m in members if m.name}
                for m in members:
                    if not (m.isfile() or m.isdir()) or Path(m.name).is_absolute() or ".." in Path(m.name).parts:
                        raise PackageError(f"{path}: member {m.name} is not a plain file inside the package; refusing it")
                if len(tops) != 1:
                    raise PackageError(f"{path}: a package archive holds one folder, this one holds {sorted(tops)}")
                tar.extractall(tmp, filter="data")
                os.replace(tmp, dest)
            except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
                shutil.rmtree(tmp, ignore_errors=True)
                if not dest.is_dir():  # else another process unpacked the same archive meanwhile
                    raise PackageError(f"{path} is damaged or truncated ({exc}); export the package again") from None
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
    return load_package(dest / next(dest.iterdir()).name, check=check, model_loader=model_loader)


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def fsync_tree(folder: Path) -> None:
    """Flush every file under ``folder`` to disk, before the rename that makes it visible."""
    for p in folder.rglob("*"):
        if p.is_file():
            with open(p, "rb") as f:
                os.fsync(f.fileno())


def _records(df: pd.DataFrame) -> dict:
    """A frame as JSON that round-trips: column order, values (NaN as null) and the dtype family of each column."""
    cols = {}
    for c in df.columns:
        s = df[c]
        kind = "number" if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s) else "text"
        values = [None if pd.isna(v) else (v.item() if isinstance(v, np.generic) else v) for v in s.tolist()]
        if kind == "text":
            values = [None if v is None else str(v) for v in values]
        cols[str(c)] = {"kind": kind, "values": values}
    return cols


def _frame(cols: dict) -> pd.DataFrame:
    out = {}
    for c, spec in cols.items():
        out[c] = (pd.to_numeric(pd.Series(spec["values"], dtype="object"), errors="raise").astype(float)
                  if spec["kind"] == "number" else pd.Series(spec["values"], dtype="object"))
    return pd.DataFrame(out)




def check_free(out: str | Path) -> Path:
    """``out`` as a folder a package may be written to: absent or empty (checked before any work is spent on it)."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise PackageError(f"{out} already exists and is not empty; choose another folder or remove it")
    return out


def package_result(result, out: str | Path, *, name: str | None = None, archive: bool = False) -> Path:
    """The package of a training, tuning or ``auto`` result: its model with the run's metrics and parameters."""
    if result.reference is None:
        raise PackageError("this result has no reference rows (it was not made by prepare/fit/auto); cannot package it")
    best = result.best
    metrics = {f"cv_{k}": v for k, v in best.cv.items()} | {f"test_{k}": v for k, v in result.test_metrics.items()}
    return build_package(result.model, out, schema=result.schema, reference=result.reference, name=name,
                         target=result.cleaned.target, metrics=metrics, params=dict(best.params),
                         fingerprint=result.fingerprint, archive=archive)
