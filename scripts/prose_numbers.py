"""Measured numbers (and shared facts) in prose, filled in from the one place each comes from.

    python scripts/prose_numbers.py fill     # rewrite every marked number from its source (make numbers)
    python scripts/prose_numbers.py fill notebooks/06_gpu_vae.ipynb   # ... in these files only
    python scripts/prose_numbers.py check    # exit 1 on a stale number or an unmarked measurement
    python scripts/prose_numbers.py list     # every book substitution and its value

A measured number (a time, a loss, a ratio, an NLL, a count of seeds, images or
epochs ...) in README.md, a Markdown page or a notebook's Markdown never comes
from the keyboard. It is one of:

* a **marker**, ``<!-- num: KEY:FORMAT -->85.71<!-- /num -->``, whose text ``fill``
  rewrites from KEY (invisible on GitHub, in Jupyter and in Colab: the comments are
  not shown);
* a **block marker** around a fenced code block, ``<!-- num-block: KEY -->`` ...
  ``<!-- /num-block -->``, for a whole log copied from a notebook's output;
* a **book substitution**, ``{{ conv_nll }}``, that book/_ext/course_book.py fills at
  build time from BOOK_NUMBERS below (MyST substitutions);
* or a number a notebook cell prints right where it is shown.

KEY is one of

* ``<file>.<path>``: ``conv_vae_long.iwae_nll`` is the field ``iwae_nll`` of
  ``RESULTS_DIR/conv_vae_long.json``; list items by index (``...test_loss.0``);
* ``nb:<notebook stem>.<field>``: the notebook's execution record (``metadata.vae_course``);
* ``out:<cell id>:<label>`` (notebook Markdown only): the first number printed after
  the first occurrence of the literal text <label> in the text outputs (stream and
  ``text/plain``) of the code cell with that nbformat id in the *same* notebook. The
  label may contain spaces, not ``:`` nor ``-->``. Without FORMAT the number is
  copied exactly as printed;
* ``fact:<name>``: a fact several pages state, from its one home (FACTS: the Python
  versions from pyproject.toml and the Makefile, the book's build folder, the β
  statement ...);
* ``log:<notebook>`` (block markers): the last ``Epoch N/N`` block its outputs printed.

FORMAT is a Python format spec (``.2f``, ``,d``), optional; empty or absent gives the
value as it is.

The file is not called ``numbers.py``: run from ``scripts/``, that name would
shadow the standard library's ``numbers`` module for everything imported after it.

``check`` also reads the *watched* text (the README paragraphs listed in
README_WATCHED, every page in BOOK_PAGES, and the Markdown cells of every notebook in
NOTEBOOK_PAGES, with code, maths and markers left out) for numbers that look measured
(MEASURED) and are neither marked nor in ALLOWED, the explicit list of numbers that
are not measurements of this course (a paper's table, with its citation).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
# The one place the committed results live. If they move, change this constant and nothing else.
RESULTS_DIR = ROOT / "vae_course" / "results"
NOTEBOOKS_DIR = ROOT / "notebooks"

# Files whose markers `fill` rewrites as text (Markdown); notebooks are filled cell by cell.
FILL_FILES = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "book").glob("*.md"))]
# README paragraphs that state measurements: each starts with one of these.
README_WATCHED = ("That run used", "**Defaults.**", "**Speed.**", "**Likelihood.**", "**Trainer commands.**",
                  "**Where the numbers were made.**")
BOOK_PAGES = sorted((ROOT / "book").glob("*.md"))
# Every notebook whose Markdown is filled and checked (relative paths, so a copy can be checked too).
NOTEBOOK_PAGES = [str(p.relative_to(ROOT)) for p in sorted(NOTEBOOKS_DIR.glob("*.ipynb"))] + ["book/results.ipynb"]


# ------------------------------------------------------------------ facts: one home each
def _pyproject_python() -> str:
    """'3.10' from pyproject.toml's ``requires-python = ">=3.10"`` (the course's minimum)."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    m = re.search(r'(?m)^requires-python\s*=\s*">=\s*(\d+\.\d+)"', text)
    if not m:
        raise SourceError("fact:python_min: pyproject.toml has no requires-python = \">=X.Y\"")
    return m.group(1)


