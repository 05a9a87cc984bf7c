"""The optional parts of the workbench, installed as extras of ``aims-workbench`` (see pyproject.toml): ``parquet``,
``tracking`` (MLflow), ``dask``, ``tune``, ``compile``, ``notebook``, ``explain`` (shap), ``boost`` (CatBoost,
XGBoost); ``all`` is every one. The core — data, models, packages and the service — imports none of them.

Examples
--------
>>> from workbench.extras import extra
>>> with extra("tracking"):
...     import json  # an installed module imports as usual
"""
from __future__ import annotations

from contextlib import contextmanager

from workbench.errors import WorkbenchError


class MissingExtra(WorkbenchError, ModuleNotFoundError):
    """A module that an extra of aims-workbench brings is not installed; the message says which extra to install."""


@contextmanager
def extra(name: str):
    """Imports in this block come with the extra ``name``: one that is not installed raises MissingExtra naming it."""
    try:
        yield
    except ModuleNotFoundError as exc:
        if isinstance(exc, MissingExtra):
            raise
        raise MissingExtra(f"{exc.name or exc} is not installed; it comes with an extra: "
                           f"pip install 'aims-workbench[{name}]'", name=exc.name) from None
