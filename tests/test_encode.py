"""One row encoder: raw JSON records (the service) and a table's columns (transform, batch prediction, streaming) give
the same matrix, value for value, on every shared table and on dirty demo rows."""
import json
import math

import numpy as np
import pandas as pd
import pytest

from workbench.data import Cleaner, clean, load
from workbench.data.columns import read_number, read_number_fast
from workbench.data.encode import InputError, frame_of, matrix_of
from workbench.data.schema import Schema


def _records(df: pd.DataFrame) -> list[dict]:
    """JSON records as a caller sends them: missing values as null, numbers as numbers, text as text."""
    out = []
    for rec in df.to_dict(orient="records"):
        out.append({k: (None if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA
                        else v.item() if isinstance(v, np.generic) else v) for k, v in rec.items()})
    return out


def _same_matrix_both_ways(raw: pd.DataFrame, target: str, task: str | None = None):
    c = clean(raw, target, task=task)
    features = raw.drop(columns=[target])
    encoder = c.cleaner.encoder()
    by_columns = encoder.frame(features)
    readable = []  # the records path refuses what it cannot read (the table path imputes it): compare the rest
    for i, rec in enumerate(_records(features)):
        try:
            encoder.records([rec])
            readable.append(i)
        except InputError:
            pass
    assert len(readable) >= 0.9 * len(features)
    recs = [_records(features.iloc[[i]])[0] for i in readable]
    np.testing.assert_array_equal(encoder.records(recs), by_columns[readable])
    one = np.vstack([encoder.records([r]) for r in recs[:50]])
    np.testing.assert_array_equal(one, by_columns[readable[:50]])
    pd.testing.assert_frame_equal(c.cleaner.transform(features), encoder.to_frame(by_columns, features.index))


def test_records_and_columns_encode_dirty_demo_rows_alike(demo_df):
    raw = load("demo", n_rows=800, seed=3)
    _same_matrix_both_ways(raw, "churn")


def test_records_and_columns_encode_every_shared_table_alike(manifest, datasets):
    for name, entry in manifest.items():
        raw = load(str(datasets / entry["file"]))
        if len(raw) > 5000:
            raw = raw.sample(5000, random_state=0)
        _same_matrix_both_ways(raw, entry["target"], entry.get("task"))


def test_the_matrix_and_the_cleaned_table_are_each_others_inverse(demo_df):
    c = clean(demo_df, "churn")
    X, columns = matrix_of(c.X)
    assert columns == c.cleaner.encoder().columns
    pd.testing.assert_frame_equal(frame_of(X, columns), c.X)


def test_the_schema_checks_records_but_not_tables(demo_df):
    c = clean(demo_df, "churn")
    schema = Schema.infer(c.cleaner, demo_df)
    row = _records(demo_df.drop(columns=["churn"]).head(1))[0] | {"tenure_months": "twelve"}
    with pytest.raises(InputError, match="row 0: 'tenure_months' is not a number"):
        c.cleaner.encoder(schema).records([row])
    read = c.cleaner.encoder(schema).frame(pd.DataFrame([row]))  # cleaning's rule: unreadable → missing
    assert np.isnan(read[0, [n for n, _ in c.cleaner.encoder().columns].index("tenure_months")])


def test_missing_numbers_stay_missing_and_a_plan_of_an_older_version_imputes_its_median(demo_df):
    c = clean(demo_df, "churn")
    raw = demo_df.drop(columns="churn")
    rows = _records(raw.head(3))
    rows[0]["age"], rows[1]["age"] = None, "n/a"
    j = [n for n, _ in c.cleaner.encoder().columns].index("age")
    for encoder in (c.cleaner.encoder(), c.cleaner.encoder(Schema.infer(c.cleaner, demo_df))):
        assert np.isnan(encoder.records(rows)[:2, j]).all() and np.isnan(encoder.records(rows[:1])[0, j])
        assert np.isnan(encoder.frame(pd.DataFrame(rows))[:2, j]).all()
    older = json.loads(c.cleaner.to_json())  # written when the cleaner imputed: replayed as trained
    older["plan"]["age"]["fill"] = 41.5
    encoder = Cleaner.from_json(json.dumps(older)).encoder()
    assert encoder.records(rows)[:2, j].tolist() == [41.5, 41.5] and encoder.records(rows[:1])[0, j] == 41.5
    assert encoder.frame(pd.DataFrame(rows))[:2, j].tolist() == [41.5, 41.5]


def test_the_short_road_for_numbers_reads_every_spelling_as_the_full_parser_does():
    spellings = ["630.91", "1,940.92", "$1716.65", "$1,716.65", "€12", "$-5", "-1,234", "+7", "NA", "n/a", "N/A", "None",
                 "NULL", "", " ", "-", "--", "?", "nan", "NaN", "inf", "1e999", "1e3", " 42 ", "12,34", "1,000,00",
                 "12 kg", "5%", "$ 5", "5$", "1_000", "0x1A", "١٢", "١٢.٥", "²", "1" * 400, "twelve", "1.2.3", ".5", "5.",
                 ".", "0012", "+-1", 3, 2.5, True, None]
    for v in spellings:
        try:
            want = read_number(v)
        except ValueError:
            with pytest.raises(ValueError):
                read_number_fast(v)
            continue
        got = read_number_fast(v)
        assert (math.isnan(got) if want is None else got == want), (v, got, want)
