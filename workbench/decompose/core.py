"""Decomposition: a trained model split into parts that run in different processes or machines, and a combiner
that gives the whole model's answer.

Kinds (``by``):
- ``trees``: a LightGBM model by iteration ranges (each part returns raw scores; the combiner sums them and applies
  the link: never probabilities added; multiclass by iteration), or a random forest / extra trees by tree subsets
  (the combiner averages, weighted by each part's tree count);
- ``members``: a weighted ensemble (average, vote, selection) by member (the combiner applies the weights or the
  vote); a member may be optional: without it the weights of the others are renormalized and the answer is marked
  degraded;
- ``levels``: a stacked ensemble: the base members are the parts, the meta-learner is the combiner.

A part is stored as a folder of its own (``part.json`` with the sha256 of its files, and its estimator in the safe
formats of ``modelio``) so that a worker or a part server loads only its part.
"""
from __future__ import annotations

import copy
import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from workbench import compute, kinds
from workbench.data.clean import Cleaner
from workbench.data.encode import matrix_of
from workbench.ensemble.estimators import StackEnsemble
from workbench.errors import ModelError, WorkbenchError
from workbench.models import contrib
from workbench.models.booster import SMALL, LightGBMBooster
from workbench.models.compare import predict_scores
from workbench.models.kinds import frame_scorer
from workbench.models.trained import TrainedModel
from workbench.registry.package import build_package, load_package

PART_FORMAT = "aims-workbench-part"


class PartError(WorkbenchError):
    """A part that cannot be trusted, or a part that failed to answer."""


@dataclass
class Part:
    """One part: a fitted estimator and what it returns (``raw`` scores, ``proba``bilities, or ``values``)."""

    name: str
    estimator: object
    output: str  # raw | proba | values
    required: bool = True
    weight: float = 1.0  # trees parts: tree count; members: the member's ensemble weight

    def score(self, X: pd.DataFrame, task: str, n_classes: int) -> np.ndarray:
        if self.output == "raw":  # a few rows: one thread (OpenMP's start-up costs more than the trees)
            threads = 1 if len(X) < SMALL else 0
            return np.asarray(self.estimator.booster_.predict(X, raw_score=True, num_threads=threads),
                              dtype=np.float64).reshape(len(X), -1)
        k = n_classes if task != "regression" else 0
        M, columns = matrix_of(X)  # the part's own scorer, compiled once (its kind's: no pandas per call)
        if getattr(self, "_scorer", (None,))[0] != columns:
            self._scorer = (columns, kinds.scorer(self.estimator, columns, task, k))
        return np.asarray(self._scorer[1](M), dtype=np.float64)


