"""One data contract, no silent loss: what the service refuses of a request's values and bodies, run for real
(uvicorn on 127.0.0.1) on demo churn rows with two more columns: a category of codes ("1", "2", "3", "A") and a
true/false one."""
import gzip
import json
import math
import zlib

import httpx
import numpy as np
import pytest

from servers import Server
from workbench.data import load
from workbench.data.columns import read_number
from workbench.data.encode import InputError
from workbench.data.schema import DEFAULT_MAX_CHARS, Schema
from workbench.registry.package import load_package, package_result

PREDICT, INFER = "/v1/models/churn/predict", "/v2/models/churn/infer"


def _with_codes_and_flags(df, seed: int):
    rng = np.random.default_rng(seed)
    return df.assign(plan_code=rng.choice(["1", "2", "3", "A"], size=len(df), p=[0.3, 0.3, 0.25, 0.15]).astype(object),
                     paperless=rng.random(len(df)) < 0.5)


@pytest.fixture(scope="module")
def package(demo_df, tmp_path_factory):
    from workbench import train

    r = train(_with_codes_and_flags(demo_df, 0), "churn", models=["lightgbm"], folds=3, log=False, progress=False,
              time_budget=60)
    return package_result(r, tmp_path_factory.mktemp("input") / "churn", name="churn", archive=True)


@pytest.fixture(scope="module")
def rows(package):
    """Rows the model takes, as JSON records (missing values as null)."""
    plan = load_package(package).model.plan(load_package(package).schema)
    raw = _with_codes_and_flags(load("demo", n_rows=60, seed=21), 1).drop(columns=["churn"])
    out = []
    for rec in raw.to_dict(orient="records"):
        rec = {k: (None if isinstance(v, float) and math.isnan(v) else v.item() if isinstance(v, np.generic) else v)
               for k, v in rec.items()}
        try:
            plan.check([rec])
        except InputError:
            continue
        out.append(rec)
    return out[:5]


@pytest.fixture(scope="module")
def server(package):
    s = Server("--package", package, "--max-body-mb", "1")
    yield s
    s.stop()


def _probabilities(r: httpx.Response) -> list:
    assert r.status_code == 200, r.text
    return [p["probabilities"] for p in r.json()["predictions"]]


def _v2_body(server, rows: list[dict], **override) -> dict:
    """An inference request as the model metadata describes it: FP64 numbers, BYTES text ("" when missing)."""
    meta = httpx.get(f"{server.url}/v2/models/churn").json()
    inputs = []
    for i in meta["inputs"]:
        values = [r[i["name"]] for r in rows]
        if i["datatype"] == "FP64":
            data = [read_number(v) for v in values]
        else:
            data = ["" if v is None else str(v) for v in values]
        inputs.append({"name": i["name"], "shape": [len(rows)], "datatype": i["datatype"], "data": data}
                      | override.get(i["name"], {}))
    return {"inputs": inputs}


@pytest.mark.parametrize("column,value,message", [
    ("tenure_months", True, "row 2: 'tenure_months' is true, a JSON boolean, not a number"),
    ("region", 3, "row 2: 'region' is 3, a JSON number, not one of its categories ('North', "),
    ("region", False, "row 2: 'region' is false, a JSON boolean, not one of its categories"),
    ("plan_code", 2.0, "row 2: 'plan_code' is 2.0, a JSON number, not one of its categories"),  # its category is "2"
    ("plan_code", 7, "row 2: 'plan_code' is 7, a JSON number, not one of its categories"),
    ("signup_date", 20240131, "row 2: 'signup_date' is 20240131, a JSON number, not a date"),
])
def test_a_value_of_the_wrong_json_type_is_422_naming_field_and_row(server, rows, column, value, message):
    batch = [*rows[:2], rows[2] | {column: value}, *rows[3:]]
    r = httpx.post(server.url + PREDICT, json=batch)
    assert r.status_code == 422 and message in r.json()["error"], r.text
    assert r.json()["errors"] == [r.json()["error"]]  # that value alone
    one = httpx.post(server.url + PREDICT, json=rows[2] | {column: value})
    assert one.status_code == 422 and message.replace("row 2", "row 0") in one.json()["error"], one.text


def test_numbers_and_booleans_that_spell_a_category_and_numbers_written_as_text_are_taken_as_their_text(server, rows):
    as_text = [r | {"plan_code": "2", "paperless": "True", "tenure_months": "12.5", "total_charges": "1,234.50"}
               for r in rows]
    as_json = [r | {"plan_code": 2, "paperless": True, "tenure_months": 12.5, "total_charges": 1234.5} for r in rows]
    expected = _probabilities(httpx.post(server.url + PREDICT, json=as_text))
    assert _probabilities(httpx.post(server.url + PREDICT, json=as_json)) == expected
    assert _probabilities(httpx.post(server.url + PREDICT, json=as_json[0])) == expected[:1]


def test_text_longer_than_the_contract_is_422_and_a_known_spelling_is_not_measured(server, package, rows):
    schema = load_package(package).schema
    limits = {c.name: c.max_chars for c in schema}
    assert limits["region"] == limits["signup_date"] == 64 and limits["tenure_months"] is None  # 4 × 10, at least 64
    for column in ("region", "signup_date"):
        batch = [*rows[:3], rows[3] | {column: "x" * 200_000}]
        r = httpx.post(server.url + PREDICT, json=batch)
        assert r.status_code == 422, r.text
        assert f"row 3: '{column}' is text of 200,000 characters; this column takes at most 64" in r.json()["error"]
        assert "xxxxxxxxxx" not in r.text  # the value is not echoed back
    ok = rows[0] | {"region": "  " + rows[0]["region"].upper() + " " * 40}  # another spelling, within the limit
    assert httpx.post(server.url + PREDICT, json=ok).status_code == 200


