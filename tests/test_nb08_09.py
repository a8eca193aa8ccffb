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
