"""The models a service holds: loaded packages by name and version, each with its compiled row plan.

Swapping a version is one dict assignment: a request in flight keeps the model it started with.
"""
from __future__ import annotations

import functools
import math
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from workbench.decompose.serving import Fanout, front_model, takes_matrix
from workbench.models.contrib import RowExplainer
from workbench.models.trained import ScoringPlan
from workbench.registry import repository
from workbench.registry.package import Package, load_package
from workbench.settings import Settings, get_settings


_ROW_SUFFIXES = [f"-{i}" for i in range(10_000)]  # "-0", "-1", ...: the row's part of a batch's request ids


class NotServed(LookupError):
    """A model name or version this service does not hold."""


class NotExplained(RuntimeError):
    """A model this service cannot give reasons for."""


class OutputError(RuntimeError):
    """The model produced something that is not a valid answer (never sent as a prediction)."""


@dataclass
class Served:
    """One loaded model version, ready to answer."""

    name: str
    version: str
    source: str
    package: Package
    plan: ScoringPlan
    loaded_at: float = field(default_factory=time.time)
    fanout: object = None  # a decomposed package's parts, served by part servers (workbench.decompose.serving.Fanout)

    @property
    def task(self) -> str:
        return self.package.model.task

    @property
    def labels(self) -> list[str]:
        return [str(c) for c in (self.package.model.classes or [])]

    @functools.cached_property
    def _labels(self) -> np.ndarray:
        """The class names as an array: a request's predicted names in one indexing."""
        return np.array(self.labels, dtype=object)

    def predict(self, records: list[dict], threads: int = 1) -> tuple[list[dict], np.ndarray, list[str]]:
        """Checked records → one answer per row (prediction, probabilities by class, confidence, request id),
        the raw scores for the metrics, and the optional parts left out (decomposed models; else empty).
        Raises InputError for bad rows, OutputError for a bad answer, PartError when a required part fails."""
        missing: list[str] = []
        if self.fanout is not None:  # checked here, cleaned once, scored by the parts at once, combined
            X = self.plan.check(records)
            if not self.fanout.matrix:  # the parts need the cleaned frame (forests, ensembles' members)
                X = self.plan.encoder.to_frame(X)
            scores, missing = self.fanout.scores(X)
            scores = np.asarray(scores, dtype=float)
        else:
            scores = np.asarray(self.plan.scores(records, threads), dtype=float)
        return self.answer(scores, missing)

    def answer(self, scores: np.ndarray, missing: list[str] | None = None) -> tuple[list[dict], np.ndarray, list[str]]:
        """``predict``'s answer from the model's scores (probabilities n × classes, or values), checked; OutputError
        when they are not a valid answer. Request ids are one prefix per request (time, then random) and the row's
        number in it: unique, one urandom call."""
        missing = missing or []
        n = len(scores)
        # time first (nanoseconds, 16 hex), then random: ids sort by time, so the log appends them to its index
        if n == 1:
            ids = [f"{time.time_ns():016x}{os.urandom(4).hex()}"]
        else:
            prefix = f"{time.time_ns():016x}{os.urandom(1).hex()}"
            ids = [prefix + s for s in (_ROW_SUFFIXES[:n] if n <= len(_ROW_SUFFIXES) else map("-{}".format, range(n)))]
        if self.task == "regression":
            if not np.isfinite(scores).all():
                raise OutputError(f"{self.name}/{self.version} produced a number that is not finite")
            return [{"request_id": r, "prediction": v} for r, v in zip(ids, scores.tolist())], scores, missing
        labels = self.labels
        if scores.shape[1:] != (len(labels),) or not (
                (all(0 <= p <= 1 for p in scores[0].tolist()) and abs(scores.sum() - 1) <= 1e-6) if n == 1 else
                (((scores >= 0) & (scores <= 1)).all() and (np.abs(scores.sum(axis=1) - 1) <= 1e-6).all())):
            raise OutputError(f"{self.name}/{self.version} produced probabilities that are not finite or do not "
                              "sum to one")
        predicted = self._labels[scores.argmax(axis=1)].tolist()
        top = scores.max(axis=1).tolist()
        if len(labels) == 2:  # two classes (the common case): the probabilities' dict written out, no zip per row
            no, yes = labels
            rows = [{"request_id": r, "prediction": b, "probabilities": {no: p0, yes: p1}, "confidence": c}
                    for r, b, (p0, p1), c in zip(ids, predicted, scores.tolist(), top)]
        else:
            rows = [{"request_id": r, "prediction": b, "probabilities": dict(zip(labels, p)), "confidence": c}
                    for r, b, p, c in zip(ids, predicted, scores.tolist(), top)]
        decision = self.package.model.decision
        if decision is not None:  # the rule that pays, from what each outcome is worth
            for row, d in zip(rows, decision(scores).tolist()):
                row["decision"] = d
        return rows, scores, missing

    @functools.cached_property
    def explainer(self) -> RowExplainer:
        """Its contributions per raw column (``?explain=k``), made on first use from the package's training sample."""
        if self.fanout is not None:
            raise NotExplained("this service runs the model's parts on part servers; its reasons need the whole "
                               "model: ask a service that loads the package itself")
        return RowExplainer(self.package.model, self.package.sample, encoder=self.plan.encoder)

    def describe(self) -> dict:
        m = self.package.manifest
        return {"name": self.name, "version": self.version, "source": self.source, "model": m["model"], "task": self.task,
                "classes": self.labels or None, "kind": self.package.model.kind, "loaded_at": self.loaded_at}

    def example(self) -> dict:
        """A real row from the schema: the example request in /docs."""
        row = {}
        for c in self.package.schema:
            v = c.example
            row[c.name] = v if not (isinstance(v, float) and math.isnan(v)) else None
        return row