def test_schemas_stored_before_the_limit_take_a_thousand_characters(package, rows):
    pkg = load_package(package)
    stored = json.loads(pkg.schema.to_json())
    for c in stored["columns"]:
        del c["max_chars"]
    old = Schema.from_json(json.dumps(stored))
    assert {c.name: c.max_chars for c in old if c.type != "number"} == dict.fromkeys(
        [c.name for c in old if c.type != "number"], DEFAULT_MAX_CHARS)
    plan = pkg.model.plan(old)
    assert plan.check([rows[0] | {"region": "New region " + "x" * 900}]).shape[0] == 1  # unseen: "(other)"
    with pytest.raises(InputError, match="row 0: 'region' is text of 1,001 characters; this column takes at most "
                                         "1,000"):
        plan.check([rows[0] | {"region": "x" * 1001}])


@pytest.mark.parametrize("encoding,compress", [("gzip", gzip.compress), ("deflate", zlib.compress)])
def test_a_compressed_body_is_answered_as_the_plain_body(server, rows, encoding, compress):
    for path, body in ((PREDICT, rows), (INFER, _v2_body(server, rows))):
        plain = httpx.post(server.url + path, json=body)
        packed = httpx.post(server.url + path, content=compress(json.dumps(body).encode()),
                            headers={"content-type": "application/json", "content-encoding": encoding})
        assert plain.status_code == packed.status_code == 200, packed.text
        if path == PREDICT:
            assert _probabilities(packed) == _probabilities(plain)
        else:
            out = {o["name"]: o["data"] for o in packed.json()["outputs"]}
            assert out["probabilities"] == {o["name"]: o["data"] for o in plain.json()["outputs"]}["probabilities"]


def test_a_gzip_bomb_is_413_and_an_encoding_not_accepted_is_415(server, rows):
    bomb = gzip.compress(b"[" + b" " * (64 * 1024 * 1024) + b"]")  # 64 KB that inflate to 64 MB; the limit is 1 MB
    assert len(bomb) < 100_000
    for path in (PREDICT, INFER):
        r = httpx.post(server.url + path, content=bomb, headers={"content-type": "application/json",
                                                                 "content-encoding": "gzip"}, timeout=30)
        assert r.status_code == 413, r.text
        assert "over the limit of 1048576 bytes (decoded from gzip)" in r.json()["error"]
        r = httpx.post(server.url + path, content=json.dumps(rows).encode(),
                       headers={"content-type": "application/json", "content-encoding": "br"})
        assert r.status_code == 415 and "Content-Encoding 'br' is not accepted" in r.json()["error"], r.text
        assert "gzip or deflate" in r.json()["error"]
    broken = gzip.compress(json.dumps(rows).encode())
    for body, message in ((broken[:-12], "the gzip body is cut short"), (b"not gzip", "not valid gzip data")):
        r = httpx.post(server.url + PREDICT, content=body, headers={"content-type": "application/json",
                                                                   "content-encoding": "gzip"})
        assert r.status_code == 400 and message in r.json()["error"], r.text
    assert httpx.post(server.url + PREDICT, json=rows).status_code == 200  # still serving


def test_v2_metadata_datatypes_are_the_contract(server, rows):
    """Each input's advertised datatype is taken; a number datatype for a category or date input, BYTES of anything
    but strings, BOOL for a number input, and a shape that does not match the data are 422s naming the input; BYTES
    for a number input are read as text numbers, row by row."""
    meta = {i["name"]: i["datatype"] for i in httpx.get(f"{server.url}/v2/models/churn").json()["inputs"]}
    assert meta["tenure_months"] == "FP64" and meta["region"] == meta["signup_date"] == meta["plan_code"] == "BYTES"
    url, n = server.url + INFER, len(rows)
    expected = httpx.post(url, json=_v2_body(server, rows))
    assert expected.status_code == 200, expected.text
    bad = [
        ({"region": {"datatype": "FP64", "data": [1.0] * n}},
         "input 'region': datatype FP64 contradicts the model metadata: 'region' is a category input of datatype "
         "BYTES"),
        ({"signup_date": {"datatype": "INT64", "data": [20240131] * n}},
         "input 'signup_date': datatype INT64 contradicts the model metadata: 'signup_date' is a date input"),
        ({"tenure_months": {"datatype": "BOOL", "data": [True] * n}},
         "input 'tenure_months': datatype BOOL contradicts the model metadata: 'tenure_months' is a number input"),
        ({"plan_code": {"data": [1] * n}}, "input 'plan_code' row 0: BYTES data are strings (or null), not 1"),
        ({"region": {"shape": [n + 1]}}, f"input 'region': shape [{n + 1}] does not match its {n} values"),
        ({"tenure_months": {"datatype": "BYTES", "data": ["12", "12", "twelve", "12", "12"][:n]}},
         "row 2: 'tenure_months' is not a number ('twelve')"),
    ]
    for override, message in bad:
        r = httpx.post(url, json=_v2_body(server, rows, **override))
        assert r.status_code == 422 and message in r.json()["error"], (override, r.text)
    texts = {"tenure_months": {"datatype": "BYTES", "data": [str(r["tenure_months"]) for r in rows]},
             "support_calls": {"datatype": "INT64", "data": [int(r["support_calls"]) for r in rows]}}
    r = httpx.post(url, json=_v2_body(server, rows, **texts))
    assert r.status_code == 200, r.text
    assert r.json()["outputs"][1]["data"] == expected.json()["outputs"][1]["data"]
