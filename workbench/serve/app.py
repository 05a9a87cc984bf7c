"""The prediction service: a FastAPI app factory serving packages by name and version.

Endpoints: ``/v1/models/{name}[/versions/{v}]/predict`` (JSON records of raw business values),
``/v1/models/{name}/feedback`` (true outcomes, by the request ids the predictions returned), the Open Inference
Protocol V2 (``/v2/...``), ``/healthz``, ``/readyz``, ``/metrics`` and, behind the admin key, ``/admin/models`` and
``/admin/reload``. Bodies may come gzip- or deflate-compressed (the size limit counts decoded bytes); they are parsed
with orjson and checked on the event loop; the model scores there only when its measured cost is a few microseconds
(a LightGBM row), else on one scoring thread beside the loop, within the request's deadline, and a request that would
queue behind more than ``max_wait_s`` of scoring is refused at once (503).
"""
from __future__ import annotations

import asyncio
import contextvars
import gc
import hmac
import json
import logging
import math
import os
import threading
import time
import zlib
from collections import deque
from dataclasses import asdict, dataclass, field

import numpy as np
import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from threadpoolctl import threadpool_limits

from workbench.data.encode import InputError
from workbench.decompose.core import PartError
from workbench.errors import WorkbenchError
from workbench.models.contrib import SCALES
from workbench.monitor import FeedbackError, PredictionLog, Recorder, check_outcomes
from workbench.monitor.quality import Checker, raise_alerts
from workbench.registry import repository
from workbench.serve import v2
from workbench.serve.errors import ERROR_DOC, ApiError
from workbench.serve.metrics import Metrics
from workbench.serve.models import ModelStore, NotExplained, NotServed, OutputError, load_source

log = logging.getLogger("workbench.serve")
CONFIG_ENV = "WORKBENCH_SERVE_CONFIG"
INLINE_ROWS = 1000  # up to this many rows (a few ms) are checked on the event loop; bigger batches in a worker thread
EXPLAIN_INLINE_S = 1e-3  # reasons estimated to cost less than this are worked out on the event loop (a LightGBM row)
INLINE_S = 100e-6  # scoring estimated to cost less than this runs on the event loop: handing it to the scoring thread
# costs two wake-ups (~40 µs). LightGBM scores up to ~35 rows in that time; bigger batches and slower models go to the
# thread (an ensemble's call costs milliseconds, a k-NN's row a millisecond)
CHUNK_S = 0.25  # the scoring thread splits a model's queued rows into calls of about this many seconds (and at least
# ten times its cost per call): the oldest requests are answered first, and one past its deadline costs at most one call
# a service judges its alerts on its newest requests and rows, this many together (20,000 single-row requests, or
# ~400 of 100 rows): a check costs the same at any traffic and batch size
CHECK_ROWS = 40_000
_SCORED: contextvars.ContextVar = contextvars.ContextVar("scored", default=None)  # this request's rows, for the log
# the request encodings a body may come in, as zlib's wbits ("deflate" is the zlib format, as RFC 9110 defines it)
ENCODINGS = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


@dataclass
class ServeConfig:
    """What ``workbench serve`` starts with; travels to uvicorn's worker processes as JSON in the environment."""

    sources: list[str]
    keys: list[str] = field(default_factory=list)
    admin_keys: list[str] = field(default_factory=list)
    max_body_bytes: int = 10 * 1024 * 1024
    max_rows: int = 10_000
    timeout_s: float = 30.0
    max_wait_s: float = 1.0  # a request that would queue behind more scoring than this (estimated seconds) gets 503 at once
    allow_unseen: bool = True
    media_root: str = ""  # the folder image and audio paths are read from; empty = data: URIs only
    threads: int = 1
    watch_s: float = 0.0  # poll the repository every this many seconds for moved aliases (0 = never)

    parts: dict[str, list[str]] = field(default_factory=dict)  # decomposed package → its part servers' addresses
    part_timeout_s: float = 5.0

    log_store: str = ""  # the prediction log (sqlite file); empty = predictions are not recorded
    log_sample: float = 1.0
    log_queue: int = 10_000
    check_s: float = 0.0  # evaluate the monitoring alerts this often (0 = never)
    retention_hours: float = 24 * 7

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> "ServeConfig":
        return cls(**json.loads(os.environ[CONFIG_ENV]))


def app_from_env():
    """uvicorn's factory (``workbench.serve.app:app_from_env``): the config comes from the environment. The fast lane
    for predictions wraps the whole app, in front of the middleware every other request passes through."""
    return create_app(ServeConfig.from_env()).state.fast_lane


