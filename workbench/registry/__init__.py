"""Tracking (MLflow), model files in safe formats, packages, the model repository, backup and restore.

``repository`` and ``backup`` import MLflow or touch the store: import them by name when needed.
"""
from workbench.registry.modelio import load_model, save_model
from workbench.registry.package import Package, PackageError, build_package, load_package, package_result

__all__ = ["save_model", "load_model", "Package", "PackageError", "build_package", "load_package", "package_result"]
