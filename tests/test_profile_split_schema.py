import pandas as pd
import pytest

from workbench.data import Schema, clean, profile, split
from workbench.errors import DataError


def test_profile_flags_leak_id_and_text_numbers(demo_df):
    p = profile(demo_df, "churn")
    f = p.to_frame().set_index("column")
    assert p.task == "binary" and p.duplicate_rows > 0
    assert f.loc["churn_reason", "warning"].startswith("leaks the target")
    assert f.loc["customer_id", "warning"] == "ID-like"
    assert f.loc["total_charges", "type"].startswith("number (numbers stored as text)")
    assert 0 < f.loc["age", "missing"] < 0.2 and f.loc["age", "outliers"] > 0
    assert "<table" in p._repr_html_() and any("leaks" in w for w in p.warnings)


def test_stratified_split_keeps_class_shares(demo_df):
    s = split(demo_df, "churn", test_size=0.25, valid_size=0.15)
    share = lambda d: (d["churn"] == "Yes").mean()
    assert abs(share(s.train) - share(s.test)) < 0.03 and abs(share(s.train) - share(s.valid)) < 0.04
    assert sum(s.sizes().values()) == len(demo_df)


def test_group_split_keeps_each_group_on_one_side(demo_df):
    s = split(demo_df, "churn", groups="region", test_size=0.3)
    assert not set(s.train["region"]) & set(s.test["region"])


def test_time_split_puts_the_latest_rows_in_test(demo_df):
    s = split(demo_df, "churn", time="signup_date", test_size=0.2)
    assert pd.to_datetime(s.train["signup_date"]).max() <= pd.to_datetime(s.test["signup_date"]).min()


def test_split_rejects_bad_shares(demo_df):
    with pytest.raises(DataError):
        split(demo_df, "churn", test_size=1.5)


def test_schema_round_trips_and_names_bad_fields(demo_df):
    c = clean(demo_df, "churn")
    s = Schema.infer(c.cleaner, demo_df)
    assert Schema.from_json(s.to_json()) == s
    assert "customer_id" in s.ignored and s.classes == ["No", "Yes"]
    encoder = c.cleaner.encoder(s)  # the contract's rules live in the row encoder, for tables and requests alike
    raw = demo_df.drop(columns="churn").head(5).copy()
    assert encoder.problems(raw.assign(age=40)) == []
    raw["tenure_months"] = raw["tenure_months"].astype(object)
    raw.loc[raw.index[1], "tenure_months"] = "many"
    assert [str(e) for e in encoder.problems(raw.assign(age=40))] == ["row 1: 'tenure_months' is not a number ('many')"]
    with pytest.raises(DataError, match="columns missing from the table: contract"):
        encoder.problems(raw.drop(columns=["contract"]))
