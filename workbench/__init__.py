"""AIMS Workbench: a business table to a trusted model, in notebooks, on the command line, on Dask."""
from workbench.data import clean, load, profile, split
from workbench.models import compare, train

__all__ = ["load", "profile", "clean", "split", "compare", "train"]
__version__ = "0.1.0"
