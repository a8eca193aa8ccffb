"""How the package's own errors look: one line in a terminal, and in a notebook too.

A mistake a learner can fix (a missing dataset, an unusable cache or run folder)
is raised as an exception whose message says what was wrong and how to fix it.
The CLI prints that message as one line. IPython and Jupyter print the whole
traceback instead (36 lines of library frames for a missing dataset), unless the
exception has a ``_render_traceback_()`` method: then they show only the lines it
returns. :class:`OneLineError` gives every such exception that method.

Imports nothing from the package or from torch, so any module can use it.
"""
from __future__ import annotations


class OneLineError(Exception):
    """Base of the package's user-facing errors (put it first among the bases).

    In a notebook the error shows as the lines of :meth:`notebook_lines`, by
    default ``Name: message`` on one line; a subclass may say there how to fix it
    *from the notebook* (where an ``export`` cannot reach the running kernel).
    """

    def notebook_lines(self) -> list[str]:
        """The lines a notebook shows for this error (one or two)."""
        return [f"{type(self).__name__}: {' '.join(str(self).split())}"]

    def _render_traceback_(self) -> list[str]:
        """IPython's hook: these lines are shown instead of the traceback."""
        return self.notebook_lines()
