"""ipywidgets panels, one per stage, thin over workbench."""
