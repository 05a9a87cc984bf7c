"""ipywidgets panels, one per stage, thin over workbench: each exposes what it produced as ``.result``."""
from workbench.extras import extra

with extra("notebook"):
    from widgets.compress import CompressionPanel, DecompositionPanel
    from widgets.data import DataPanel
    from widgets.deploy import DeployPanel
    from widgets.ensemble import EnsemblePanel
    from widgets.monitor import MonitorPanel
    from widgets.registry import RegistryPanel
    from widgets.results import ResultsPanel
    from widgets.train import TrainPanel
    from widgets.tune import TuningPanel

__all__ = ["DataPanel", "TrainPanel", "TuningPanel", "EnsemblePanel", "ResultsPanel", "RegistryPanel", "DeployPanel", "CompressionPanel",
           "DecompositionPanel",
           "MonitorPanel"]