def create_app(config: ServeConfig, store: ModelStore | None = None) -> FastAPI:
    """The service for ``config.sources`` (package paths or registry references), loaded and checked now."""
    store = store or ModelStore()
    if not store.names():
        for src in config.sources:
            store.add(load_source(src, allow_unseen=config.allow_unseen, media_root=config.media_root,
                                  parts=config.parts.get(src), part_timeout=config.part_timeout_s))
    if not store.names():
        raise ValueError("nothing to serve: give at least one --model or --package")
    metrics = Metrics()
    open_service = not (config.keys or config.admin_keys)
    if open_service:
        log.warning("no API keys configured: the service is open to anyone who can reach it")
    keys = [k.encode() for k in config.keys + config.admin_keys]
    admin_keys = [k.encode() for k in config.admin_keys]

    app = FastAPI(title="AIMS Workbench prediction service", version="1", docs_url="/docs", redoc_url=None,
                  openapi_url="/openapi.json")
    recorder = _recorder(config, metrics)
    scorer = _Scorer(on_expired=lambda name: metrics.expired.labels(name).inc())
    app.state.store, app.state.metrics, app.state.config, app.state.recorder = store, metrics, config, recorder

    def measure(served) -> None:
        """Time ``served``'s model on its example row before it takes requests (the scorer keeps the figure current)."""
        if served.fanout is not None:
            return
        plan = served.plan
        try:
            scorer.measure(plan, plan.check([served.example()]), config.threads)
        except Exception as exc:  # noqa: BLE001 - its first requests teach the scorer instead; said once
            log.warning("could not time %s/%s on its example row (%s): its cost is learned from its first requests",
                        served.name, served.version, exc)

    for served in store.all():
        measure(served)

    def authorize(request: Request, admin: bool = False) -> None:
        allowed = admin_keys if admin else keys
        if not allowed:
            return
        given = request.headers.get("x-api-key") or request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not given:
            raise ApiError(401, "an API key is required: send it in the X-API-Key header")
        g = given.encode()
        ok = False
        for k in allowed:  # compare with every key, in constant time: no early exit that timing could reveal
            ok |= hmac.compare_digest(g, k)
        if not ok:
            raise ApiError(403, "this API key is not allowed here" + (" (admin key needed)" if admin else ""))

    async def read_body(request: Request, *, untyped_ok: bool = False, binary: bool = False) -> bytes:
        """The body, decoded when it comes gzip- or deflate-compressed; the limit holds for the decoded bytes.
        ``binary``: any Content-Type (V2's binary tensors), else JSON's (or none, with ``untyped_ok``)."""
        ctype = request.headers.get("content-type", "")
        is_json = ctype.startswith("application/json") or (untyped_ok and not ctype)  # V2 clients send none
        if not (binary or is_json):
            raise ApiError(415, f"send JSON with Content-Type: application/json (got '{ctype or 'none'}')")
        size = request.headers.get("content-length")
        if size is not None and size.isdigit() and int(size) > config.max_body_bytes:
            raise ApiError(413, f"the body has {size} bytes; the limit is {config.max_body_bytes}")
        encoding = request.headers.get("content-encoding", "").strip().lower()
        if encoding not in ("", "identity"):
            return await _inflated(request.stream(), encoding, config.max_body_bytes)
        if size is not None and size.isdigit():
            return await request.body()
        body = bytearray()  # no length given (chunked): count while reading
        async for chunk in request.stream():
            body += chunk
            if len(body) > config.max_body_bytes:
                raise ApiError(413, f"the body is over the limit of {config.max_body_bytes} bytes")
        return bytes(body)

    def parse(body: bytes):
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise ApiError(400, f"the body is not valid JSON ({exc}); NaN and Infinity are not JSON: send null") from None

    async def read_json(request: Request, *, untyped_ok: bool = False):
        return parse(await read_body(request, untyped_ok=untyped_ok))

    async def score(served, records: list, raw: bytes | None = None) -> tuple[list[dict], object, list[str]]:
        """``served``'s answer to ``records``; ``raw`` is the body they came in, which the log keeps as it is."""
        if not records:
            raise ApiError(422, "no rows: send one JSON object, or a list of at least one")
        if len(records) > config.max_rows:
            raise ApiError(413, f"{len(records)} rows in one request; the limit is {config.max_rows}: send smaller batches")
        deadline = time.monotonic() + config.timeout_s
        try:
            if served.fanout is not None:  # the parts answer over the network: never wait on the event loop
                if served.fanout.observe is None:
                    served.fanout.observe = metrics.part_observer(served.name)
                out = await asyncio.wait_for(run_in_threadpool(served.predict, records, config.threads), config.timeout_s)
            else:
                plan = served.plan
                if scorer.cost(plan, len(records)) < INLINE_S:  # a LightGBM row: cheaper than the hand-over
                    out = served.predict(records, config.threads)
                else:
                    out = served.answer(await score_aside(served, plan, records, deadline))
            if recorder is not None:
                _SCORED.set((records if raw is None else raw, out[0][0]["request_id"], out[1]))
            return out
        except PartError as exc:
            raise ApiError(503, f"{exc}; try again when the part is back") from None
        except InputError as exc:
            raise ApiError(422, str(exc), [str(e) for e in exc.errors]) from None
        except OutputError as exc:
            metrics.output_errors.labels(served.name, served.version).inc()
            raise ApiError(500, f"output check failed: {exc}; no prediction was returned") from None
        except asyncio.TimeoutError:
            raise ApiError(504, f"scoring took longer than {config.timeout_s:g} s; send smaller batches") from None

    async def score_aside(served, plan, records: list, deadline: float) -> np.ndarray:
        """``records`` checked (here, or in a worker thread when there are many) and scored on the scoring thread by
        ``deadline``; refused at once when the scoring queued ahead of them is over the bound."""
        refuse_if_overloaded(served)
        X = plan.check(records) if len(records) <= INLINE_ROWS else await run_in_threadpool(plan.check, records)
        return await scorer.score(plan, X, config.threads, deadline, served.name)

    async def explainer_of(served, records: list):
        """``served``'s explainer (made on first use, off the loop) and the records' matrix (already checked)."""
        try:
            ex = served.__dict__.get("explainer") or await run_in_threadpool(lambda: served.explainer)
        except NotExplained as exc:
            raise ApiError(422, str(exc)) from None
        check = served.plan.check
        return ex, check(records) if len(records) <= INLINE_ROWS else await run_in_threadpool(check, records)

    async def cheap_or_aside(ex, call, *args):
        """``call(*args)`` on the loop when the explainer is cheap for these rows (a LightGBM row), else in a thread."""
        if ex.row_seconds * len(args[0]) < EXPLAIN_INLINE_S:
            return call(*args)
        return await run_in_threadpool(call, *args)

    def refuse_if_overloaded(served) -> None:
        """503 with Retry-After when more scoring is queued than ``max_wait_s`` (or the timeout, if shorter): a
        request that would wait that long is better told at once than left to time out."""
        wait, bound = scorer.wait(), min(config.max_wait_s, config.timeout_s)
        if wait > bound:
            metrics.overloaded.labels(served.name).inc()
            retry = max(1, math.ceil(wait - bound))
            raise ApiError(503, f"the service is overloaded: about {wait:.1f} s of scoring is queued ahead of this "
                                f"request (the limit is {bound:g} s); retry after {retry} s",
                           headers={"Retry-After": str(retry)})

    def lookup(name: str, version: str | None = None):
        try:
            return store.get(name, version)
        except NotServed as exc:
            raise ApiError(404, str(exc)) from None

    async def respond(request: Request, name: str, version: str | None, build) -> Response:
        """Authorize, find the model, let ``build(served)`` make the answer; count every outcome and its time."""
        t0 = time.perf_counter()
        served, status = None, 500
        try:
            authorize(request)
            served = lookup(name, version)
            response = Response(orjson.dumps(await build(served)), media_type="application/json")
            status = 200
            return response
        except ApiError as exc:
            status = exc.status_code
            metrics.requests.labels(name, served.version if served else "", str(exc.status_code)).inc()
            raise
        finally:
            if served is not None:
                elapsed = time.perf_counter() - t0
                metrics.latency_of(served.name).observe(elapsed)
                if recorder is not None:  # one append to a buffer: the writing happens on the log's own thread
                    scored = _SCORED.get() if status == 200 else None
                    recorder.record(served, status, elapsed, *(scored or ()))

    async def predict(request: Request, name: str, version: str | None = None) -> Response:
        async def build(served):
            if served.fanout is None and scorer.cost(served.plan, 1) >= INLINE_S:  # not a row of it is scored here:
                refuse_if_overloaded(served)  # when it must wait, say so before reading the body
            raw = await read_body(request)
            body = parse(raw)
            records = [body] if isinstance(body, dict) else body
            if not isinstance(records, list):
                raise ApiError(422, "send one JSON object (a row) or a list of them")
            k = _reasons_wanted(request)
            rows, scores, missing = await score(served, records, raw)
            metrics.observe(served, scores, len(rows))
            answer = {"model": served.name, "version": served.version, "predictions": rows}
            if k:  # each row's top-k reasons, the same numbers as the library's (RowExplainer.reasons)
                ex, X = await explainer_of(served, records)
                for row, why in zip(rows, await cheap_or_aside(ex, ex.reasons, X, records, k, scores)):
                    row["reasons"] = why
                answer["explanation"] = _explanation(ex)
            if missing:  # a decomposed model answered without some optional members: said, never hidden
                answer |= {"degraded": True, "missing_parts": missing}
            return answer
        return await respond(request, name, version, build)

    for name in store.names():
        example = store.get(name).example()
        body_doc = _request_doc(store.get(name), example)
        app.add_api_route(f"/v1/models/{name}/predict", _bind(predict, name), methods=["POST"], summary=f"Predict with {name}",
                          openapi_extra=body_doc, responses=_responses(store.get(name)), tags=["v1"])
        app.add_api_route(f"/v1/models/{name}/versions/{{version}}/predict", _bind_version(predict, name),
                          methods=["POST"], summary=f"Predict with one version of {name}", openapi_extra=body_doc,
                          responses=_responses(store.get(name)), tags=["v1"])

    async def not_served(request: Request, name: str, version: str | None = None):
        lookup(name, version)  # raises the 404 that lists what is served

    app.add_api_route("/v1/models/{name}/predict", not_served, methods=["POST"], include_in_schema=False)
    app.add_api_route("/v1/models/{name}/versions/{version}/predict", not_served, methods=["POST"], include_in_schema=False)

    async def feedback(request: Request, name: str) -> Response:
        """True outcomes for earlier predictions: ``[{"request_id": ..., "actual": ...}, ...]``."""
        authorize(request)
        served = lookup(name)
        if recorder is None:
            raise ApiError(409, "this service does not record its predictions (started with --no-log): outcomes "
                                "cannot be matched to them")
        body = await read_json(request)
        try:
            outcomes = check_outcomes(body, served.task, served.labels)
        except FeedbackError as exc:
            raise ApiError(422, str(exc), exc.errors) from None

        def store():
            recorder.flush(5)  # a prediction answered a moment ago may still be on its way to the log
            return recorder.log.feedback(name, outcomes)
        stored, unknown = await run_in_threadpool(store)
        answer = {"model": name, "stored": stored, "unknown": unknown}
        if unknown:
            answer["message"] = (f"{len(unknown)} request ids are not predictions of {name} in this log (mistyped, "
                                 "from another model, or older than the retention)")
        return Response(orjson.dumps(answer), media_type="application/json")

    for name in store.names():
        app.add_api_route(f"/v1/models/{name}/feedback", _bind(feedback, name), methods=["POST"], tags=["v1"],
                          summary=f"True outcomes for predictions of {name}", openapi_extra=_feedback_doc(store.get(name)),
                          responses={200: {"description": "stored, and the unknown request ids"},
                                     **{c: ERROR_DOC for c in (400, 401, 403, 404, 409, 413, 415, 422)}})
    app.add_api_route("/v1/models/{name}/feedback", not_served, methods=["POST"], include_in_schema=False)

    @app.get("/healthz", tags=["health"], responses={200: {"description": "the process is up"}})
    async def healthz():
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], responses={200: {"description": "models loaded"}, 503: ERROR_DOC})
    async def readyz():
        body = {"status": "ready", "models": {n: store.default(n) for n in store.names()}}
        fronts = [s for s in store.all() if s.fanout is not None]
        if fronts:
            parts = await run_in_threadpool(lambda: {f"{s.name}/{s.version}": {p.name: {"healthy": p.healthy(), "required": p.required, "url": p.url}
                                                     for p in s.fanout.model.parts} for s in fronts})
            body["parts"] = parts
            if any(not p["healthy"] and p["required"] for ps in parts.values() for p in ps.values()):
                return Response(orjson.dumps(body | {"status": "a required part is down"}), status_code=503,
                                media_type="application/json")
        return body

    @app.get("/metrics", tags=["health"], include_in_schema=False)
    async def prometheus():
        metrics.queued.set(scorer.wait())
        if recorder is not None:
            metrics.log_cpu.set(recorder.cpu_s)
            metrics.log_rows.set(recorder.written)
        return Response(metrics.render(), media_type=metrics.content_type)

    @app.get("/admin/models", tags=["admin"], responses={401: ERROR_DOC, 403: ERROR_DOC})
    async def loaded(request: Request):
        authorize(request, admin=True)
        return {"models": [s.describe() | {"default": store.default(s.name) == s.version} for s in store.all()]}

    @app.post("/admin/reload", tags=["admin"], responses={400: ERROR_DOC, 401: ERROR_DOC, 403: ERROR_DOC, 404: ERROR_DOC, 415: ERROR_DOC,
                                                          422: ERROR_DOC})
    async def reload(request: Request):
        """Load another version (``{"source": "churn@champion"}`` or a package path) and route its name to it."""
        authorize(request, admin=True)
        body = await read_json(request)
        if not isinstance(body, dict) or not isinstance(body.get("source"), str):
            raise ApiError(422, 'send {"source": "NAME@alias" | "NAME/version" | "/path/to/package"}')
        return await swap(body["source"])

    async def swap(source: str) -> dict:
        try:
            served = await run_in_threadpool(load_source, source, allow_unseen=config.allow_unseen,
                                             media_root=config.media_root)
        except WorkbenchError as exc:
            raise ApiError(404 if "no registered model" in str(exc) or "has no" in str(exc) else 422, str(exc)) from None
        if served.name not in store.names():
            raise ApiError(422, f"{source} is model '{served.name}'; this service serves {', '.join(store.names())} "
                                "(start another service for a new model)")
        await run_in_threadpool(measure, served)
        previous = store.add(served)
        log.info("now serving %s version %s (was %s)", served.name, served.version, previous)
        return {"name": served.name, "version": served.version, "previous": previous}

    app.state.swap = swap
    app.state.fast_lane = _FastLane(app, store, predict)
    _document_names(app, store)
    v2.add_routes(app, store, respond, read_body, parse, score, metrics, lookup, (explainer_of, cheap_or_aside))
    _error_handlers(app)

    @app.on_event("startup")
    async def freeze_startup_objects():
        # everything loaded so far (libraries, models) lives as long as the process: move it out of the
        # collector's sight, or each full collection walks millions of objects and stalls requests for tens of ms
        gc.collect()
        gc.freeze()

    @app.on_event("shutdown")
    async def close_scorer():
        scorer.close()

    if recorder is not None:
        @app.on_event("shutdown")
        async def close_log():
            await run_in_threadpool(recorder.close)  # what is queued is written before the process ends

        if config.check_s > 0:
            @app.on_event("startup")
            async def check():
                app.state.checker = Checker(recorder.log.path, CHECK_ROWS)
                asyncio.get_running_loop().create_task(_check_alerts(config, store, recorder, app.state.checker,
                                                                     metrics))

            @app.on_event("shutdown")
            async def close_checker():
                app.state.checker.close()

    if config.watch_s > 0:
        @app.on_event("startup")
        async def watch():
            asyncio.get_running_loop().create_task(_watch_aliases(config, store, swap))

    return app


