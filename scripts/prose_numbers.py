"""Measured numbers in prose, filled in from the runs that produced them.

    python scripts/prose_numbers.py fill     # rewrite every marked number from its source (make numbers)
    python scripts/prose_numbers.py check    # exit 1 on a stale number or an unmarked measurement
    python scripts/prose_numbers.py list     # every book substitution and its value

A measured number (a time, a loss, a ratio, an NLL ...) in README.md or a
Markdown page never comes from the keyboard. It is one of:

* a **marker** in Markdown, ``<!-- num: KEY:FORMAT -->85.71<!-- /num -->``, whose text
  ``fill`` rewrites from KEY (invisible on GitHub: the comments are not shown);
* a **block marker** around a fenced code block, ``<!-- num-block: KEY -->`` ...
  ``<!-- /num-block -->``, for a whole log copied from a notebook's output;
* a **book substitution**, ``{{ conv_nll }}``, that book/_ext/course_book.py fills at
  build time from BOOK_NUMBERS below (MyST substitutions);
* or a number a notebook cell prints right where it is shown.

KEY is ``<file>.<path>``: ``conv_vae_long.iwae_nll`` is the field ``iwae_nll`` of
``RESULTS_DIR/conv_vae_long.json``; list items by index (``...test_loss.0``).
``nb:<notebook>.<field>`` reads the notebook's execution record
(``metadata.vae_course``), and ``log:<notebook>`` the last ``Epoch N/N`` block its
outputs printed. FORMAT is a Python format spec (``.2f``, ``,.0f``); empty for text.

The file is not called ``numbers.py``: run from ``scripts/``, that name would
shadow the standard library's ``numbers`` module for everything imported after it.

``check`` also reads the *watched* text (the README paragraphs listed in
README_WATCHED, every page in BOOK_PAGES and the Markdown cells of
book/results.ipynb, with code and maths left out) for numbers that look measured
(MEASURED) and are neither marked nor in ALLOWED, the explicit list of numbers
that are not measurements of this course (a paper's table, with its citation).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# The one place the committed results live. If they move into the package
# (vae_course/results/), change this constant and nothing else.
RESULTS_DIR = ROOT / "vae_course" / "results"
NOTEBOOKS_DIR = ROOT / "notebooks"

# Files whose markers `fill` rewrites.
FILL_FILES = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "book").glob("*.md"))]
# README paragraphs that state measurements: each starts with one of these.
README_WATCHED = ("That run used", "**Defaults.**", "**Speed.**", "**Likelihood.**")
BOOK_PAGES = sorted((ROOT / "book").glob("*.md"))
NOTEBOOK_PAGES = [ROOT / "book" / "results.ipynb"]

# {{ name }} in a book page -> KEY:FORMAT (filled by book/_ext/course_book.py at build time).
BOOK_NUMBERS: dict[str, str] = {
    "canonical_test_loss": "quality_mlp_defaults.confirmation.canonical.test_loss_mean:.1f",
    "defaults_test_loss": "quality_mlp_defaults.confirmation.chosen.test_loss_mean:.1f",
    "conv_nll": "conv_vae_long.iwae_nll:.2f",
    "conv_nll_stderr": "conv_vae_long.iwae_nll_stderr:.2f",
    "bench_ratio": "bench_cpu.ratio:.2f",
}

MARKER = re.compile(r"<!-- num: (?P<key>[^ :]+)(?::(?P<fmt>[^ ]*))? -->(?P<text>.*?)<!-- /num -->", re.S)
BLOCK = re.compile(r"<!-- num-block: (?P<key>[^ ]+) -->\n(?P<fence>```[^\n]*)\n(?P<text>.*?)```\n<!-- /num-block -->", re.S)
SUBSTITUTION = re.compile(r"\{\{\s*(?P<name>\w+)\s*\}\}")

# What a measured number looks like (after markers, code and maths are removed).
MEASURED = [
    re.compile(r"\d+(?:[.,]\d+)?\s?(?:s|ms|min|minutes?|hours?|h)\b(?!-)"),  # a time
    re.compile(r"\d+(?:\.\d+)?\s?(?:×|x\b)"),                               # a ratio
    re.compile(r"\d[\d,.]*\s?(?:–|-)?\s?\d*\.?\d*\s?nats?\b"),              # nats
    re.compile(r"±\s?\d"),                                                    # an error bar
    re.compile(r"\b\d+\.\d{2,}\b"),                                           # a number with 2+ decimals
    re.compile(r"\d+(?:\.\d+)?\s?%"),                                         # a percentage
    re.compile(r"load average\D{0,12}\d"),                                   # a machine's load
    re.compile(r"\b(?:AUROC|AUC|GFLOP/?s?)\b[^.\n]{0,20}\d|\d[^.\n]{0,12}\b(?:AUROC|AUC|GFLOP)"),
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
    Allowed("book/results.ipynb", "10 minutes of reading", "a reading estimate for the learner, not a measurement"),
    Allowed("book/results.ipynb", "about 45.5 nats", "notebook 5 computes it (the entropy of the grayscale targets)"),
    Allowed("book/results.ipynb", "≈ 100+", "order of magnitude"),
    Allowed("book/results.ipynb", "≈ 80–90", "order of magnitude of published NLLs"),
]


# ------------------------------------------------------------------ sources
class SourceError(LookupError):
    """A key names a file or a field that does not exist."""


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


def last_epoch_log(notebook: str) -> str:
    """The final epoch's log lines (the seed guide's) of the longest run a notebook's outputs printed.

    Of every ``Epoch N/N`` block (a run's last epoch), the one with the largest N:
    a short demo run printed later on the page does not replace the page's main run.
    """
    text = "".join("".join(out.get("text", "")) for cell in _notebook(notebook)["cells"]
                   for out in cell.get("outputs", []) if out.get("output_type") == "stream")
    lines = r"(?:(?:Loss|Reconstruction Loss|KL Divergence|Test Loss): [^\n]*\n)+"
    found = [(int(m.group(1)), m.group(0)) for m in re.finditer(rf"^Epoch (\d+)/\1\n{lines}", text, re.M)]
    if not found:
        raise SourceError(f"log:{notebook}: no final 'Epoch N/N' log block in its outputs")
    return max(found, key=lambda pair: pair[0])[1]


def value_of(key: str) -> Any:
    """The current value of KEY (see the module docstring)."""
    if key.startswith("log:"):
        return last_epoch_log(key[4:])
    if key.startswith("nb:"):
        name, _, field = key[3:].partition(".")
        return _dig(_notebook(name).get("metadata", {}).get("vae_course", {}), field.split("."), key)
    name, _, field = key.partition(".")
    path = RESULTS_DIR / f"{name}.json"
    if not path.is_file():
        raise SourceError(f"{key}: {path.relative_to(ROOT)} does not exist")
    return _dig(json.loads(path.read_text(encoding="utf-8")), field.split(".") if field else [], key)


def formatted(key: str, fmt: str | None) -> str:
    value = value_of(key)
    return format(value, fmt) if fmt else str(value)


def book_substitutions() -> dict[str, str]:
    """{{ name }} -> its text, for the book (book/_ext/course_book.py)."""
    out = {}
    for name, spec in BOOK_NUMBERS.items():
        key, _, fmt = spec.partition(":")
        out[name] = formatted(key, fmt or None)
    return out


# ------------------------------------------------------------------ fill / check markers
def fill_text(text: str) -> str:
    """TEXT with every marker's content rewritten from its source."""
    def number(m: re.Match) -> str:
        return f"<!-- num: {m.group('key')}{':' + m.group('fmt') if m.group('fmt') is not None else ''} -->" \
               f"{formatted(m.group('key'), m.group('fmt'))}<!-- /num -->"

    def block(m: re.Match) -> str:
        return (f"<!-- num-block: {m.group('key')} -->\n{m.group('fence')}\n"
                f"{value_of(m.group('key')).rstrip()}\n```\n<!-- /num-block -->")

    return BLOCK.sub(block, MARKER.sub(number, text))


def stale_markers(text: str) -> list[str]:
    """One line per marker whose text disagrees with its source (or whose source is missing)."""
    problems = []
    for m in MARKER.finditer(text):
        try:
            want = formatted(m.group("key"), m.group("fmt"))
        except (SourceError, ValueError, TypeError) as err:
            problems.append(f"{m.group('key')}: {err}")
            continue
        if m.group("text") != want:
            problems.append(f"{m.group('key')}: the text says {m.group('text')!r}, the source {want!r}")
    for m in BLOCK.finditer(text):
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
    text = re.sub(r"(?<!\\)\$[^$\n]+\$", "", text)                     # inline maths
    text = re.sub(r"`[^`\n]*`", "", text)                              # inline code, roles' targets
    text = re.sub(r"\]\([^)]*\)", "]", text)                           # link targets
    text = re.sub(r"(?s)<!--.*?-->", "", text)
    text = re.sub(r"arXiv:\s?\d{4}\.\d{4,5}", "arXiv", text)          # paper identifiers
    text = re.sub(r"\b\d+\.\d+\.\d+\b", "VERSION", text)               # version numbers
    return text


def readme_watched(text: str) -> str:
    paragraphs = re.split(r"\n\s*\n", text)
    return "\n\n".join(p for p in paragraphs if p.lstrip().startswith(README_WATCHED))


def unmarked_measurements(text: str, file: str, allowed: list[Allowed] = ALLOWED) -> list[str]:
    """One line per paragraph of TEXT (its watched part) holding numbers that look measured, not allowed."""
    spans = [a.text for a in allowed if a.file == file]
    problems = []
    for paragraph in re.split(r"\n\s*\n", prose_only(text)):
        flat = " ".join(paragraph.split())  # a number and its unit may sit on two lines
        for span in spans:
            flat = flat.replace(span, "ALLOWED")
        hits = sorted({(m.start(), m.group(0).strip()) for pattern in MEASURED for m in pattern.finditer(flat)})
        if hits:
            start = hits[0][0]
            context = flat[max(0, start - 50): start + 60]
            problems.append(f"{file}: unmarked measurement {', '.join(repr(h) for _, h in hits)} in: …{context}…")
    return problems


def watched_text(path: Path) -> str:
    """The part of PATH the measurement check reads."""
    if path.name == "README.md":
        return readme_watched(path.read_text(encoding="utf-8"))
    if path.suffix == ".ipynb":
        nb = json.loads(path.read_text(encoding="utf-8"))
        return "\n\n".join("".join(c["source"]) if isinstance(c["source"], list) else c["source"]
                           for c in nb["cells"] if c["cell_type"] == "markdown"
                           and "colab-badge" not in c.get("metadata", {}).get("tags", []))
    return path.read_text(encoding="utf-8")


def check(root: Path = ROOT) -> list[str]:
    """Every problem, one line each: stale markers, unknown substitutions, unmarked measurements."""
    problems = []
    for rel in FILL_FILES:
        path = root / rel
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            problems += [f"{rel}: {p}" for p in stale_markers(text) + unknown_substitutions(text)]
    try:
        book_substitutions()
    except (SourceError, ValueError, TypeError) as err:
        problems.append(f"BOOK_NUMBERS: {err}")
    for path in [root / "README.md", *[root / p.relative_to(ROOT) for p in BOOK_PAGES + NOTEBOOK_PAGES]]:
        if path.is_file():
            problems += unmarked_measurements(watched_text(path), str(path.relative_to(root)))
    return problems


def fill(root: Path = ROOT) -> list[str]:
    """Rewrite every marker in FILL_FILES; return the files that changed."""
    changed = []
    for rel in FILL_FILES:
        path = root / rel
        if not path.is_file():
            continue
        old = path.read_text(encoding="utf-8")
        new = fill_text(old)
        if new != old:
            path.write_text(new, encoding="utf-8")
            changed.append(rel)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["fill", "check", "list"])
    args = parser.parse_args(argv)
    try:
        if args.command == "fill":
            changed = fill()
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