class DecomposedModel(BaseEstimator):
    """The parts and their combiner; predicts exactly as the whole model (differences ≤ 1e-9).

    Parameters
    ----------
    parts : list of Part.  combiner : "sum_link" | "mean" | "weighted" | "vote" | "stack".
    task, n_classes : of the whole model.  link : for "sum_link": sigmoid | softmax | identity | exp.
    meta : the stack's fitted StackEnsemble (its meta-learner and feature rule; members left out).
    """

    def __init__(self, parts: list[Part], combiner: str, task: str, n_classes: int = 0, link: str = "identity", meta=None):
        self.parts = parts
        self.combiner = combiner
        self.task = task
        self.n_classes = n_classes
        self.link = link
        self.meta = meta
        self.classes_ = np.arange(n_classes) if task != "regression" else None

    # the whole path: every part here, one after the other
    def part_outputs(self, X: pd.DataFrame) -> list[np.ndarray]:
        return [p.score(X, self.task, self.n_classes) for p in self.parts]

    def combine(self, outputs: list[np.ndarray | None], X: pd.DataFrame | None = None) -> tuple[np.ndarray, list[str]]:
        """The whole model's scores from the parts' outputs; ``None`` marks a part that did not answer. Returns the
        scores and the names of the parts left out; raises PartError when a required part is missing."""
        missing = [p.name for p, o in zip(self.parts, outputs) if o is None]
        if any(p.required for p, o in zip(self.parts, outputs) if o is None):
            raise PartError(f"required part(s) {', '.join(p.name for p, o in zip(self.parts, outputs) if o is None and p.required)} "
                            "did not answer: no answer without them")
        if self.combiner == "sum_link":
            raw = sum(o for o in outputs)
            return _link(raw, self.link, self.task), missing
        present = [(p, o) for p, o in zip(self.parts, outputs) if o is not None]
        if not present:
            raise PartError("no part answered")
        if self.combiner == "mean":
            total = sum(p.weight for p, _ in present)
            return sum((p.weight / total) * o for p, o in present), missing
        if self.combiner in ("weighted", "vote"):
            w = np.array([p.weight for p, _ in present])
            w = w / w.sum() if missing else w  # the stored weights already sum to one: untouched when all answered
            if self.combiner == "weighted":
                return sum(wi * o for wi, (_, o) in zip(w, present)), missing
            votes = np.zeros((len(present[0][1]), self.n_classes))
            for wi, (_, o) in zip(w, present):
                votes[np.arange(len(o)), o.argmax(axis=1)] += wi
            return np.eye(self.n_classes)[votes.argmax(axis=1)], missing
        if self.combiner == "stack":
            F = self.meta.features(outputs, X)
            if self.task == "regression":
                return np.asarray(self.meta.meta_.predict(F), dtype=float), missing
            return predict_scores(self.meta.meta_, F, self.task, self.n_classes), missing
        raise ModelError(f"unknown combiner '{self.combiner}'")

    def predict_proba(self, X):
        return self.combine(self.part_outputs(X), X)[0]

    def predict(self, X):
        scores = self.combine(self.part_outputs(X), X)[0]
        return scores if self.task == "regression" else scores.argmax(axis=1)


