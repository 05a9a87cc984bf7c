"""Compression: smaller and faster variants of a trained model, with their measured price (``compress``)."""
from workbench.compress import methods as _methods  # noqa: F401  (registers the methods)
from workbench.compress.core import METHODS, CompressionReport, Variant, compress, save_variant

__all__ = ["METHODS", "CompressionReport", "Variant", "compress", "save_variant"]
