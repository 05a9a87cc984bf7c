"""One data contract: dirty tables and dirty rows, each run through every place that reads them.

Tables go through ``profile`` and through training's preparation (``prepare``: load, clean): both must give a column
the same type and a target the same task and classes. Rows go through batch prediction (``predict_file``: a CSV
written and read back) and through the service (real uvicorn, v1): both must take or refuse the same rows, naming the
same field and row, and agree on the numbers of what they take.
"""
from __future__ import annotations

import math

import httpx
import numpy as np
import pandas as pd
import pytest

from servers import Server
from workbench.auto import predict_file
from workbench.data import load, profile
from workbench.errors import DataError
from workbench.models.train import prepare
from workbench.registry.package import load_package, package_result

BASE = load("demo", n_rows=300, seed=7)
RNG = np.random.default_rng(7)


def _with(**columns) -> pd.DataFrame:
    df = BASE.copy()
    for name, values in columns.items():
        df[name] = values(len(df)) if callable(values) else values
    return df


def _dates(fmts):
    days = pd.date_range("2019-01-01", periods=len(BASE), freq="3D")
    return [d.strftime(fmts[i % len(fmts)]) for i, d in enumerate(days)]


def _spoil(values, every: int, spelling: str):
    return [spelling if i % every == 0 else v for i, v in enumerate(values)]


# (case, table, target, {column: type both must give} | {"task": …, "classes": […]})
TABLES = [
    ("decimal commas", _with(x=[f"{v:.2f}".replace(".", ",") for v in RNG.uniform(1, 500, len(BASE))]), "churn",
     {"x": "number"}),
    ("decimal commas with thousands dots", _with(x=[f"{v:,.2f}".replace(",", "X").replace(".", ",").replace("X", ".")
                                                    for v in RNG.uniform(1, 90000, len(BASE))]), "churn", {"x": "number"}),
    ("thousands commas", _with(x=[f"{v:,.2f}" for v in RNG.uniform(1, 90000, len(BASE))]), "churn", {"x": "number"}),
    ("currency signs", _with(x=[f"${v:.2f}" if i % 2 else f"{v:.2f} €" for i, v in enumerate(RNG.uniform(1, 99, len(BASE)))]),
     "churn", {"x": "number"}),
    ("percentages", _with(x=[f"{v:.1f}%" for v in RNG.uniform(0, 100, len(BASE))]), "churn", {"x": "number"}),
    ("numbers as text with missing spellings", _with(x=_spoil([str(v) for v in RNG.integers(0, 99, len(BASE))], 7, "N/A")),
     "churn", {"x": "number"}),
    ("ISO dates", _with(x=_dates(["%Y-%m-%d"])), "churn", {"x": "date"}),
    ("mixed date formats", _with(x=_dates(["%Y-%m-%d", "%d/%m/%Y", "%b %d %Y"])), "churn", {"x": "date"}),
    ("day-first dates", _with(x=_dates(["%d/%m/%Y"])), "churn", {"x": "date"}),
    ("dates with times", _with(x=_dates(["%Y-%m-%d %H:%M"])), "churn", {"x": "date"}),
    ("codes with a dash stay categories", _with(x=[f"{i % 4}-{i % 3}" for i in range(len(BASE))]), "churn",
     {"x": "category"}),
    ("category spellings", _with(x=[["Gold", "gold ", "GOLD", "Silver", "silver"][i % 5] for i in range(len(BASE))]),
     "churn", {"x": "category"}),
    ("an ID column", _with(x=[f"K{i:05d}" for i in range(len(BASE))]), "churn", {"x": "id"}),
    ("a constant column", _with(x="same"), "churn", {"x": "constant"}),
    ("an empty column", _with(x=[None] * len(BASE)), "churn", {"x": "empty"}),
    ("labels in several cases", _with(y=[["Yes", "yes", "YES ", "No", "no", "NO"][i % 6] for i in range(len(BASE))]),
     "y", {"task": "binary", "classes": 2}),
    ("labels with a trailing dot", _with(y=[[">50K", ">50K.", "<=50K", "<=50K."][i % 4] for i in range(len(BASE))]),
     "y", {"task": "binary", "classes": 2}),
    ("integer class codes", _with(y=lambda n: RNG.integers(1, 4, n)), "y", {"task": "multiclass", "classes": 3}),
    ("integer codes written two ways", _with(y=[["1", "1.0", "2", "2.0", "3"][i % 5] for i in range(len(BASE))]), "y",
     {"task": "multiclass", "classes": 3}),
    ("a measured integer stays a quantity", _with(y=lambda n: RNG.integers(3, 9, n)), "y", {"task": "regression"}),
    ("true/false target", _with(y=lambda n: RNG.integers(0, 2, n).astype(bool)), "y", {"task": "binary", "classes": 2}),
    ("text labels", _with(y=[["red", "green", "blue"][i % 3] for i in range(len(BASE))]), "y",
     {"task": "multiclass", "classes": 3}),
]


