"""The pipeline and dashboard notebooks, shipped inside the package: ``importlib.resources.files(__name__)`` finds
them in a checkout and in an installed wheel alike."""
