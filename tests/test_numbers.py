"""Measured numbers in README.md and the book's prose agree with the runs they come from
(scripts/prose_numbers.py), and the checker catches a number that does not."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import prose_numbers as pn  # noqa: E402


@pytest.fixture()
def copy(tmp_path: Path) -> Path:
    """A copy of every file the checker reads (the sources stay where they are)."""
    for rel in pn.FILL_FILES + [str(p.relative_to(ROOT)) for p in pn.NOTEBOOK_PAGES]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, tmp_path / rel)
    return tmp_path


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_every_measured_number_agrees_with_its_source():
    problems = pn.check()
    assert not problems, "\n".join(problems) + "\nfix: python scripts/prose_numbers.py fill (or mark the number)"


def test_the_checker_reports_a_corrupted_number(copy: Path):
    readme = copy / "README.md"
    nll = pn.formatted("conv_vae_long.iwae_nll", ".2f")
    _edit(readme, f"<!-- num: conv_vae_long.iwae_nll:.2f -->{nll}<!-- /num -->",
          "<!-- num: conv_vae_long.iwae_nll:.2f -->84.99<!-- /num -->")
    problems = pn.check(copy)
    assert [p for p in problems if "conv_vae_long.iwae_nll" in p and "'84.99'" in p], problems
    assert pn.fill(copy) == ["README.md"]
    assert pn.check(copy) == [], "fill must restore the number from its source"


def test_the_checker_reports_a_changed_log_line(copy: Path):
    readme = copy / "README.md"
    line = next(l for l in pn.value_of("log:05_full_vae").splitlines() if l.startswith("Test Loss"))
    _edit(readme, line, "Test Loss: 99.99")
    assert any("log:05_full_vae" in p for p in pn.check(copy))


def test_the_checker_reports_an_unmarked_measurement_in_a_watched_paragraph(copy: Path):
    readme = copy / "README.md"
    _edit(readme, "**Speed.** ", "**Speed.** One epoch takes 2.4 s on a laptop. ")
    problems = pn.check(copy)
    assert any("README.md" in p and "2.4 s" in p for p in problems), problems


def test_unwatched_readme_paragraphs_are_not_read(copy: Path):
    readme = copy / "README.md"
    _edit(readme, "## The package", "Not a measurement paragraph: 2.4 s.\n\n## The package")
    assert pn.check(copy) == []


def test_the_checker_reports_an_unmarked_number_on_a_book_page(copy: Path):
    _edit(copy / "book" / "cheat_sheet.md", "{{ canonical_test_loss }}", "105.6")
    problems = pn.check(copy)
    assert any("cheat_sheet.md" in p and "105.6" in p for p in problems), problems


def test_an_unknown_book_substitution_is_reported(copy: Path):
    _edit(copy / "book" / "cheat_sheet.md", "{{ conv_nll }}", "{{ conv_nlll }}")
    assert any("conv_nlll" in p for p in pn.check(copy))


@pytest.mark.parametrize("text", ["arXiv:1509.00519", "torch 2.14.1", "`85.71`", "$\\approx 1.443$ bits",
                                  "10 epochs", "K = 5000"])
def test_not_measurements(text: str):
    assert pn.unmarked_measurements(text, "x.md") == []


@pytest.mark.parametrize("text", ["2.4–2.9 s per epoch", "1.93×", "85.71 ± 0.48", "about 5 min",
                                  "105.6\n  nats", "an AUROC of 0.97", "load average 0.2"])
def test_measurements(text: str):
    assert pn.unmarked_measurements(text, "x.md"), text


def test_every_allowed_number_is_still_on_its_page():
    # An allow-list entry whose text is gone would silently allow nothing; keep the list true.
    for entry in pn.ALLOWED:
        assert entry.text in (ROOT / entry.file).read_text(encoding="utf-8"), entry


def test_book_substitutions_come_from_the_results():
    values = pn.book_substitutions()
    assert set(values) == set(pn.BOOK_NUMBERS)
    assert values["conv_nll"] == format(pn.value_of("conv_vae_long.iwae_nll"), ".2f")


def test_a_missing_source_is_one_clear_error():
    with pytest.raises(pn.SourceError, match="no field 'no_such_field'"):
        pn.value_of("conv_vae_long.no_such_field")
    with pytest.raises(pn.SourceError, match="does not exist"):
        pn.value_of("no_such_file.x")
