import numpy as np
import pandas as pd
import pytest

from workbench.data import Cleaner, clean, load
from workbench.errors import DataError


def _actions(report, column):
    return {c.action for c in report.changes if c.column == column}


def test_demo_cleaning_fixes_every_kind_of_dirt(demo_df):
    c = clean(demo_df, "churn")
    r = c.report
    assert any(ch.action == "kept duplicate rows" and ch.rows > 0 for ch in r.changes)
    assert "text → number" in _actions(r, "total_charges")
    assert "missing spellings → missing" in _actions(r, "age")
    assert "merged spellings" in _actions(r, "contract")
    assert "outliers kept" in _actions(r, "age")
    assert "dropped column" in _actions(r, "customer_id") and "ID-like" in r.dropped["customer_id"]
    assert "leaks the target" in r.dropped["churn_reason"]
    assert set(c.X["contract"].cat.categories[:3]) == {"Month-to-month", "One year", "Two year"}
    kept = {ch.column: ch.rows for ch in r.changes if ch.action == "missing kept"}
    assert kept["age"] > 0 and {col: n for col, n in c.X.isna().sum().items() if n} == kept  # nothing imputed
    assert {"signup_date_year", "signup_date_days"} <= set(c.X.columns)
    assert r.rows_out == len(c.X) == r.rows_in  # the demo has a target in every row
    assert c.X["age"].max() == pd.to_numeric(demo_df["age"], errors="coerce").max()  # an outlier is not changed
    deduplicated = clean(demo_df, "churn", drop_duplicates=True)
    assert len(deduplicated.X) == len(c.X) - next(ch.rows for ch in r.changes if ch.action == "kept duplicate rows")
    assert set(c.y.unique()) == {"Yes", "No"}


def test_cleaner_replays_identically_after_a_json_round_trip(demo_df):
    c = clean(demo_df, "churn")
    again = Cleaner.from_json(c.cleaner.to_json())
    raw = demo_df.drop(columns="churn")
    pd.testing.assert_frame_equal(again.transform(raw), c.cleaner.transform(raw))


def test_unseen_and_missing_categories_map_to_fixed_levels(demo_df):
    c = clean(demo_df, "churn")
    row = demo_df.drop(columns="churn").head(2).copy()
    row["region"] = ["Atlantis", None]
    out = c.cleaner.transform(row)
    assert out["region"].tolist() == ["(other)", "(missing)"]
    assert list(out["region"].cat.categories) == list(c.X["region"].cat.categories)


def test_titanic_alive_is_dropped_as_leaking(datasets):
    df = load(datasets / "titanic.csv")
    c = clean(df, "survived")
    assert "alive" in c.report.dropped and "leaks the target" in c.report.dropped["alive"]
    assert "alive" not in c.X.columns and "sex" in c.X.columns


def test_adult_train_and_test_labels_map_to_the_same_two_classes(datasets):
    train = load(datasets / "adult_train.csv").head(3000)
    test = load(datasets / "adult_test.csv").head(500)
    c = clean(train, "income")
    assert sorted(c.y.unique()) == ["<=50K", ">50K"]
    assert set(c.cleaner.transform_target(test["income"]).unique()) == {"<=50K", ">50K"}
    assert c.X["workclass"].cat.categories[0] == "Private"  # leading spaces stripped
    assert "missing spellings → missing" in _actions(c.report, "workclass")  # ' ?' is missing


def test_constant_and_all_missing_columns_are_dropped_with_a_reason(demo_df):
    df = demo_df.assign(same=1, nothing=np.nan)
    c = clean(df, "churn")
    assert "constant" in c.report.dropped["same"] and "missing" in c.report.dropped["nothing"]


def test_one_class_target_is_refused(demo_df):
    with pytest.raises(DataError, match="only one class"):
        clean(demo_df.assign(churn="Yes"), "churn", task="binary")


def test_table_with_no_usable_columns_is_refused():
    df = pd.DataFrame({"id": [f"x{i}" for i in range(50)], "y": ["a", "b"] * 25})
    with pytest.raises(DataError, match="no usable feature columns"):
        clean(df, "y")


def test_transform_names_missing_columns(demo_df):
    c = clean(demo_df, "churn")
    with pytest.raises(DataError, match="tenure_months"):
        c.cleaner.transform(demo_df.drop(columns=["tenure_months"]))