def _makefile_python(target: str) -> str:
    """'3.11' from the Makefile's ``TARGET:`` rule ``$(call check_python,3,11,...)``."""
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    m = re.search(rf"(?m)^{re.escape(target)}:\s*\n\t\$\(call check_python,(\d+),(\d+),", text)
    if not m:
        raise SourceError(f"fact: the Makefile has no {target} rule calling check_python")
    return f"{m.group(1)}.{m.group(2)}"


def _makefile_book_html() -> str:
    """Where ``make book`` writes the HTML: jupyter-book's ``--path-output $(SITE)`` adds ``_build/html``."""
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    m = re.search(r"(?m)^SITE\s*:?=\s*(\S+)", text)
    if not m or "--path-output $(SITE)" not in text:
        raise SourceError("fact:book_html: the Makefile no longer builds the book with --path-output $(SITE)")
    return f"{m.group(1)}/_build/html"


# Statements several pages make, written once here. Plain text (no maths) so the same words
# read well in a Markdown page, a notebook cell, a table cell and the README.
FACT_TEXTS: dict[str, str] = {
    # β-VAE objective = ELBO − (β − 1)·KL, and KL ≥ 0: below the ELBO for β > 1, above it for β < 1.
    "beta_bound": ("β = 1 gives the ELBO; for β > 1 the objective is still a lower bound on log p(x), "
                   "a looser one; for β < 1 it is not a bound (it can exceed log p(x))"),
    # requirements-lab.txt is its source: `-e .` (the package with pyproject's dependencies),
    # jupyterlab and ipykernel; tests/test_facts.py keeps the sentence in step with that file.
    "make_lab_installs": ("the helper package (`pip install -e .`, which brings torch, numpy, matplotlib, "
                          "ipywidgets, …) and JupyterLab with its Python kernel — not the book and test "
                          "toolchain, which `make test` and `make book` add"),
}

FACTS: dict[str, Callable[[], str]] = {
    "python_min": _pyproject_python,                                  # pyproject.toml requires-python
    "python_dev_min": lambda: _makefile_python("python-check-dev"),   # hypothesis's pin (Makefile)
    "book_html": _makefile_book_html,                                 # Makefile: make book's output
    **{name: (lambda text=text: text) for name, text in FACT_TEXTS.items()},
}

# {{ name }} in a book page -> KEY:FORMAT (filled by book/_ext/course_book.py at build time).
BOOK_NUMBERS: dict[str, str] = {
    "canonical_test_loss": "quality_mlp_defaults.confirmation.canonical.test_loss_mean:.1f",
    "defaults_test_loss": "quality_mlp_defaults.confirmation.chosen.test_loss_mean:.1f",
    "conv_nll": "conv_vae_long.iwae_nll:.2f",
    "conv_nll_stderr": "conv_vae_long.iwae_nll_stderr:.2f",
    "bench_ratio": "bench_cpu.ratio:.2f",
    "quality_epochs": "quality_mlp_defaults.epochs:d",
    # facts, not measurements: the same words on every page that states them
    **{name: f"fact:{name}" for name in FACTS},
}

