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
    (b"a,b\n1,\xe9\xe8\n", "not UTF-8"),
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