async def _inflated(chunks, encoding: str, limit: int) -> bytes:
    """A compressed body decoded as it arrives, never more than ``limit`` bytes of it in or out: a few kilobytes that
    would inflate to gigabytes (a zip bomb) are refused at the limit, not held."""
    if encoding not in ENCODINGS:
        raise ApiError(415, f"Content-Encoding '{encoding}' is not accepted: send the body uncompressed, or with "
                            f"Content-Encoding {' or '.join(ENCODINGS)}")
    inflate, body, read = zlib.decompressobj(ENCODINGS[encoding]), bytearray(), 0
    try:
        async for chunk in chunks:
            read += len(chunk)
            while chunk:  # at most one byte past the limit at a time: what is left waits in unconsumed_tail
                body += inflate.decompress(chunk, limit + 1 - len(body))
                if len(body) > limit or read > limit:
                    raise ApiError(413, f"the body is over the limit of {limit} bytes (decoded from {encoding})")
                chunk = inflate.unconsumed_tail
        body += inflate.flush()
    except zlib.error as exc:
        raise ApiError(400, f"the body is not valid {encoding} data ({exc})") from None
    if len(body) > limit:
        raise ApiError(413, f"the body is over the limit of {limit} bytes (decoded from {encoding})")
    if not inflate.eof or inflate.unused_data:
        raise ApiError(400, f"the {encoding} body is " + ("cut short" if not inflate.eof else "followed by other data"))
    return bytes(body)


