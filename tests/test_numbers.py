"""Measured numbers in README.md, the book's prose and the notebooks' Markdown agree with the runs
they come from (scripts/prose_numbers.py), and the checker catches a number that does not: each
failure mode is shown by breaking a temporary copy of the real files."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import prose_numbers as pn  # noqa: E402


@pytest.fixture()
def copy(tmp_path: Path) -> Path:
    """A copy of every file the checker reads (the sources stay where they are)."""
    for rel in pn.FILL_FILES + pn.NOTEBOOK_PAGES:
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


# ------------------------------------------------------------------ README and book pages
def test_the_checker_reports_a_corrupted_number(copy: Path):
    readme = copy / "README.md"
    before = pn.check(copy)
    nll = pn.formatted("conv_vae_long.iwae_nll", ".2f")
    _edit(readme, f"<!-- num: conv_vae_long.iwae_nll:.2f -->{nll}<!-- /num -->",
          "<!-- num: conv_vae_long.iwae_nll:.2f -->84.99<!-- /num -->")
    problems = pn.check(copy)
    assert [p for p in problems if "conv_vae_long.iwae_nll" in p and "'84.99'" in p], problems
    assert pn.fill(copy, only=["README.md"]) == ["README.md"]
    readme_only = lambda problems: [p for p in problems if p.startswith("README.md")]  # noqa: E731
    assert readme_only(pn.check(copy)) == readme_only(before), "fill must restore the number from its source"


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
    before = [p for p in pn.check(copy) if p.startswith("README.md")]
    _edit(readme, "## The package", "Not a measurement paragraph: 2.4 s.\n\n## The package")
    assert [p for p in pn.check(copy) if p.startswith("README.md")] == before


def test_the_checker_reports_an_unmarked_number_on_a_book_page(copy: Path):
    _edit(copy / "book" / "cheat_sheet.md", "{{ canonical_test_loss }}", "105.6")
    problems = pn.check(copy)
    assert any("cheat_sheet.md" in p and "105.6" in p for p in problems), problems


def test_an_unknown_book_substitution_is_reported(copy: Path):
    _edit(copy / "book" / "cheat_sheet.md", "{{ conv_nll }}", "{{ conv_nlll }}")
    assert any("conv_nlll" in p for p in pn.check(copy))


# ------------------------------------------------------------------ notebook Markdown
def _cell_printing(label: str) -> tuple[str, str]:
    """(notebook path relative to the root, id of the first code cell whose outputs print LABEL)."""
    for rel in pn.NOTEBOOK_PAGES:
        nb = json.loads((ROOT / rel).read_text(encoding="utf-8"))
        for cell in nb["cells"]:
            if cell["cell_type"] == "code" and label in pn.cell_text_outputs(cell):
                return rel, cell["id"]
    pytest.fail(f"no committed notebook output prints {label!r}")


def _add_markdown(path: Path, text: str) -> str:
    """Append TEXT to the last Markdown cell of the notebook at PATH (a copy); return that cell's id."""
    nb = nbformat.read(path, as_version=4)
    cell = [c for c in nb.cells if c.cell_type == "markdown"][-1]
    cell.source += "\n\n" + text
    nbformat.write(nb, path)
    return cell.id


def _problems_in(copy: Path, rel: str) -> list[str]:
    return [p for p in pn.check(copy) if p.startswith(rel)]


def _fill(copy: Path, rel: str) -> None:
    """Fill one file of the copy; a marker of that file without a source is a failure, others' are not ours."""
    try:
        pn.fill(copy, only=[rel])
    except pn.SourceError as err:
        assert "Test Loss" not in str(err), err  # the marker this test added must have its source


def _keys_only(source: str) -> str:
    """SOURCE with every marker's text left out (what fill may change)."""
    return pn.MARKER.sub(lambda m: f"<!-- num: {m.group('key')} -->", source)


