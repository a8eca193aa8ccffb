"""Progress bars that work everywhere the course runs.

``tqdm.auto`` picks the notebook bar inside Jupyter, but when ipywidgets is
missing (a plain Jupyter install) it prints a ``TqdmWarning`` ("IProgress not
found") on every bar. :func:`progress` picks the notebook bar only where it can
draw, and the plain text bar everywhere else (a terminal, a log, a notebook
without ipywidgets), so a learner never sees that warning.

    from vae_course.progress import progress
    for batch in progress(batches, total=n, desc="IWAE"):
        ...
"""
from __future__ import annotations

import importlib.util
import sys
from typing import Any


def _in_notebook() -> bool:
    """True inside a Jupyter (or Colab) kernel, False in a terminal or a plain script."""
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    ipython = getattr(shell, "get_ipython", lambda: None)()
    return ipython is not None and "IPKernelApp" in getattr(ipython, "config", {})


def widgets_available() -> bool:
    """True when ipywidgets can be imported (the notebook bar and the explorers need it)."""
    return importlib.util.find_spec("ipywidgets") is not None


def progress_class() -> type:
    """The tqdm class for this process: the widget bar in a notebook with ipywidgets, else the text bar."""
    if _in_notebook() and widgets_available():
        from tqdm.notebook import tqdm as bar
    else:
        from tqdm.std import tqdm as bar
    return bar


def progress(*args: Any, **kwargs: Any) -> Any:
    """A tqdm progress bar (same arguments as ``tqdm.tqdm``) that never warns about ipywidgets."""
    return progress_class()(*args, **kwargs)