def _recorder(config: ServeConfig, metrics: Metrics):
    if not config.log_store:
        return None
    return Recorder(PredictionLog(config.log_store, cache_rows=2 * CHECK_ROWS), queue_size=config.log_queue,
                    sample=config.log_sample,
                    on_drop=lambda name, n: metrics.log_dropped.labels(name).inc(n))


async def _check_alerts(config: ServeConfig, store: ModelStore, recorder, checker, metrics: Metrics) -> None:
    """Every ``check_s``: compact what is older than the retention, evaluate each model's alerts (in the checker's
    process: the judging is pandas work that would stall requests here); a new alert is a row in the log, a line in
    the service log and a Prometheus gauge (1 while it holds)."""
    while True:
        await asyncio.sleep(config.check_s)
        try:
            await run_in_threadpool(recorder.flush, 5)
            await run_in_threadpool(recorder.log.compact, config.retention_hours * 3600)
        except Exception as exc:  # noqa: BLE001 - a failed compaction must not stop the checks; it says why
            log.warning("could not compact the prediction log: %s", exc)
        try:
            judged = await run_in_threadpool(checker.check, store.names())
        except Exception as exc:  # noqa: BLE001 - a failed check must not stop the service; it says why
            log.warning("could not check the alerts: %s", exc)
            continue
        for name, answer in judged.items():
            if isinstance(answer, str):
                log.warning("could not check the alerts of %s: %s", name, answer)
                continue
            version, alerts = answer
            try:
                new = await run_in_threadpool(raise_alerts, recorder.log, name, version, alerts, time.time())
            except Exception as exc:  # noqa: BLE001
                log.warning("could not record the alerts of %s: %s", name, exc)
                continue
            for a in new:
                log.warning("ALERT %s %s: %s", name, a.kind, a.message)
            metrics.set_alerts(name, [(a.kind, a.subject) for a in alerts])