def test_an_out_marker_is_filled_from_its_cell_and_a_stale_one_is_reported(copy: Path):
    rel, cell_id = _cell_printing("Test Loss")
    printed = pn.printed_number(json.loads((ROOT / rel).read_text(encoding="utf-8")), cell_id, "Test Loss", "x")
    before = nbformat.read(copy / rel, as_version=4)
    already = _problems_in(copy, rel)
    marked_id = _add_markdown(copy / rel, f"The test loss was <!-- num: out:{cell_id}:Test Loss -->1.0<!-- /num --> nats.")

    stale = [p for p in _problems_in(copy, rel) if p not in already]
    assert len(stale) == 1 and f"out:{cell_id}:Test Loss" in stale[0] and "'1.0'" in stale[0], stale

    _fill(copy, rel)
    after = nbformat.read(copy / rel, as_version=4)
    assert [p for p in _problems_in(copy, rel) if p not in already] == []
    cell = next(c for c in after.cells if c.id == marked_id)
    assert f"<!-- num: out:{cell_id}:Test Loss -->{printed}<!-- /num --> nats." in cell.source
    # fill rewrites the text inside markers only: ids, outputs, metadata and all else stay as they were
    assert [c.id for c in after.cells] == [c.id for c in before.cells]
    assert after.metadata == before.metadata
    for old, new in zip(before.cells, after.cells):
        assert new.metadata == old.metadata and new.get("outputs") == old.get("outputs")
        assert _keys_only(new.source) == _keys_only(old.source) or new.id == marked_id


def test_an_out_marker_with_a_format(copy: Path):
    rel, cell_id = _cell_printing("Test Loss")
    nb = json.loads((ROOT / rel).read_text(encoding="utf-8"))
    want = format(float(pn.printed_number(nb, cell_id, "Test Loss", "x")), ".1f")
    _add_markdown(copy / rel, f"About <!-- num: out:{cell_id}:Test Loss:.1f -->0<!-- /num --> nats.")
    _fill(copy, rel)
    assert f"<!-- num: out:{cell_id}:Test Loss:.1f -->{want}<!-- /num -->" in (copy / rel).read_text(encoding="utf-8")


def test_an_out_marker_whose_cell_is_gone_is_reported(copy: Path):
    rel, cell_id = _cell_printing("Test Loss")
    _add_markdown(copy / rel, "It took <!-- num: out:no-such-cell:Test Loss -->3<!-- /num --> nats.")
    problems = _problems_in(copy, rel)
    assert any("no code cell with id 'no-such-cell'" in p for p in problems), problems
    with pytest.raises(pn.SourceError, match="no-such-cell"):
        pn.fill(copy)
    assert "out:no-such-cell:Test Loss -->3<!-- /num -->" in (copy / rel).read_text(encoding="utf-8"), \
        "a marker without a source is left as it was"


def test_an_out_marker_whose_label_is_not_printed_is_reported(copy: Path):
    rel, cell_id = _cell_printing("Test Loss")
    _add_markdown(copy / rel, f"It took <!-- num: out:{cell_id}:No such label printed -->3<!-- /num --> s.")
    assert any("do not print 'No such label printed'" in p for p in _problems_in(copy, rel))


def test_an_unmarked_number_in_notebook_markdown_is_reported(copy: Path):
    rel, _ = _cell_printing("Test Loss")
    already = _problems_in(copy, rel)
    _add_markdown(copy / rel, "The run took 57.2 s on 5 seeds and 2,000 images.")
    new = [p for p in _problems_in(copy, rel) if p not in already]
    assert len(new) == 1 and all(n in new[0] for n in ("'57.2 s'", "'5 seeds'", "'2,000 images'")), new


def test_out_keys_need_a_notebook():
    with pytest.raises(pn.SourceError, match="only in a notebook"):
        pn.value_of("out:abc:Test Loss")


@pytest.mark.parametrize("marker, key, fmt", [
    ("<!-- num: out:9f027fa6:Test Loss:.2f -->1<!-- /num -->", "out:9f027fa6:Test Loss", ".2f"),
    ("<!-- num: out:9f027fa6:ConvVAE is better by -->1<!-- /num -->", "out:9f027fa6:ConvVAE is better by", None),
    ("<!-- num: nb:05_full_vae.seconds:.0f -->1<!-- /num -->", "nb:05_full_vae.seconds", ".0f"),
    ("<!-- num: conv_vae_long.test_images -->1<!-- /num -->", "conv_vae_long.test_images", None),
    ("<!-- num: fact:python_min -->3.10<!-- /num -->", "fact:python_min", None),
])
def test_the_marker_syntax(marker: str, key: str, fmt: str | None):
    m = pn.MARKER.fullmatch(marker)
    assert m and m.group("key") == key and m.group("fmt") == fmt


