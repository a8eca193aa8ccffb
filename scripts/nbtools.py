"""Notebook maintenance: Colab headers, freshness hashes, and full re-execution.

    python scripts/nbtools.py headers            # every notebook's badge, setup cell, folded solutions, "Stuck?" lines
    python scripts/nbtools.py links              # links to book pages -> the published URLs
    python scripts/nbtools.py execute [NB ...]   # re-execute in full mode, record the hash and the machine
    python scripts/nbtools.py execute --force NB # also overwrite outputs made on a GPU
    python scripts/nbtools.py execute --allow-busy NB  # run on a busy machine (recorded as not quiet)
    python scripts/nbtools.py status             # which notebooks are stale
    python scripts/nbtools.py times              # each notebook's execution record, as a table

Conventions (see book/contributing.md):
* cell 0 is the "Open in Colab" badge (tag ``colab-badge``), cell 1 the setup
  cell (tag ``colab-setup``); both are generated from ``_config.yml``;
* ``metadata.vae_course`` records how the outputs were made: the hash of the
  code cells, the device, smoke or full mode, the seconds it took, torch's
  version, the date, and the machine (CPU model, cores, torch threads) with its
  1-minute load average before, after and at its highest during the run;
* outputs are made on a quiet machine (see ``QUIET_START`` and ``BUSY_MARGIN``):
  ``execute`` refuses to start when the 1-minute load average is above
  ``QUIET_START``, and refuses to write the outputs when, at any moment of the
  run, the load average rose above the run's own torch threads + ``BUSY_MARGIN``
  (another process was competing for the cores, and every time the page prints
  would be inflated). ``--allow-busy`` runs anyway and records ``quiet: false``,
  which the notebook tests reject;
* solutions carry the tag ``solution``; exercise stubs the tag ``exercise``;
  ``headers`` folds each solution cell (Jupyter's ``source_hidden``, Colab's
  form view) and writes a markdown cell tagged ``solution-pointer`` right before
  it ("Stuck? The solution is folded in the next cell"); scripts/make_student.py
  turns that line into a link to the version with solutions.
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import re
import sys
import threading
import time
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
BADGE_TAG, SETUP_TAG = "colab-badge", "colab-setup"
# A quiet machine: the 1-minute load average before a run may be at most QUIET_START
# (nothing else running), and during the run at most the run's own torch threads
# plus BUSY_MARGIN (the kernel, Jupyter's own processes, a short-lived helper).
QUIET_START = 0.5
BUSY_MARGIN = 1.0
LOAD_SAMPLE_SECONDS = 5.0
RECORD_FIELDS = ("code_hash", "device", "mode", "seconds", "torch", "executed", "cpu_model", "cores",
                 "threads", "load_before", "load_after", "load_max", "quiet")


def repo_settings() -> tuple[str, str]:
    """(repository URL, branch) from ``_config.yml`` — the one place they live."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    return config["repository"]["url"].rstrip("/"), config["repository"]["branch"]


def colab_url(nb_path: Path) -> str:
    url, branch = repo_settings()
    rel = nb_path.resolve().relative_to(ROOT).as_posix()
    return f"https://colab.research.google.com/github/{url.split('github.com/')[1]}/blob/{branch}/{rel}"


def student_path(nb_path: Path) -> Path:
    """Where the student version of a course notebook lives (``student/NN_*.ipynb``,
    written by ``make student``); other notebooks (book/results.ipynb) are their own."""
    name = Path(nb_path).name
    if re.fullmatch(r"\d\d_.*\.ipynb", name) and Path(nb_path).resolve().parent.name in ("notebooks", "student"):
        return ROOT / "student" / name
    return Path(nb_path).resolve()


def badge_source(nb_path: Path) -> str:
    """The badge cell: it opens the *student* version (no solutions) in Colab."""
    student = student_path(nb_path)
    badge = f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab_url(student)})"
    if student == Path(nb_path).resolve() and student.parent.name != "student":
        return badge + "  \n*Running in Colab? For the GPU notebooks choose Runtime → Change runtime type → T4 GPU.*"
    solutions = colab_url(ROOT / "notebooks" / Path(nb_path).name)
    return (badge + "  \n*The badge opens the exercises without their solutions; the [version with solutions]"
            f"({solutions}) is the one in the book. Running in Colab? For the GPU notebooks choose "
            "Runtime → Change runtime type → T4 GPU.*")