async def _watch_aliases(config: ServeConfig, store: ModelStore, swap) -> None:
    """Follow moved aliases: a source ``NAME@alias`` that now names another version is loaded and swapped in."""
    refs = [s for s in config.sources if "@" in s and not os.path.exists(s)]
    while refs:
        await asyncio.sleep(config.watch_s)
        for ref in refs:
            try:
                mv = await run_in_threadpool(repository.resolve, ref)
                if str(mv.version) != store.default(mv.name):
                    await swap(ref)
            except Exception as exc:  # noqa: BLE001 - a failed poll must not stop the service; it says why
                log.warning("could not follow %s: %s", ref, exc)


def _document_names(app: FastAPI, store: ModelStore) -> None:
    """The OpenAPI document names the served models in every ``{name}`` parameter (an enum), so that clients and
    schema-driven testers reach the models instead of guessing names."""
    def openapi():
        if app.openapi_schema is None:
            doc = get_openapi(title=app.title, version=app.version, routes=app.routes)
            for item in doc.get("paths", {}).values():
                for op in item.values():
                    for param in op.get("parameters", []) if isinstance(op, dict) else []:
                        if param.get("in") == "path" and param.get("name") == "name":
                            param["schema"] = {"type": "string", "enum": store.names()}
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi


def _reasons_wanted(request: Request) -> int:
    """``?explain=k``: how many reasons each row wants (0: none)."""
    k = request.query_params.get("explain")
    if k is None:
        return 0
    if not k.isdigit() or int(k) < 1:
        raise ApiError(422, f"explain={k!r}: give how many reasons each row should get, a whole number ≥ 1 "
                            "(e.g. ?explain=3)")
    return int(k)


