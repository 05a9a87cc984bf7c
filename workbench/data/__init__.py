"""Load, profile, clean, split and describe tables."""
from workbench.data.clean import Cleaned, Cleaner, CleaningReport, clean, preview_changes
from workbench.data.load import load, resolve_target
from workbench.data.profile import Profile, profile
from workbench.data.schema import Schema
from workbench.data.split import Split, split

__all__ = ["load", "resolve_target", "profile", "Profile", "clean", "Cleaner", "Cleaned", "CleaningReport", "preview_changes",
           "split", "Split", "Schema"]