def book_url(page: str = "") -> str:
    """The published book's address of a page (``book/next_steps``), from ``_config.yml``'s
    repository: ``https://ORG.github.io/REPO/PAGE.html`` (GitHub Pages)."""
    url, _ = repo_settings()
    org, repo = url.split("github.com/")[1].split("/")[:2]
    base = f"https://{org}.github.io/{repo}/"
    return base + (f"{page}.html" if page else "")


# A relative link to a page of the book: (../book/next_steps.md#anchor), (05_full_vae.ipynb)
_RELATIVE_PAGE = re.compile(r"\]\((?:\.\./|\./)?(?P<dir>book/|notebooks/)?(?P<page>[\w.-]+?)\.(?:md|ipynb)"
                            r"(?P<anchor>#[\w-]+)?\)")


def absolute_links(source: str) -> str:
    """Markdown with relative links to book pages replaced by the published pages' URLs,
    so they work on GitHub and in Colab (where ``../book/x.md`` leads nowhere)."""
    def repl(m: re.Match) -> str:
        folder = m.group("dir") or ("notebooks/" if re.match(r"\d\d_", m.group("page")) else "book/")
        return f"]({book_url(folder + m.group('page'))}{m.group('anchor') or ''})"

    return _RELATIVE_PAGE.sub(repl, source)


def package_requirement() -> str:
    """What Colab's setup cell asks pip for: the package at ``_config.yml``'s repository and branch."""
    url, branch = repo_settings()
    return f"vae-course @ git+{url}@{branch}"


def setup_source(requirement: str | None = None) -> str:
    """The Colab setup cell: install the package (``requirement``, default :func:`package_requirement`).

    Plain ``pip`` in a subprocess, not ``%pip``: ``%pip`` always ends with "you may
    need to restart the kernel", which is not true here (nothing Colab had loaded
    changes: tests/test_colab_profile.py). A failed install raises ``SetupError``,
    whose ``_render_traceback_`` makes IPython show its one sentence instead of a
    traceback, and which stops "Run all" before the next cell fails on a missing
    ``vae_course``. ``GIT_TERMINAL_PROMPT=0``: a repository that is not public
    fails at once instead of waiting for a password nobody can type.
    """
    requirement = requirement or package_requirement()
    source = requirement.split("git+", 1)[-1].rsplit("@", 1)[0]
    return (
        "# Setup: in Google Colab, install the course's helper package; anywhere else this does nothing.\n"
        "import importlib\n"
        "import os\n"
        "import re\n"
        "import subprocess\n"
        "import sys\n"
        "\n"
        "if \"google.colab\" in sys.modules:\n"
        "    class SetupError(Exception):\n"
        "        def _render_traceback_(self):  # IPython shows this one line instead of a traceback\n"
        "            return [str(self)]\n"
        "\n"
        "    print(\"Installing the course's package (vae_course)...\", end=\" \", flush=True)\n"
        "    _pip = subprocess.run([sys.executable, \"-m\", \"pip\", \"install\", \"-q\",\n"
        f"                           {json.dumps(requirement)}],\n"
        "                          capture_output=True, text=True, env={**os.environ, \"GIT_TERMINAL_PROMPT\": \"0\"})\n"
        "    if _pip.returncode != 0:\n"
        "        _plain = re.sub(r\"\\x1b\\[[0-9;]*m\", \"\", _pip.stderr)  # pip colours its output in a kernel\n"
        "        _lines = [line.strip() for line in _plain.splitlines() if line.strip()] or [\"no message\"]\n"
        "        _why = next((line for line in _lines if line.startswith(\"fatal:\")), None) or next(  # git's reason\n"
        "            (line for line in reversed(_lines) if line.startswith(\"ERROR:\")), _lines[-1])\n"
        "        raise SetupError(f\"Setup failed: pip could not install the course's package ({_why}); check that \"\n"
        f"                         \"this runtime is online and that {source} is public, \"\n"
        "                         \"then run this cell again.\")\n"
        "    importlib.invalidate_caches()  # the next cell imports the package just installed\n"
        "    print(\"done.\")"
    )


