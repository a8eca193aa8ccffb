"""One source for each fact: the README and the book say what the files that define it say.

A fact several pages state lives in one place: the minimum Python in pyproject.toml
(and the test toolchain's in the Makefile), the book's build folder and the make
targets in the Makefile, the trainer's defaults in vae_course/config.py, what
`make lab` installs in requirements-lab.txt, the committed results' paths in their
JSON. Pages reach most of them through scripts/prose_numbers.py (markers and book
substitutions); these tests read every page as a reader sees it (markers and
substitutions filled in) and report each statement that disagrees with its source.
Every check is shown to fail by breaking a temporary copy of a page or a source.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import fields
from pathlib import Path

import pytest

from vae_course.config import TrainConfig, default_config, flag_name, recommended_settings

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import prose_numbers as pn  # noqa: E402
import record_long_run  # noqa: E402

SOURCES = ["pyproject.toml", "Makefile", "requirements-lab.txt"]
# Where the tooling names build outputs (a page may name any of them).
BUILD_PATH_SOURCES = ["Makefile", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "scripts").iterdir()
                                          if p.suffix in (".sh", ".py") or p.name == "stage"),
                      *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests" / "book").glob("*.py"))]


# ------------------------------------------------------------------ reading pages and sources
def rendered(text: str) -> str:
    """TEXT as a reader sees it: markers as their text, substitutions filled in, no emphasis marks."""
    values = pn.book_substitutions()
    text = pn.MARKER.sub(lambda m: m.group("text"), text)
    text = pn.SUBSTITUTION.sub(lambda m: values.get(m.group("name"), m.group(0)), text)
    text = re.sub(r"(?s)<!--.*?-->", "", text)
    return text.replace("**", "")


def make_variables(root: Path) -> dict[str, str]:
    """The Makefile's simple variables (``SITE := _build/site``)."""
    return dict(re.findall(r"(?m)^(\w+)\s*:?=\s*(\S+)\s*$", (root / "Makefile").read_text(encoding="utf-8")))


def expand(text: str, variables: dict[str, str]) -> str:
    return re.sub(r"\$\((\w+)\)", lambda m: variables.get(m.group(1), m.group(0)), text)


def makefile_help(root: Path) -> str:
    """What `make help` prints (the Makefile's help echo lines, unquoted, variables expanded)."""
    makefile = (root / "Makefile").read_text(encoding="utf-8")
    block = re.search(r"(?ms)^help:\n(.*?)(?=^\S)", makefile)
    assert block, "the Makefile has no help target"
    return expand("\n".join(re.findall(r'@echo "(.*)"', block.group(1))), make_variables(root))


def page_names(root: Path) -> list[str]:
    """README.md and every Markdown page of the book."""
    return ["README.md", *sorted(str(p.relative_to(root)) for p in (root / "book").glob("*.md"))]


PAGES = page_names(ROOT)


def pages(root: Path) -> dict[str, str]:
    """Every page that states facts, rendered; `make help`'s text counts as a page."""
    out = {rel: rendered((root / rel).read_text(encoding="utf-8")) for rel in page_names(root)}
    out["Makefile (make help)"] = makefile_help(root)
    return out


def clauses(text: str) -> list[str]:
    """TEXT cut where a statement ends (. ; , ( ) or a line break), whitespace collapsed."""
    return [" ".join(c.split()) for c in re.split(r"[;,()]|\.\s|\n", text) if c.strip()]


def copy_of(tmp_path: Path, extra: list[str] = ()) -> Path:
    """A copy of every page and source these tests read."""
    for rel in [*PAGES, *SOURCES, *BUILD_PATH_SOURCES, *extra]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, tmp_path / rel)
    return tmp_path


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


# ------------------------------------------------------------------ Python versions
def python_sources(root: Path) -> dict[str, str]:
    """{'course': pyproject's requires-python minimum, 'tests': the Makefile's test-toolchain minimum}."""
    requires = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]["requires-python"]
    m = re.fullmatch(r">=\s*(\d+\.\d+)", requires.strip())
    assert m, f"pyproject.toml: requires-python {requires!r} is not '>=X.Y'"
    makefile = (root / "Makefile").read_text(encoding="utf-8")
    checks = dict(re.findall(r"(?m)^(python-check-\w+):\s*\n\t\$\(call check_python,(\d+,\d+),", makefile))
    return {"course": m.group(1), "tests": checks["python-check-dev"].replace(",", "."),
            "make lab": checks["python-check-lab"].replace(",", ".")}


