"""Every notebook runs alone, as a Colab badge opens it: one file in an empty
folder, with only the installed package.

The package is built into a wheel and installed (no dependencies) into a
private folder that is put first on ``PYTHONPATH``, so ``vae_course`` is the
installed copy, with no repository around it: nothing can come from
``results/``, ``book/`` or a sibling notebook. Each notebook is copied alone
into an empty folder and run there top to bottom in smoke mode
(``VAE_COURSE_SMOKE=1``). Static checks: links in the notebooks are absolute
(they must work on GitHub and in Colab, where ``../book/x.md`` goes nowhere),
code reads nothing from ``../``, and the committed results ship in the wheel.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from course_testing import ROOT, needs_mnist
from wheel_build import build_wheel, install_wheel

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")) + [ROOT / "book" / "results.ipynb"]
NOTEBOOKS = [p for p in NOTEBOOKS if p.is_file()]
IDS = [p.stem for p in NOTEBOOKS]
# A Markdown link or image: [text](target) / ![alt](target)
LINK = re.compile(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
ABSOLUTE = ("https://", "http://", "#", "mailto:", "data:")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """A folder holding only the installed package (from its wheel)."""
    work = tmp_path_factory.mktemp("installed")
    return install_wheel(build_wheel(work), work / "site")


def _alone_env(site: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(site)  # the installed copy only, never the checkout
    env["VAE_COURSE_SMOKE"] = "1"
    return env


def test_the_installed_package_carries_the_committed_results(site: Path, tmp_path: Path):
    from vae_course.results import result_names

    assert result_names(), "no committed results in vae_course/results/"
    code = ("import json, vae_course, vae_course.results as r; "
            "print(json.dumps([vae_course.__file__, {n: sorted(r.load_result(n)) for n in r.result_names()}]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                          env=_alone_env(site), timeout=120)
    assert proc.returncode == 0, proc.stderr
    where, loaded = json.loads(proc.stdout)
    assert Path(where).resolve().is_relative_to(site.resolve()), f"imported the checkout's copy: {where}"
    assert sorted(loaded) == result_names() and all(loaded.values())


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_links_work_outside_the_repository(path: Path):
    nb = nbformat.read(path, as_version=4)
    relative = [(i, target) for i, cell in enumerate(nb.cells) if cell.cell_type == "markdown"
                for target in LINK.findall(cell.source) if not target.startswith(ABSOLUTE)]
    assert not relative, (
        f"{path.name}: relative links break on GitHub and in Colab; link the book page's absolute URL "
        f"(run `python scripts/nbtools.py links`): " + "; ".join(f"cell {i}: {t}" for i, t in relative))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_code_reads_nothing_from_the_repository(path: Path):
    nb = nbformat.read(path, as_version=4)
    found = [(i, m.group(0)) for i, cell in enumerate(nb.cells) if cell.cell_type == "code"
             for m in re.finditer(r"""["'](\.\./[^"']*|results/[^"']*\.json)["']""", cell.source)]
    assert not found, (f"{path.name}: opened alone (as the Colab badge does) there is no repository around it; "
                       "read committed results with vae_course.results.load_result(name): "
                       + "; ".join(f"cell {i}: {s}" for i, s in found))


@needs_mnist
@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_runs_alone_in_smoke_mode(path: Path, site: Path, tmp_path: Path, monkeypatch):
    from nbclient import NotebookClient

    folder = tmp_path / "alone"
    folder.mkdir()
    shutil.copy(path, folder / path.name)
    for name, value in _alone_env(site).items():
        monkeypatch.setenv(name, value)  # the kernel inherits this environment
    nb = nbformat.read(folder / path.name, as_version=4)
    NotebookClient(nb, timeout=900, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(folder)}}).execute()
    outputs = [(i, out) for i, cell in enumerate(nb.cells) if cell.cell_type == "code" for out in cell.outputs]
    errors = [f"cell {i}: {out.get('ename')}: {out.get('evalue')}" for i, out in outputs
              if out.get("output_type") == "error"]
    assert not errors, f"{path.name} fails when opened alone: " + "; ".join(errors)
    missing = [f"cell {i}: {out.get('text', '').strip()[:200]}" for i, out in outputs
               if out.get("output_type") == "stream" and "missing" in out.get("text", "")]
    assert not missing, f"{path.name} misses something when opened alone: " + "; ".join(missing)


def test_nbtools_links_makes_book_links_absolute():
    sys.path.insert(0, str(ROOT / "scripts"))
    import nbtools

    base = nbtools.book_url()
    assert base.startswith("https://") and base.endswith(".github.io/" + base.rstrip("/").rsplit("/", 1)[-1] + "/")
    text = "[next](../book/next_steps.md), [n5](05_full_vae.ipynb#the-loss) and [web](https://pytorch.org)"
    assert nbtools.absolute_links(text) == (f"[next]({base}book/next_steps.html), "
                                            f"[n5]({base}notebooks/05_full_vae.html#the-loss) and [web](https://pytorch.org)")
    assert not [t for t in LINK.findall(nbtools.absolute_links(text)) if not t.startswith(ABSOLUTE)]
