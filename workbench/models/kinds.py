"""The zoo's model kinds: LightGBM (its own text model) and every scikit-learn family (skops, exact types only)."""
from __future__ import annotations

from pathlib import Path

import lightgbm as lgb
import skops.io as sio
from sklearn.base import BaseEstimator

from workbench import kinds
from workbench.data.encode import frame_of
from workbench.errors import WorkbenchError
from workbench.models import contrib
from workbench.models.booster import LightGBMBooster
from workbench.models.compare import predict_scores
from workbench.models.scorers import compile_scorer

# the types beyond skops' own safe defaults that the zoo's models hold (a partial is safe: skops checks the function it
# wraps, which must be listed too); a skops file with any other is refused by name
ZOO_TYPES = (
    "collections.OrderedDict",
    "functools.partial",
    "numpy.dtype",  # SimpleImputer keeps the dtype it was fitted on
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.compose._column_transformer.make_column_selector",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.metrics._dist_metrics.EuclideanDistance64",
    "sklearn.neighbors._ball_tree.BallTree",
    "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.tree._tree.Tree",
    "sklearn.utils.validation.check_array",
)


def frame_scorer(est, columns: kinds.Columns, task: str, n_classes: int) -> kinds.Scorer:
    """The scorer of last resort: the matrix as the cleaned table, scored by the estimator's own methods."""
    k = 0 if task == "regression" else n_classes
    if hasattr(est, "n_features_in_") and not hasattr(est, "feature_names_in_"):  # fitted on a plain matrix: given one
        return lambda X: predict_scores(est, X, task, k)
    return lambda X: predict_scores(est, frame_of(X, columns), task, k)


def matrix_scorer(est, columns: kinds.Columns, task: str, n_classes: int) -> kinds.Scorer:
    """The compiled scorer of a zoo model (``workbench.models.scorers``); the table path for what it does not know."""
    try:
        return compile_scorer(est, columns, task, n_classes)
    except TypeError:
        return frame_scorer(est, columns, task, n_classes)


def _write_lightgbm(est, folder: Path, stem: str, task: str) -> dict:
    file = f"{stem}.lgb.txt"
    (folder / file).write_text(est.model_str if isinstance(est, LightGBMBooster) else est.booster_.model_to_string())
    return {"file": file}


def _read_lightgbm(spec: dict, folder: Path, task: str):
    return LightGBMBooster((folder / spec["file"]).read_text(), task).fit(None)


def _write_skops(est, folder: Path, stem: str, task: str) -> dict:
    file = f"{stem}.skops"
    sio.dump(est, folder / file)
    return {"file": file}


def read_skops(path: Path, trusted: tuple[str, ...]):
    """A skops file whose types are skops' safe defaults or in ``trusted``; any other type is refused by name."""
    untrusted = sio.get_untrusted_types(file=path)
    refused = [t for t in untrusted if t not in trusted]
    if refused:
        raise WorkbenchError(f"{path.name} holds types that are not trusted: {', '.join(refused)}; refusing to load it")
    return sio.load(path, trusted=untrusted)


kinds.register(kinds.Kind("lightgbm", (LightGBMBooster, lgb.LGBMModel), _write_lightgbm, _read_lightgbm, matrix_scorer,
                          contributions=contrib.lightgbm))
kinds.register(kinds.Kind("skops", (BaseEstimator,), _write_skops,
                          lambda spec, folder, task: read_skops(folder / spec["file"], ZOO_TYPES), matrix_scorer,
                          trusted=ZOO_TYPES, contributions=contrib.sklearn))