PYTHON_CLAIM = re.compile(r"(?:≥|>=)\s*(?P<a>3\.\d+)|Python\s+(?P<b>3\.\d+)(?:\s+or\s+(?:newer|later|above)|\+)")


def python_claims(text: str) -> list[tuple[str, str, str]]:
    """(version, 'course' or 'tests', clause) for each minimum Python version TEXT states."""
    found = []
    for clause in clauses(text):
        for m in PYTHON_CLAIM.finditer(clause):
            kind = "tests" if re.search(r"\btest", clause) else "course"
            found.append((m.group("a") or m.group("b"), kind, clause))
    return found


def python_disagreements(root: Path) -> list[str]:
    want = python_sources(root)
    problems = []
    if want["make lab"] != want["course"]:
        problems.append(f"Makefile: python-check-lab asks for {want['make lab']}, pyproject.toml's "
                        f"requires-python for {want['course']}")
    for page, text in pages(root).items():
        for version, kind, clause in python_claims(text):
            if version != want[kind]:
                source = "pyproject.toml's requires-python" if kind == "course" else "the Makefile's python-check-dev"
                problems.append(f"{page}: {clause!r} says Python {version}, {source} says {want[kind]}")
    return problems


def test_python_versions_agree_with_pyproject_and_the_makefile():
    assert python_disagreements(ROOT) == []


def test_the_python_facts_are_read_from_their_sources():
    want = python_sources(ROOT)
    assert pn.value_of("fact:python_min") == want["course"]
    assert pn.value_of("fact:python_dev_min") == want["tests"]


def test_a_page_with_an_old_python_version_is_found(tmp_path: Path):
    root = copy_of(tmp_path)
    (root / "book" / "extra.md").write_text("You need Python 3.9 or newer and `make`.\n", encoding="utf-8")
    problems = python_disagreements(root)
    assert any("book/extra.md" in p and "3.9" in p for p in problems), problems


def test_a_raised_requires_python_is_found_in_every_page_that_states_the_old_one(tmp_path: Path):
    root = copy_of(tmp_path)
    edit(root / "pyproject.toml", 'requires-python = ">=3.10"', 'requires-python = ">=3.12"')
    problems = python_disagreements(root)
    assert any(p.startswith("README.md") for p in problems), problems
    assert any(p.startswith("Makefile: python-check-lab") for p in problems), problems


def test_the_python_claims_are_classified():
    claims = python_claims("You need Python ≥ 3.10 (≥ 3.11 for the test suite). `make test` needs Python ≥ 3.11.")
    assert [(v, k) for v, k, _ in claims] == [("3.10", "course"), ("3.11", "tests"), ("3.11", "tests")]


# ------------------------------------------------------------------ build paths
BUILD_PATH = re.compile(r"_build/[\w./-]*[\w/]")


def build_outputs(root: Path) -> set[str]:
    """Every `_build/...` path the Makefile, the scripts and the book tests name ($(SITE) etc. expanded)."""
    variables = make_variables(root)
    known = set()
    for rel in BUILD_PATH_SOURCES:
        text = expand((root / rel).read_text(encoding="utf-8"), variables)
        known |= {p.rstrip("/") for p in BUILD_PATH.findall(text)}
    # jupyter-book writes <path-output>/_build/html; without --path-output, _build/html
    known |= {f"{variables['SITE']}/_build/html", "_build/html"}
    return known


def build_path_disagreements(root: Path) -> list[str]:
    known = build_outputs(root)
    book_html = f"{make_variables(root)['SITE']}/_build/html"  # jupyter-book --path-output $(SITE)
    problems = []
    for page, text in pages(root).items():
        for clause in clauses(text):
            for path in BUILD_PATH.findall(clause):
                path = path.rstrip("/")
                if not any(path == k or k.startswith(path + "/") or path.startswith(k + "/") for k in known):
                    problems.append(f"{page}: {clause!r} names {path}, which no Makefile rule or script writes")
                elif (re.search(r"make book(?![-\w])", clause) and path.endswith("html") and path != book_html):
                    problems.append(f"{page}: {clause!r}: make book builds into {book_html}, not {path}")
    return problems


def test_build_paths_agree_with_the_makefile():
    assert build_path_disagreements(ROOT) == []


def test_the_book_folder_fact_is_the_makefiles():
    assert pn.value_of("fact:book_html") in build_outputs(ROOT)