# KEY: an out: key (its label may hold spaces) or a key without spaces (results, nb:, fact:, log:).
_KEY = r"out:[^:\s]+:[^:\n]+?|(?:nb:|fact:)?[^\s:]+"
MARKER = re.compile(rf"<!-- num: (?P<key>{_KEY})(?::(?P<fmt>[^\s]*))? -->(?P<text>.*?)<!-- /num -->", re.S)
BLOCK = re.compile(r"<!-- num-block: (?P<key>[^ ]+) -->\n(?P<fence>```[^\n]*)\n(?P<text>.*?)```\n<!-- /num-block -->", re.S)
SUBSTITUTION = re.compile(r"\{\{\s*(?P<name>\w+)\s*\}\}")
# A number as a program prints it: 60,000 / -92.08 / 1.8e-14 / 0.0001224 (not the 2 of "fc2").
PRINTED_NUMBER = re.compile(r"(?<![\w.])[-−]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?")

# What a measured number looks like (after markers, code and maths are removed).
MEASURED = [
    # a time ("57.2 s", "4 min", "2.4s"; not the plural "the 0s and 1s")
    re.compile(r"\d+(?:[.,]\d+)?\s(?:s|ms|min|minutes?|hours?|h)\b(?!-)|\d+[.,]\d+(?:s|ms|h)\b(?!-)"
               r"|\d+(?:ms|min|minutes?|hours?)\b(?!-)"),
    re.compile(r"\d+(?:\.\d+)?\s?(?:×|x\b)(?!\s?\d)"),                      # a ratio (not a size, 28×28)
    re.compile(r"\d[\d,.]*\s?(?:–|-)?\s?\d*\.?\d*\s?nats?\b"),              # nats
    re.compile(r"±\s?\d"),                                                    # an error bar
    re.compile(r"\b\d+\.\d{2,}\b"),                                           # a number with 2+ decimals
    re.compile(r"\d+(?:\.\d+)?\s?%"),                                         # a percentage
    re.compile(r"load average\D{0,12}\d"),                                   # a machine's load
    re.compile(r"\b(?:AUROC|AUC)\b[^.\n]{0,20}\d\.\d|\d\.\d+[^.\n]{0,12}\b(?:AUROC|AUC)"   # an AUROC value
               r"|\bGFLOP/?s?\b[^.\n]{0,20}\d|\d[^.\n]{0,12}\bGFLOP"),
    # a count of what a run used or made: "5 seeds", "2,000 images", "10 epochs", "15 classifiers"
    # (one optional adjective between: "1,000 test images"; "10 digit classes" is not a count of digits)
    # (thousands written 2,000 or 2 000; not the second side of a size, 28×28 images)
    re.compile(r"(?<![\w.,×])(?<!× )(?:\d{1,3}(?:[ ,]\d{3})+|\d+)\s"
               r"(?:(?:test|random|labelled|labeled|small|more|new|fresh|generated)\s)?"
               r"(?:seeds?|images?|epochs?|digits?(?!\s+class)|runs?|classifiers?|CVAEs?)\b"),
]
# Numbers that match MEASURED but are not measurements, whatever the page.
NOT_MEASURED = [
    # an author's study-time estimate: "**Time:** about 45 minutes", "10 minutes of reading"
    re.compile(r"(?:\*\*)?(?:Estimated |Study )?[Tt]ime:(?:\*\*)?\s*(?:about\s+)?\d+\s?(?:min|minutes?|hours?)\b"
               r"|\d+\s?(?:min|minutes?|hours?)\s+of\s+(?:reading|study)"),
    # MNIST's own sizes, not a choice of a run: all 60,000 training images, the 10,000 test images
    re.compile(r"\b60[, ]?000 (?:\w+ )?(?:images|digits)|\b10[, ]?000 test (?:images|digits)"),
    # the level of a confidence interval, not a result: "a 95% interval", "95% error bar"
    re.compile(r"\b(?:90|95|99)\s?% (?:[\w-]+ ){0,2}(?:interval|error bar|CI)\b"),
]


@dataclass(frozen=True)
class Allowed:
    """A number in watched text that is not a measurement of this course."""
    file: str   # path relative to the repository root
    text: str   # the exact text (the smallest span that contains the match)
    why: str    # where it comes from