def _explanation(ex) -> dict:
    """What the reasons' contributions are: their scale, what it means, and how they were computed."""
    return {"output": ex.output, "scale": ex.scale, "meaning": SCALES[ex.scale], "method": ex.method, "exact": ex.exact}


def _bind(fn, name):
    async def endpoint(request: Request):
        return await fn(request, name)
    return endpoint


def _bind_version(fn, name):
    async def endpoint(request: Request, version: str):
        return await fn(request, name, version)
    return endpoint



def _row_schema(served) -> dict:
    props = {}
    for c in served.package.schema:  # a category or date is text (a number or boolean only as a category's spelling)
        t = {"type": ["number", "string"]} if c.type == "number" else {"type": ["string"], "maxLength": c.max_chars}
        if c.nullable:
            t["type"].append("null")
        if c.type == "category":
            t["description"] = f"one of {', '.join(map(str, c.categories[:20]))}" + (" ..." if len(c.categories) > 20 else "")
        props[c.name] = t
    return {"type": "object", "properties": props, "required": [c.name for c in served.package.schema]}


def _request_doc(served, example: dict) -> dict:
    row = _row_schema(served)
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"oneOf": [row, {"type": "array", "items": row, "minItems": 1}]}, "example": [example]}}},
        "parameters": [{"name": "explain", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1},
                        "description": "each row's k largest reasons: column, raw value, contribution, direction"}]}


def _feedback_doc(served) -> dict:
    actual = {"type": "number"} if served.task == "regression" else {"type": "string", "enum": served.labels}
    item = {"type": "object", "required": ["request_id", "actual"],
            "properties": {"request_id": {"type": "string"}, "actual": actual}}
    example = [{"request_id": "0123456789abcdef01-0", "actual": 1.0 if served.task == "regression" else served.labels[0]}]
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"oneOf": [item, {"type": "array", "items": item, "minItems": 1}]}, "example": example}}}}


def _responses(served) -> dict:
    pred = {"type": "object", "required": ["request_id", "prediction"], "properties": {
        "request_id": {"type": "string"},
        "prediction": {"type": "number"} if served.task == "regression" else {"type": "string"},
        "decision": {"type": "string", "description": "the class the package's decision rule chooses (when it has one)"},
        "probabilities": {"type": "object", "additionalProperties": {"type": "number"}},
        "confidence": {"type": "number"}}}
    ok = {"description": "one answer per row", "content": {"application/json": {"schema": {
        "type": "object", "required": ["model", "version", "predictions"],
        "properties": {"model": {"type": "string"}, "version": {"type": "string"},
                       "predictions": {"type": "array", "items": pred}}}}}}
    return {200: ok, **{code: ERROR_DOC for code in (400, 401, 403, 404, 413, 415, 422, 500, 503, 504)}}


def _as_json(status: int, message: str, errors=None, headers: dict | None = None) -> Response:
    body = {"error": message} | ({"errors": errors} if errors else {})
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


