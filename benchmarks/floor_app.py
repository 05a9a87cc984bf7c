"""The floor of serving cost: a minimal FastAPI app that parses JSON and calls the same LightGBM booster on numbers
that are already encoded. Started by benchmarks/serving.py with uvicorn (``--factory benchmarks.floor_app:app``)."""
import os

import lightgbm as lgb
import numpy as np
import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response


def app() -> FastAPI:
    booster = lgb.Booster(model_file=os.environ["FLOOR_MODEL"])
    api = FastAPI()

    @api.post("/predict")
    async def predict(request: Request):
        rows = orjson.loads(await request.body())["x"]
        p = booster.predict(np.asarray(rows, dtype=np.float64), num_threads=1)
        return Response(orjson.dumps({"p": p.tolist()}), media_type="application/json")

    @api.get("/ping")
    async def ping():
        return Response(b"{}", media_type="application/json")

    return api