ALLOWED = [
    Allowed("README.md", "report 86.76", "Burda, Grosse & Salakhutdinov 2015, Table 1 (VAE, 1 stochastic layer)"),
    Allowed("README.md", "and 84.78", "Burda, Grosse & Salakhutdinov 2015, Table 1 (IWAE, 1 stochastic layer, k = 50)"),
    Allowed("book/cheat_sheet.md", "86.76 nats", "Burda et al. 2015, Table 1 (VAE, 1 stochastic layer, k = 1)"),
    Allowed("book/common_bugs.md", "about 100 nats", "order of magnitude of every grayscale-MNIST loss, not one run"),
    Allowed("book/common_bugs.md", "80–90 nats", "the range of published binarized-MNIST NLLs (Burda et al. 2015, Table 1)"),
    Allowed("book/contributing.md", "load average is above 0.5", "a threshold of scripts/nbtools.py, not a measurement"),
    Allowed("book/contributing.md", "over 3 minutes", "a limit of tests/test_notebook_conventions.py"),
    Allowed("notebooks/05_full_vae.ipynb", "example 86.76 nats",
            "Burda, Grosse & Salakhutdinov 2015, Table 1 (VAE, 1 stochastic layer), cited in the sentence"),
    Allowed("notebooks/06_gpu_vae.ipynb", "about 1% of a T4's 16 GB",
            "arithmetic in the sentence: 188 MB of MNIST against the T4's 16 GB (NVIDIA's specification)"),
    Allowed("book/results.ipynb", "≈ 100+", "order of magnitude"),
    Allowed("book/results.ipynb", "≈ 80–90", "order of magnitude of published NLLs"),
]


# ------------------------------------------------------------------ sources
class SourceError(LookupError):
    """A key names a file, a field, a cell or a label that does not exist."""


def _dig(value: Any, path: list[str], key: str) -> Any:
    for part in path:
        if isinstance(value, list) and part.lstrip("-").isdigit():
            value = value[int(part)]
        elif isinstance(value, dict) and part in value:
            value = value[part]
        else:
            raise SourceError(f"{key}: no field {part!r}")
    return value


def _notebook(name: str) -> dict:
    path = NOTEBOOKS_DIR / f"{name}.ipynb"
    if not path.is_file():
        path = ROOT / "book" / f"{name}.ipynb"
    if not path.is_file():
        raise SourceError(f"no notebook {name}.ipynb in notebooks/ or book/")
    return json.loads(path.read_text(encoding="utf-8"))


def _text(value: Any) -> str:
    """A notebook field that may be one string or a list of lines (raw JSON), as one string."""
    return "".join(value) if isinstance(value, list) else (value or "")


def cell_text_outputs(cell: dict) -> str:
    """What a code cell printed: its stream outputs and ``text/plain`` results, in order."""
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append(_text(out.get("text")))
        elif "text/plain" in out.get("data", {}):
            parts.append(_text(out["data"]["text/plain"]))
    return "".join(parts)


def printed_number(notebook: dict, cell_id: str, label: str, key: str) -> str:
    """The first number printed after the first ``label`` in the outputs of cell ``cell_id``, as printed."""
    cell = next((c for c in notebook.get("cells", []) if c.get("id") == cell_id), None)
    if cell is None or cell.get("cell_type") != "code":
        raise SourceError(f"{key}: this notebook has no code cell with id {cell_id!r}")
    text = cell_text_outputs(cell)
    at = text.find(label)
    if at < 0:
        raise SourceError(f"{key}: the outputs of cell {cell_id} do not print {label!r}")
    m = PRINTED_NUMBER.search(text, at + len(label))
    if not m:
        raise SourceError(f"{key}: no number is printed after {label!r} in cell {cell_id}")
    return m.group(0).replace("−", "-")


def _as_number(printed: str) -> int | float:
    plain = printed.replace(",", "")
    return float(plain) if re.search(r"[.eE]", plain) else int(plain)


