"""Decomposed serving: one part server per part (its own process on 127.0.0.1, or a remote address), and a front
with the ordinary service's API that cleans each request once, fans the cleaned rows out to the parts concurrently,
combines, and answers.

Part protocol: ``POST /score`` with the cleaned rows as an Arrow IPC stream (categories travel as dictionaries, so
the part sees exactly the frame the whole model would) → the part's output as a ``.npy`` array (no pickle);
``GET /healthz``. A required part that fails makes the front answer 503 naming it; optional members are left out,
the others' weights renormalized, and the answer marked ``degraded``.
"""
from __future__ import annotations

import io
import json
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from starlette.requests import Request  # at module level: FastAPI reads the handler's annotation by name

from workbench.child import ChildServer, free_port
from workbench.decompose.core import DecomposedModel, Part, PartError, combiner_model, load_part, part_stub
from workbench.errors import WorkbenchError
from workbench.extras import extra

PART_ENV = "WORKBENCH_PART"
NPY = "application/x-npy"
ARROW = "application/vnd.apache.arrow.stream"


# ---- the part server ---------------------------------------------------------------------------------------------

def part_app():
    """The part server's ASGI app (uvicorn factory); the part folder comes from the environment."""
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse, Response

    cfg = json.loads(os.environ[PART_ENV])
    part = load_part(cfg["folder"])
    app = FastAPI(title=f"part {part.name}", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok", "part": part.name, "pid": os.getpid()}

    @app.post("/score")
    async def score(request: Request):
        try:
            body = await request.body()
            # tree-range parts may get the booster's float matrix (.npy) instead of the cleaned frame (Arrow)
            X = np.load(io.BytesIO(body), allow_pickle=False) if request.headers.get("content-type") == NPY else from_arrow(body)
            out = part.score(X, cfg["task"], cfg["n_classes"])
        except Exception as exc:  # noqa: BLE001 - the front needs the reason, not a trace
            return JSONResponse({"error": f"{type(exc).__name__}: {exc}"}, status_code=500)
        return Response(_npy(out), media_type="application/octet-stream")

    return app


def to_arrow(X: pd.DataFrame) -> bytes:
    with extra("parquet"):
        import pyarrow as pa

    table = pa.Table.from_pandas(X, preserve_index=False)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return sink.getvalue().to_pybytes()


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def from_arrow(data: bytes) -> pd.DataFrame:
    with extra("parquet"):
        import pyarrow as pa

    return pa.ipc.open_stream(data).read_all().to_pandas()


# ---- the front's view of a part ----------------------------------------------------------------------------------

@dataclass
class RemotePart(Part):
    """A part that answers over HTTP; ``score`` raises PartError when it does not answer within ``timeout``."""

    url: str = ""
    timeout: float = 5.0
    _client: object = field(default=None, repr=False)

    def score(self, X: pd.DataFrame, task: str, n_classes: int) -> np.ndarray:
        import httpx

        if self._client is None:
            self._client = httpx.Client(timeout=self.timeout)
        try:
            r = self._client.post(f"{self.url}/score", content=_npy(X) if isinstance(X, np.ndarray) else to_arrow(X),
                                  headers={"content-type": NPY if isinstance(X, np.ndarray) else ARROW})
        except httpx.HTTPError as exc:
            raise PartError(f"part '{self.name}' at {self.url} did not answer ({type(exc).__name__})") from None
        if r.status_code != 200:
            raise PartError(f"part '{self.name}' at {self.url} failed: {r.text[:200]}")
        out = np.load(io.BytesIO(r.content), allow_pickle=False)
        if len(out) != len(X):
            raise PartError(f"part '{self.name}' answered {len(out)} rows for {len(X)}")
        return out

    def healthy(self) -> bool:
        import httpx

        try:
            return httpx.get(f"{self.url}/healthz", timeout=min(self.timeout, 2.0)).status_code == 200
        except httpx.HTTPError:
            return False


class Fanout:
    """Scores cleaned rows on every remote part at once; failures become ``None`` (the combiner decides), and each
    part's latency and failures are reported to ``observe(part, seconds, ok)``."""

    def __init__(self, model: DecomposedModel, observe=None):
        self.model = model
        self.pool = ThreadPoolExecutor(max_workers=max(2, len(model.parts)), thread_name_prefix="part")
        self.observe = observe  # set by the service: its metrics
        self.matrix = False  # the parts take the row plan's float matrix (LightGBM tree ranges)

    def scores(self, X: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
        d = self.model

        def one(p):
            t = time.perf_counter()
            try:
                out = p.score(X, d.task, d.n_classes)
            except PartError:
                ok, out = False, None
            else:
                ok = True
            if self.observe is not None:
                self.observe(p.name, time.perf_counter() - t, ok)
            return out
        outputs = list(self.pool.map(one, d.parts))
        return d.combine(outputs, X)


# ---- part processes ----------------------------------------------------------------------------------------------

class PartFleet:
    """One uvicorn process per part of a decomposed package, on free ports of 127.0.0.1; ``supervise`` restarts a
    part that died (on its port, so the front reaches it again without restarting)."""

    def __init__(self, package: str | Path, *, host: str = "127.0.0.1"):
        self.package = Path(package)
        spec = json.loads((self.package / "model.json").read_text())
        est = spec["estimator"]
        if est.get("format") != "decomposed":
            raise PartError(f"{package} is not a decomposed package (make one with `workbench decompose`)")
        self.task, self.n_classes = est["task"], int(est["n_classes"])
        self.folders = [self.package / name for name in est["parts"]]
        self.host = host
        self.ports = [free_port() for _ in self.folders]
        self.servers: list[ChildServer | None] = [None] * len(self.folders)
        self._stop = threading.Event()

    @property
    def urls(self) -> list[str]:
        return [f"http://{self.host}:{p}" for p in self.ports]

    def start(self, i: int | None = None, wait: float = 60) -> None:
        which = [i] if i is not None else range(len(self.folders))
        for j in which:
            env = {PART_ENV: json.dumps({"folder": str(self.folders[j]), "task": self.task, "n_classes": self.n_classes})}
            self.servers[j] = ChildServer(
                [sys.executable, "-m", "uvicorn", "--factory", "workbench.decompose.serving:part_app", "--host", self.host,
                 "--port", str(self.ports[j]), "--log-level", "warning", "--no-access-log"],
                self.urls[j], ready="/healthz", env=env).start()
        for j in which:
            try:
                self.servers[j].wait_ready(wait)
            except WorkbenchError as exc:
                raise PartError(f"part server {j} ({self.folders[j].name}: is it a valid part?): {exc}") from None

    def supervise(self, every: float = 1.0) -> threading.Thread:
        def loop():
            while not self._stop.wait(every):
                for j, server in enumerate(self.servers):
                    if server is not None and not server.running():
                        try:
                            server.stop()  # its temporary log goes
                            self.start(j)
                        except PartError:
                            pass  # tried again on the next round
        t = threading.Thread(target=loop, daemon=True, name="part-supervisor")
        t.start()
        return t

    def stop(self) -> None:
        self._stop.set()
        running = [server for server in self.servers if server is not None]
        with ThreadPoolExecutor(max(1, len(running))) as pool:  # all parts finish their requests at once, not in turn
            list(pool.map(lambda server: server.stop(grace=20), running))


def front_model(folder: str | Path, urls: list[str], timeout: float):
    """A decomposed package's model as the front holds it: the cleaner and the combiner here, each part the part
    server at the same position in ``urls``."""
    n = len(json.loads((Path(folder) / "model.json").read_text())["estimator"]["parts"])
    if len(urls) != n:
        raise PartError(f"{folder} has {n} parts; {len(urls)} part addresses given")
    return combiner_model(folder, lambda i, f: part_stub(f, RemotePart, url=urls[i].rstrip("/"), timeout=timeout))


def takes_matrix(folder: str | Path, encoder) -> bool:
    """Can the front send this decomposed package's parts the row plan's float matrix? Only tree-range parts of a
    LightGBM model whose stored categories are exactly the cleaner's (what the matrix encodes)."""
    folder = Path(folder)
    spec = json.loads((folder / "model.json").read_text())["estimator"]
    if spec["combiner"] != "sum_link":
        return False
    first = folder / spec["parts"][0]
    meta = json.loads((first / "part.json").read_text())
    if meta["estimator"].get("format") != "lightgbm":
        return False
    text = (first / meta["estimator"]["file"]).read_text()
    return encoder.encodes(json.loads(text.rsplit("pandas_categorical:", 1)[1]) if "pandas_categorical:" in text else [])
