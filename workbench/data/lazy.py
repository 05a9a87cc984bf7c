"""Tables larger than memory: a folder or glob of Parquet or CSV files opened lazily as a Dask DataFrame.

One partition per file. What profiling and cleaning learn from such a table comes from one pass that counts the rows
of every partition (Parquet: from the file footers, no data read) and a seeded uniform sample of at most
``SAMPLE_ROWS`` rows drawn from all partitions (each row equally likely). The cleaner fitted on that sample replays
partition by partition (``Cleaner.transform`` of a Dask DataFrame is lazy), so no step holds the whole table.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from workbench.errors import DataError

SAMPLE_ROWS = 200_000  # what profile and the cleaner's fit see of a lazy table


def names_many(source) -> bool:
    """Whether ``source`` names many files: a folder or a glob pattern."""
    if not isinstance(source, (str, Path)):
        return False
    text = str(source)
    return Path(text).is_dir() or any(ch in text for ch in "*?[")


def is_lazy(df) -> bool:
    """Whether ``df`` is a Dask DataFrame (a table read partition by partition)."""
    return type(df).__module__.startswith("dask")


def open_lazy(pattern: str | Path):
    """A Dask DataFrame of every Parquet or CSV file a folder or glob names, one partition per file, nothing read yet
    but the first file's column types. An empty match or partitions whose columns disagree are clear errors."""
    import dask.dataframe as dd

    from workbench.stream import check_columns, partitions

    files = partitions(pattern)
    check_columns(files)
    meta = _read(files[0], None).iloc[:0]
    if files[0].suffix.lower() != ".parquet":  # a number column may miss values in another file: floats throughout
        meta = meta.astype({c: "float64" for c, t in meta.dtypes.items() if pd.api.types.is_integer_dtype(t)})
    return dd.from_map(_read, files, meta=meta, meta_of=meta, enforce_metadata=False,
                       label="read-table", divisions=[None] * (len(files) + 1))


def _read(f: Path, meta_of: pd.DataFrame | None) -> pd.DataFrame:
    """One partition, read as ``load`` reads one file; a CSV partition takes the first partition's column types."""
    from workbench.data.load import _load_file

    df = _load_file(f)
    if meta_of is None or f.suffix.lower() == ".parquet":
        return df
    for col, dtype in meta_of.dtypes.items():
        if df[col].dtype == dtype:
            continue
        if pd.api.types.is_numeric_dtype(dtype):
            converted = pd.to_numeric(df[col], errors="coerce")
            bad = df[col].notna() & converted.isna()
            if bad.any():
                raise DataError(f"{f.name}: column '{col}' holds text ({df[col][bad].iloc[0]!r}) where the first "
                                "file holds numbers; give the column the same type in every file")
            df[col] = converted.astype(dtype)
        else:
            df[col] = df[col].astype(dtype)
    return df


def row_counts(ddf, settings=None) -> list[int]:
    """Rows of every partition, in order: one pass over the table, on the cluster (``workbench.compute``)."""
    from workbench.compute import collect

    return [int(n) for n in collect(ddf.map_partitions(len, meta=(None, "int64")), settings)]


def sample(ddf, n: int | None = None, seed: int = 0, counts: list[int] | None = None,
           settings=None) -> tuple[pd.DataFrame, int]:
    """A seeded uniform sample of at most ``n`` (``SAMPLE_ROWS``) rows of a Dask DataFrame — every row equally likely,
    drawn without replacement across partitions — and the table's total row count."""
    from workbench.compute import collect

    n = SAMPLE_ROWS if n is None else n
    counts = row_counts(ddf, settings) if counts is None else counts
    total = sum(counts)
    if total == 0:
        raise DataError("the table is empty: every partition has no rows")
    take = np.random.default_rng(seed).multivariate_hypergeometric(counts, min(n, total)) if n < total else counts
    parts = ddf.map_partitions(_take, list(map(int, take)), seed, meta=ddf._meta, partition_info=True)
    return collect(parts, settings).reset_index(drop=True), total


def _take(part: pd.DataFrame, take: list[int], seed: int, partition_info=None) -> pd.DataFrame:
    i = partition_info["number"]
    if take[i] >= len(part):
        return part
    return part.sample(n=take[i], random_state=seed + i).sort_index()
