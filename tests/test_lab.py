"""`make lab` (scripts/lab.py): the learner's copies first, the solutions one folder away, no attempt lost.

* the folder it prepares: ``exercises/`` from ``student/``, ``solutions/`` from
  ``notebooks/`` (read-only), a README; a second preparation keeps an edited
  exercise, restores a deleted one and updates one the learner never touched;
* the real server: the Makefile's ``lab`` recipe runs scripts/lab.py, which is
  started here on a free localhost port with a token; its contents API must
  show that tree, its ``/`` must lead to ``exercises/``, and a solution must be
  read-only for the server too;
* the notebooks run from ``exercises/``: a kernel started there imports every
  notebook's modules and loads a few digits.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import nbformat

from course_testing import ROOT

SCRIPT = ROOT / "scripts" / "lab.py"
STUDENT = sorted(p.name for p in (ROOT / "student").glob("[0-9][0-9]_*.ipynb"))
SOLUTIONS = sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))

sys.path.insert(0, str(ROOT / "scripts"))
import lab  # noqa: E402


def run_prepare(root: Path, student: Path = ROOT / "student") -> list[str]:
    return lab.prepare(root, student=student, notebooks=ROOT / "notebooks")


def test_prepare_makes_exercises_solutions_and_a_readme(tmp_path: Path):
    root = tmp_path / "lab"
    changes = run_prepare(root)
    assert sorted(p.name for p in root.iterdir() if not p.name.startswith(".")) == ["README.md", "exercises",
                                                                                   "solutions"]
    assert sorted(p.name for p in (root / "exercises").glob("*.ipynb")) == STUDENT
    assert sorted(p.name for p in (root / "solutions").glob("*.ipynb")) == SOLUTIONS
    for name in STUDENT:
        assert (root / "exercises" / name).read_bytes() == (ROOT / "student" / name).read_bytes()
        assert os.access(root / "exercises" / name, os.W_OK) or os.geteuid() == 0
        assert (root / "exercises" / name).stat().st_mode & 0o200, f"{name}: the learner's copy must be writable"
    for name in SOLUTIONS:
        assert (root / "solutions" / name).read_bytes() == (ROOT / "notebooks" / name).read_bytes()
        assert not (root / "solutions" / name).stat().st_mode & 0o222, f"{name}: solutions must be read-only"
    readme = (root / "README.md").read_text()
    assert "`exercises/`" in readme and "`solutions/`" in readme and "fresh copy" in readme
    assert len(changes) == len(STUDENT) + len(SOLUTIONS)
    assert run_prepare(root) == [], "a second preparation with nothing new must change nothing"


def test_a_second_preparation_never_loses_an_attempt(tmp_path: Path):
    root = tmp_path / "lab"
    student = tmp_path / "student"
    shutil.copytree(ROOT / "student", student)
    run_prepare(root, student)
    mine, gone, untouched = (root / "exercises" / n for n in STUDENT[:3])

    # The learner edits one notebook (as Jupyter would save it) and deletes another.
    nb = nbformat.read(mine, as_version=4)
    stub = next(c for c in nb.cells if "exercise" in c.metadata.get("tags", []))
    stub.source = "# my attempt\n" + stub.source
    nbformat.write(nb, mine)
    edited = mine.read_bytes()
    assert run_prepare(root, student) == [], "an edited copy of an unchanged notebook is kept silently"
    assert mine.read_bytes() == edited
    gone.unlink()
    # The course then changes all three.
    for name in STUDENT[:3]:
        course = nbformat.read(student / name, as_version=4)
        course.cells.append(nbformat.v4.new_markdown_cell("A new closing remark."))
        nbformat.write(course, student / name)

    changes = run_prepare(root, student)
    assert mine.read_bytes() == edited, "make lab overwrote the learner's edited notebook"
    assert any(mine.name in line and "kept" in line for line in changes), changes
    assert gone.read_bytes() == (student / gone.name).read_bytes(), "a deleted copy comes back fresh"
    assert untouched.read_bytes() == (student / untouched.name).read_bytes(), "an untouched copy follows the course"
    assert run_prepare(root, student) == [line for line in changes if "kept" in line], \
        "only the kept notebook is still reported"


def test_an_edited_solution_notebook_moves_to_exercises_before_the_refresh(tmp_path: Path):
    """Read-only does not stop root (containers): an edit made there still survives the next `make lab`."""
    root = tmp_path / "lab"
    run_prepare(root)
    target = root / "solutions" / SOLUTIONS[0]
    target.chmod(0o644)
    nb = nbformat.read(target, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("my_attempt = 1"))
    nbformat.write(nb, target)
    edited = target.read_bytes()
    changes = run_prepare(root)
    rescued = root / "exercises" / f"{target.stem} (edited in solutions).ipynb"
    assert rescued.read_bytes() == edited, changes
    assert target.read_bytes() == (ROOT / "notebooks" / target.name).read_bytes(), "the solution is refreshed"
    assert not target.stat().st_mode & 0o222
    assert any("your version is now exercises/" in line for line in changes), changes


def test_the_make_lab_recipe_runs_this_script():
    recipe = re.search(r"(?m)^lab:.*\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text()).group(1)
    assert "scripts/lab.py" in recipe, f"`make lab` must prepare lab/ with scripts/lab.py:\n{recipe}"
    assert (ROOT / "lab/").relative_to(ROOT).as_posix() + "/" in (ROOT / ".gitignore").read_text().split()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, dict | str, str]:
    """(status, JSON or text, Location header) of a GET that does not follow redirects."""
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    try:
        with urllib.request.build_opener(NoRedirect).open(url, timeout=10) as response:
            body = response.read().decode()
            kind = response.headers.get("Content-Type", "")
            return response.status, json.loads(body) if "json" in kind else body, response.headers.get("Location", "")
    except urllib.error.HTTPError as err:
        return err.code, "", err.headers.get("Location", "")


def test_the_server_shows_exercises_first_and_read_only_solutions(tmp_path: Path):
    root, port, token = tmp_path / "lab", _free_port(), "course-test-token"
    command = [sys.executable, str(SCRIPT), "--root", str(root), "--no-browser", f"--port={port}",
               "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}", "--ServerApp.port_retries=0"]
    if os.geteuid() == 0:
        command.append("--allow-root")  # what the Makefile's JUPYTER_ROOT adds for root
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path,
                              env={**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
                                   "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                status, listing, _ = _get(f"{base}/api/contents/?token={token}")
                if status == 200:
                    break
            except OSError:
                pass
            assert server.poll() is None, f"the server exited:\n{(tmp_path / 'server.log').read_text()[-3000:]}"
            assert time.monotonic() < deadline, "the server did not answer within 180 s"
            time.sleep(1)
        names = [(item["name"], item["type"]) for item in listing["content"]]
        assert sorted(names) == [("README.md", "file"), ("exercises", "directory"), ("solutions", "directory")]
        _, exercises, _ = _get(f"{base}/api/contents/exercises?token={token}")
        assert sorted(i["name"] for i in exercises["content"] if i["type"] == "notebook") == STUDENT
        assert all(i["writable"] for i in exercises["content"] if i["type"] == "notebook")
        _, solutions, _ = _get(f"{base}/api/contents/solutions?token={token}")
        assert sorted(i["name"] for i in solutions["content"] if i["type"] == "notebook") == SOLUTIONS
        if os.geteuid() != 0:  # root may write anywhere (then the rescue below protects the edits)
            assert not any(i["writable"] for i in solutions["content"] if i["type"] == "notebook")
        status, _, location = _get(f"{base}/?token={token}")
        assert status in (301, 302) and location.split("?")[0].rstrip("/").endswith("/lab/tree/exercises"), \
            (status, location)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def _import_cell(nb: nbformat.NotebookNode) -> str:
    """The notebook's first code cell after the generated setup cell (its imports)."""
    return next(c.source for c in nb.cells if c.cell_type == "code"
                and "colab-setup" not in c.metadata.get("tags", []))


def test_the_notebooks_run_from_exercises(tmp_path: Path):
    """A kernel started in lab/exercises imports every notebook's modules and loads data from there."""
    from jupyter_client.manager import start_new_kernel

    root = tmp_path / "lab"
    run_prepare(root)
    folder = root / "exercises"
    imports = "\n".join(_import_cell(nbformat.read(folder / name, as_version=4)) for name in STUDENT)
    code = (imports + "\nfrom vae_course.data import load_data\n"
            "d = load_data('mnist', limit_train=8, limit_test=8)\n"
            "import os\nprint('LOADED', tuple(d.train_x.shape), os.getcwd())")
    km, kc = start_new_kernel(kernel_name="python3", cwd=str(folder),
                              env={**os.environ, "VAE_COURSE_SMOKE": "1", "MPLBACKEND": "Agg"})
    try:
        outputs: list[str] = []
        reply = kc.execute_interactive(code, timeout=300, output_hook=lambda msg: outputs.append(
            msg["content"].get("text", "") or "".join(msg["content"].get("traceback", []))))
        text = "".join(outputs)
        assert reply["content"]["status"] == "ok", text[-3000:]
        assert "LOADED (8, 1, 28, 28)" in text and str(folder) in text, text[-2000:]
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
