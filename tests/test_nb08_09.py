"""Notebooks 6, 8 and 9 borrow their long training runs from ``pretrained(name)``.

Every name a notebook passes to ``pretrained``/``pretrained_config``/``pretrained_history``/
``pretrained_dir`` must be registered in :data:`vae_course.pretrained.PRETRAINED`, or the
page fails in its first cell that uses it. The posterior-collapse study of notebook 8
compares three runs that must differ only by their cure, as its prose says.
"""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from vae_course.pretrained import PRETRAINED

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
PRETRAINED_CALL = re.compile(r"""pretrained(?:_config|_history|_dir)?\(\s*["']([\w.-]+)["']""")


def pretrained_names(path: Path) -> set[str]:
    """The model names a notebook's code cells pass to the pretrained helpers."""
    nb = nbformat.read(path, as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    return set(PRETRAINED_CALL.findall(code))


def test_the_name_finder_reads_every_helper():
    text = 'pretrained("a-1")\npretrained_config( "b")\npretrained_history(\'c\', epochs=2)\nx.pretrained_dir("d")'
    assert set(PRETRAINED_CALL.findall(text)) == {"a-1", "b", "c", "d"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_pretrained_model_a_notebook_uses_is_registered(path):
    unknown = pretrained_names(path) - set(PRETRAINED)
    assert not unknown, f"{path.name} uses pretrained models that vae_course.pretrained.PRETRAINED lacks: {sorted(unknown)}"


def test_notebooks_6_8_9_take_their_long_runs_from_pretrained():
    names = {p.name[:2]: pretrained_names(p) for p in NOTEBOOKS}
    assert "conv-vae-long" in names["06"]
    assert {"vae-50d", "vae-50d-warmup", "vae-50d-freebits"} <= names["08"]
    assert {"vae-mnist-binary", "vae-fashion-binary", "cvae-mnist"} <= names["09"]


def test_the_collapse_study_runs_differ_only_by_their_cure():
    plain = PRETRAINED["vae-50d"]
    assert plain["model"] == "vae" and plain["binarize"] == "dynamic" and plain["latent_dim"] == 50
    for name, cure in (("vae-50d-warmup", "kl_warmup_epochs"), ("vae-50d-freebits", "free_bits")):
        settings = dict(PRETRAINED[name])
        assert settings.pop(cure) > 0, f"{name}: its cure {cure} is not set"
        assert settings == plain, f"{name} differs from vae-50d by more than {cure}"


# ------------------------------------------- what notebooks 6-9 say, kept true (issues 19, 20, 21)
import datetime  # noqa: E402

LATE = sorted((ROOT / "notebooks").glob("0[6-9]_*.ipynb"))


def _cells(stem: str):
    return nbformat.read(ROOT / "notebooks" / f"{stem}.ipynb", as_version=4).cells


def _markdown(stem: str) -> str:
    return "\n".join(c.source for c in _cells(stem) if c.cell_type == "markdown")


def test_notebook8_states_the_beta_bound_from_its_one_home():
    text = _markdown("08_beyond_vanilla")
    assert "Only β = 1 gives a bound" not in text and "is not a bound on log p(x)" not in text
    objectives = next(c.source for c in _cells("08_beyond_vanilla") if c.source.startswith("# 8."))
    summary = next(c.source for c in _cells("08_beyond_vanilla") if c.source.startswith("## What to remember"))
    for cell in (objectives, summary):
        assert "<!-- num: fact:beta_bound -->" in cell


@pytest.mark.parametrize("path", LATE, ids=lambda p: p.name)
def test_each_figure_has_its_own_cell_so_that_its_caption_describes_it(path):
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type == "code":
            images = [o for o in cell.outputs if "image/png" in o.get("data", {})]
            assert len(images) <= 1, f"{path.name}: a cell with {len(images)} figures: split it"


def _seconds(cell) -> float:
    times = cell.metadata.get("execution", {})
    if "iopub.execute_input" not in times or "iopub.status.idle" not in times:
        return 0.0
    parse = lambda s: datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))  # noqa: E731
    return (parse(times["iopub.status.idle"]) - parse(times["iopub.execute_input"])).total_seconds()


# desc=...: a helper that draws its own bar when given a description (nb7's aggregate_log_density_chunked)
SHOWS_PROGRESS = ("progress(", "show_progress=True", "bar=bar", "Trainer(", "Trainer.resume(", "iwae_nll(", "desc=")


@pytest.mark.parametrize("path", LATE, ids=lambda p: p.name)
def test_cells_that_ran_long_in_full_mode_show_progress(path):
    """A cell that took over 10 s in the committed full-mode run shows a bar (its own, or the trainer's
    or the IWAE estimate's), so a learner never waits in silence. The imports cell is the exception."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "code" or _seconds(cell) <= 10 or cell.source.lstrip().startswith(("import", "from")):
            continue
        assert any(sign in cell.source for sign in SHOWS_PROGRESS), \
            f"{path.name}: a cell ran {_seconds(cell):.0f} s without a progress bar:\n{cell.source[:200]}"


def test_notebook9_counts_its_runs_from_its_outputs():
    text = _markdown("09_applications")
    assert "5 small CVAEs" not in text and "5 in full mode" not in text
    assert text.count("<!-- num: out:24eeecb5:the study uses:d -->") >= 2  # the intro and section 2
    (study,) = [c for c in _cells("09_applications") if c.cell_type == "code" and "apps.train_classifier(" in c.source]
    assert "progress(" in study.source and "bar=bar" in study.source


def test_notebook9_compression_counts_the_decoder_and_codes_what_it_measures():
    cells = _cells("09_applications")
    (table,) = [c for c in cells if c.cell_type == "code" and "codecs = {" in c.source]
    assert "decoder_bytes" in table.source and "smaller_than(vae_with_decoder)" in table.source
    assert "apps.lossy_code(" in table.source
    (curve,) = [c for c in cells if c.cell_type == "code" and "ks, rates, errors" in c.source]
    assert "apps.lossy_code(" in curve.source and "decode(z)" not in curve.source
    text = _markdown("09_applications")
    assert "relative-entropy coding" in text
    assert "reachable with bits-back coding, but not file sizes" not in text