class ModelStore:
    """Loaded versions per model name and the version each name answers with by default."""

    def __init__(self):
        self._versions: dict[str, dict[str, Served]] = {}
        self._default: dict[str, str] = {}
        self._lock = threading.Lock()

    def add(self, served: Served, *, default: bool = True) -> str | None:
        """Hold ``served``; with ``default``, route the name to it. Returns the version it replaced as default."""
        with self._lock:
            versions = dict(self._versions.get(served.name, {}))
            versions[served.version] = served
            self._versions = {**self._versions, served.name: versions}
            previous = self._default.get(served.name)
            if default or previous is None:
                self._default = {**self._default, served.name: served.version}
            return previous

    def get(self, name: str, version: str | None = None) -> Served:
        versions = self._versions.get(name)
        if versions is None:
            raise NotServed(f"model '{name}' is not served here; served: {', '.join(sorted(self._versions)) or 'none'}")
        v = version if version is not None else self._default[name]
        if v not in versions:
            raise NotServed(f"model '{name}' has no loaded version '{v}'; loaded: {', '.join(sorted(versions))}")
        return versions[v]

    def names(self) -> list[str]:
        return sorted(self._versions)

    def versions(self, name: str) -> list[str]:
        return sorted(self._versions.get(name, {}), key=lambda v: (len(v), v))

    def default(self, name: str) -> str:
        return self._default[name]

    def all(self) -> list[Served]:
        return [s for name in self.names() for s in self._versions[name].values()]


def load_source(source: str, *, allow_unseen: bool = True, media_root: str = "", settings: Settings | None = None,
                parts: list[str] | None = None, part_timeout: float = 5.0) -> Served:
    """A package folder or archive, ``NAME[@alias|/version]`` from the model repository, or a registered version
    already downloaded (``NAME/VERSION=FOLDER``, ``repository.pinned``: no MLflow needed), loaded and checked.
    ``media_root``: the folder image and audio paths are read from ("": data: URIs only). ``parts``: the addresses
    of a decomposed package's part servers (the front holds only cleaner and combiner, and checks the reference
    predictions through the parts)."""
    s = settings or get_settings()
    pin = repository.unpin(source)  # NAME/VERSION=FOLDER: a registered version, downloaded by whoever started us
    if parts:
        folder, name, version = (pin[2], pin[0], pin[1]) if pin else (source, None, None)
        if not pin and not Path(source).exists():  # a registered version: its files only, the parts stay where they run
            mv, folder = repository.download(source, s)
            name, version = mv.name, str(mv.version)
        pkg = load_package(folder, model_loader=lambda f: front_model(f, parts, part_timeout))
        name, version = name or pkg.manifest["name"], version or str(pkg.manifest["version"])
        plan = pkg.model.plan(pkg.schema, allow_unseen=allow_unseen, media_root=media_root)
        fanout = Fanout(pkg.model.estimator)
        fanout.matrix = takes_matrix(pkg.path, plan.encoder)
        return Served(name, version, source, pkg, plan, fanout=fanout)
    if pin:
        name, version, pkg = pin[0], pin[1], load_package(pin[2])
    elif Path(source).exists():
        pkg = load_package(source)
        name, version = pkg.manifest["name"], str(pkg.manifest["version"])
    else:
        mv = repository.resolve(source, s)
        pkg = repository.fetch(f"{mv.name}/{mv.version}", s)
        name, version = mv.name, str(mv.version)
    return Served(name, version, source, pkg, pkg.model.plan(pkg.schema, allow_unseen=allow_unseen,
                                                             media_root=media_root))