@pytest.mark.parametrize("case, df, target, expect", TABLES, ids=[t[0] for t in TABLES])
def test_profile_and_training_agree_on_types_and_classes(case, df, target, expect, tmp_path):
    path = tmp_path / "table.csv"
    df.drop(columns=[c for c in ("churn",) if target != "churn"]).to_csv(path, sep=";", index=False)
    prof = profile(load(path), target)
    prepared = prepare(str(path), target)
    cleaner = prepared.cleaned.cleaner
    types = prof.to_frame().set_index("column")["type"].str.split(" ").str[0]
    for col, kind in expect.items():
        if col in ("task", "classes"):
            continue
        assert types[col] == kind, (case, prof.to_frame().set_index("column").loc[col].to_dict())
        trained = cleaner.plan_[col]["kind"] if col in cleaner.plan_ else cleaner.dropped_[col].split(":")[0]
        assert trained.split("-")[0].lower().replace("all values missing", "empty") in (kind, kind.upper()), (case, trained)
    if "task" in expect:
        assert prof.task == prepared.cleaned.task == expect["task"], (case, prof.task, prepared.cleaned.task)
        if "classes" in expect:
            assert len(cleaner.target_["classes"]) == expect["classes"], (case, cleaner.target_["classes"])


# (case, column, value as JSON sends it, refused?) — the CSV of batch prediction carries the same value as text
ROWS = [
    ("a clean row", None, None, False),
    ("a number as text", "age", "41", False),
    ("a number with spaces", "age", " 41 ", False),
    ("a number with a thousands comma", "total_charges", "1,234.50", False),
    ("a number with a currency sign", "monthly_charges", "$42.10", False),
    ("a number with a unit", "monthly_charges", "42.10 USD", False),
    ("a missing number as null", "age", None, False),
    ("a missing number spelled N/A", "age", "N/A", False),
    ("a word in a number column", "age", "forty", True),
    ("a number far outside the training range", "tenure_months", 1e9, True),
    ("a negative far outside the range", "monthly_charges", -1e7, True),
    ("infinity as text", "age", "inf", True),
    ("a missing value training never had", "contract", None, True),
    ("a category in another case", "contract", "month-to-month", False),
    ("a category with spaces", "region", "  West ", False),
    ("a category never seen", "region", "Atlantis", False),
    ("a date", "signup_date", "2020-02-29", False),
    ("a date spelled in words", "signup_date", "Oct 26 2020", False),
    ("an impossible date", "signup_date", "2020-13-45", True),
    ("not a date", "signup_date", "soon", True),
    ("a boolean spelled as text in a number column", "age", "True", True),
    ("a very long category", "region", "x" * 200_000, True),
]

# what only JSON can say (a CSV has no types): the service alone decides
JSON_ONLY = [
    ("a boolean for a number", "age", True),
    ("a number for a category", "contract", 7),
    ("a list for a number", "age", [1, 2]),
    ("an object for a category", "region", {"a": 1}),
    ("a number for a date", "signup_date", 20200101),
]


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    from workbench import train

    r = train(load("demo", n_rows=1500), "churn", models=["lightgbm"], folds=3, log=False, progress=False,
              time_budget=60)
    return package_result(r, tmp_path_factory.mktemp("contract") / "churn", name="churn")


@pytest.fixture(scope="module")
def service(package):
    s = Server("--package", package)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def base_rows(package):
    """Three rows the contract takes as they are (the case's value goes into the middle one)."""
    raw = load("demo", n_rows=200, seed=11).drop(columns=["churn", "churn_reason"])
    pkg = load_package(package)
    encoder = pkg.model.cleaner.encoder(pkg.schema)
    ok = raw[[not any(e.row == i for e in encoder.problems(raw)) for i in range(len(raw))]]
    ok = ok[ok["contract"].notna() & ok["age"].notna()]
    return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
            for r in ok.head(3).to_dict(orient="records")]