def test_a_wrong_book_folder_is_found(tmp_path: Path):
    root = copy_of(tmp_path)
    (root / "book" / "extra.md").write_text("```bash\nmake book   # build this web book into _build/html\n```\n"
                                            "Screenshots land in _build/snapshots/.\n", encoding="utf-8")
    problems = build_path_disagreements(root)
    assert any("book/extra.md" in p and "make book builds into" in p for p in problems), problems
    assert any("_build/snapshots" in p for p in problems), problems


def test_a_moved_site_folder_is_found(tmp_path: Path):
    root = copy_of(tmp_path)
    edit(root / "Makefile", "SITE := _build/site", "SITE := _build/web")
    problems = build_path_disagreements(root)
    assert any(p.startswith("README.md") and "_build/site" in p for p in problems), problems


# ------------------------------------------------------------------ make targets
def help_targets(root: Path) -> set[str]:
    """The targets `make help` lists (and help itself)."""
    return {"help", *re.findall(r"^make ([\w-]+)", makefile_help(root), re.M)}


def code_of(text: str) -> str:
    """The code a page shows: fenced blocks and inline spans."""
    return "\n".join(m.group(0) for m in re.finditer(r"(?ms)^```.*?^```|`[^`\n]+`", text))


def make_target_disagreements(root: Path) -> list[str]:
    listed = help_targets(root)
    rules = set(re.findall(r"(?m)^([\w-]+):", (root / "Makefile").read_text(encoding="utf-8")))
    problems = [f"make help lists {t}, which the Makefile has no rule for" for t in sorted(listed - rules)]
    for page, text in pages(root).items():
        if page.startswith("Makefile"):
            continue
        for target in sorted(set(re.findall(r"(?<![\w-])make ([a-z][\w-]*)", code_of(text)))):
            if target not in listed:
                problems.append(f"{page}: `make {target}` is not a target `make help` lists")
    return problems


def test_make_targets_named_on_pages_exist():
    assert make_target_disagreements(ROOT) == []


def test_a_page_naming_a_missing_target_is_found(tmp_path: Path):
    root = copy_of(tmp_path)
    edit(root / "README.md", "make lab     #", "make labs    #")
    problems = make_target_disagreements(root)
    assert problems == ["README.md: `make labs` is not a target `make help` lists"], problems


def test_a_target_dropped_from_make_help_is_found(tmp_path: Path):
    root = copy_of(tmp_path)
    text = (root / "Makefile").read_text(encoding="utf-8")
    (root / "Makefile").write_text(re.sub(r'(?m)^\t@echo "make student .*\n', "", text), encoding="utf-8")
    assert any("`make student`" in p for p in make_target_disagreements(root))


# ------------------------------------------------------------------ what `make lab` installs
ALIASES = {"-e .": "pip install -e .", "jupyterlab": "jupyterlab", "ipykernel": "kernel"}


def make_lab_disagreements(root: Path) -> list[str]:
    """The make_lab_installs fact against requirements-lab.txt (what the Makefile's lab set-up installs)."""
    makefile = (root / "Makefile").read_text(encoding="utf-8")
    problems = []
    if "-r requirements-lab.txt" not in makefile:
        problems.append("Makefile: the lab set-up no longer installs requirements-lab.txt")
    lines = [l.split("#")[0].strip() for l in (root / "requirements-lab.txt").read_text().splitlines()]
    fact = pn.value_of("fact:make_lab_installs").lower()
    for req in filter(None, lines):
        name = re.split(r"[<>=!~\[ ]", req)[0] if not req.startswith("-e") else "-e ."
        if ALIASES.get(name, name).lower() not in fact:
            problems.append(f"requirements-lab.txt installs {req!r}, which fact:make_lab_installs does not name")
        if re.search(r"==|-c ", req) and "pinned" not in fact:
            problems.append(f"requirements-lab.txt pins {req!r}")
    if "pinned" in fact and not any(re.search(r"==|^-c ", l) for l in lines):
        problems.append("fact:make_lab_installs says pinned, but requirements-lab.txt pins nothing")
    return problems


def test_what_make_lab_installs_agrees_with_its_requirements():
    assert make_lab_disagreements(ROOT) == []