def last_epoch_log(notebook: str) -> str:
    """The final epoch's log lines (the seed guide's) of the longest run a notebook's outputs printed.

    Of every ``Epoch N/N`` block (a run's last epoch), the one with the largest N:
    a short demo run printed later on the page does not replace the page's main run.
    """
    text = "".join(_text(out.get("text")) for cell in _notebook(notebook)["cells"]
                   for out in cell.get("outputs", []) if out.get("output_type") == "stream")
    lines = r"(?:(?:Loss|Reconstruction Loss|KL Divergence|Test Loss): [^\n]*\n)+"
    found = [(int(m.group(1)), m.group(0)) for m in re.finditer(rf"^Epoch (\d+)/\1\n{lines}", text, re.M)]
    if not found:
        raise SourceError(f"log:{notebook}: no final 'Epoch N/N' log block in its outputs")
    return max(found, key=lambda pair: pair[0])[1]


def value_of(key: str, notebook: dict | None = None) -> Any:
    """The current value of KEY (see the module docstring); ``notebook`` is the one an ``out:`` key reads."""
    if key.startswith("log:"):
        return last_epoch_log(key[4:])
    if key.startswith("out:"):
        if notebook is None:
            raise SourceError(f"{key}: out: keys work only in a notebook's Markdown (they read its outputs)")
        cell_id, _, label = key[4:].partition(":")
        return _as_number(printed_number(notebook, cell_id, label, key))
    if key.startswith("fact:"):
        name = key[5:]
        if name not in FACTS:
            raise SourceError(f"{key}: no such fact; the facts are {sorted(FACTS)}")
        return FACTS[name]()
    if key.startswith("nb:"):
        name, _, field = key[3:].partition(".")
        return _dig(_notebook(name).get("metadata", {}).get("vae_course", {}), field.split("."), key)
    name, _, field = key.partition(".")
    path = RESULTS_DIR / f"{name}.json"
    if not path.is_file():
        raise SourceError(f"{key}: {path.relative_to(ROOT)} does not exist")
    return _dig(json.loads(path.read_text(encoding="utf-8")), field.split(".") if field else [], key)


def formatted(key: str, fmt: str | None, notebook: dict | None = None) -> str:
    """KEY's value as the prose shows it: formatted with FMT, or as it is (an out: number as printed)."""
    if not fmt and key.startswith("out:") and notebook is not None:
        cell_id, _, label = key[4:].partition(":")
        return printed_number(notebook, cell_id, label, key)
    value = value_of(key, notebook)
    return format(value, fmt) if fmt else str(value)


def book_substitutions() -> dict[str, str]:
    """{{ name }} -> its text, for the book (book/_ext/course_book.py)."""
    out = {}
    for name, spec in BOOK_NUMBERS.items():
        key, _, fmt = spec.partition(":") if not spec.startswith("fact:") else (spec, "", "")
        out[name] = formatted(key, fmt or None)
    return out


# ------------------------------------------------------------------ fill / check markers
CODE = re.compile(r"(?ms)^(```|~~~).*?^\1[^\n]*$|`[^`\n]*`")


def _code_spans(text: str) -> list[tuple[int, int]]:
    """Where TEXT has code (fenced blocks, inline spans): a marker there is an example, not a marker."""
    return [m.span() for m in CODE.finditer(text)]


def _markers(pattern: re.Pattern, text: str) -> list[re.Match]:
    """PATTERN's matches in TEXT that do not start inside code."""
    spans = _code_spans(text)
    return [m for m in pattern.finditer(text) if not any(a <= m.start() < b for a, b in spans)]


def _marker(m: re.Match, text: str) -> str:
    fmt = m.group("fmt")
    return f"<!-- num: {m.group('key')}{':' + fmt if fmt is not None else ''} -->{text}<!-- /num -->"


