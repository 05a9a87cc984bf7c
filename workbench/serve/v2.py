"""The Open Inference Protocol (V2) over REST: one named input tensor per column, so existing clients such as
``tritonclient.http`` work unchanged (JSON tensors, and the binary tensor data extension for inputs).

Inputs, as the model metadata advertises them: a number column is FP64 (any number datatype but BOOL is taken, and
BYTES too: its items are read as text numbers, "1,234.50" included, and one the number reader cannot read is a 422
naming input and row), a category or date column is BYTES; any other datatype is a 422 naming the input. BYTES items
are strings, number items numbers; null is a missing value in any tensor.

Outputs: ``prediction`` (BYTES labels, or FP64 values), ``probabilities`` (FP64, rows × classes, classification),
``decision`` (BYTES, when the package has a decision rule), ``request_id`` (BYTES, one per row: the monitoring feedback key), and only when a request names it among its
``outputs``, ``contributions`` (FP64, rows × (raw columns + bias), × classes for multiclass; its parameters name the
columns and the scale on which bias + contributions equal the model's output).
"""
from __future__ import annotations

import struct

import numpy as np
import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response

from workbench.models.contrib import BIAS
from workbench.serve.errors import ERROR_DOC, ApiError


NUMERIC = {"FP64": "<f8", "FP32": "<f4", "FP16": "<f2", "INT64": "<i8", "INT32": "<i4", "INT16": "<i2", "INT8": "<i1",
           "UINT64": "<u8", "UINT32": "<u4", "UINT16": "<u2", "UINT8": "<u1", "BOOL": "?"}
HEADER = "inference-header-content-length"
TAKES = {"FP64": {*NUMERIC, "BYTES"} - {"BOOL"}, "BYTES": {"BYTES"}}  # the datatypes an advertised datatype takes
# the JSON types of a datatype's items (null: missing), and what the error calls them
ITEMS = {"BYTES": ({str, type(None)}, "strings"), "BOOL": ({bool, type(None)}, "booleans"),
         **{dt: ({int, float, type(None)}, "numbers") for dt in NUMERIC if dt != "BOOL"}}