def test_a_new_lab_requirement_is_found(tmp_path: Path):
    root = copy_of(tmp_path)
    edit(root / "requirements-lab.txt", "ipykernel", "ipykernel\nvoila")
    assert make_lab_disagreements(root) == ["requirements-lab.txt installs 'voila', which fact:make_lab_installs "
                                            "does not name"]


# ------------------------------------------------------------------ the trainer's defaults
@pytest.fixture(scope="module")
def train_help() -> str:
    """What `python -m vae_course train --help` prints (the real CLI, in a subprocess)."""
    done = subprocess.run([sys.executable, "-m", "vae_course", "train", "--help"], capture_output=True,
                          text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return done.stdout


def help_paragraphs(help_text: str) -> dict[str, str]:
    """{'--epochs': 'its help text, one line', ...} from argparse's options list."""
    out, flag = {}, None
    for line in help_text.splitlines():
        m = re.match(r"^  (?:-\w, )?(--[\w-]+)", line)
        if m:
            flag = m.group(1)
            out[flag] = line[m.end():]
        elif flag and line.startswith("    "):
            out[flag] += " " + line.strip()
        else:
            flag = None
    return {k: " ".join(v.split()) for k, v in out.items()}


def _same(stated: str, value: object) -> bool:
    """Does the word STATED give VALUE? ('5e-3' == 0.005, '1' == 1.0, 'cosine' == 'cosine')."""
    stated = stated.strip().rstrip(".,;")
    if isinstance(value, bool) or value is None:
        return stated == str(value)
    if isinstance(value, (int, float)):
        try:
            return float(stated) == float(value)
        except ValueError:
            return False
    return stated == str(value)


# "(default: 10)", "Default for --model vae: 5e-3", "(default: cosine for --model vae, ...; otherwise constant)"
DEFAULT_TEXT = re.compile(r"[Dd]efault(?: for --model (?P<model>[\w-]+))?:\s*(?P<value>[^\s;),]+)"
                          r"(?: for --model (?P<model2>[\w-]+))?")
OTHER_MODELS = re.compile(r"(?:for the other models[^:]*:|otherwise:?)\s*(?P<value>[^\s;),]+)")


def help_default_disagreements(help_text: str) -> list[str]:
    """Each default `train --help` states against TrainConfig and the tuned recipe (vae_course/config.py).

    "(default: X)" is what a bare `train` uses (TrainConfig's default with the default model's tuned
    recipe); "Default for --model M: X" or "(default: X for --model M" what `train --model M` uses;
    "for the other models ...: X" or "otherwise X" TrainConfig's own default. A field whose default
    differs between models must say both. A default without a value ("all", "the model's",
    "--epochs") is a rule, and is checked only against a setting that has no default (None).
    """
    paragraphs = help_paragraphs(help_text)
    bare, plain = default_config(), TrainConfig()
    problems = []
    for f in fields(TrainConfig):
        text = paragraphs.get(flag_name(f.name))
        if text is None:
            continue  # a setting without a flag (log_every)
        for m in DEFAULT_TEXT.finditer(text):
            model = m.group("model") or m.group("model2")
            want = getattr(default_config(model=model) if model else bare, f.name)
            if not re.match(r"-?\d|True|False", m.group("value")) and f.name != "model" and not isinstance(want, str):
                if want is not None:
                    problems.append(f"train --help, {flag_name(f.name)}: says default {m.group('value')!r}, "
                                    f"but a bare `train` uses {want!r} (vae_course/config.py)")
                continue  # "(default: all)", "(default: --epochs)": a rule for a setting left unset
            if not _same(m.group("value"), want):
                who = f"--model {model}" if model else "a bare `train`"
                problems.append(f"train --help, {flag_name(f.name)}: says default {m.group('value')}, but "
                                f"{who} uses {want!r} (vae_course/config.py)")
        for m in OTHER_MODELS.finditer(text):
            if not _same(m.group("value"), getattr(plain, f.name)):
                problems.append(f"train --help, {flag_name(f.name)}: says {m.group('value')} for the other models, "
                                f"TrainConfig says {getattr(plain, f.name)!r}")
        tuned = recommended_settings(bare.model).get(f.name, getattr(plain, f.name))
        if tuned != getattr(plain, f.name) and "--model" not in text:
            problems.append(f"train --help, {flag_name(f.name)}: the default depends on the model "
                            f"({tuned!r} for --model {bare.model}, {getattr(plain, f.name)!r} otherwise) but "
                            "the help does not say so")
    return problems


def test_train_help_states_the_configs_defaults(train_help: str):
    assert help_default_disagreements(train_help) == []


def test_a_wrong_default_in_the_help_is_found(train_help: str):
    broken = re.sub(r"(--epochs EPOCHS.*?\(default:\s*)10\)", r"\g<1>12)", train_help, count=1, flags=re.S)
    assert broken != train_help
    assert any("--epochs: says default 12" in p for p in help_default_disagreements(broken))


def test_a_help_that_hides_the_tuned_recipe_is_found():
    # the contradiction issue 21 met: --lr said "5e-3 with a cosine schedule", --lr-schedule "(default: constant)"
    text = ("options:\n"
            "  --lr LR               Adam learning rate. Default for --model vae: 5e-3 with a cosine schedule; "
            "for the other models: 0.001, constant\n"
            "  --lr-schedule {constant,cosine}\n"
            "                        constant or cosine (default: constant)\n")
    problems = help_default_disagreements(text)
    assert any("--lr-schedule: says default constant, but a bare `train` uses 'cosine'" in p for p in problems), \
        problems
    assert not any(p.startswith("train --help, --lr:") for p in problems), problems


README_RECIPE = re.compile(r"default recipe is an? (?P<schedule>\w+) learning-rate schedule from (?P<lr>[\d.e-]+) "
                           r"at batch (?P<batch>\d+)")
README_CANONICAL = re.compile(r"(?m)^.*vae_course train (?P<flags>[^#\n]*)#\s*the canonical PyTorch example")


def readme_default_disagreements(root: Path) -> list[str]:
    """The README's statements of the trainer's defaults against vae_course/config.py."""
    text = " ".join(rendered((root / "README.md").read_text(encoding="utf-8")).split())
    problems = []
    tuned = default_config(model="vae")
    m = README_RECIPE.search(text)
    if not m:
        problems.append("README.md: no longer states the default recipe as 'default recipe is a SCHEDULE "
                        "learning-rate schedule from LR at batch N' (update this test with the README)")
    else:
        for field, stated in (("lr_schedule", m.group("schedule")), ("lr", m.group("lr")),
                              ("batch_size", m.group("batch"))):
            if not _same(stated, getattr(tuned, field)):
                problems.append(f"README.md: the default recipe's {field} is {stated}, config.py says "
                                f"{getattr(tuned, field)!r}")
    plain = TrainConfig()
    for m in README_CANONICAL.finditer((root / "README.md").read_text(encoding="utf-8")):
        words = m.group("flags").split()
        for flag, value in zip(words, words[1:]):
            name = flag[2:].replace("-", "_")
            if flag.startswith("--") and hasattr(plain, name) and not _same(value, getattr(plain, name)):
                problems.append(f"README.md: the canonical example's {flag} {value}, but TrainConfig's "
                                f"default is {getattr(plain, name)!r}")
    return problems


def test_the_readme_states_the_configs_defaults():
    assert readme_default_disagreements(ROOT) == []


def test_a_wrong_default_in_the_readme_is_found(tmp_path: Path):
    root = copy_of(tmp_path)
    edit(root / "README.md", "schedule from 5e-3 at batch 128", "schedule from 3e-3 at batch 128")
    edit(root / "README.md", "--lr 1e-3 --batch-size 128 --out runs/canonical", "--lr 1e-3 --batch-size 64 --out "
                                                                               "runs/canonical")
    problems = readme_default_disagreements(root)
    assert any("lr is 3e-3" in p for p in problems) and any("--batch-size 64" in p for p in problems), problems


# ------------------------------------------------------------------ committed results: their paths
ABSOLUTE_PATH = re.compile(r"(?:^|[\s='\"])(/(?:home|work|root|tmp|Users|mnt|var|opt)/[^\s'\"]*)")


def results_path_disagreements(results_dir: Path) -> list[str]:
    """Absolute paths in committed results, and a long-run record whose commands name another run."""
    problems = []
    for path in sorted(results_dir.glob("*.json")):
        text = path.read_text(encoding="utf-8")
        problems += [f"{path.name}: machine-specific absolute path {m.group(1)}" for m in ABSOLUTE_PATH.finditer(text)]
        record = json.loads(text)
        if "train_command" in record and "checkpoint" in record:
            run = Path(record["checkpoint"]).parent
            problems += [f"{path.name}: {p}" for p in record_long_run.disagreements(
                run, record["train_command"], record.get("eval_command", ""))]
            if record["command"] != f"{record['train_command']}; {record.get('eval_command', '')}":
                problems.append(f"{path.name}: 'command' is not its train command and its evaluation")
    return problems


def test_committed_results_use_relative_paths_and_agreeing_commands():
    assert results_path_disagreements(pn.RESULTS_DIR) == []


def test_an_absolute_path_or_another_run_in_a_result_is_found(tmp_path: Path):
    record = json.loads((pn.RESULTS_DIR / "conv_vae_long.json").read_text(encoding="utf-8"))
    record["checkpoint"] = "/work/runs/elsewhere/checkpoint.pt"
    record["train_command"] = record["train_command"].replace("--out runs/conv-cosine", "--out runs/conv-long")
    (tmp_path / "conv_vae_long.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
    problems = results_path_disagreements(tmp_path)
    assert any("absolute path /work/runs/elsewhere" in p for p in problems), problems
    assert any("--out is runs/conv-long" in p for p in problems), problems
    assert any("'command' is not" in p for p in problems), problems


# ------------------------------------------------------------------ the long-run recorder
TRAIN = "python -m vae_course train --model conv-vae --epochs 50 --out runs/conv-long"
EVALUATE = "python -m vae_course evaluate --checkpoint runs/conv-long/checkpoint.pt --iw-samples 5000 --json"


def test_the_recorder_accepts_a_clean_record_whose_commands_name_the_run():
    assert record_long_run.refusals(Path("runs/conv-long"), TRAIN, EVALUATE, dirty=False, allow_dirty=False) == []
    # an absolute path into the checkout is the same run, and is recorded relative to it
    absolute = EVALUATE.replace("runs/conv-long", f"{ROOT}/runs/conv-long")
    assert record_long_run.refusals(Path("runs/conv-long"), TRAIN, absolute, dirty=False, allow_dirty=False) == []
    assert record_long_run.relative_command(absolute) == EVALUATE


@pytest.mark.parametrize("run, train, evaluate, dirty, allow_dirty, reason", [
    ("runs/conv-long", TRAIN, EVALUATE, True, False, "--allow-dirty"),
    ("runs/conv-cosine", TRAIN, EVALUATE.replace("conv-long", "conv-cosine"), False, False,
     "--out is runs/conv-long, but the run recorded is runs/conv-cosine"),
    ("runs/conv-long", TRAIN, EVALUATE.replace("conv-long", "conv-cosine"), False, False,
     "the evaluation read --checkpoint runs/conv-cosine/checkpoint.pt"),
    ("runs/conv-long", "python -m vae_course train --epochs 50", EVALUATE, False, False, "--out is runs/latest"),
    ("/tmp/elsewhere/run", TRAIN.replace("runs/conv-long", "/tmp/elsewhere/run"),
     EVALUATE.replace("runs/conv-long", "/tmp/elsewhere/run"), False, False, "outside the repository"),
])
def test_the_recorder_refuses_a_record_that_would_not_be_true(run, train, evaluate, dirty, allow_dirty, reason):
    problems = record_long_run.refusals(Path(run), train, evaluate, dirty=dirty, allow_dirty=allow_dirty)
    assert any(reason in p for p in problems), problems
    if dirty:
        assert record_long_run.refusals(Path(run), train, evaluate, dirty=True, allow_dirty=True) == []


def test_the_recorder_writes_no_committed_file_it_refuses(tmp_path: Path):
    evaluation = tmp_path / "eval.json"
    evaluation.write_text(json.dumps({"command": EVALUATE.replace("conv-long", "conv-cosine")}), encoding="utf-8")
    out = ROOT / "vae_course" / "results" / "_refused_by_test.json"
    try:
        done = subprocess.run([sys.executable, str(ROOT / "scripts" / "record_long_run.py"), "--run", "runs/conv-long",
                               "--eval", str(evaluation), "--train-command", TRAIN, "--decisions", "fixed before",
                               "--decided-on-test", "no", "--out", str(out)],
                              capture_output=True, text=True, timeout=300, cwd=ROOT)
        assert done.returncode == 1, done.stderr
        assert "refused: the evaluation read --checkpoint runs/conv-cosine/checkpoint.pt" in done.stderr
        assert not out.exists()
    finally:
        out.unlink(missing_ok=True)


# ------------------------------------------------------------------ what ran where
NO_GPU_YET = "has been measured on a GPU"


def gpu_records(root: Path) -> list[str]:
    """Committed outputs made on a GPU: notebook execution records and results files naming CUDA."""
    found = []
    for path in sorted([*(root / "notebooks").glob("*.ipynb"), root / "book" / "results.ipynb"]):
        device = json.loads(path.read_text(encoding="utf-8")).get("metadata", {}).get("vae_course", {}).get("device")
        if str(device).startswith("cuda"):
            found.append(f"{path.relative_to(root)} ({device})")
    for path in sorted((root / "vae_course" / "results").glob("*.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        if record.get("device_type") == "cuda" or str(record.get("device", "")).startswith("cuda"):
            found.append(f"{path.relative_to(root)} ({record.get('device')})")
    return found


def gpu_claim_disagreements(root: Path) -> list[str]:
    """The README's 'nothing has been measured on a GPU yet' against the committed records."""
    readme = " ".join((root / "README.md").read_text(encoding="utf-8").split())
    gpu = gpu_records(root)
    if re.search(r"Nothing in this repository " + NO_GPU_YET + " yet", readme) and gpu:
        return [f"README.md says nothing was measured on a GPU, but these were: {', '.join(gpu)}"]
    if not gpu and re.search(r"GPU-trained|trained on (?:a|the) GPU", readme):
        return ["README.md says a model was trained on a GPU, but no committed record names a GPU"]
    return []


def test_the_readme_says_what_ran_where():
    assert gpu_claim_disagreements(ROOT) == []


def test_a_gpu_record_contradicts_no_gpu_yet(tmp_path: Path):
    root = tmp_path
    for rel in ["README.md", "notebooks/06_gpu_vae.ipynb", "vae_course/results/bench_cpu.json"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, root / rel)
    (root / "book").mkdir()
    shutil.copy(ROOT / "book" / "results.ipynb", root / "book" / "results.ipynb")
    assert gpu_claim_disagreements(root) == []
    record = json.loads((root / "vae_course/results/bench_cpu.json").read_text(encoding="utf-8"))
    record.update(device="cuda (NVIDIA H100)", device_type="cuda")
    (root / "vae_course/results/bench_gpu.json").write_text(json.dumps(record), encoding="utf-8")
    assert gpu_claim_disagreements(root) == ["README.md says nothing was measured on a GPU, but these were: "
                                             "vae_course/results/bench_gpu.json (cuda (NVIDIA H100))"]


# ------------------------------------------------------------------ references to notebook sections
SECTION_REFS = [
    re.compile(r"[Ss]ection (?P<section>\d+) of \{nb\}`[Nn]otebook (?P<nb>\d+)"),
    re.compile(r"\{nb\}`[Nn]otebook (?P<nb>\d+) <[^>]+>`,? \(?section (?P<section>\d+)"),
    re.compile(r"[Nn]otebook (?P<nb>\d+)(?: <[^>]+>`)?,? section (?P<section>\d+)"),
    re.compile(r"[Ss]ection (?P<section>\d+) of [Nn]otebook (?P<nb>\d+)"),
]


def notebook_sections(root: Path, number: str) -> set[str]:
    """The numbered sections ('## 6. ...') of notebook NUMBER."""
    path = next((root / "notebooks").glob(f"{int(number):02d}_*.ipynb"), None)
    if path is None:
        return set()
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    text = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    return set(re.findall(r"(?m)^##\s+(\d+)\.", text))


def section_reference_disagreements(root: Path) -> list[str]:
    problems = []
    for rel in page_names(root):
        text = " ".join((root / rel).read_text(encoding="utf-8").split())
        for pattern in SECTION_REFS:
            for m in pattern.finditer(text):
                if m.group("section") not in notebook_sections(root, m.group("nb")):
                    problems.append(f"{rel}: {m.group(0)!r}: notebook {m.group('nb')} has no section "
                                    f"{m.group('section')}")
    return sorted(set(problems))


def test_references_to_notebook_sections_exist():
    assert section_reference_disagreements(ROOT) == []


def test_a_reference_to_a_missing_section_is_found(tmp_path: Path):
    root = copy_of(tmp_path, extra=[str(p.relative_to(ROOT)) for p in (ROOT / "notebooks").glob("*.ipynb")])
    edit(root / "book" / "common_bugs.md", "The end of section 6 of", "Section 7 of")
    problems = section_reference_disagreements(root)
    assert problems == ["book/common_bugs.md: 'Section 7 of {nb}`notebook 4': notebook 4 has no section 7"], problems