def fill_text(text: str, notebook: dict | None = None, errors: list[str] | None = None) -> str:
    """TEXT with every marker's content rewritten from its source.

    A marker whose source is missing raises :class:`SourceError`, or, given ``errors``,
    is left as it is and reported there.
    """
    def guarded(make: Callable[[re.Match], str]) -> Callable[[re.Match], str]:
        def sub(m: re.Match) -> str:
            try:
                return make(m)
            except (SourceError, ValueError, TypeError) as err:
                if errors is None:
                    raise
                errors.append(str(err))
                return m.group(0)
        return sub

    number = guarded(lambda m: _marker(m, formatted(m.group("key"), m.group("fmt"), notebook)))
    block = guarded(lambda m: (f"<!-- num-block: {m.group('key')} -->\n{m.group('fence')}\n"
                               f"{value_of(m.group('key')).rstrip()}\n```\n<!-- /num-block -->"))
    return _substitute(BLOCK, block, _substitute(MARKER, number, text))


def _substitute(pattern: re.Pattern, make: Callable[[re.Match], str], text: str) -> str:
    """``pattern.sub(make, text)`` for the matches outside code only."""
    out, last = [], 0
    for m in _markers(pattern, text):
        out += [text[last:m.start()], make(m)]
        last = m.end()
    return "".join(out) + text[last:]


# A line that *starts* with an HTML comment opens a raw-HTML block in CommonMark and MyST:
# the paragraph splits there and the rest of the line is not rendered as Markdown (or maths).
LINE_START_MARKER = re.compile(r"^[ \t]*(?:\*\*|__|\*|_)?<!-- num:", re.M)


def markers_at_line_start(text: str) -> list[str]:
    """One line per marker that begins a line (join it to the previous line instead)."""
    return [f"a marker starts a line (it would become a raw-HTML block): "
            f"{text[m.start():m.start() + 60].strip()!r}; join it to the previous line"
            for m in LINE_START_MARKER.finditer(text)]


def stale_markers(text: str, notebook: dict | None = None) -> list[str]:
    """One line per marker whose text disagrees with its source (or whose source is missing),
    and per marker that begins a line."""
    problems = markers_at_line_start(text)
    for m in _markers(MARKER, text):
        try:
            want = formatted(m.group("key"), m.group("fmt"), notebook)
        except (SourceError, ValueError, TypeError) as err:
            problems.append(f"{m.group('key')}: {err}" if not str(err).startswith(m.group("key")) else str(err))
            continue
        if m.group("text") != want:
            problems.append(f"{m.group('key')}: the text says {m.group('text')!r}, the source {want!r}")
    for m in BLOCK.finditer(text):  # a block marker sits around a fence, never inside code
        try:
            want = value_of(m.group("key")).rstrip()
        except SourceError as err:
            problems.append(str(err))
            continue
        if m.group("text").rstrip() != want:
            problems.append(f"{m.group('key')}: the copied log differs from the notebook's output")
    return problems


def unknown_substitutions(text: str) -> list[str]:
    """{{ name }} outside code whose name BOOK_NUMBERS does not define (the build would fail on it)."""
    text = re.sub(r"(?ms)^(```|~~~).*?^\1[^\n]*$", "", text)
    text = re.sub(r"`[^`\n]*`", "", text)
    return [f"{{{{ {m.group('name')} }}}} is not in BOOK_NUMBERS" for m in SUBSTITUTION.finditer(text)
            if m.group("name") not in BOOK_NUMBERS]