def add_routes(app: FastAPI, store, respond, read_body, parse, score, metrics, lookup, explain) -> None:
    """The V2 routes; ``explain`` is the app's (explainer_of, cheap_or_aside)."""
    explainer_of, cheap_or_aside = explain
    found = {404: ERROR_DOC}
    infer_errors = {code: ERROR_DOC for code in (400, 401, 403, 404, 413, 415, 422, 500, 503, 504)}

    @app.get("/v2", tags=["v2"])
    async def server_metadata():
        return {"name": "aims-workbench", "version": "1", "extensions": ["binary_tensor_data"]}

    @app.get("/v2/health/live", tags=["v2"])
    async def live():
        return {"live": True}

    @app.get("/v2/health/ready", tags=["v2"])
    async def ready():
        return {"ready": bool(store.names())}

    def metadata(served) -> dict:
        inputs = [{"name": c.name, "datatype": datatype(c), "shape": [-1]} for c in served.package.schema]
        outputs = [{"name": "prediction", "datatype": "FP64" if served.task == "regression" else "BYTES", "shape": [-1]},
                   {"name": "request_id", "datatype": "BYTES", "shape": [-1]}]
        if served.task != "regression":
            outputs.insert(1, {"name": "probabilities", "datatype": "FP64", "shape": [-1, len(served.labels)]})
        if served.package.model.decision is not None:
            outputs.insert(1, {"name": "decision", "datatype": "BYTES", "shape": [-1]})
        outputs.append({"name": "contributions", "datatype": "FP64",  # only when a request names it
                        "shape": [-1, len(served.plan.encoder.required) + 1] +
                                 ([len(served.labels)] if served.task == "multiclass" else [])})
        return {"name": served.name, "versions": store.versions(served.name), "platform": "aims-workbench",
                "inputs": inputs, "outputs": outputs, "parameters": {"classes": served.labels}}

    @app.get("/v2/models/{name}", tags=["v2"], responses=found)
    async def model_metadata(name: str):
        return metadata(lookup(name))

    @app.get("/v2/models/{name}/versions/{version}", tags=["v2"], responses=found)
    async def version_metadata(name: str, version: str):
        return metadata(lookup(name, version))

    @app.get("/v2/models/{name}/ready", tags=["v2"], responses=found)
    async def model_ready(name: str):
        return {"name": name, "ready": lookup(name) is not None}

    @app.get("/v2/models/{name}/versions/{version}/ready", tags=["v2"], responses=found)
    async def version_ready(name: str, version: str):
        return {"name": name, "ready": lookup(name, version) is not None}

    async def infer(request: Request, name: str, version: str | None) -> Response:
        async def build(served):
            body = await _read_infer(request, read_body, parse)
            records = _records(body, served.package.schema)
            rows, scores, missing = await score(served, records)
            metrics.observe(served, scores, len(rows))
            n = len(rows)
            outputs = [{"name": "prediction", "shape": [n],
                        "datatype": "FP64" if served.task == "regression" else "BYTES",
                        "data": [r["prediction"] for r in rows]}]
            if served.task != "regression":
                outputs.append({"name": "probabilities", "shape": [n, len(served.labels)], "datatype": "FP64",
                                "data": np.asarray(scores, dtype=float).ravel().tolist()})
            if rows and "decision" in rows[0]:  # the package's decision rule, as v1 answers it
                outputs.append({"name": "decision", "shape": [n], "datatype": "BYTES", "data": [r["decision"] for r in rows]})
            outputs.append({"name": "request_id", "shape": [n], "datatype": "BYTES", "data": [r["request_id"] for r in rows]})
            wanted = {o.get("name") for o in body.get("outputs") or [] if isinstance(o, dict)}
            if "contributions" in wanted:  # asked for by name only: it costs more than the prediction
                ex, X = await explainer_of(served, records)
                phi = await cheap_or_aside(ex, ex.contributions, X)
                outputs.append({"name": "contributions", "datatype": "FP64",
                                "shape": [n, phi.shape[1]] + ([phi.shape[2]] if phi.shape[2] > 1 else []),
                                "parameters": {"columns": orjson.dumps([*ex.names, BIAS]).decode(), "scale": ex.scale,
                                               "exact": ex.exact},
                                "data": phi.ravel().tolist()})
            if wanted:
                outputs = [o for o in outputs if o["name"] in wanted]
            payload = {"model_name": served.name, "model_version": served.version, "outputs": outputs}
            if missing:  # a decomposed model answered without some optional members
                payload["parameters"] = {"degraded": True, "missing_parts": ",".join(missing)}
            if "id" in body:
                payload["id"] = body["id"]
            return payload
        return await respond(request, name, version, build)

    @app.post("/v2/models/{name}/infer", tags=["v2"], responses=infer_errors)
    async def infer_default(request: Request, name: str):
        return await infer(request, name, None)

    @app.post("/v2/models/{name}/versions/{version}/infer", tags=["v2"], responses=infer_errors)
    async def infer_version(request: Request, name: str, version: str):
        return await infer(request, name, version)


def datatype(spec) -> str:
    """The datatype the model metadata advertises for a schema column."""
    return "FP64" if spec.type == "number" else "BYTES"


async def _read_infer(request: Request, read_body, parse) -> dict:
    """The inference request: plain JSON, or a JSON header followed by binary tensor data."""
    header_len = request.headers.get(HEADER)
    raw = await read_body(request, untyped_ok=True, binary=header_len is not None)
    if header_len is None:
        body = parse(raw)
    else:
        if not header_len.isdigit() or int(header_len) > len(raw):
            raise ApiError(400, f"{HEADER} is {header_len!r} but the body has {len(raw)} bytes")
        n = int(header_len)
        try:
            body = orjson.loads(raw[:n])
        except orjson.JSONDecodeError as exc:
            raise ApiError(400, f"the inference header is not valid JSON ({exc})") from None
        if isinstance(body, dict):
            _attach_binary(body, memoryview(raw)[n:])
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list) or not body["inputs"]:
        raise ApiError(422, 'an inference request is {"inputs": [{"name", "shape", "datatype", "data"}, ...]}')
    return body