def sync_headers(nb: nbformat.NotebookNode, nb_path: Path) -> bool:
    """Make cells 0 and 1 the badge and setup cell; return True if anything changed."""
    cells = [c for c in nb.cells if not set(c.metadata.get("tags", [])) & {BADGE_TAG, SETUP_TAG}]
    old = {tag: next((c for c in nb.cells if tag in c.metadata.get("tags", [])), None)
           for tag in (BADGE_TAG, SETUP_TAG)}
    badge = nbformat.v4.new_markdown_cell(badge_source(nb_path), metadata={"tags": [BADGE_TAG]})
    setup = nbformat.v4.new_code_cell(setup_source(), metadata={"tags": [SETUP_TAG]})
    if old[SETUP_TAG] is not None:  # keep the execution record of the old cell
        setup.execution_count = old[SETUP_TAG].get("execution_count")
        setup.outputs = old[SETUP_TAG].get("outputs", [])
    changed = (old[BADGE_TAG] is None or old[BADGE_TAG].source != badge.source
               or old[SETUP_TAG] is None or old[SETUP_TAG].source != setup.source
               or nb.cells[:2] != [old[BADGE_TAG], old[SETUP_TAG]])
    if changed:
        for cell, new in ((old[BADGE_TAG], badge), (old[SETUP_TAG], setup)):
            if cell is not None and "id" in cell:
                new["id"] = cell["id"]
        nb.cells = [badge, setup] + cells
    return changed


# ------------------------------------------------ solutions: folded, and a "Stuck?" line above each
SOLUTION_TAG, POINTER_TAG, EXERCISE_TAG = "solution", "solution-pointer", "exercise"
_SOLUTION_DEF = re.compile(r"^def (\w+)_solution\(", re.MULTILINE)
_FIRST_DEF = re.compile(r"^def (\w+)\(", re.MULTILINE)


def _tags(cell: nbformat.NotebookNode) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


def exercise_name(cells: list, index: int) -> str | None:
    """The learner's function that the solution at ``cells[index]`` answers: ``foo`` for the solution's
    ``def foo_solution(`` (the lead's convention), else the first ``def`` of the exercise cell above."""
    found = _SOLUTION_DEF.search(cells[index].source)
    if found:
        return found.group(1)
    for cell in reversed(cells[:index]):
        if EXERCISE_TAG in _tags(cell):
            found = _FIRST_DEF.search(cell.source)
            return found.group(1) if found else None
    return None


def pointer_source(name: str | None, nb_path: Path, student: bool = False) -> str:
    """The "Stuck?" line right after an exercise's check (cell tag ``solution-pointer``).

    With solutions (``notebooks/``, the book): the solution is the folded cell just
    below. In the student version (``student/``, written by scripts/make_student.py)
    there is none, so it links the version with solutions of the same notebook, in
    Colab and in the book.
    """
    if student:
        what = f" (`{name}`)" if name else ""
        return (f"**Stuck?** The solution to this exercise{what} is in the version of this notebook with "
                f"solutions, right below the same exercise: [open it in Colab]"
                f"({colab_url(ROOT / 'notebooks' / Path(nb_path).name)}) or [read it in the book]"
                f"({book_url('notebooks/' + Path(nb_path).stem)}). Your copy here stays as it is.")
    keeps = f" It defines `{name}_solution`, so running it never replaces your `{name}`." if name else ""
    return ("**Stuck?** The solution is folded in the next cell: unfold it with *Show the solution* on the "
            "web page, *Show code* in Colab, or a click on its ⋯ in Jupyter." + keeps)


def _fold(cell: nbformat.NotebookNode) -> bool:
    """Fold a solution cell in Jupyter (``jupyter.source_hidden``) and Colab (a form: its
    ``# @title Solution`` shows, the code does not); True if anything changed."""
    meta = cell.metadata
    changed = meta.get("jupyter", {}).get("source_hidden") is not True or meta.get("cellView") != "form"
    meta.setdefault("jupyter", {})["source_hidden"] = True
    meta["cellView"] = "form"
    return changed


def sync_solutions(nb: nbformat.NotebookNode, nb_path: Path) -> tuple[int, int]:
    """Fold every solution cell and put one "Stuck?" pointer right before it (after the exercise's check).

    Pointers are regenerated from :func:`pointer_source`; a pointer whose solution
    is gone goes too. Returns (pointers written or changed, solutions newly folded).
    """
    old = {c.get("id"): c for c in nb.cells if POINTER_TAG in _tags(c)}
    # what followed each old pointer: a pointer that moved away from its solution is rewritten too
    after = {c.get("id"): (nxt.get("id") if nxt is not None else None)
             for c, nxt in zip(nb.cells, nb.cells[1:] + [None]) if POINTER_TAG in _tags(c)}
    cells = [c for c in nb.cells if POINTER_TAG not in _tags(c)]
    out, pointers, folded = [], 0, 0
    for i, cell in enumerate(cells):
        if SOLUTION_TAG in _tags(cell):
            folded += _fold(cell)
            pointer_id = f"stuck-{cell.get('id', i)}"[:64]  # stable: derived from its solution's id
            pointer = nbformat.v4.new_markdown_cell(pointer_source(exercise_name(cells, i), nb_path),
                                                    metadata={"tags": [POINTER_TAG]})
            pointer["id"] = pointer_id
            previous = old.get(pointer_id)
            pointers += (previous is None or previous.source != pointer.source
                         or after.get(pointer_id) != cell.get("id"))
            out.append(pointer)
        out.append(cell)
    pointers += len(set(old) - {c.get("id") for c in out})  # removed ones count as changes
    nb.cells = out
    return pointers, folded


