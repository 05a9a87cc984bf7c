"""The service under more work than it can score, run for real (uvicorn on 127.0.0.1) with a deliberately slow model:
it says so at once (503 with Retry-After) instead of letting clients time out, and its event loop stays free."""
import asyncio
import http.client
import math
import threading
import time

import numpy as np
import orjson
import pytest

from servers import Server
from workbench.data import load
from workbench.serve import ServeConfig

CLIENTS = 16
LOAD_S = 4.0
PREDICT = "/v1/models/slow/predict"


def _records(df) -> list[dict]:
    return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
            for r in df.to_dict(orient="records")]


@pytest.fixture(scope="module")
def slow_package(tmp_path_factory):
    """A bag of 50 k-NN models over 6,000 demo rows: ~15 ms a call and ~1 ms a row (more on a busy machine)."""
    from workbench.models.compare import Candidate, encode_target, refit
    from workbench.models.train import prepare
    from workbench.models.trained import TrainedModel
    from workbench.registry.package import build_package

    p = prepare(load("demo", n_rows=6000), "churn")
    c = p.cleaned
    bag = refit(Candidate("bag", "bag", {"base": "knn", "n_estimators": 50}, c.task), c.X, c.y)
    model = TrainedModel(c.cleaner, bag, c.task, encode_target(c.y, c.task)[1], "bag")
    return build_package(model, tmp_path_factory.mktemp("load") / "slow", schema=p.schema, reference=p.reference,
                         name="slow", target="churn")


@pytest.fixture(scope="module")
def rows():
    return _records(load("demo", n_rows=1000, seed=21).drop(columns=["churn"]))


@pytest.fixture(scope="module")
def server(slow_package):
    s = Server("--package", slow_package)
    yield s
    s.stop()


def _post(port: int, path: str, body: bytes | None = None, timeout: float = 15) -> tuple[int, dict, bytes, float]:
    """One request on a connection of its own: status, headers, body and seconds to the whole answer."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        t0 = time.perf_counter()
        if body is None:
            conn.request("GET", path)
        else:
            conn.request("POST", path, body, {"Content-Type": "application/json"})
        r = conn.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data, time.perf_counter() - t0
    finally:
        conn.close()


def _metric(port: int, name: str, **labels) -> float:
    """A sample of the service's /metrics (0 when it has none yet)."""
    from prometheus_client.parser import text_string_to_metric_families

    text = _post(port, "/metrics")[2].decode()
    return sum(s.value for family in text_string_to_metric_families(text) for s in family.samples
               if s.name == name and labels.items() <= s.labels.items())


def test_healthz_answers_at_once_while_a_thousand_rows_are_scored(server, rows):
    body = orjson.dumps(rows[:1000])
    answer = {}
    big = threading.Thread(target=lambda: answer.update(r=_post(server.port, PREDICT, body, 60)))
    big.start()
    time.sleep(0.05)  # read and checked by now: from here on it is being scored
    probes = []
    while big.is_alive():
        status, _, _, seconds = _post(server.port, "/healthz")
        probes.append((status, seconds))
        time.sleep(0.01)
    big.join()
    status, _, data, scoring_s = answer["r"]
    assert status == 200 and len(orjson.loads(data)["predictions"]) == 1000
    latencies = [s for _, s in probes]
    print(f"\n1,000 rows scored in {scoring_s:.2f} s; {len(probes)} /healthz meanwhile: "
          f"median {np.median(latencies) * 1e3:.1f} ms, max {max(latencies) * 1e3:.1f} ms")
    assert len(probes) >= 10  # the scoring lasted: the probes ran while it went on
    assert all(status == 200 for status, _ in probes)
    assert np.percentile(latencies, 99) < 0.05  # (a percentile: one probe may meet a stall of the shared machine)


