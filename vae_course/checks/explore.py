"""Feedback for open ("explore") exercises: a prompt, then the expected observation, folded.

An explore exercise has no single right function to check, so the learner
writes down what they see first and then compares it with what the course
expected. :func:`reveal` shows both:

* in Jupyter, JupyterLab, Colab and the built book: the prompt, and the
  expected observation inside an HTML ``<details>`` element, closed until
  clicked (plain HTML: no widget, so it works with any ipywidgets version and
  in static pages, where widgets do not render);
* in plain text (a terminal, a test, a text-only output): the same content,
  unfolded, under a heading that says to read it after answering.

Example::

    reveal("Samples get sharper as sigma shrinks, but fewer look like digits.",
           prompt="Which sigma gives the most convincing samples from the prior?",
           points=["reconstructions improve as sigma shrinks", "samples from the prior get worse"])
"""
from __future__ import annotations

import html
import textwrap
from typing import Sequence

DEFAULT_PROMPT = "Write down what you observed before you open the answer."
TITLE = "Expected observation"


def _check_text(name: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise TypeError(f"{name}: expected a non-empty string, got {value!r}")
    return value.strip()


def reveal_text(observation: str, prompt: str | None = None, points: Sequence[str] = (), title: str = TITLE) -> str:
    """The plain-text form: the prompt, then the observation (and points) under a heading."""
    lines = [f"✍️ {prompt or DEFAULT_PROMPT}", f"▸ {title} (read it after you have answered):"]
    lines += textwrap.wrap(observation, width=96, initial_indent="  ", subsequent_indent="  ")
    if points:
        lines.append("  Your answer should mention:")
        lines += [f"  - {p}" for p in points]
    return "\n".join(lines)


def reveal_html(observation: str, prompt: str | None = None, points: Sequence[str] = (), title: str = TITLE) -> str:
    """The HTML form: the prompt, and a closed ``<details>`` holding the observation (text escaped)."""
    esc = html.escape
    items = "".join(f"<li>{esc(p)}</li>" for p in points)
    checklist = f"<p>Your answer should mention:</p><ul>{items}</ul>" if points else ""
    return (f'<div class="vae-course-reveal"><p>✍️ {esc(prompt or DEFAULT_PROMPT)}</p>'
            f"<details><summary>{esc(title)} (click to open after you have answered)</summary>"
            f"<p>{esc(observation)}</p>{checklist}</details></div>")


def reveal(observation: str, prompt: str | None = None, points: Sequence[str] = (), title: str = TITLE) -> None:
    """Show a self-assessment for an explore exercise: ``prompt`` (what to do or answer
    first), then ``observation`` (what the course expected) folded, with optional
    ``points`` the learner's answer should mention. Displays rich HTML under IPython
    and prints plain text elsewhere; returns ``None``.

    Raises ``TypeError`` when ``observation`` is empty or not a string (an authoring error).
    """
    observation = _check_text("observation", observation)
    if prompt is not None:
        prompt = _check_text("prompt", prompt)
    points = [_check_text("points", p) for p in ([points] if isinstance(points, str) else points)]
    text = reveal_text(observation, prompt, points, title)
    try:
        from IPython import get_ipython
    except ImportError:  # IPython is optional outside notebooks
        get_ipython = None
    if get_ipython is None or get_ipython() is None:
        print(text)
        return None
    from IPython.display import display

    display({"text/plain": text, "text/html": reveal_html(observation, prompt, points, title)}, raw=True)
    return None