def sync_notebook(nb: nbformat.NotebookNode, nb_path: Path) -> list[str]:
    """Everything ``headers`` generates in one notebook; returns what changed, in words."""
    done = []
    if sync_headers(nb, nb_path):
        done.append("badge and setup cell")
    pointers, folded = sync_solutions(nb, nb_path)
    if pointers:
        done.append(f"{pointers} \"Stuck?\" pointer{'s' if pointers != 1 else ''}")
    if folded:
        done.append(f"{folded} solution{'s' if folded != 1 else ''} folded")
    return done


def code_hash(nb: nbformat.NotebookNode) -> str:
    """sha256 of the code cells' sources (the generated setup cell excluded)."""
    h = hashlib.sha256()
    for cell in nb.cells:
        if cell.cell_type == "code" and SETUP_TAG not in cell.metadata.get("tags", []):
            h.update(cell.source.strip().encode() + b"\n\x00")
    return h.hexdigest()


def notebook_paths(names: list[str] | None = None) -> list[Path]:
    if names:
        return [Path(n).resolve() for n in names]
    return sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


def _device_description() -> str:
    import torch

    if torch.cuda.is_available():
        return f"cuda: {torch.cuda.get_device_name(0)}"
    return f"cpu: {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else the platform's description."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine() or "unknown"


def load_1min() -> float:
    """The 1-minute load average: the number of runnable (and uninterruptible) tasks, smoothed."""
    return round(os.getloadavg()[0], 2)


class LoadSampler:
    """Samples the 1-minute load average every ``every`` seconds in a thread; ``peak`` is the highest."""

    def __init__(self, every: float = LOAD_SAMPLE_SECONDS) -> None:
        self.every, self.peak = every, load_1min()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.peak = max(self.peak, load_1min())

    def __enter__(self) -> "LoadSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, load_1min())


def busy_limit(threads: int) -> float:
    """The highest 1-minute load average a run with ``threads`` torch threads may see and stay quiet."""
    return threads + BUSY_MARGIN


def refuse_busy_start(allow_busy: bool) -> None:
    """Exit with one line when the machine is already busy (unless allowed)."""
    load = load_1min()
    if load > QUIET_START and not allow_busy:
        raise SystemExit(f"the 1-minute load average is {load:.2f} (> {QUIET_START}): something else is running, "
                         "so the times this run prints would be wrong. Wait for a quiet machine, or pass "
                         "--allow-busy (with make: `make execute ARGS=--allow-busy NB=notebooks/NN_name.ipynb`; "
                         "the record will say quiet: false, which the notebook tests reject).")


def execute(nb_path: Path, force: bool = False, timeout: int = 7200, allow_busy: bool = False) -> float:
    """Re-execute one notebook top to bottom in a fresh kernel, in full mode, and record the machine."""
    refuse_busy_start(allow_busy)  # first, before importing torch raises the load itself
    load_before = [round(x, 2) for x in os.getloadavg()]
    from nbclient import NotebookClient
    import torch

    nb = nbformat.read(nb_path, as_version=4)
    previous = nb.metadata.get("vae_course", {})
    device = _device_description()
    if previous.get("device", "").startswith("cuda") and not device.startswith("cuda") and not force:
        raise SystemExit(f"{nb_path.name}: its outputs were made on {previous['device']}; refusing to "
                         f"overwrite them from {device}. Use --force to do it anyway.")
    sync_notebook(nb, nb_path)
    env_smoke = os.environ.pop("VAE_COURSE_SMOKE", None)
    threads = torch.get_num_threads()
    start = time.perf_counter()
    try:
        with LoadSampler() as sampler:
            NotebookClient(nb, timeout=timeout, kernel_name="python3",
                           resources={"metadata": {"path": str(nb_path.parent)}}).execute()
    finally:
        if env_smoke is not None:
            os.environ["VAE_COURSE_SMOKE"] = env_smoke
    seconds = time.perf_counter() - start
    quiet = sampler.peak <= busy_limit(threads)
    if not quiet and not allow_busy:
        raise SystemExit(f"{nb_path.name}: not written: the load average reached {sampler.peak:.2f} during the run "
                         f"(limit {busy_limit(threads):.1f} = {threads} threads + {BUSY_MARGIN}); another process "
                         "competed for the cores. Re-run on a quiet machine.")
    nb.metadata["vae_course"] = {
        "code_hash": code_hash(nb),
        "device": device,
        "mode": "full",
        "seconds": round(seconds, 1),
        "torch": str(torch.__version__),
        "executed": dt.date.today().isoformat(),
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "threads": threads,
        "load_before": load_before,
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "load_max": sampler.peak,
        "quiet": quiet,
    }
    nbformat.write(nb, nb_path)
    return seconds