def _attach_binary(body: dict, blob: memoryview) -> None:
    pos = 0
    for inp in body.get("inputs") or []:
        if not isinstance(inp, dict):
            continue
        size = (inp.get("parameters") or {}).get("binary_data_size")
        if size is None:
            continue
        if not isinstance(size, int) or size < 0 or pos + size > len(blob):
            raise ApiError(400, f"input '{inp.get('name')}': binary_data_size {size!r} runs past the body")
        chunk = bytes(blob[pos:pos + size])
        pos += size
        dt = inp.get("datatype")
        if dt == "BYTES":
            items, i = [], 0
            while i < len(chunk):
                if i + 4 > len(chunk):
                    raise ApiError(400, f"input '{inp.get('name')}': a BYTES element is cut short")
                (k,) = struct.unpack_from("<I", chunk, i)
                try:
                    items.append(chunk[i + 4:i + 4 + k].decode("utf-8"))
                except UnicodeDecodeError:
                    raise ApiError(400, f"input '{inp.get('name')}': BYTES element {len(items)} is not UTF-8 "
                                        "text") from None
                i += 4 + k
            inp["data"] = items
        elif dt in NUMERIC:
            try:
                inp["data"] = np.frombuffer(chunk, dtype=NUMERIC[dt]).tolist()
            except ValueError:
                raise ApiError(400, f"input '{inp.get('name')}': {size} bytes are not whole {dt} values") from None
        else:
            raise ApiError(400, f"input '{inp.get('name')}': unknown datatype {dt!r}")


def _records(body: dict, schema) -> list[dict]:
    """Column tensors → row records, after checking every tensor's datatype against the model metadata's and its
    shape and items against its data (the values themselves are the row encoder's to check)."""
    specs = {c.name: c for c in schema}
    columns, n = {}, None
    for inp in body["inputs"]:
        if not isinstance(inp, dict) or not isinstance(inp.get("name"), str):
            raise ApiError(422, "every input needs a name (the column), a shape, a datatype and data")
        name, shape, data, dt = inp["name"], inp.get("shape"), inp.get("data"), inp.get("datatype")
        if dt != "BYTES" and dt not in NUMERIC:
            raise ApiError(422, f"input '{name}': datatype {dt!r} is not a V2 datatype (BYTES, FP64, INT64, ...)")
        if name in columns:
            raise ApiError(422, f"input '{name}' is given twice")
        spec = specs.get(name)  # an input the model does not read: the row encoder names it
        if spec is not None and dt not in TAKES[datatype(spec)]:
            raise ApiError(422, f"input '{name}': datatype {dt} contradicts the model metadata: '{name}' is a "
                                f"{spec.type} input of datatype {datatype(spec)}" +
                                (" (or BYTES of text numbers)" if datatype(spec) == "FP64" else ""))
        if not isinstance(shape, list) or not shape or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise ApiError(422, f"input '{name}': shape must be a list of non-negative integers, e.g. [3] or [3, 1]")
        data = _flatten(data)
        if data is None:
            raise ApiError(422, f"input '{name}': data must be a list")
        size = int(np.prod(shape))
        if size != len(data) or (len(shape) > 1 and int(np.prod(shape[1:])) != 1):
            raise ApiError(422, f"input '{name}': shape {shape} does not match its {len(data)} values "
                                "(one value per row: shape [rows] or [rows, 1])")
        if n is not None and len(data) != n:
            raise ApiError(422, f"input '{name}' has {len(data)} rows, the others have {n}")
        n = len(data)
        types, what = ITEMS[dt]
        if not set(map(type, data)) <= types:
            row, v = next((i, v) for i, v in enumerate(data) if type(v) not in types)
            raise ApiError(422, f"input '{name}' row {row}: {dt} data are {what} (or null), not "
                                f"{orjson.dumps(v).decode()[:100]}")
        columns[name] = data
    return [{c: v[i] for c, v in columns.items()} for i in range(n or 0)]


def _flatten(data):
    if not isinstance(data, list):
        return None
    if data and isinstance(data[0], list):
        out = []
        for d in data:
            if not isinstance(d, list):
                return None
            out.extend(d)
        return out
    return data

