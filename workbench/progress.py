"""Progress bars: a widget in notebooks, plain text in terminals, and quiet under papermill."""
from __future__ import annotations

from workbench.settings import get_settings


def progress_bar(**kwargs):
    """A tqdm bar; with ``WORKBENCH_PLAIN_PROGRESS=1`` (set by the pipeline runner) a plain, rarely updated one."""
    if get_settings().plain_progress:
        from tqdm import tqdm

        return tqdm(mininterval=30, **kwargs)
    from tqdm.auto import tqdm

    return tqdm(**kwargs)