def times_table(paths: list[Path]) -> str:
    """Each notebook's execution record as a plain-text table (``nbtools.py times``)."""
    rows = [("notebook", "seconds", "device", "load before/max/after", "quiet", "date")]
    for path in paths:
        r = nbformat.read(path, as_version=4).metadata.get("vae_course", {})
        load = "/".join(f"{v:.2f}" if isinstance(v, (int, float)) else "?"
                        for v in ((r.get("load_before") or [None])[0], r.get("load_max"),
                                  (r.get("load_after") or [None])[0]))
        rows.append((path.name, f"{r['seconds']:.1f}" if "seconds" in r else "—", str(r.get("device", "—")), load,
                     {True: "yes", False: "NO"}.get(r.get("quiet"), "not recorded"), str(r.get("executed", "—"))))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


def stale(nb_path: Path) -> bool:
    nb = nbformat.read(nb_path, as_version=4)
    return nb.metadata.get("vae_course", {}).get("code_hash") != code_hash(nb)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    hd = sub.add_parser("headers", help="rewrite the Colab badge and setup cell of every notebook, fold its "
                                        "solutions and write the \"Stuck?\" line above each")
    hd.add_argument("notebooks", nargs="*", help="only these notebooks (default: notebooks/NN_*.ipynb)")
    sub.add_parser("links", help="make links to book pages absolute (they must work on GitHub and in Colab)")
    ex = sub.add_parser("execute", help="re-execute notebooks in full mode and record their hash")
    ex.add_argument("notebooks", nargs="*")
    ex.add_argument("--force", action="store_true", help="overwrite outputs that were made on a GPU")
    ex.add_argument("--allow-busy", action="store_true",
                    help=f"run even when the load average is above {QUIET_START} (recorded as quiet: false)")
    sub.add_parser("status", help="list notebooks whose code changed since their outputs were made")
    sub.add_parser("times", help="print each notebook's execution record (seconds, device, load, date)")
    args = parser.parse_args(argv)
    if args.command == "headers":
        paths, updated = notebook_paths(args.notebooks), 0
        for path in paths:
            nb = nbformat.read(path, as_version=4)
            done = sync_notebook(nb, path)
            if done:
                nbformat.write(nb, path)
                updated += 1
                print(f"updated {path.name}: {', '.join(done)}")
        print(f"headers: {updated} of {len(paths)} notebooks updated"
              + (f", {len(paths) - updated} already up to date" if updated < len(paths) else "")
              + (" (now run `make student`)" if updated else ""))
    elif args.command == "links":
        for path in notebook_paths() + [ROOT / "book" / "results.ipynb"]:
            nb = nbformat.read(path, as_version=4)
            changed = False
            for cell in nb.cells:
                if cell.cell_type == "markdown" and absolute_links(cell.source) != cell.source:
                    cell.source, changed = absolute_links(cell.source), True
            if changed:
                nbformat.write(nb, path)
                print(f"absolute links in {path.name}")
    elif args.command == "execute":
        for path in notebook_paths(args.notebooks):
            print(f"executing {path.name} (full mode) ...", flush=True)
            print(f"  done in {execute(path, force=args.force, allow_busy=args.allow_busy):.0f} s", flush=True)
    elif args.command == "times":
        print(times_table(notebook_paths() + [ROOT / "book" / "results.ipynb"]))
    else:
        bad = [p.name for p in notebook_paths() if stale(p)]
        print("stale: " + ", ".join(bad) if bad else "all notebooks are fresh")
        return 1 if bad else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
