"""The model zoo, cross-validation, metrics, the leaderboard and the training steps (``prepare``, ``fit``)."""
from workbench.models import kinds as _kinds  # noqa: F401  (registers the zoo's model kinds)
from workbench.models.compare import Candidate, Leaderboard, compare
from workbench.models.train import TrainResult
from workbench.models.trained import TrainedModel
from workbench.models.zoo import ZOO, get_model, models_for

__all__ = ["compare", "Candidate", "Leaderboard", "TrainResult", "TrainedModel", "ZOO", "get_model", "models_for"]