# ------------------------------------------------------------------ unmarked measurements
def prose_only(text: str) -> str:
    """TEXT without markers, code, maths, links' targets and HTML comments (same length lines)."""
    text = BLOCK.sub("", text)
    text = MARKER.sub("NUM", text)
    text = SUBSTITUTION.sub("NUM", text)
    text = re.sub(r"(?ms)^(```|~~~).*?^\1[^\n]*$", "", text)          # fenced code
    text = re.sub(r"(?s)\$\$.*?\$\$", "", text)                        # display maths
    text = re.sub(r"(?s)\\begin\{(\w+\*?)\}.*?\\end\{\1\}", "", text)  # maths environments
    text = re.sub(r"(?<!\\)\$[^$\n]+\$", "", text)                     # inline maths
    text = re.sub(r"`[^`\n]*`", "", text)                              # inline code, roles' targets
    text = re.sub(r"\]\([^)]*\)", "]", text)                           # link targets
    text = re.sub(r"(?s)<!--.*?-->", "", text)
    text = re.sub(r"<[^>\n]+>", "", text)                              # HTML tags (not their text)
    text = re.sub(r"arXiv:\s?\d{4}\.\d{4,5}", "arXiv", text)          # paper identifiers
    text = re.sub(r"\bdoi:\s?10\.\S+", "doi", text)
    text = re.sub(r"\b\d+\.\d+\.\d+\b", "VERSION", text)               # version numbers
    return text


def readme_watched(text: str) -> str:
    paragraphs = re.split(r"\n\s*\n", text)
    return "\n\n".join(p for p in paragraphs if p.lstrip().startswith(README_WATCHED))


def _flat(text: str) -> str:
    return " ".join(text.split())  # a number and its unit may sit on two lines


def allowed_present(entry: Allowed, root: Path = ROOT) -> bool:
    """Is an ALLOWED entry's text still in its file's watched prose? (an entry that is gone allows nothing)"""
    path = root / entry.file
    return path.is_file() and entry.text in _flat(prose_only(watched_text(path, whole_readme=True)))


def unmarked_measurements(text: str, file: str, allowed: list[Allowed] = ALLOWED) -> list[str]:
    """One line per paragraph of TEXT (its watched part) holding numbers that look measured, not allowed."""
    spans = [a.text for a in allowed if a.file == file]
    problems = []
    for paragraph in re.split(r"\n\s*\n", prose_only(text)):
        flat = _flat(paragraph)
        for span in spans:
            flat = flat.replace(span, "ALLOWED")
        for pattern in NOT_MEASURED:
            flat = pattern.sub("FIXED", flat)
        hits = sorted({(m.start(), m.group(0).strip()) for pattern in MEASURED for m in pattern.finditer(flat)})
        if hits:
            start = hits[0][0]
            context = flat[max(0, start - 50): start + 60]
            problems.append(f"{file}: unmarked measurement {', '.join(repr(h) for _, h in hits)} in: …{context}…")
    return problems


def markdown_cells(nb: dict) -> list[dict]:
    """The Markdown cells a notebook's prose check reads (the generated Colab badge is left out)."""
    return [c for c in nb["cells"] if c["cell_type"] == "markdown"
            and "colab-badge" not in c.get("metadata", {}).get("tags", [])]


def watched_text(path: Path, whole_readme: bool = False) -> str:
    """The part of PATH the measurement check reads."""
    if path.name == "README.md":
        text = path.read_text(encoding="utf-8")
        return text if whole_readme else readme_watched(text)
    if path.suffix == ".ipynb":
        nb = json.loads(path.read_text(encoding="utf-8"))
        return "\n\n".join(_text(c["source"]) for c in markdown_cells(nb))
    return path.read_text(encoding="utf-8")


def _read_notebook(path: Path):
    import nbformat  # only the notebook parts need it (the book build imports this module too)

    return nbformat.read(path, as_version=4)


def notebook_problems(path: Path, rel: str) -> list[str]:
    """Stale markers and markers without a source in one notebook's Markdown, one line each."""
    nb = json.loads(path.read_text(encoding="utf-8"))  # read-only: plain JSON is enough, and quick
    problems = []
    for cell in markdown_cells(nb):
        problems += [f"{rel} (cell {cell.get('id')}): {p}" for p in stale_markers(_text(cell["source"]), nb)]
    return problems


