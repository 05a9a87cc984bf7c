"""Read a table from a file, a scikit-learn built-in or the demo generator."""
from __future__ import annotations

import csv
import difflib
import re
from pathlib import Path

import pandas as pd

from workbench.errors import DataError

def load(source: str | Path | pd.DataFrame, target: str | int | None = None, *, n_rows: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Load a table as a DataFrame.

    ``source`` is a CSV/TSV (delimiter and header sniffed), Parquet or Excel path,
    ``sklearn:<name>`` (e.g. ``sklearn:breast_cancer``) or ``demo`` (the built-in
    customer-churn table with realistic dirt, ``n_rows`` rows, seeded). When
    ``target`` is given it is checked to exist (a number is a column position).
    A folder or a glob of Parquet/CSV files (``"big/*.parquet"``) opens lazily as a
    Dask DataFrame, one partition per file (see ``workbench.data.lazy``).

    Examples
    --------
    >>> df = load("demo", target="churn", n_rows=100)
    >>> "churn" in df.columns
    True
    """
    from workbench.data.lazy import is_lazy, names_many, open_lazy

    if is_lazy(source) or names_many(source):
        df = source if is_lazy(source) else open_lazy(source)
        if target is not None:
            resolve_target(df, target)
        return df
    if isinstance(source, pd.DataFrame):
        df = source
    else:
        text = str(source)
        if text == "demo" or text.startswith("demo:"):
            from workbench.data.demo import make_demo

            df = make_demo(n_rows=int(text.split(":")[1]) if ":" in text else n_rows, seed=seed)
        elif text.startswith("sklearn:"):
            df = _load_sklearn(text.split(":", 1)[1])
        else:
            df = _load_file(Path(text))
    if df.shape[0] == 0 or df.shape[1] == 0:
        raise DataError(f"{source}: the table is empty (no rows or no columns); give a file with a header and data rows")
    if target is not None:
        resolve_target(df, target)
    return df


def fingerprint(df: pd.DataFrame) -> dict:
    """What identifies a table: rows, columns and a sha256 of its column names, types and every value."""
    import hashlib
    import json

    h = hashlib.sha256(json.dumps([[str(c), str(t)] for c, t in df.dtypes.items()]).encode())
    h.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
    return {"rows": int(df.shape[0]), "columns": int(df.shape[1]), "sha256": h.hexdigest()}


def resolve_target(df: pd.DataFrame, target: str | int) -> str:
    """The target's column name; a number (or digits) is a position, negative from the end."""
    if isinstance(target, str) and target in df.columns:
        return target
    if isinstance(target, int) or (isinstance(target, str) and target.lstrip("-").isdigit()):
        pos = int(target)
        if -df.shape[1] <= pos < df.shape[1]:
            return df.columns[pos]
        raise DataError(f"target position {pos} is outside the table's {df.shape[1]} columns")
    close = difflib.get_close_matches(str(target), [str(c) for c in df.columns], n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    cols = ", ".join(map(str, df.columns[:30]))
    raise DataError(f"target column '{target}' is not in the table.{hint} Columns: {cols}")


def _load_file(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise DataError(f"{path}: no such file; check the path (relative paths start at {Path.cwd()})")
    if path.is_dir():
        raise DataError(f"{path} is a folder; give a file (CSV, TSV, Parquet or Excel)")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty; give a file with a header and data rows")
    suffix = "".join(path.suffixes[-2:]).lower() if path.suffix == ".gz" else path.suffix.lower()
    try:
        if suffix in {".parquet", ".pq"}:
            return pd.read_parquet(path)
        if suffix in {".xlsx", ".xlsm", ".xls"}:
            return pd.read_excel(path)
        return _read_csv(path)
    except DataError:
        raise
    except (OSError, ValueError, ImportError) as exc:
        raise DataError(f"{path}: cannot be read as {suffix.lstrip('.') or 'a table'} ({_first_line(exc)})") from None


def _read_csv(path: Path) -> pd.DataFrame:
    with open(path, "rb") as fh:
        head = fh.read(64 * 1024)
    try:
        sample = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if len(head) < 64 * 1024 or exc.start < len(head) - 4:
            raise DataError(
                f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)"
            ) from None
        sample = head[: exc.start].decode("utf-8")
    sample = sample.lstrip("\ufeff")
    lines = sample.splitlines()[:50]
    try:
        dialect = csv.Sniffer().sniff("\n".join(lines), delimiters=",;\t|")
        sep = dialect.delimiter
    except csv.Error:
        sep = "\t" if path.suffix.lower() == ".tsv" else ","
    try:
        has_header = csv.Sniffer().has_header("\n".join(lines)) if len(lines) > 1 else True
    except csv.Error:
        has_header = True
    if has_header and lines and _looks_numeric_row(lines[0].split(sep)):
        has_header = False
    elif not has_header and len(lines) > 1 and _looks_like_names(lines[0].split(sep), [r.split(sep) for r in lines[1:]]):
        has_header = True  # the sniffer guesses from value lengths; all-text tables (ids, labels) fool it
    try:
        # Raw values on purpose: the cleaner normalizes spellings and reports every change.
        df = pd.read_csv(path, sep=sep, header=0 if has_header else None, encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)") from None
    except pd.errors.ParserError as exc:
        raise DataError(f"{path}: ragged rows — {_first_line(exc)}; every row needs the same number of fields as the header") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file has no data; give a file with a header and data rows") from None
    if not has_header:
        df.columns = [f"col_{i}" for i in range(df.shape[1])]
    df.columns = [str(c).strip() for c in df.columns]
    return df


def _looks_like_names(first: list[str], rest: list[list[str]]) -> bool:
    """Column names: distinct identifiers that never appear again in their column."""
    names = [c.strip().strip('"') for c in first]
    if len(set(names)) != len(names) or not all(re.fullmatch(r"[A-Za-z_][\w .-]*", n) for n in names):
        return False
    return not any(k < len(r) and r[k].strip().strip('"') == n for r in rest for k, n in enumerate(names))


def _looks_numeric_row(cells: list[str]) -> bool:
    def num(c: str) -> bool:
        try:
            float(c.strip().strip('"'))
            return True
        except ValueError:
            return False

    return sum(num(c) for c in cells) > len(cells) / 2


def _load_sklearn(name: str) -> pd.DataFrame:
    import sklearn.datasets as skd

    loader = getattr(skd, f"load_{name}", None)
    if loader is None:
        names = sorted(n[5:] for n in dir(skd) if n.startswith("load_") and n not in {"load_files", "load_svmlight_file", "load_svmlight_files", "load_sample_image", "load_sample_images"})
        raise DataError(f"unknown scikit-learn dataset '{name}'. Valid names: {', '.join(names)}")
    bunch = loader(as_frame=True)
    df = bunch.frame.copy()
    if "target_names" in bunch and getattr(bunch, "target_names", None) is not None and df["target"].dtype.kind in "iu":
        df["target"] = [str(bunch.target_names[i]) for i in df["target"]]
    return df


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
