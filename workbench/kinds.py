"""Model kinds: every kind of fitted model in one registry, looked up by name (a package's ``model.json`` names it)
or by the estimator's type.

A kind says how its estimator is written and read (safe formats only: LightGBM's text model, ONNX, JSON, skops with
the exact types the kind allows) and how it **scores** the encoded float matrix (``RowEncoder``'s layout) with no
pandas and no Python work per row. The zoo's kinds register in ``workbench.models.kinds``, ensembles, compressed and
decomposed models in their own packages; ``workbench.registry`` looks kinds up and imports none of them.
``workbench`` declares each kind's name with the module that registers it, so a lookup by name imports only that
module (a service loads its own kind's scorer, not every kind's stack); a lookup by type that finds nothing loads
them all. A kind registers in the module that defines its types (or beside the kinds of their base classes), so a
type is never matched to a base class's kind while its own is still unloaded.

Examples
--------
>>> import workbench  # declares every kind
>>> from workbench import kinds
>>> "lightgbm" in kinds.KINDS and "ensemble" in kinds.KINDS
True
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from workbench.errors import WorkbenchError
from workbench.lookup import Registry

if TYPE_CHECKING:  # start-up cost: `import workbench` (which declares the kinds) does not load numpy
    import numpy as np

Scorer = Callable[["np.ndarray"], "np.ndarray"]  # the encoded matrix (n × features) → probabilities n × k, or n values
Columns = list[tuple[str, "list | None"]]  # the matrix's features: (name, category levels or None)


@dataclass(frozen=True)
class Kind:
    """One kind of fitted model.

    Parameters
    ----------
    name : the ``format`` written into ``model.json``.
    types : the estimator classes this kind writes (a subclass finds its own kind first).
    write : ``write(est, folder, stem, task) -> spec``: writes the files under ``folder`` and returns what reading needs.
    read : ``read(spec, folder, task) -> est``: the fitted estimator from the files ``write`` made.
    scorer : ``scorer(est, columns, task, n_classes) -> Scorer``; ``columns`` is the matrix's layout.
    trusted : the exact types (module.Name) a skops file of this kind may hold beyond skops' own safe defaults.
    contributions : ``contributions(est, layout, task, n_classes) -> Explainer`` (``workbench.models.contrib``): each
        row's output split exactly into one contribution per raw column and a bias; None (or a call that returns
        None) leaves the model to the model-agnostic estimate.
    """

    name: str
    types: tuple[type, ...]
    write: Callable[..., dict]
    read: Callable[..., object]
    scorer: Callable[..., Scorer]
    trusted: tuple[str, ...] = ()
    extra: str = ""
    contributions: Callable[..., object] | None = None


KINDS: Registry[Kind] = Registry("model kind")
_BY_TYPE: dict[type, Kind] = {}


def register(kind: Kind) -> Kind:
    KINDS.register(kind.name, kind)
    for t in kind.types:
        _BY_TYPE[t] = kind
    return kind


def kind_of(est) -> Kind:
    """The kind that writes and scores ``est``: the nearest class in its MRO that a kind registered."""
    kind = _nearest(type(est))
    if kind is None:  # its kind is declared but not loaded yet
        KINDS.load_all()
        kind = _nearest(type(est))
    if kind is not None:
        return kind
    raise WorkbenchError(f"no model kind handles a {type(est).__module__}.{type(est).__name__}; "
                         f"known kinds: {', '.join(KINDS)}")


def _nearest(cls: type) -> Kind | None:
    return next((_BY_TYPE[c] for c in cls.__mro__ if c in _BY_TYPE), None)


def write(est, folder: str | Path, stem: str, task: str) -> dict:
    """Write ``est`` under ``folder`` (its files start with ``stem``) and return its spec, ``format`` first."""
    kind = kind_of(est)
    return {"format": kind.name, **kind.write(est, Path(folder), stem, task)}


def read(spec: dict, folder: str | Path, task: str):
    """The estimator a spec describes, from safe files only; an unknown format is refused by name."""
    fmt = spec.get("format")
    if fmt not in KINDS:
        raise WorkbenchError(f"{spec.get('file', 'model.json')}: unknown model format '{fmt}' "
                             f"(this workbench reads {', '.join(KINDS)}); update the workbench or export the model again")
    return KINDS.get(fmt).read(spec, Path(folder), task)


def scorer(est, columns: Columns, task: str, n_classes: int) -> Scorer:
    """``est``'s scorer of the encoded matrix whose features are ``columns``."""
    return kind_of(est).scorer(est, columns, task, n_classes)