@pytest.mark.parametrize("case, column, value, refused", ROWS, ids=[r[0] for r in ROWS])
def test_batch_prediction_and_the_service_take_and_refuse_the_same_rows(case, column, value, refused, package, service,
                                                                         base_rows, tmp_path):
    rows = [dict(r) for r in base_rows]
    if column:
        rows[1][column] = value
    r = httpx.post(f"{service.url}/v1/models/churn/predict", json=rows, timeout=30)
    path = tmp_path / "rows.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    try:
        pred, _ = predict_file(package, str(path), tmp_path / "out.csv")
        batch_error = None
    except DataError as exc:
        batch_error = str(exc)
    if refused:
        assert r.status_code == 422, (case, r.status_code, r.text[:300])
        detail = " ".join(r.json()["errors"]) if "errors" in r.json() else r.text
        assert f"row 1: '{column}'" in detail, (case, detail[:300])
        assert batch_error is not None and f"row 1: '{column}'" in batch_error, (case, batch_error)
        assert not (tmp_path / "out.csv").exists()  # nothing written for a refused table
    else:
        assert r.status_code == 200, (case, r.text[:300])
        assert batch_error is None, (case, batch_error)
        served = np.array([list(p["probabilities"].values()) for p in r.json()["predictions"]])
        assert np.allclose(served, pred[list(r.json()["predictions"][0]["probabilities"])].to_numpy(), atol=1e-12), case


@pytest.mark.parametrize("case, column, value", JSON_ONLY, ids=[r[0] for r in JSON_ONLY])
def test_the_service_refuses_a_value_of_the_wrong_json_type(case, column, value, service, base_rows):
    rows = [dict(r) for r in base_rows]
    rows[1][column] = value
    r = httpx.post(f"{service.url}/v1/models/churn/predict", json=rows, timeout=30)
    assert r.status_code == 422, (case, r.status_code, r.text[:300])
    assert f"row 1: '{column}'" in r.text, (case, r.text[:300])


@pytest.mark.parametrize("policy", ["skip", "missing"])
def test_batch_prediction_keeps_going_when_asked_and_lists_every_refused_value(policy, package, base_rows, tmp_path):
    rows = [dict(r) for r in base_rows] * 2
    rows[1] = rows[1] | {"age": "forty"}
    rows[4] = rows[4] | {"signup_date": "soon"}
    path = tmp_path / "rows.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    pred, refused = predict_file(package, str(path), tmp_path / "out.csv", on_bad_rows=policy)
    assert refused[["row", "column"]].values.tolist() == [[1, "age"], [4, "signup_date"]]
    listed = pd.read_csv(tmp_path / "out.refused.csv")
    assert listed["problem"].str.contains("not a number|not a date").all()
    written = pd.read_csv(tmp_path / "out.csv")
    if policy == "skip":
        assert written["row"].tolist() == [0, 2, 3, 5]
    else:
        assert len(written) == 6


def test_outcomes_fed_back_are_read_like_training_labels():
    from workbench.monitor.feedback import FeedbackError, check_outcomes

    got = check_outcomes([{"request_id": "a", "actual": "yes "}, {"request_id": "b", "actual": "NO."}], "binary",
                         ["No", "Yes"])
    assert got == [("a", "Yes"), ("b", "No")]
    assert check_outcomes({"request_id": "c", "actual": 1.0}, "multiclass", ["1", "2", "3"]) == [("c", "1")]
    assert check_outcomes({"request_id": "d", "actual": "1,234.5"}, "regression", []) == [("d", "1234.5")]
    with pytest.raises(FeedbackError, match="row 0"):
        check_outcomes({"request_id": "e", "actual": "maybe"}, "binary", ["No", "Yes"])
    with pytest.raises(FeedbackError, match="row 0"):
        check_outcomes({"request_id": "f", "actual": True}, "regression", [])


def test_a_columns_conventions_never_misread_the_other_spelling():
    from workbench.data.columns import read_date, read_number

    assert read_number("0.5", comma=True) == 0.5 and read_number("1.234,5", comma=True) == 1234.5
    assert read_number("12,75", comma=True) == 12.75
    for year_first in ("2024-01-05T10:00:00Z", "2024-01-05T10:00:00+01:00", "2024/01/05", "2024-01-05"):
        assert str(read_date(year_first, True)) == "2024-01-05", year_first  # day first only for d/m/y
    assert str(read_date("05/01/2024", True)) == "2024-01-05" and str(read_date("05/01/2024")) == "2024-05-01"


def test_skipping_bad_rows_goes_by_position_when_the_index_repeats(package, base_rows):
    from workbench.data.encode import screen

    pkg = load_package(package)
    df = pd.DataFrame([dict(r) for r in base_rows] + [dict(base_rows[0])], index=[7, 7, 8, 9])
    df["age"] = df["age"].astype(object)
    df.iloc[1, df.columns.get_loc("age")] = "forty"  # the second of two rows labelled 7
    kept, refused = screen(pkg.model.cleaner.encoder(pkg.schema), df, "skip")
    assert refused["row"].tolist() == [1] and len(kept) == 3 and kept.iloc[0].equals(df.iloc[0])
    everything, _ = screen(pkg.model.cleaner.encoder(pkg.schema), df.iloc[1:2], "skip")
    assert len(everything) == 0 and len(pkg.model.predict_frame(everything)) == 0
