"""A trained model: the fitted cleaner and estimator together, scoring raw business tables."""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from workbench.data.clean import Cleaner
from workbench.models.compare import predict_scores


class TrainedModel(BaseEstimator):
    """Raw rows in, predictions out: the cleaner replays training's plan, then the estimator scores.

    Parameters
    ----------
    cleaner : fitted Cleaner.
    estimator : fitted estimator trained on class codes 0..k-1 (classification) or numbers.
    task : binary, multiclass or regression.
    classes : the class labels, in code order (classification).
    name : the zoo model's name.
    """

    def __init__(self, cleaner: Cleaner, estimator: BaseEstimator, task: str, classes: list | None = None, name: str = ""):
        self.cleaner = cleaner
        self.estimator = estimator
        self.task = task
        self.classes = classes
        self.name = name

    @property
    def classes_(self) -> np.ndarray:
        return np.asarray(self.classes, dtype=object)

    def fit(self, X, y=None):
        return self  # already fitted: this object only carries a fitted cleaner and estimator

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        if self.task == "regression":
            raise AttributeError("a regression model has no predict_proba")
        return predict_scores(self.estimator, self.cleaner.transform(X), self.task, len(self.classes))

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        if self.task == "regression":
            return predict_scores(self.estimator, self.cleaner.transform(X), self.task, 0)
        if not hasattr(self.estimator, "predict_proba"):  # a hard vote has classes, not probabilities
            return self.classes_[np.asarray(self.estimator.predict(self.cleaner.transform(X)), dtype=int)]
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    def predict_frame(self, X: pd.DataFrame) -> pd.DataFrame:
        """A ``prediction`` column and, for classification, one probability column per class, named after it."""
        if self.task == "regression" or not hasattr(self.estimator, "predict_proba"):
            return pd.DataFrame({"prediction": self.predict(X)}, index=X.index)
        return self.frame_of(self.predict_proba(X), X.index)

    def frame_of(self, scores: np.ndarray, index) -> pd.DataFrame:
        """``predict_frame``'s table from scores computed elsewhere (probabilities by class, or values)."""
        if self.task == "regression":
            return pd.DataFrame({"prediction": np.asarray(scores, dtype=float)}, index=index)
        out = pd.DataFrame({"prediction": self.classes_[scores.argmax(axis=1)]}, index=index)
        for k, c in enumerate(self.classes):
            out[str(c)] = scores[:, k]
        return out
