"""Every launch link of every notebook page of the built book opens that notebook's student copy.

Reads the HTML of the book-test build (``_build/html``, made by ``make book-test``):
on the page of ``notebooks/NN_name``, each link of the launch dropdown (the
rocket: Colab, and Binder or JupyterHub if configured) must open
``student/NN_name.ipynb`` (the exercises without their solutions), of the
repository and branch in ``_config.yml``; no link on the page may open the
version with solutions in Colab. The extension's own functions are tested on
their own too (book/_ext/launch_links.py).
"""
from __future__ import annotations

import html.parser
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "book" / "_ext"))
import launch_links  # noqa: E402

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


class _Links(html.parser.HTMLParser):
    """Every ``<a href>`` of a page, and the ones inside the launch dropdown (``div.dropdown-launch-buttons``)."""

    def __init__(self) -> None:
        super().__init__()
        self.all: list[str] = []
        self.launch: list[str] = []
        self._depth = 0  # >0 while inside the launch dropdown (counting nested divs)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attrs = dict(attrs)
        if tag == "div":
            if self._depth:
                self._depth += 1
            elif f"dropdown-{launch_links.LAUNCH_GROUP}" in (attrs.get("class") or "").split():
                self._depth = 1
        if tag == "a" and attrs.get("href"):
            self.all.append(attrs["href"])
            if self._depth:
                self.launch.append(attrs["href"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "div" and self._depth:
            self._depth -= 1


def page_links(page: Path) -> _Links:
    parser = _Links()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def launch_problems(html_dir: Path) -> list[str]:
    """Every way in which the built book's notebook pages break the rule (empty when it holds)."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    org_repo = config["repository"]["url"].rstrip("/").split("github.com/")[1]
    branch = config["repository"]["branch"]
    colab = f"{config['launch_buttons']['colab_url'].rstrip('/')}/github/{org_repo}/blob/{branch}/"
    problems = []
    for source in NOTEBOOKS:
        page = html_dir / "notebooks" / f"{source.stem}.html"
        if not page.is_file():
            problems.append(f"{page.relative_to(html_dir)}: not built")
            continue
        links = page_links(page)
        if not links.launch:
            problems.append(f"{page.name}: no launch links")
        for url in links.launch:
            if f"student/{source.name}" not in url:
                problems.append(f"{page.name}: a launch link opens {url}, not student/{source.name}")
        if f"{colab}student/{source.name}" not in links.launch:
            problems.append(f"{page.name}: no Colab launch link to {colab}student/{source.name}")
        problems += [f"{page.name}: a link opens the version with solutions in Colab: {url}"
                     for url in links.all if url.startswith(colab) and "/notebooks/" in url]
    return problems


def test_every_notebook_page_launches_its_student_copy(book_html: Path):
    assert NOTEBOOKS, "no notebooks"
    problems = launch_problems(book_html)
    assert not problems, "\n".join(problems)


def test_the_check_notices_a_page_that_launches_the_solutions(book_html: Path, tmp_path: Path):
    """The check can fail: a page whose rocket opens notebooks/NN.ipynb (the theme's own link) is caught."""
    name = NOTEBOOKS[0].stem
    broken = tmp_path / "notebooks"
    broken.mkdir()
    for source in NOTEBOOKS:
        text = (book_html / "notebooks" / f"{source.stem}.html").read_text(encoding="utf-8")
        if source.stem == name:
            text = text.replace(f"student/{name}.ipynb", f"notebooks/{name}.ipynb")
        (broken / f"{source.stem}.html").write_text(text, encoding="utf-8")
    problems = launch_problems(tmp_path)
    assert problems and all(f"{name}.html" in p for p in problems), problems


def test_retarget_changes_only_the_launch_group():
    buttons = [
        {"label": "launch-buttons", "buttons": [
            {"url": "https://colab.research.google.com/github/o/r/blob/main/notebooks/05_x.ipynb", "tooltip": "Launch on Colab"},
            {"url": "https://binder/v2/gh/o/r/main?urlpath=tree/notebooks/05_x.ipynb", "tooltip": "Launch on Binder"}]},
        {"label": "download-buttons", "buttons": [{"url": "../_sources/notebooks/05_x.ipynb"}]},
    ]
    assert launch_links.retarget(buttons, "notebooks/05_x.ipynb", "student/05_x.ipynb") == 2
    assert [b["url"] for b in buttons[0]["buttons"]] == [
        "https://colab.research.google.com/github/o/r/blob/main/student/05_x.ipynb",
        "https://binder/v2/gh/o/r/main?urlpath=tree/student/05_x.ipynb"]
    assert buttons[1]["buttons"][0]["url"] == "../_sources/notebooks/05_x.ipynb", "downloads are not launch links"


@pytest.mark.parametrize("pagename, expected", [
    ("notebooks/05_full_vae", ("notebooks/05_full_vae.ipynb", "student/05_full_vae.ipynb")),
    ("book/results", None),
    ("notebooks/99_missing", None),
])
def test_student_target(pagename, expected):
    assert launch_links.student_target(pagename, ROOT) == expected