def test_under_overload_every_answer_is_a_200_or_an_immediate_503_with_retry_after(server, rows):
    """16 clients on keep-alive connections, each sending its next batch as soon as the last is answered, with three
    times the work the bound on queued scoring allows (batches sized by what a row costs now); the refused pause 0.1 s
    and try again."""
    bound = ServeConfig([]).max_wait_s
    status, _, _, seconds = _post(server.port, PREDICT, orjson.dumps(rows[:200]))
    assert status == 200
    batch = min(max(round(3 * bound / (CLIENTS * seconds / 200)), 50), 400)
    bodies = [orjson.dumps((rows * 2)[:n]) for n in (batch // 2, batch, batch * 3 // 2)]
    answers, errors, stop = [], [], time.monotonic() + LOAD_S

    def client(k: int) -> None:
        conn, i = http.client.HTTPConnection("127.0.0.1", server.port, timeout=15), k
        while time.monotonic() < stop:
            try:
                t0 = time.perf_counter()
                conn.request("POST", PREDICT, bodies[i % 3], {"Content-Type": "application/json"})
                r = conn.getresponse()
                data = r.read()
            except Exception as exc:  # noqa: BLE001 - a time-out or a dropped connection is a failure to report
                errors.append(repr(exc))
                conn.close()
                continue
            answers.append((r.status, time.perf_counter() - t0, r.getheader("Retry-After"), data if r.status != 200 else b""))
            i += 1
            if r.status == 503:
                time.sleep(0.1)
        conn.close()

    health = []

    def probe() -> None:
        while time.monotonic() < stop:
            health.append(_post(server.port, "/healthz")[3])
            time.sleep(0.05)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)] + [threading.Thread(target=probe)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0

    assert not errors, errors[:3]
    assert {status for status, *_ in answers} <= {200, 503}, {status for status, *_ in answers}
    ok = [seconds for status, seconds, *_ in answers if status == 200]
    refused = [(seconds, retry, data) for status, seconds, retry, data in answers if status == 503]
    p99 = float(np.percentile([s for s, _, _ in refused], 99)) if refused else math.nan
    print(f"\nbatches of {batch // 2}-{batch * 3 // 2} rows: {len(ok)} answered ({len(ok) / elapsed:.1f}/s, "
          f"slowest {max(ok):.2f} s), {len(refused)} refused (p50 {np.median([s for s, _, _ in refused]) * 1e3:.1f} ms, "
          f"p99 {p99 * 1e3:.1f} ms), /healthz p99 {np.percentile(health, 99) * 1e3:.1f} ms, over {elapsed:.1f} s")
    assert len(ok) >= 5 and len(refused) >= 20  # it kept scoring, and it was overloaded
    for seconds, retry, data in refused:
        assert retry is not None and int(retry) >= 1
        assert "overloaded" in orjson.loads(data)["error"]
    assert p99 <= 0.05
    assert max(ok) < 10  # a request it takes is answered within the bound on queued work, plus its own scoring
    assert _metric(server.port, "workbench_overloaded_total", model="slow") == len(refused)
    assert _metric(server.port, "workbench_requests_total", model="slow", status="503") == len(refused)


def test_a_request_still_scoring_at_its_deadline_is_a_504_then_and_its_other_rows_are_not_scored(slow_package, rows):
    """10,000 rows take the model 10 s or more, in calls of about 0.25 s: the answer is a 504 at the 0.5 s deadline,
    and the rows after the call in progress are never scored."""
    s = Server("--package", slow_package, "--timeout", "0.5")
    try:
        status, _, data, seconds = _post(s.port, PREDICT, orjson.dumps((rows * 10)[:10_000]))
        assert status == 504 and "longer than 0.5 s" in orjson.loads(data)["error"]
        assert seconds < 1.0, seconds  # at its deadline, not when the model would have been done with it
        deadline = time.monotonic() + 10
        while _metric(s.port, "workbench_expired_total", model="slow") < 1:  # once the call in progress ends
            assert time.monotonic() < deadline, "the rest of the request was not dropped at its deadline"
            time.sleep(0.1)
        while _post(s.port, PREDICT, orjson.dumps(rows[:1]))[0] != 200:  # and it serves on
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        s.stop()


def test_a_queued_request_whose_deadline_passed_is_never_scored():
    from workbench.serve.app import _Scorer

    class Plan:  # 0.3 s a call, whatever its rows
        def __init__(self):
            self.calls = []

        def scored(self, X, threads):
            self.calls.append(X[:, 0].tolist())
            time.sleep(0.3)
            return X[:, 0]

    expired = []

    async def run():
        scorer, plan = _Scorer(on_expired=expired.append), Plan()
        try:
            first = scorer.score(plan, np.full((1, 1), 1.0), 1)
            while not plan.calls:  # until the thread is scoring the first one
                await asyncio.sleep(0.005)
            t0 = time.monotonic()
            late = scorer.score(plan, np.full((1, 1), 2.0), 1, time.monotonic() + 0.1, "slow")
            kept = scorer.score(plan, np.full((1, 1), 3.0), 1, time.monotonic() + 5, "slow")
            answers = await asyncio.gather(late, return_exceptions=True)
            answered_s = time.monotonic() - t0
            return answers + await asyncio.gather(first, kept), answered_s, plan.calls
        finally:
            scorer.close()

    (late, first, kept), answered_s, calls = asyncio.run(run())
    assert isinstance(late, TimeoutError) and answered_s < 0.25  # at its deadline, while the first call went on
    assert first.tolist() == [1.0] and kept.tolist() == [3.0]
    assert calls == [[1.0], [3.0]] and expired == ["slow"]  # the late one was never scored, and counted
