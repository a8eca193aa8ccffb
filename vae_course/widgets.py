"""Interactive explorers built with ipywidgets.

Widgets need a live Python kernel (Jupyter, Colab): the rendered book cannot run
their callbacks, so each notebook also shows a static figure of what they do.
Each function returns the widget, so ``display(kl_explorer())`` works anywhere.
"""
from __future__ import annotations
