"""AIMS Workbench: a business table to a trusted model, in notebooks, on the command line, on Dask."""
from workbench.data import clean, load, profile, split
from workbench.models import compare
# every model kind registers when its package loads: the zoo's (models), ensembles, compressed and decomposed models
from workbench import compress, decompose, ensemble  # noqa: E402,F401  isort: skip
from workbench.auto import train  # noqa: E402  isort: skip

__all__ = ["load", "profile", "clean", "split", "compare", "train"]
__version__ = "0.1.0"
