"""A trained model on disk: ``model.json`` (what it is and how its files fit together), ``cleaner.json`` and one safe
file per estimator, written and read by its model kind (``workbench.kinds``). No pickle."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from workbench import kinds
from workbench.data.clean import Cleaner
from workbench.errors import WorkbenchError
from workbench.models.decide import Decision
from workbench.models.trained import TrainedModel


def save_model(model: TrainedModel, folder: str | Path) -> Path:
    """Write a trained model: ``model.json``, ``cleaner.json``, and the files of its estimator's kind (an ensemble's
    members each get their own)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    spec = kinds.write(model.estimator, folder, "estimator", model.task)
    (folder / "cleaner.json").write_text(model.cleaner.to_json())
    meta = {"name": model.name, "task": model.task, "classes": model.classes, "estimator": spec}
    if getattr(model, "decision", None) is not None:
        meta["decision"] = model.decision.to_dict()
    (folder / "model.json").write_text(json.dumps(meta, indent=1, default=_jsonable))
    return folder


def load_model(folder: str | Path) -> TrainedModel:
    """Load a model written by ``save_model``; refuses files it cannot trust."""
    folder = Path(folder)
    try:
        meta = json.loads((folder / "model.json").read_text())
        cleaner = Cleaner.from_json((folder / "cleaner.json").read_text())
        est = kinds.read(meta["estimator"], folder, meta["task"])
        decision = Decision.from_dict(meta["decision"]) if meta.get("decision") else None
    except FileNotFoundError as exc:
        raise WorkbenchError(f"{folder} is not a saved model: {Path(exc.filename).name} is missing") from None
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise WorkbenchError(f"{folder}: the model files are damaged ({type(exc).__name__}: {exc}); export the model again") from None
    return TrainedModel(cleaner, est, meta["task"], meta["classes"], meta["name"], decision)


def _jsonable(v):
    if isinstance(v, np.generic):
        return v.item()
    raise TypeError(f"{type(v).__name__} is not JSON-serializable")
