"""Read a table from a file, a scikit-learn built-in or the demo generator, or a folder or glob of files lazily."""
from __future__ import annotations

import bz2
import codecs
import csv
import difflib
import glob as globbing
import gzip
import io
import re
import zipfile
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator

import pandas as pd

from workbench.data.demo import make_demo
from workbench.data.lazy import is_lazy
from workbench.data.media import KINDS as MEDIA, media_kind
from workbench.errors import DataError
from workbench.extras import extra

SUFFIXES = (".parquet", ".csv", ".csv.gz")  # what a folder or glob of partitions may hold
COMPRESSIONS = {".gz": "gzip", ".bz2": "bz2", ".zip": "zip"}
DAMAGED = (OSError, EOFError, zlib.error, zipfile.BadZipFile)  # what decompressing a broken or cut archive raises
TABLES = (".csv", ".tsv", ".parquet", ".pq", ".xlsx", ".xlsm", ".xls")  # what counts as the table inside a zip
ENCODINGS = ("utf-8", "cp1252", "latin-1")  # tried in this order, each on every byte; latin-1 reads any byte


def load(source: str | Path | pd.DataFrame, target: str | int | None = None, *, n_rows: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Load a table as a DataFrame.

    ``source`` is a CSV/TSV (delimiter and header sniffed; UTF-8, else cp1252 text),
    Parquet or Excel path, a CSV/TSV as ``.gz`` or ``.bz2``, a ``.zip`` holding one table,
    ``sklearn:<name>`` (e.g. ``sklearn:breast_cancer``) or ``demo`` (the built-in
    customer-churn table with realistic dirt, ``n_rows`` rows, seeded). When
    ``target`` is given it is checked to exist (a number is a column position).
    A folder or a glob of Parquet/CSV files (``"big/*.parquet"``) opens lazily as a
    Dask DataFrame, one partition per file (see ``workbench.data.lazy``). A table read
    from text says how in ``df.attrs["encoding"]`` (and ``df.attrs["compression"]``).
    A folder of class folders of images or WAV sounds (``photos/cat/1.jpg``) is the table
    of their paths and classes (columns ``image`` or ``audio``, and ``label``); a table's
    relative image or audio paths are read from the table's own folder.

    Examples
    --------
    >>> df = load("demo", target="churn", n_rows=100)
    >>> "churn" in df.columns
    True
    """
    if isinstance(source, (str, Path)) and (media := media_folder(Path(source))) is not None:
        source = media
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
            df = make_demo(n_rows=int(text.split(":")[1]) if ":" in text else n_rows, seed=seed)
        elif text.startswith("sklearn:"):
            df = _load_sklearn(text.split(":", 1)[1])
        else:
            df = with_media_paths(_load_file(Path(text)), Path(text).resolve().parent)
    if df.shape[0] == 0 or df.shape[1] == 0:
        raise DataError(f"{source}: the table is empty (no rows or no columns); give a file with a header and data rows")
    if target is not None:
        resolve_target(df, target)
    return df


def media_folder(folder: Path) -> pd.DataFrame | None:
    """The table of a folder of class folders of images or sounds (one row per file: its absolute path and its
    folder's name as ``label``); None when ``folder`` is not such a folder."""
    if not folder.is_dir() or any(f.suffix.lower() in SUFFIXES for f in folder.iterdir()):
        return None
    for kind, (suffixes, _) in MEDIA.items():
        rows = [(str(f.resolve()), d.name) for d in sorted(folder.iterdir()) if d.is_dir() and not d.name.startswith(".")
                for f in sorted(d.iterdir()) if f.suffix.lower() in suffixes]
        if rows:
            return pd.DataFrame(rows, columns=[kind, "label"])
    return None


def with_media_paths(df: pd.DataFrame, folder: Path) -> pd.DataFrame:
    """A table whose image or audio paths are relative, with those that exist beside the table made absolute: the
    paths then mean the same files wherever the table is cleaned or scored."""
    for col in df.columns:
        if df[col].dtype.kind not in "OU" and str(df[col].dtype) not in ("str", "string"):
            continue
        names = df[col].dropna().astype(str)
        if len(names) and media_kind(names.head(500)) is not None:
            df[col] = [str(folder / v) if isinstance(v, str) and not v.startswith("data:") and not Path(v).is_absolute()
                       and (folder / v).exists() else v for v in df[col]]
    return df


def names_many(source) -> bool:
    """Whether ``source`` names many files: a folder or a glob pattern."""
    if not isinstance(source, (str, Path)):
        return False
    text = str(source)
    return Path(text).is_dir() or any(ch in text for ch in "*?[")


def open_lazy(pattern: str | Path):
    """A Dask DataFrame of every Parquet or CSV file a folder or glob names, one partition per file, nothing read yet
    but the first file's column types. An empty match or partitions whose columns disagree are clear errors."""
    with extra("dask"):
        import dask.dataframe as dd  # start-up cost: only a folder or glob needs Dask's DataFrame

    files = partitions(pattern)
    check_columns(files)
    meta = _read(files[0], None).iloc[:0]
    if files[0].suffix.lower() != ".parquet":  # a number column may miss values in another file: floats throughout
        meta = meta.astype({c: "float64" for c, t in meta.dtypes.items() if pd.api.types.is_integer_dtype(t)})
    return dd.from_map(_read, files, meta=meta, meta_of=meta, enforce_metadata=False,
                       label="read-table", divisions=[None] * (len(files) + 1))


def partitions(pattern: str | Path) -> list[Path]:
    """The files a folder or glob names (Parquet, CSV, gzipped CSV), sorted; an empty match is an error that says so."""
    p = Path(pattern)
    if p.is_dir():
        files = [f for f in p.iterdir() if f.name.lower().endswith(SUFFIXES)]
    else:
        files = [Path(f) for f in globbing.glob(str(pattern), recursive=True) if f.lower().endswith(SUFFIXES)]
    if not files:
        raise DataError(f"no Parquet or CSV files match {pattern}: check the path or the pattern (quote it in a shell)")
    return sorted(f.resolve() for f in files)


def check_columns(files: list[Path]) -> list[str]:
    """The columns every partition shares; partitions that disagree are an error naming the first one and how."""
    first = _columns(files[0])
    for f in files[1:]:
        cols = _columns(f)
        if cols != first:
            missing, extra = sorted(set(first) - set(cols)), sorted(set(cols) - set(first))
            raise DataError(f"{f.name} has other columns than {files[0].name}: "
                            + ", ".join(x for x in (f"missing {missing}" if missing else "",
                                                    f"extra {extra}" if extra else "") if x)
                            + ("" if missing or extra else " (same names, other order)")
                            + "; every partition needs the same columns")
    return first


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
    compression = COMPRESSIONS.get(path.suffix.lower())
    suffix = Path(path.stem).suffix.lower() if compression else path.suffix.lower()
    try:
        member = _zip_member(path) if compression == "zip" else None
        suffix = Path(member).suffix.lower() if member else suffix
        if suffix in {".parquet", ".pq", ".xlsx", ".xlsm", ".xls"}:
            data = path
            if compression:  # the Parquet and Excel readers seek: the table comes out of the archive whole
                with _open_bytes(path, compression, member) as fh:
                    data = io.BytesIO(fh.read())
            df = pd.read_parquet(data) if suffix in {".parquet", ".pq"} else pd.read_excel(data)
        else:
            df = _read_csv(path, compression, member)
    except DataError:
        raise
    except (*DAMAGED, ValueError, ImportError) as exc:
        if compression and isinstance(exc, DAMAGED):
            raise DataError(f"{path}: the {compression} archive is damaged or incomplete ({_first_line(exc)}); "
                            "copy or download it again") from None
        raise DataError(f"{path}: cannot be read as {suffix.lstrip('.') or 'a table'} ({_first_line(exc)})") from None
    if compression:
        df.attrs["compression"] = compression
    return df


def _zip_member(path: Path) -> str:
    """The one table a zip archive holds (``__MACOSX/`` and dot-files aside); none or several is an error."""
    with zipfile.ZipFile(path) as z:
        names = [n for n in z.namelist() if not n.endswith("/") and not n.startswith("__MACOSX/")
                 and not any(part.startswith(".") for part in n.split("/"))]
    tables = [n for n in names if n.lower().endswith(TABLES)]
    if len(tables) == 1:
        return tables[0]
    if tables:
        listed = ", ".join(tables[:10]) + (f" and {len(tables) - 10} more" if len(tables) > 10 else "")
        raise DataError(f"{path}: the zip archive holds {len(tables)} tables ({listed}); unzip it and load the one "
                        "you mean (or the folder, when they are parts of one table)")
    raise DataError(f"{path}: the zip archive holds no table (CSV, TSV, Parquet or Excel)"
                    + (f", only {', '.join(names[:10])}" if names else "") + "; give the table itself")


@contextmanager
def _open_bytes(path: Path, compression: str | None = None, member: str | None = None) -> Iterator[BinaryIO]:
    """The table's bytes from the start, decompressed as they are read (never the whole file at once)."""
    if compression == "zip":
        with zipfile.ZipFile(path) as z, z.open(member) as fh:
            yield fh
    else:
        with {"gzip": gzip.open, "bz2": bz2.open}.get(compression, open)(path, "rb") as fh:
            yield fh


def _read(f: Path, meta_of: pd.DataFrame | None) -> pd.DataFrame:
    """One partition, read as ``load`` reads one file; a CSV partition takes the first partition's column types."""
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


def _columns(f: Path) -> list[str]:
    if f.suffix.lower() == ".parquet":
        with extra("parquet"):
            import pyarrow.parquet as pq

        return list(pq.read_schema(f).names)
    return list(_read_csv(f, COMPRESSIONS.get(f.suffix.lower()), nrows=0).columns)


def _read_csv(path: Path, compression: str | None = None, member: str | None = None,
              nrows: int | None = None) -> pd.DataFrame:
    with _open_bytes(path, compression, member) as fh:
        head = fh.read(64 * 1024)
    if not head:
        raise DataError(f"{path}: the archive holds an empty file; give a file with a header and data rows")
    if b"\x00" in head:
        raise DataError(f"{path}: binary data, not text (a NUL byte at {head.index(0)}); save the table as "
                        "UTF-8 CSV, or give the file the suffix of its format (.parquet, .xlsx, .gz, .zip)")
    sample, encodings = _decode_head(head)
    lines = sample.lstrip("\ufeff").splitlines()[:50]
    try:
        dialect = csv.Sniffer().sniff("\n".join(lines), delimiters=",;\t|")
        sep = dialect.delimiter
    except csv.Error:
        sep = "\t" if (member or (path.stem if compression else path.name)).lower().endswith(".tsv") else ","
    try:
        has_header = csv.Sniffer().has_header("\n".join(lines)) if len(lines) > 1 else True
    except csv.Error:
        has_header = True
    if has_header and lines and _looks_numeric_row(lines[0].split(sep)):
        has_header = False
    elif not has_header and len(lines) > 1 and _looks_like_names(lines[0].split(sep), [r.split(sep) for r in lines[1:]]):
        has_header = True  # the sniffer guesses from value lengths; all-text tables (ids, labels) fool it
    for encoding in encodings:  # the whole file in one encoding: a byte that does not decode tries the next
        try:
            with _open_bytes(path, compression, member) as fh:
                # Raw values on purpose: the cleaner normalizes spellings and reports every change.
                df = pd.read_csv(fh, sep=sep, header=0 if has_header else None, nrows=nrows,
                                 encoding="utf-8-sig" if encoding == "utf-8" else encoding)
            break
        except UnicodeDecodeError as exc:
            if encoding == "utf-8" and not sample.isascii():  # cp1252 would turn its UTF-8 'ü' into 'Ã¼'
                raise DataError(f"{path}: mixes encodings: it starts as UTF-8 text but a later byte is not UTF-8 "
                                f"({exc.reason}); save the whole file as UTF-8") from None
            continue
        except pd.errors.ParserError as exc:
            raise DataError(f"{path}: ragged rows — {_first_line(exc)}; every row needs the same number of fields "
                            "as the header") from None
        except pd.errors.EmptyDataError:
            raise DataError(f"{path}: the file has no data; give a file with a header and data rows") from None
    if not has_header:
        df.columns = [f"col_{i}" for i in range(df.shape[1])]
    df.columns = [str(c).strip() for c in df.columns]
    df.attrs["encoding"] = encoding
    return df


def _decode_head(head: bytes) -> tuple[str, list[str]]:
    """A file's first bytes (perhaps cut mid-character) as text, and the encodings the whole file may be in, in the
    order to try them: UTF-8 (a BOM or not), cp1252, latin-1."""
    texts = {}
    for encoding in ENCODINGS:
        try:
            texts[encoding] = codecs.getincrementaldecoder(encoding)().decode(head)
        except UnicodeDecodeError:
            pass
    return next(iter(texts.values())), list(texts)


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
