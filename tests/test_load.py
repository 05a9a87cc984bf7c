import bz2
import gzip
import zipfile

import pandas as pd
import pytest

from workbench.data import load, resolve_target
from workbench.errors import DataError


def test_demo_is_deterministic_and_dirty():
    a, b = load("demo", n_rows=300), load("demo", n_rows=300)
    pd.testing.assert_frame_equal(a, b)
    assert a.duplicated().sum() > 0
    assert {"customer_id", "signup_date", "churn_reason", "churn"} <= set(a.columns)
    assert a["total_charges"].astype(str).str.contains(",").any()
    assert len(load("demo", n_rows=1000)) > len(a)


@pytest.mark.parametrize("sep,suffix", [(",", ".csv"), (";", ".csv"), ("\t", ".tsv"), ("|", ".txt")])
def test_delimiters_are_sniffed(tmp_path, sep, suffix):
    df = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"], "c": [0.5, 1.5, 2.5]})
    path = tmp_path / f"t{suffix}"
    df.to_csv(path, sep=sep, index=False)
    got = load(path)
    assert list(got.columns) == ["a", "b", "c"] and got["c"].tolist() == [0.5, 1.5, 2.5]


def test_headerless_file_gets_numbered_columns_and_target_by_position(tmp_path):
    path = tmp_path / "h.csv"
    path.write_text("1.5,2,yes\n2.5,3,no\n3.5,4,yes\n4.5,5,no\n")
    df = load(path, target=-1)
    assert list(df.columns) == ["col_0", "col_1", "col_2"]
    assert resolve_target(df, -1) == "col_2" and resolve_target(df, "2") == "col_2"


def test_parquet_excel_and_sklearn(tmp_path):
    df = pd.DataFrame({"x": [1.0, 2.0], "y": ["a", "b"]})
    df.to_parquet(tmp_path / "t.parquet")
    df.to_excel(tmp_path / "t.xlsx", index=False)
    assert load(tmp_path / "t.parquet").equals(df)
    assert load(tmp_path / "t.xlsx")["y"].tolist() == ["a", "b"]
    iris = load("sklearn:iris", target="target")
    assert iris["target"].nunique() == 3 and iris["target"].iloc[0] == "setosa"


@pytest.mark.parametrize("content,needle", [
    (None, "no such file"),
    (b"", "empty"),
    (b"PAR1\x15\x00\x15\x1c", "binary data, not text"),
    (b"a,b\n1,2\n3,4,5,6\n", "ragged rows"),
])
def test_bad_files_get_one_clear_message(tmp_path, content, needle):
    path = tmp_path / "bad.csv"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DataError, match=needle):
        load(path)


def test_unknown_target_suggests_the_close_name(demo_df):
    with pytest.raises(DataError, match="Did you mean 'churn'"):
        load(demo_df, target="chrun")


def test_unknown_sklearn_dataset_lists_valid_names():
    with pytest.raises(DataError, match="iris"):
        load("sklearn:nope")


@pytest.mark.parametrize("suffix,opener", [(".csv.gz", gzip.open), (".csv.bz2", bz2.open)])
def test_compressed_csv_is_sniffed_from_its_decompressed_head(tmp_path, suffix, opener):
    path = tmp_path / f"prices{suffix}"
    with opener(path, "wt", encoding="utf-8") as fh:  # 100 KB of text: the sniffer sees only the first 64 KB
        fh.write("city;price;n\n" + "".join(f"Paris;{i},5;{i}\n" for i in range(8000)))
    df = load(path)
    assert list(df.columns) == ["city", "price", "n"] and len(df) == 8000
    assert df["price"].iloc[3] == "3,5" and df["n"].iloc[-1] == 7999  # decimal commas stay text for the cleaner
    assert df.attrs == {"encoding": "utf-8", "compression": opener.__module__}


@pytest.mark.parametrize("data,encoding,values", [
    ("id;city\n1;Besançon\n2;Düsseldorf\n".encode("latin-1"), "cp1252", ["Besançon", "Düsseldorf"]),
    ("id;city\n1;Paris\n2;5 €\n".encode("cp1252"), "cp1252", ["Paris", "5 €"]),
    (b"id;city\n1;Paris\n2;A\x81B\n", "latin-1", ["Paris", "A\x81B"]),  # 0x81: no character in cp1252
    ("\ufeffid;city\n1;Zürich\n2;Genève\n".encode("utf-8"), "utf-8", ["Zürich", "Genève"]),
])
def test_text_is_read_in_one_encoding_utf8_first(tmp_path, data, encoding, values):
    (tmp_path / "t.csv").write_bytes(data)
    df = load(tmp_path / "t.csv")
    assert list(df.columns) == ["id", "city"] and df["city"].tolist() == values
    assert df.attrs["encoding"] == encoding