class _Scorer:
    """One thread beside the event loop that scores checked rows (``plan.scored``): LightGBM lets go of the
    interpreter, so the loop reads and checks the next request meanwhile. The requests that queued while it worked are
    scored together, one model at a time — one call and one hand-back to the loop — because every hand-over of the
    interpreter between the two threads costs a wake-up (~20 µs here), and those left the loop idle for a fifth of its
    time. One thread: on 2 cores a second one lowered batch throughput by 7-10 %.

    It knows what each model's calls cost (measured at load, kept current by the calls it makes), so the service can
    keep cheap scoring on the loop (``cost``) and refuse work that would wait too long (``wait``). A request's deadline
    holds on both sides: the loop answers it when it passes, and the thread drops what it has not scored of it by then.
    A model's rows go in calls of about ``CHUNK_S`` seconds, so a request past its deadline costs at most one call."""

    def __init__(self, on_expired=None):
        self._pending: deque = deque()
        self._chores: deque = deque()  # timings of newly loaded models, run between calls
        self._lock = threading.Lock()  # the queues, the rows queued by model and the call in progress
        self._queued: dict[int, int] = {}  # rows queued or being scored, by model (id of its plan)
        self._costs: dict[int, _Cost] = {}
        self._call: tuple[float, float] | None = None  # (started, estimated seconds) of the call in progress
        self._on_expired = on_expired or (lambda name: None)
        self._threads = None  # the threads the models' libraries may use, as last limited here
        self._wake = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="workbench-scorer", daemon=True)
        self._thread.start()

    def score(self, plan, X: np.ndarray, threads: int, deadline: float = math.inf, name: str = "") -> asyncio.Future:
        """The future scores of ``X`` (checked rows of ``plan``), or TimeoutError once ``deadline`` (time.monotonic)
        passes. ``name``: the model, as the expiry count names it."""
        loop = asyncio.get_running_loop()
        job = _Job(plan, X, threads, loop.create_future(), deadline, name)
        if deadline < math.inf:
            job.timer = loop.call_later(max(deadline - time.monotonic(), 0.0), _expire, job.future)
        with self._lock:
            self._pending.append(job)
            self._queued[id(plan)] = self._queued.get(id(plan), 0) + len(X)
        self._wake.set()
        return job.future

    def measure(self, plan, X1: np.ndarray, threads: int = 1) -> None:
        """Time ``plan.scored`` on one checked row and on copies of it — what a call and a row cost — on the scoring
        thread between its calls, as its calls run there. Blocks until done."""
        def timed(n: int) -> tuple[int, float]:
            X = X1 if n == 1 else np.repeat(X1, n, axis=0)
            t0 = time.perf_counter()
            plan.scored(X, threads)
            return n, time.perf_counter() - t0

        def chore() -> None:
            self._limit(threads)
            timed(1)  # the first call pays for lazy set-up
            one = min(timed(1), timed(1))
            many = timed(100)
            if many[1] < 2 * one[1]:  # a call costs far more than a row: with 100 rows their part is lost in noise
                many = timed(1000)
            self._costs[id(plan)] = _Cost(plan, [one, many], measured=True)

        done, failed = threading.Event(), []

        def run() -> None:
            try:
                chore()
            except Exception as exc:  # noqa: BLE001 - raised in the caller's thread
                failed.append(exc)
            done.set()

        with self._lock:
            self._chores.append(run)
        self._wake.set()
        done.wait()
        if failed:
            raise failed[0]

    def cost(self, plan, n: int) -> float:
        """Estimated seconds ``plan.scored`` takes for ``n`` rows (infinite while nothing is known of it)."""
        c = self._costs.get(id(plan))
        return math.inf if c is None else c(n)

    def wait(self) -> float:
        """Estimated seconds of scoring ahead of a request queued now."""
        with self._lock:
            queued = [(self._costs.get(key), rows) for key, rows in self._queued.items() if rows]
            call = self._call
        ahead = sum(c(rows) for c, rows in queued if c is not None)
        if call is not None:  # what the call in progress has done already
            ahead -= min(time.monotonic() - call[0], call[1])
        return max(ahead, 0.0)

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        self._thread.join(10)

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()  # before taking the queue: what comes after sets it again
            if self._closed:
                return
            while True:
                with self._lock:
                    jobs, chores = list(self._pending), list(self._chores)
                    self._pending.clear()
                    self._chores.clear()
                if not jobs and not chores:
                    break
                for chore in chores:
                    chore()
                groups: dict = {}
                for job in jobs:  # one group per model (usually all of them)
                    groups.setdefault(id(job.plan), []).append(job)
                for group in groups.values():
                    self._score_together(group)

    def _score_together(self, group: list) -> None:
        """One model's queued jobs, in order, in as few calls as the chunk size allows; what is past its deadline or
        failed is dropped, not scored."""
        plan = group[0].plan
        cost = self._costs.get(id(plan))
        limit = cost.rows_per_call() if cost is not None and cost.measured else math.inf
        jobs = deque(group)
        while jobs:
            now, call, rows = time.monotonic(), [], 0  # call: (job, first row, end row)
            while jobs and rows < limit:
                job = jobs[0]
                if job.failed or job.deadline <= now or job.future.done():  # 504 already, or failed in an earlier call
                    jobs.popleft()
                    self._forget(plan, len(job.X) - job.next)
                    if job.deadline <= now and not job.failed:
                        self._on_expired(job.name)
                    continue
                end = len(job.X) if limit == math.inf else min(len(job.X), job.next + limit - rows)
                call.append((job, job.next, end))
                rows += end - job.next
                job.next = end
                if end == len(job.X):
                    jobs.popleft()
            if call:
                self._call_once(plan, call, rows, cost)

    def _call_once(self, plan, call: list, rows: int, cost) -> None:
        job, start, end = call[0]
        X = job.X[start:end] if len(call) == 1 else np.concatenate([j.X[a:b] for j, a, b in call])
        self._limit(job.threads)
        started = time.monotonic()
        with self._lock:
            self._call = (started, cost(rows) if cost is not None else 0.0)
        try:
            scores, error = plan.scored(X, job.threads), None
        except Exception as exc:  # noqa: BLE001 - each request in the call gets it
            scores, error = None, exc
        seconds = time.monotonic() - started
        with self._lock:
            self._call = None
        self._forget(plan, rows)
        if error is None:
            if cost is None:
                cost = self._costs[id(plan)] = _Cost(plan, [])
            cost.observe(rows, seconds)
        done, at = [], 0
        for j, a, b in call:
            if error is not None:
                j.failed = True
                done.append((j, None, error))
                continue
            j.parts.append(scores[at:at + b - a])
            at += b - a
            if b == len(j.X):
                done.append((j, j.parts[0] if len(j.parts) == 1 else np.concatenate(j.parts), None))
        if done:
            job.future.get_loop().call_soon_threadsafe(_settle, done)

    def _limit(self, threads: int) -> None:
        """The models' own thread pools (BLAS, OpenMP) get the service's threads, not every core: OpenMP threads that
        spin while they wait would take the event loop's core. (OpenMP's limit holds for the thread that sets it.)"""
        if threads != self._threads:
            threadpool_limits(threads)
            self._threads = threads

    def _forget(self, plan, rows: int) -> None:
        with self._lock:
            self._queued[id(plan)] -= rows


