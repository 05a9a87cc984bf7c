"""Streaming batch scoring: a folder or glob of Parquet or CSV files scored partition by partition, locally or on the
Dask workers, into a folder of Parquet files — bounded memory, resumable, and never presented as complete before it is.

The output folder holds one ``<input stem>-<hash>.parquet`` per input file (written beside and renamed into place),
``_progress.json`` (which inputs are done, by path, size and modification time) and, once every partition is scored,
``_SUCCESS``. A run that stops part way leaves no ``_SUCCESS``; the next run with the same model and inputs scores
only the partitions that are not done.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.compute import client
from workbench.data.encode import screen
from workbench.data.load import check_columns, partitions, with_media_paths
from workbench.errors import DataError, WorkbenchError
from workbench.extras import extra
from workbench.progress import progress_bar
from workbench.registry.package import load_package
from workbench.registry.repository import fetch
from workbench.settings import Settings, get_settings

PROGRESS, SUCCESS = "_progress.json", "_SUCCESS"


def score_partitions(model: str | Path, pattern: str | Path, out: str | Path, *, distributed: bool = False,
                     limit: int | None = None, progress: bool = True, settings: Settings | None = None,
                     on_bad_rows: str = "fail") -> dict:
    """Score every partition with ``model`` (a package or ``NAME[@alias|/version]``) into ``out``; partitions done
    by an earlier run of the same model on the same files are skipped. ``limit`` scores at most that many this run.
    ``distributed``: the partitions are scored on the Dask workers (each loads the package once), else here.
    ``on_bad_rows``: as batch prediction (``workbench.data.encode.screen``); a partition's refused values are listed
    in ``<its output>.refused.csv``, their rows counted in ``refused_rows``."""
    s = settings or get_settings()
    files = partitions(pattern)
    check_columns(files)
    pkg = load_package(model) if Path(model).exists() else fetch(str(model))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    state = _state(out, str(model), pkg)
    done = {k for k, v in state["partitions"].items() if Path(k) in files and _same(v, Path(k))}
    todo = [f for f in files if str(f) not in done][:limit]
    (out / SUCCESS).unlink(missing_ok=True)
    bar = progress_bar(total=len(files), initial=len(done), desc="partitions", disable=not progress)
    try:
        for f, (rows, refused) in _scored(pkg, todo, out, distributed, s, on_bad_rows):
            state["partitions"][str(f)] = _fingerprint(f) | {"rows": rows, "refused_rows": refused}
            _write_json(out / PROGRESS, state)
            bar.update(1)
    finally:
        bar.close()
    finished = all(str(f) in state["partitions"] and _same(state["partitions"][str(f)], f) for f in files)
    total = sum(state["partitions"][str(f)]["rows"] for f in files if str(f) in state["partitions"])
    if finished:
        _write_json(out / SUCCESS, {"partitions": len(files), "rows": total, "model": str(model)})
    refused = sum(state["partitions"][str(f)].get("refused_rows", 0) for f in files if str(f) in state["partitions"])
    return {"partitions": len(files), "scored": len(todo), "skipped": len(done), "rows": total, "complete": finished,
            "refused_rows": refused, "out": str(out)}


def open_outputs(out: str | Path) -> pd.DataFrame:
    """All the predictions of a complete run, in input order (refused while ``_SUCCESS`` is missing)."""
    out = Path(out)
    if not (out / SUCCESS).exists():
        raise WorkbenchError(f"{out} is not complete (no {SUCCESS}): run the scoring again to finish it")
    state = json.loads((out / PROGRESS).read_text())
    return pd.concat([pd.read_parquet(out / _output_name(Path(f))) for f in sorted(state["partitions"])],
                     ignore_index=True)


def _scored(pkg, todo: list[Path], out: Path, distributed: bool, s: Settings, on_bad_rows: str):
    if not distributed:
        for f in todo:
            yield f, _score_one(pkg, f, out, on_bad_rows)
        return
    with extra("dask"):
        from distributed import as_completed

    c = client(s)
    # pure=False: a task per call, never a result remembered from another run (the output file is the point)
    futures = {c.submit(_score_on_worker, str(pkg.path), str(f), str(out), on_bad_rows, pure=False, retries=2): f
               for f in todo}
    for fut in as_completed(futures):
        yield futures[fut], fut.result()


def _score_on_worker(package: str, file: str, out: str, on_bad_rows: str) -> tuple[int, int]:
    return _score_one(_worker_package(package), Path(file), Path(out), on_bad_rows)


_PACKAGES: dict = {}


def _worker_package(package: str):
    """Each worker loads the package once (from the shared path); no model travels as a pickle."""
    if package not in _PACKAGES:
        _PACKAGES[package] = load_package(package)
    return _PACKAGES[package]


CHUNK_ROWS = 100_000  # rows in memory at once, whatever the size of a partition


def _score_one(pkg, f: Path, out: Path, on_bad_rows: str = "fail") -> tuple[int, int]:
    """One partition, ``CHUNK_ROWS`` at a time (Parquet record batches, CSV chunks), appended to one output file;
    returns its rows scored and its rows refused."""
    with extra("parquet"):
        import pyarrow as pa
        import pyarrow.parquet as pq

    dest = out / _output_name(f)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    chunks = ((b.to_pandas() for b in pq.ParquetFile(f).iter_batches(batch_size=CHUNK_ROWS))
              if f.suffix.lower() == ".parquet" else pd.read_csv(f, chunksize=CHUNK_ROWS))
    model, encoder = pkg.model, pkg.model.cleaner.encoder(pkg.schema)
    writer, rows, start, refused = None, 0, 0, []
    try:
        for df in chunks:
            try:
                kept, bad = screen(encoder, with_media_paths(df, f.parent), on_bad_rows)
            except DataError as exc:
                raise DataError(f"{f.name}" + (f" (its rows counted from {start})" if start else "") + f": {exc}") from None
            refused.append(bad.assign(row=bad["row"] + start))
            pred = model.predict_frame(kept)
            if on_bad_rows == "skip":
                pred.insert(0, "row", start + np.setdiff1d(np.arange(len(df)), bad["row"].to_numpy()))
            start += len(df)
            pred.columns = [str(c) for c in pred.columns]
            table = pa.Table.from_pandas(pred, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table.cast(writer.schema))
            rows += len(pred)
    finally:
        if writer is not None:
            writer.close()
    if writer is None:  # an empty partition: an empty output, so that the run can still be complete
        pd.DataFrame().to_parquet(tmp)
    refused = pd.concat(refused, ignore_index=True) if refused else pd.DataFrame()
    listed = dest.with_name(f"{dest.stem}.refused.csv")
    if len(refused):
        refused.to_csv(listed.with_name(f".{listed.name}.{os.getpid()}.tmp"), index=False)
        os.replace(listed.with_name(f".{listed.name}.{os.getpid()}.tmp"), listed)
    else:
        listed.unlink(missing_ok=True)
    os.replace(tmp, dest)  # a partition's output is whole or absent
    return rows, int(refused["row"].nunique()) if len(refused) else 0


def _output_name(f: Path) -> str:
    return f"{f.stem}-{hashlib.sha1(str(f).encode()).hexdigest()[:8]}.parquet"


def _fingerprint(f: Path) -> dict:
    st = f.stat()
    return {"bytes": st.st_size, "mtime": st.st_mtime}


def _same(entry: dict, f: Path) -> bool:
    return {k: entry.get(k) for k in ("bytes", "mtime")} == _fingerprint(f)


def _state(out: Path, model: str, pkg) -> dict:
    key = {"model": model, "package_version": str(pkg.manifest.get("version"))}
    path = out / PROGRESS
    if path.exists():
        state = json.loads(path.read_text())
        if {k: state.get(k) for k in key} != key:
            raise WorkbenchError(f"{out} holds predictions of {state.get('model')} version "
                                 f"{state.get('package_version')}, not {model} version {key['package_version']}: "
                                 "choose another --out folder")
        state["partitions"] = {k: v for k, v in state["partitions"].items() if (out / _output_name(Path(k))).exists()}
        return state
    return key | {"partitions": {}}


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)