def test_an_accent_after_the_sniffed_head_turns_the_whole_file_to_cp1252(tmp_path):
    rows = [f"{i};{'Zurich' if i % 2 else 'Bern'}" for i in range(10_000)] + ["10000;Müller"]
    (tmp_path / "late.csv").write_bytes(("id;name\n" + "\n".join(rows) + "\n").encode("cp1252"))
    df = load(tmp_path / "late.csv")
    assert df.attrs["encoding"] == "cp1252" and df["name"].iloc[-1] == "Müller" and len(df) == 10_001


def test_a_file_mixing_utf8_and_cp1252_is_refused_not_mangled(tmp_path):
    rows = "".join(f"{i};Zürich\n" for i in range(20_000))
    (tmp_path / "mixed.csv").write_bytes(("id;city\n" + rows).encode("utf-8") + "20000;Zürich\n".encode("cp1252"))
    with pytest.raises(DataError, match="mixes encodings.*save the whole file as UTF-8"):
        load(tmp_path / "mixed.csv")


@pytest.mark.parametrize("member", ["export/churn.csv", "churn.parquet"])
def test_zip_with_one_table_is_read_as_that_table(tmp_path, member):
    df = pd.DataFrame({"x": [1.5, 2.5, 3.5], "city": ["Köln", "Graz", "Lyon"]})
    with zipfile.ZipFile(tmp_path / "t.zip", "w") as z:
        z.writestr(member, df.to_parquet() if member.endswith(".parquet") else df.to_csv(index=False))
        z.writestr("__MACOSX/export/._churn.csv", b"\x00\x05\x16\x07")
        z.writestr(".DS_Store", b"\x00\x00\x00\x01Bud1")
    got = load(tmp_path / "t.zip")
    pd.testing.assert_frame_equal(got, df)
    assert got.attrs["compression"] == "zip"


def test_zip_with_several_tables_lists_them_and_says_to_choose(tmp_path):
    with zipfile.ZipFile(tmp_path / "t.zip", "w") as z:
        z.writestr("train.csv", "a,b\n1,2\n")
        z.writestr("test.csv", "a,b\n3,4\n")
    with pytest.raises(DataError, match=r"2 tables \(train.csv, test.csv\); unzip it and load the one"):
        load(tmp_path / "t.zip")


@pytest.mark.parametrize("name,data,needle", [
    ("t.csv.gz", gzip.compress("".join(f"{i},{i % 7}\n" for i in range(50_000)).encode())[:50_000],
     "gzip archive is damaged or incomplete"),  # cut short after the sniffed head
    ("t.csv.gz", b"\x1f\x8b\x08\x00" + b"garbage" * 20, "gzip archive is damaged or incomplete"),
    ("t.csv.gz", b"a,b\n1,2\n", "gzip archive is damaged or incomplete"),
    ("t.csv.gz", gzip.compress(b""), "the archive holds an empty file"),
    ("t.zip", b"PK\x03\x04 cut short", "zip archive is damaged or incomplete"),
    ("t.zip", None, "the zip archive holds no table .*, only README.md"),
])
def test_broken_or_empty_archives_get_one_clear_line(tmp_path, name, data, needle):
    path = tmp_path / name
    if data is None:
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("README.md", "the data is elsewhere")
    else:
        path.write_bytes(data)
    with pytest.raises(DataError, match=needle) as info:
        load(path)
    chained = info.value.__cause__ or (None if info.value.__suppress_context__ else info.value.__context__)
    assert "\n" not in str(info.value) and chained is None  # the CLI prints it as one line, no traceback


def test_a_folder_of_gzipped_csv_partitions_opens_lazily(tmp_path):
    for part in range(3):
        with gzip.open(tmp_path / f"part-{part}.csv.gz", "wt") as fh:
            fh.write("id;amount\n" + "".join(f"{part * 10 + i};{i * 1.5}\n" for i in range(10)))
    ddf = load(tmp_path, target="amount")
    assert ddf.npartitions == 3 and list(ddf.columns) == ["id", "amount"]
    assert ddf.compute()["id"].tolist() == list(range(30))
