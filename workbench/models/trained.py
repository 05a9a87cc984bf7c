"""A trained model: the fitted cleaner and estimator together, scoring raw business tables."""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from workbench import kinds
from workbench.data.clean import Cleaner
from workbench.models.decide import Decision


class TrainedModel(BaseEstimator):
    """Raw rows in, predictions out: the cleaner's row encoder reads the raw values into the float matrix, and the
    estimator's scorer (its model kind's) scores it. Batch prediction, streaming and the service share both.

    Parameters
    ----------
    cleaner : fitted Cleaner.
    estimator : fitted estimator trained on class codes 0..k-1 (classification) or numbers.
    task : binary, multiclass or regression.
    classes : the class labels, in code order (classification).
    name : the zoo model's name.
    decision : the rule that turns probabilities into the decision that pays (``workbench.models.decide``), or None.
    """

    def __init__(self, cleaner: Cleaner, estimator: BaseEstimator, task: str, classes: list | None = None, name: str = "",
                 decision: Decision | None = None):
        self.cleaner = cleaner
        self.estimator = estimator
        self.task = task
        self.classes = classes
        self.name = name
        self.decision = decision

    @property
    def classes_(self) -> np.ndarray:
        return np.asarray(self.classes, dtype=object)

    def fit(self, X, y=None):
        return self  # already fitted: this object only carries a fitted cleaner and estimator

    @property
    def kind(self) -> str:
        """The model kind of the estimator (``workbench.kinds``): how it is stored and scored."""
        return kinds.kind_of(self.estimator).name

    def __getstate__(self):  # a compiled scorer stays in its process (Dask workers compile their own)
        state = super().__getstate__()
        state.pop("_scorer", None)
        return state

    @property
    def scorer(self) -> kinds.Scorer:
        """The estimator's scorer of the encoded matrix (``cleaner.encoder()``): probabilities n × classes (a hard
        vote gives its chosen class probability 1), or values. Compiled once."""
        compiled = self.__dict__.get("_scorer")
        if compiled is None or compiled[0] is not self.estimator:
            k = len(self.classes or []) if self.task != "regression" else 0
            compiled = (self.estimator, kinds.scorer(self.estimator, self.cleaner.encoder().columns, self.task, k))
            self.__dict__["_scorer"] = compiled
        return compiled[1]

    def scores(self, X: pd.DataFrame) -> np.ndarray:
        """Probabilities (n × classes) or values of raw rows."""
        return self.scorer(self.cleaner.encoder().frame(X))

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        if self.task == "regression":
            raise AttributeError("a regression model has no predict_proba")
        return self.scores(X)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        if self.task == "regression":
            return self.scores(X)
        return self.classes_[self.scores(X).argmax(axis=1)]

    def plan(self, schema=None, *, allow_unseen: bool = True, media_root="") -> "ScoringPlan":
        """What a service needs: records checked against ``schema`` and encoded, then scored. ``media_root``: the
        folder image and audio paths are read from ("": data: URIs only)."""
        return ScoringPlan(self, schema, allow_unseen=allow_unseen, media_root=media_root)

    def predict_frame(self, X: pd.DataFrame) -> pd.DataFrame:
        """A ``prediction`` column and, for classification, one probability column per class, named after it."""
        if len(X) == 0:  # every row refused, say: an empty answer, not a model asked about nothing
            if self.task != "regression" and hasattr(self.estimator, "predict_proba"):
                return self.frame_of(np.zeros((0, len(self.classes))), X.index)
            return pd.DataFrame({"prediction": np.zeros(0)}, index=X.index)
        if self.task == "regression" or not hasattr(self.estimator, "predict_proba"):
            return pd.DataFrame({"prediction": self.predict(X)}, index=X.index)
        return self.frame_of(self.predict_proba(X), X.index)

    def frame_of(self, scores: np.ndarray, index) -> pd.DataFrame:
        """``predict_frame``'s table from scores computed elsewhere (probabilities by class, or values)."""
        if self.task == "regression":
            return pd.DataFrame({"prediction": np.asarray(scores, dtype=float)}, index=index)
        out = pd.DataFrame({"prediction": self.classes_[scores.argmax(axis=1)]}, index=index)
        if self.decision is not None:
            out["decision"] = self.decision(scores)
        for k, c in enumerate(self.classes):
            out[str(c)] = scores[:, k]
        return out


class ScoringPlan:
    """A model ready for raw JSON records: its row encoder with the schema's checks (``check``: records → matrix,
    InputError naming every bad field and row) and its scorer (``scored``: matrix → scores, safe on another thread).

    Parameters
    ----------
    model : the TrainedModel.  schema : its Schema (ranges, nullability, ignored columns) or None.
    allow_unseen : categories never seen in training map to "(other)" (True) or are refused (False).
    media_root : the folder image and audio paths are read from ("": only data: URIs; None: any path).
    """

    def __init__(self, model: TrainedModel, schema=None, *, allow_unseen: bool = True, media_root=""):
        self.model = model
        self.encoder = model.cleaner.encoder(schema, allow_unseen=allow_unseen, media_root=media_root)
        self.required = self.encoder.required
        self.check = self.encoder.records
        self._scorer = model.scorer

    def scored(self, X: np.ndarray, threads: int = 1) -> np.ndarray:
        """Probabilities (n × classes) or values of a checked matrix."""
        return self._scorer(X)

    def scores(self, records: list[dict], threads: int = 1) -> np.ndarray:
        """Probabilities (n × classes) or values of raw records; raises InputError for bad ones."""
        return self._scorer(self.check(records))