@pytest.mark.parametrize("printed, label, want", [
    ("Epoch 10/10\nTest Loss: 105.61\n", "Test Loss", "105.61"),
    ("test ELBO -92.08 nats", "ELBO", "-92.08"),
    ("a short live run: 2 epochs on 10,000 training images", "epochs on", "10,000"),
    ("remainder up to 1.8e-14", "up to", "1.8e-14"),
    ("fc2 weights: 400", "fc2", "400"),
])
def test_the_first_number_after_a_label(printed: str, label: str, want: str):
    nb = {"cells": [{"cell_type": "code", "id": "c1", "outputs": [{"output_type": "stream", "text": printed}]}]}
    assert pn.printed_number(nb, "c1", label, "k") == want


def test_text_plain_results_count_as_printed():
    nb = {"cells": [{"cell_type": "code", "id": "c1",
                     "outputs": [{"output_type": "execute_result", "data": {"text/plain": ["'ratio 3.0512'"]}}]}]}
    assert pn.formatted("out:c1:ratio", ".2f", nb) == "3.05"
    assert pn.formatted("out:c1:ratio", None, nb) == "3.0512"


# ------------------------------------------------------------------ what counts as measured
@pytest.mark.parametrize("text", ["arXiv:1509.00519", "torch 2.14.1", "`85.71`", "$\\approx 1.443$ bits",
                                  "K = 5000", "784 pixels", "a 2-D latent space", "notebook 5, section 7",
                                  "28×28 images", "28 × 28 images", "the 10 digit classes", "the 0s and the 1s",
                                  "**Time:** about 45 minutes", "10 minutes of reading", "all 60,000 training images",
                                  "the 10,000 test images", "a 95% interval", "a 95% Student-t confidence interval", "doi:10.1126/science.1127647",
                                  "Exercise 1: the AUROC by hand"])
def test_not_measurements(text: str):
    assert pn.unmarked_measurements(text, "x.md") == []


@pytest.mark.parametrize("text", ["2.4–2.9 s per epoch", "1.93×", "85.71 ± 0.48", "about 5 min",
                                  "105.6\n  nats", "an AUROC of 0.97", "load average 0.2", "10 epochs",
                                  "5 seeds", "K = 5000 on 2,000 images", "5 small CVAEs and 15 classifiers",
                                  "1,000 test digits", "4 runs", "10 000 training images for 6 epochs"])
def test_measurements(text: str):
    assert pn.unmarked_measurements(text, "x.md"), text


def test_every_allowed_number_is_still_on_its_page():
    # An allow-list entry whose text is gone would silently allow nothing; keep the list true.
    for entry in pn.ALLOWED:
        assert pn.allowed_present(entry), entry


# ------------------------------------------------------------------ sources
def test_book_substitutions_come_from_the_results_and_the_facts():
    values = pn.book_substitutions()
    assert set(values) == set(pn.BOOK_NUMBERS)
    assert values["conv_nll"] == format(pn.value_of("conv_vae_long.iwae_nll"), ".2f")
    assert values["python_min"] == pn.value_of("fact:python_min")


def test_a_missing_source_is_one_clear_error():
    with pytest.raises(pn.SourceError, match="no field 'no_such_field'"):
        pn.value_of("conv_vae_long.no_such_field")
    with pytest.raises(pn.SourceError, match="does not exist"):
        pn.value_of("no_such_file.x")
    with pytest.raises(pn.SourceError, match="no such fact"):
        pn.value_of("fact:no_such_fact")


def test_a_marker_that_starts_a_line_is_reported(copy: Path):
    """A line that begins with ``<!-- num`` would open a raw-HTML block (MyST, CommonMark): the
    paragraph splits there and the rest of the line is not rendered, so the checker refuses it."""
    readme = copy / "README.md"
    text = readme.read_text()
    marker = next(m for m in pn.MARKER.finditer(text))
    broken = text[:marker.start()] + "\n" + text[marker.start():]
    readme.write_text(broken)
    assert any("starts a line" in p for p in pn.check(copy))
    assert pn.markers_at_line_start("the NLL is <!-- num: a.b -->1<!-- /num --> nats") == []
    assert pn.markers_at_line_start("the NLL is\n**<!-- num: a.b -->1<!-- /num -->** nats")