def check(root: Path = ROOT) -> list[str]:
    """Every problem, one line each: stale markers, unknown substitutions, unmarked measurements."""
    problems = []
    for rel in FILL_FILES:
        path = root / rel
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            problems += [f"{rel}: {p}" for p in stale_markers(text) + unknown_substitutions(text)]
    for rel in NOTEBOOK_PAGES:
        if (root / rel).is_file():
            problems += notebook_problems(root / rel, rel)
    try:
        book_substitutions()
    except (SourceError, ValueError, TypeError) as err:
        problems.append(f"BOOK_NUMBERS: {err}")
    for path in [root / "README.md", *[root / p.relative_to(ROOT) for p in BOOK_PAGES],
                 *[root / rel for rel in NOTEBOOK_PAGES]]:
        if path.is_file():
            problems += unmarked_measurements(watched_text(path), str(path.relative_to(root)))
    return problems


def fill_notebook(path: Path, errors: list[str] | None = None) -> bool:
    """Rewrite the markers in one notebook's Markdown cells (outputs, metadata and cell ids untouched)."""
    import nbformat

    nb = _read_notebook(path)
    changed = False
    for cell in markdown_cells(nb):
        new = fill_text(cell.source, nb, errors)
        if new != cell.source:
            cell.source, changed = new, True
    if changed:
        nbformat.write(nb, path)
    return changed


def fill(root: Path = ROOT, only: list[str] | None = None) -> list[str]:
    """Rewrite every marker in FILL_FILES and NOTEBOOK_PAGES (or in ``only`` of them); return the files changed.

    Every marker whose source exists is filled; then, if any source was missing,
    :class:`SourceError` names them all (the markers concerned are left as they were).
    """
    changed, errors = [], []
    wanted = None if only is None else {Path(f).as_posix() for f in only}
    for rel in FILL_FILES:
        path = root / rel
        if not path.is_file() or (wanted is not None and rel not in wanted):
            continue
        old = path.read_text(encoding="utf-8")
        new = fill_text(old, errors=(mine := []))
        errors += [f"{rel}: {e}" for e in mine]
        if new != old:
            path.write_text(new, encoding="utf-8")
            changed.append(rel)
    for rel in NOTEBOOK_PAGES:
        if (root / rel).is_file() and (wanted is None or rel in wanted):
            mine = []
            if fill_notebook(root / rel, mine):
                changed.append(rel)
            errors += [f"{rel}: {e}" for e in mine]
    if errors:
        raise SourceError("; ".join(errors) + (f" (filled anyway: {', '.join(changed)})" if changed else ""))
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["fill", "check", "list"])
    parser.add_argument("files", nargs="*", help="fill: only these files (paths from the repository root)")
    args = parser.parse_args(argv)
    try:
        if args.command == "fill":
            unknown = sorted(set(args.files) - set(FILL_FILES) - set(NOTEBOOK_PAGES))
            if unknown:
                print(f"prose_numbers.py: {unknown[0]} has no markers to fill; choose from README.md, book/*.md, "
                      "notebooks/*.ipynb, book/results.ipynb", file=sys.stderr)
                return 2
            changed = fill(only=args.files or None)
            print("updated: " + ", ".join(changed) if changed else "every marked number is up to date")
            return 0
        if args.command == "list":
            for name, text in book_substitutions().items():
                print(f"{{{{ {name} }}}} = {text}    ({BOOK_NUMBERS[name]})")
            return 0
    except SourceError as err:
        print(f"prose_numbers.py: {err}", file=sys.stderr)
        return 1
    problems = check()
    for line in problems:
        print(line)
    if problems:
        print(f"{len(problems)} problem(s); run `python scripts/prose_numbers.py fill`, mark the number, or "
              "add it to ALLOWED with its source", file=sys.stderr)
        return 1
    print("every measured number is marked and agrees with its source")
    return 0


if __name__ == "__main__":
    sys.exit(main())