def _link(raw: np.ndarray, link: str, task: str) -> np.ndarray:
    if link == "sigmoid":
        p = 1.0 / (1.0 + np.exp(-raw[:, 0]))
        return np.column_stack([1 - p, p])
    if link == "softmax":
        e = np.exp(raw - raw.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    if link == "exp":
        return np.exp(raw[:, 0])
    return raw[:, 0]


LINKS = {"binary": "sigmoid", "cross_entropy": "sigmoid", "multiclass": "softmax", "multiclassova": None,
         "poisson": "exp", "gamma": "exp", "tweedie": "exp"}


def decompose(model, parts: int = 2, by: str | None = None, *, optional_members: bool = False):
    """Split a TrainedModel's estimator into ``parts`` parts; returns a TrainedModel whose estimator is a
    DecomposedModel (same cleaner, classes and answers). ``by``: trees | members | levels (default: what the model
    is). ``optional_members``: ensemble members may be missing at serving time (answers marked degraded)."""
    est = model.estimator
    kind = by or _kind(est)
    k = len(model.classes or []) if model.task != "regression" else 0
    if parts < 2:
        raise ModelError(f"decompose into at least 2 parts (got {parts})")
    if kind == "trees":
        d = _by_trees(est, parts, model.task, k)
    elif kind == "members":
        d = _by_members(est, parts, model.task, k, optional_members)
    elif kind == "levels":
        d = _by_levels(est, parts, model.task, k)
    else:
        raise ModelError(f"unknown decomposition '{kind}'; use trees, members or levels")
    return TrainedModel(model.cleaner, d, model.task, model.classes, f"{model.name} in {len(d.parts)} parts")


def _kind(est) -> str:
    name = type(est).__name__
    if name == "WeightedEnsemble":
        return "members"
    if name == "StackEnsemble":
        return "levels"
    return "trees"


def forest_of(est):
    """The random forest or extra-trees model in ``est`` (alone, or the last step of a pipeline); else None."""
    last = est.steps[-1][1] if hasattr(est, "steps") else est
    return last if hasattr(last, "estimators_") and type(last).__name__.startswith(("RandomForest", "ExtraTrees")) else None


def _by_trees(est, parts: int, task: str, k: int) -> DecomposedModel:
    booster = getattr(est, "booster_", None)
    if booster is not None and hasattr(booster, "model_to_string") and not hasattr(est, "predictor_"):
        n = booster.current_iteration()
        if parts > n:
            raise ModelError(f"the model has {n} boosting iterations: it cannot be split into {parts} parts")
        objective = str(booster.params.get("objective", "regression"))
        link = LINKS.get(objective, "identity")
        if link is None:
            raise ModelError(f"LightGBM objective '{objective}' has no link the combiner knows")
        bounds = np.linspace(0, n, parts + 1).round().astype(int)
        ps = [Part(f"trees {a}-{b - 1}", LightGBMBooster(booster.model_to_string(start_iteration=int(a),
                                                                                 num_iteration=int(b - a)), task).fit(),
                   "raw", True, float(b - a)) for a, b in zip(bounds[:-1], bounds[1:])]
        return DecomposedModel(ps, "sum_link", task, k, link)
    forest = forest_of(est)
    if forest is not None:
        n = len(forest.estimators_)
        if parts > n:
            raise ModelError(f"the forest has {n} trees: it cannot be split into {parts} parts")
        bounds = np.linspace(0, n, parts + 1).round().astype(int)
        ps = []
        for a, b in zip(bounds[:-1], bounds[1:]):
            sub = copy.deepcopy(est)
            f = forest_of(sub)
            f.estimators_, f.n_estimators = f.estimators_[a:b], int(b - a)
            ps.append(Part(f"trees {a}-{b - 1}", sub, "values" if task == "regression" else "proba", True, float(b - a)))
        return DecomposedModel(ps, "mean", task, k)
    raise ModelError(f"decomposition by trees applies to LightGBM models and random forests / extra trees, "
                     f"not to a {type(est).__name__}; ensembles split by members or levels")


def _by_members(est, parts: int, task: str, k: int, optional: bool) -> DecomposedModel:
    if type(est).__name__ != "WeightedEnsemble":
        raise ModelError(f"decomposition by members applies to averaging, voting and selected ensembles, not to a "
                         f"{type(est).__name__}")
    members = [(n, e, w) for (n, _), e, w in zip(est.estimators, est.estimators_, est.weights_) if w > 0]
    if parts > len(members):
        raise ModelError(f"the ensemble has {len(members)} members with weight: it cannot be split into {parts} parts")
    if parts != len(members):
        raise ModelError(f"an ensemble splits into one part per member: use --parts {len(members)}")
    out = "values" if task == "regression" else "proba"
    ps = [Part(str(n), e, out, not optional, float(w)) for n, e, w in members]
    combiner = "vote" if task != "regression" and est.voting == "hard" else "weighted"
    return DecomposedModel(ps, combiner, task, k)


def _by_levels(est, parts: int, task: str, k: int) -> DecomposedModel:
    if type(est).__name__ != "StackEnsemble":
        raise ModelError(f"decomposition by levels applies to stacked ensembles, not to a {type(est).__name__}")
    if parts != len(est.estimators_):
        raise ModelError(f"a stack splits into its {len(est.estimators_)} base members (parts), the meta-learner "
                         f"combines: use --parts {len(est.estimators_)}")
    out = "values" if task == "regression" else "proba"
    ps = [Part(str(n), e, out, True, 1.0) for (n, _), e in zip(est.estimators, est.estimators_)]
    meta = copy.copy(est)
    meta.estimators_ = []  # the combiner keeps the meta-learner and the feature rule only
    return DecomposedModel(ps, "stack", task, k, meta=meta)


# ---- storage: each part a folder of its own with its checksums ------------------------------------------------

def write_decomposed(d: DecomposedModel, folder: Path, stem: str, task: str) -> dict:
    names = []
    for i, part in enumerate(d.parts):
        sub = folder / f"{stem}.part-{i}"
        sub.mkdir()
        spec = kinds.write(part.estimator, sub, "estimator", task)
        files = {p.name: _sha(p) for p in sorted(sub.iterdir())}
        (sub / "part.json").write_text(json.dumps({"format": PART_FORMAT, "format_version": 1, "index": i, "name": part.name,
                                                   "output": part.output, "required": part.required, "weight": part.weight,
                                                   "task": task, "n_classes": d.n_classes, "estimator": spec,
                                                   "files": files}, indent=1))
        names.append(sub.name)
    spec = {"combiner": d.combiner, "task": task, "n_classes": d.n_classes, "link": d.link,
            "parts": names}
    if d.meta is not None:
        spec["meta"] = kinds.write(d.meta.meta_, folder, f"{stem}.meta", task)
        spec["stack"] = {"passthrough": d.meta.passthrough, "cv": d.meta.cv}
    return spec


def read_decomposed(spec: dict, folder: Path, task: str, make_part=None) -> DecomposedModel:
    """The decomposed model ``write_decomposed`` stored. ``make_part(i, part_folder)`` gives each part (default: the
    part loaded here, checksums checked); the stack's meta-learner, when there is one, is always read here."""
    parts = [(make_part or (lambda i, f: load_part(f)))(i, folder / name) for i, name in enumerate(spec["parts"])]
    meta = None
    if spec["combiner"] == "stack":
        meta = StackEnsemble.from_fitted([], kinds.read(spec["meta"], folder, task), task=task,
                                         n_classes=int(spec["n_classes"]), passthrough=bool(spec["stack"]["passthrough"]),
                                         cv=spec["stack"]["cv"])
    return DecomposedModel(parts, spec["combiner"], task, int(spec["n_classes"]), spec["link"], meta)


def part_stub(folder: Path, cls=None, **extra) -> Part:
    """A part described by its ``part.json`` but not loaded (``cls``: Part, or a subclass such as RemotePart)."""
    m = json.loads((folder / "part.json").read_text())
    return (cls or Part)(m["name"], None, m["output"], bool(m["required"]), float(m["weight"]), **extra)


def load_part(folder: str | Path) -> Part:
    """One part from its folder, after checking its files against the checksums in ``part.json``."""
    folder = Path(folder)
    try:
        meta = json.loads((folder / "part.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise PartError(f"{folder}: not a readable part ({exc})") from None
    if meta.get("format") != PART_FORMAT:
        raise PartError(f"{folder}: not a decomposed model's part (format {meta.get('format')!r})")
    for name, digest in meta["files"].items():
        p = folder / name
        if not p.is_file() or _sha(p) != digest:
            raise PartError(f"{folder}: {name} does not match its checksum in part.json (changed or missing); "
                            "refusing the part")
    est = kinds.read(meta["estimator"], folder, meta["task"])
    return Part(meta["name"], est, meta["output"], bool(meta["required"]), float(meta["weight"]))


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


# ---- batch scoring on Dask: each worker loads its part from the package -----------------------------------------

@functools.lru_cache(maxsize=16)
def _cached_part(folder: str) -> Part:
    return load_part(folder)


def _score_part(folder: str, X: pd.DataFrame, task: str, n_classes: int) -> np.ndarray:
    return _cached_part(folder).score(X, task, n_classes)


def combiner_model(folder: str | Path, make_part=None):
    """A decomposed package's model without its parts' estimators: the cleaner and the combiner only (what the
    process that fans out needs; each part is loaded where it runs). ``make_part(i, part_folder)`` describes each
    part (default: a stub read from its ``part.json``)."""
    folder = Path(folder)
    meta = json.loads((folder / "model.json").read_text())
    spec = meta["estimator"]
    if spec.get("format") != "decomposed":
        raise ModelError(f"{folder} is not a decomposed package (make one with `workbench decompose`)")
    d = read_decomposed(spec, folder, meta["task"], make_part or (lambda i, f: part_stub(f)))
    return TrainedModel(Cleaner.from_json((folder / "cleaner.json").read_text()), d, meta["task"], meta["classes"],
                        meta["name"])


def is_decomposed(package) -> bool:
    """Does this package folder (or .tar.gz archive) hold a decomposed model?"""
    import tarfile

    path = Path(package)
    try:
        if path.is_dir():
            text = (path / "model.json").read_text()
        else:
            with tarfile.open(path, "r:gz") as tar:
                member = next(m for m in tar.getmembers() if m.name.count("/") == 1 and m.name.endswith("/model.json"))
                text = tar.extractfile(member).read().decode()
        return json.loads(text)["estimator"].get("format") == "decomposed"
    except (OSError, KeyError, StopIteration, AttributeError, tarfile.TarError, json.JSONDecodeError):
        return False


def predict_parallel(package, X_raw: pd.DataFrame, settings=None) -> np.ndarray:
    """Score raw rows with a decomposed package (folder or archive): cleaned once here, each part on a Dask worker
    (loaded there from the package's part folder: no model travels as a pickle, and this process never holds the
    parts), combined here."""
    pkg = load_package(package, check=False, model_loader=combiner_model)
    model = pkg.model
    d = model.estimator
    X = model.cleaner.transform(X_raw)
    client = compute.client(settings)
    spec = json.loads((Path(pkg.path) / "model.json").read_text())["estimator"]
    data = client.scatter(X, broadcast=True)
    futures = [client.submit(_score_part, str(Path(pkg.path) / name), data, model.task, d.n_classes, pure=False)
               for name in spec["parts"]]
    outputs = client.gather(futures)
    return d.combine(outputs, X)[0]


def max_difference(whole, parts_model, X_raw: pd.DataFrame) -> float:
    """Largest difference between the whole model's and the decomposed model's scores on raw rows."""
    X = whole.cleaner.transform(X_raw)
    k = len(whole.classes or []) if whole.task != "regression" else 0
    a = predict_scores(whole.estimator, X, whole.task, k) if hasattr(whole.estimator, "predict_proba") or k == 0 \
        else np.eye(k)[np.asarray(whole.estimator.predict(X), dtype=int)]
    b = parts_model.estimator.predict_proba(X)
    return float(np.abs(np.asarray(a, dtype=float) - np.asarray(b, dtype=float)).max())


def decompose_package(source, out, parts: int, by: str | None = None, *, optional_members: bool = False,
                      archive: bool = False) -> tuple[Path, float]:
    """A package's model decomposed into a package of its own (same name, schema, reference rows); refused unless
    its answers equal the whole model's on the reference rows (≤ 1e-9). Returns the folder and the difference."""
    m = source.manifest
    model = decompose(source.model, parts, by, optional_members=optional_members)
    diff = max_difference(source.model, model, source.reference)
    if diff > 1e-9:
        raise ModelError(f"the parts combine to answers {diff:.2e} away from the whole model's; not written")
    d = model.estimator
    params = {"decomposed_from": f"{m['name']}/{m['version']}", "by": by or _kind(source.model.estimator),
              "parts": [{"name": p.name, "required": p.required, "weight": p.weight} for p in d.parts],
              "combiner": d.combiner}
    path = build_package(model, out, schema=source.schema, reference=source.sample, name=m["name"],
                         target=m.get("target"), metrics=m.get("metrics"), params=params,
                         fingerprint=m.get("data_fingerprint"), archive=archive)
    return path, diff


def _contributions(d: DecomposedModel, layout: contrib.Layout, task: str, n_classes: int) -> contrib.Explainer | None:
    """As the combiner combines: raw scores summed (their contributions summed, on the margin), probabilities or
    values averaged (their contributions averaged), a stack's parts through its meta-learner; a vote: None."""
    o = contrib.outputs(task, n_classes)
    parts = [contrib.explainer(p.estimator, layout, task, n_classes) for p in d.parts] if d.combiner != "vote" else []
    if d.combiner == "sum_link":
        return contrib.weighted(parts, np.ones(len(parts)), parts[0].scale, o)
    if d.combiner in ("mean", "weighted"):
        natural = "value" if task == "regression" else "probability"
        w = np.array([p.weight for p in d.parts])
        return contrib.weighted([contrib.on_scale(e, natural, task) for e in parts],
                                w / w.sum() if d.combiner == "mean" else w, natural, o)
    if d.combiner == "stack":
        whole = copy.copy(d.meta)
        whole.estimators_ = [p.estimator for p in d.parts]
        return contrib.explainer(whole, layout, task, n_classes)
    return None


# parts keep their own kinds; the whole scores through the parts' table path (served, it fans out to part servers)
# its front sends the parts of most kinds Arrow streams
kinds.register(kinds.Kind("decomposed", (DecomposedModel,), write_decomposed, read_decomposed, frame_scorer,
                          extra="parquet", contributions=_contributions))
