"""Prometheus metrics of one service process: requests and errors, latency, rows, load, and what it predicts."""
from __future__ import annotations

import numpy as np
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    """One registry per app, so that several services in one process (tests) keep separate counts."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self):
        r = self.registry = CollectorRegistry()
        self.requests = Counter("workbench_requests", "Prediction requests by model, version and HTTP status",
                                ["model", "version", "status"], registry=r)
        self.latency = Histogram("workbench_request_seconds", "Time to answer a prediction request", ["model"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.rows = Counter("workbench_rows_scored", "Rows scored", ["model", "version"], registry=r)
        self.overloaded = Counter("workbench_overloaded", "Requests refused at once (503, Retry-After): more scoring "
                                  "was queued ahead of them than the service's bound (max_wait_s)", ["model"], registry=r)
        self.expired = Counter("workbench_expired", "Requests whose deadline passed while they waited for the scoring "
                               "thread: answered 504, and their rows not scored (or the rest of them)", ["model"], registry=r)
        self.queued = Gauge("workbench_scoring_queue_seconds", "Estimated seconds of scoring queued for the scoring thread",
                            registry=r)
        self.output_errors = Counter("workbench_output_check_failures", "Answers refused by the output check",
                                     ["model", "version"], registry=r)
        self.classes = Counter("workbench_predicted_class", "Predicted classes", ["model", "version", "label"], registry=r)
        self.values = Histogram("workbench_predicted_value", "Predicted values (regression)", ["model", "version"],
                                registry=r)

        self.part_latency = Histogram("workbench_part_seconds", "Time a decomposed model's part took to answer",
                                      ["model", "part"], buckets=LATENCY_BUCKETS, registry=r)
        self.part_failures = Counter("workbench_part_failures", "Parts that did not answer (timeouts, errors, down)",
                                     ["model", "part"], registry=r)
        self.log_dropped = Counter("workbench_log_dropped_rows", "Predicted rows not recorded: the log's queue was full",
                                   ["model"], registry=r)
        self.log_cpu = Gauge("workbench_log_writer_cpu_seconds", "CPU time the prediction log's writer thread used",
                             registry=r)
        self.log_rows = Gauge("workbench_log_rows_written", "Predicted rows the prediction log has written", registry=r)
        self.alerts = Gauge("workbench_alert", "Monitoring alerts that hold now (1) or held before (0)",
                            ["model", "kind", "subject"], registry=r)
        self._bound: dict = {}

    def part_observer(self, name: str):
        """The callback a decomposed model's fan-out reports each part's time and outcome to."""
        def observe(part: str, seconds: float, ok: bool) -> None:
            self.part_latency.labels(name, part).observe(seconds)
            if not ok:
                self.part_failures.labels(name, part).inc()
        return observe

    def set_alerts(self, name: str, active: list[tuple[str, str]]) -> None:
        for kind, subject in active:
            self.alerts.labels(name, kind, subject).set(1)
        for labels in list(self.alerts._metrics):  # the ones that no longer hold go back to 0
            if labels[0] == name and tuple(labels[1:]) not in set(active):
                self.alerts.labels(*labels).set(0)

    def latency_of(self, name: str):
        return self._child(("latency", name), lambda: self.latency.labels(name))

    def _child(self, key, make):
        child = self._bound.get(key)
        if child is None:
            child = self._bound[key] = make()
        return child

    def observe(self, served, scores: np.ndarray, n: int) -> None:
        """A successful request: its rows and what it predicted (children bound once per model version)."""
        name, version = served.name, served.version
        self._child(("ok", name, version), lambda: self.requests.labels(name, version, "200")).inc()
        self._child(("rows", name, version), lambda: self.rows.labels(name, version)).inc(n)
        if served.task == "regression":
            h = self._child(("values", name, version), lambda: self.values.labels(name, version))
            for v in scores[:1000].tolist():
                h.observe(v)
            return
        labels = served.labels
        if n == 1:
            row = scores[0].tolist()
            best = [row.index(max(row))]
        else:
            best = scores.argmax(axis=1).tolist()
        counts = {}
        for k in best:
            counts[k] = counts.get(k, 0) + 1
        for k, c in counts.items():
            self._child(("class", name, version, k),
                        lambda k=k: self.classes.labels(name, version, labels[k])).inc(c)

    def render(self) -> bytes:
        return generate_latest(self.registry)
