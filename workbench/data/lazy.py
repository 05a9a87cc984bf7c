"""Tables larger than memory: a folder or glob of Parquet or CSV files that ``load`` opened lazily as a Dask
DataFrame (``workbench.data.load.open_lazy``), one partition per file.

What profiling and cleaning learn from such a table comes from one pass that counts the rows of every partition
(Parquet: from the file footers, no data read) and a seeded uniform sample of at most ``SAMPLE_ROWS`` rows drawn
from all partitions (each row equally likely). The cleaner fitted on that sample replays partition by partition
(``Cleaner.transform`` of a Dask DataFrame is lazy), so no step holds the whole table.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from workbench.compute import collect
from workbench.errors import DataError

SAMPLE_ROWS = 200_000  # what profile and the cleaner's fit see of a lazy table


def is_lazy(df) -> bool:
    """Whether ``df`` is a Dask DataFrame (a table read partition by partition)."""
    return type(df).__module__.startswith("dask")


def row_counts(ddf, settings=None) -> list[int]:
    """Rows of every partition, in order: one pass over the table, on the cluster (``workbench.compute``)."""
    return [int(n) for n in collect(ddf.map_partitions(len, meta=(None, "int64")), settings)]


def sample(ddf, n: int | None = None, seed: int = 0, counts: list[int] | None = None,
           settings=None) -> tuple[pd.DataFrame, int]:
    """A seeded uniform sample of at most ``n`` (``SAMPLE_ROWS``) rows of a Dask DataFrame — every row equally likely,
    drawn without replacement across partitions — and the table's total row count."""
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