@dataclass(eq=False)
class _Job:
    """One request's checked rows waiting for the scoring thread."""

    plan: object
    X: np.ndarray
    threads: int
    future: asyncio.Future
    deadline: float
    name: str
    timer: asyncio.TimerHandle | None = None
    next: int = 0  # its first row not yet taken into a call
    parts: list = field(default_factory=list)  # its scores so far, call by call
    failed: bool = False


class _Cost:
    """What one model's calls cost on the scoring thread: a line through the (rows, seconds) of its calls — seconds a
    call plus seconds a row — in which older calls weigh less, starting from its timing at load. A busier machine
    raises the estimates within a few calls, a quieter one lowers them."""

    KEEP = 0.95  # a call's weight in the line shrinks by this much with every later call

    def __init__(self, plan, calls: list[tuple[int, float]], *, measured: bool = False):
        self.plan = plan  # held, so that its id stays its own
        self.measured = measured
        self.fixed = self.per_row = 0.0
        self._w = self._n = self._s = self._nn = self._ns = 0.0  # weighted sums of 1, rows, seconds, rows², rows·seconds
        for n, seconds in calls:
            self.observe(n, seconds)

    def __call__(self, n: int) -> float:
        return self.fixed + self.per_row * n

    def rows_per_call(self) -> float:
        """Rows in a call of about CHUNK_S seconds (or ten times the cost of a call, if more)."""
        if self.per_row <= 0:
            return math.inf
        return max(1, int((max(CHUNK_S, 10 * self.fixed) - self.fixed) / self.per_row))

    def observe(self, n: int, seconds: float) -> None:
        k = self.KEEP
        self._w, self._n, self._s = k * self._w + 1, k * self._n + n, k * self._s + seconds
        self._nn, self._ns = k * self._nn + n * n, k * self._ns + n * seconds
        spread = self._nn * self._w - self._n ** 2
        slope = (self._ns * self._w - self._n * self._s) / spread if spread > 1e-6 * self._nn * self._w else 0.0
        if slope > 0:  # calls of different sizes tell a call's part from a row's (a line that falls is noise)
            self.per_row = slope
        elif self.per_row == 0.0:  # nothing known yet: count it all by the row
            self.per_row = self._s / self._n
        self.fixed = max((self._s - self.per_row * self._n) / self._w, 0.0)


def _expire(future: asyncio.Future) -> None:
    if not future.done():
        future.set_exception(asyncio.TimeoutError())


def _settle(done: list) -> None:
    for job, scores, exc in done:
        if job.timer is not None:
            job.timer.cancel()
        if not job.future.done():  # answered already: its deadline passed meanwhile
            if exc is None:
                job.future.set_result(scores)
            else:
                job.future.set_exception(exc)


class _FastLane:
    """``POST /v1/models/{name}[/versions/{v}]/predict`` of a served name goes straight to its handler: no routing
    table, no dependency solving, no exception middleware (about 30 µs a request). Answers and errors are the same
    as through FastAPI's route (which stays, for the OpenAPI document); every other request passes through."""

    def __init__(self, app, store: ModelStore, predict):
        self.app, self.store, self.predict = app, store, predict

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] == "POST":
            target = self._target(scope["path"])
            if target is not None:
                try:
                    response = await self.predict(Request(scope, receive), *target)
                except ApiError as exc:
                    response = _as_json(exc.status_code, exc.detail, exc.errors, exc.headers)
                except Exception as exc:  # noqa: BLE001 - the same answer as the app's own last-resort handler
                    log.error("internal error on %s: %s: %s", scope["path"], type(exc).__name__, exc)
                    response = _as_json(500, f"internal error ({type(exc).__name__}); the service logged it")
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _target(self, path: str):
        parts = path.split("/")  # ["", "v1", "models", name, "predict"] or [..., name, "versions", v, "predict"]
        if len(parts) < 5 or parts[1] != "v1" or parts[2] != "models" or parts[-1] != "predict":
            return None
        if parts[3] not in self.store.names():
            return None  # the app's 404 lists what is served
        if len(parts) == 5:
            return parts[3], None
        if len(parts) == 7 and parts[4] == "versions" and parts[5]:
            return parts[3], parts[5]
        return None


def _error_handlers(app: FastAPI) -> None:
    as_json = _as_json

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        return as_json(exc.status_code, str(exc.detail), getattr(exc, "errors", None), exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        problems = [f"{'.'.join(map(str, e.get('loc', [])))}: {e.get('msg')}" for e in exc.errors()]
        return as_json(422, "; ".join(problems) or "invalid request", problems)

    @app.exception_handler(Exception)
    async def crash(request: Request, exc: Exception):
        log.error("internal error on %s: %s: %s", request.url.path, type(exc).__name__, exc)
        return as_json(500, f"internal error ({type(exc).__name__}); the service logged it")
