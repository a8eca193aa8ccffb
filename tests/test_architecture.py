"""The package's import graph, read with ``ast`` (issue: one owner for each thing).

* no import cycle between the package's modules (lazy imports inside functions count too:
  a cycle hidden in a function is still a cycle);
* no module imports "upward" from the package's ``__init__`` (``from . import __version__``
  or ``from vae_course import x`` inside the package);
* no private name (``_name``) of one module is used by another.
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "vae_course"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _resolve(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(module: str, path: Path) -> list[tuple[str, list[str]]]:
    """(imported module, names taken from it) for every import in ``path``."""
    tree = ast.parse(path.read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names if a.name.startswith("vae_course")]
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, node, path.name == "__init__.py")
            if target.startswith("vae_course"):
                out.append((target, [a.name for a in node.names]))
    return out


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, path in mods.items():
        for target, names in _imports(m, path):
            for name in names or [""]:
                sub = f"{target}.{name}" if name else target
                dep = sub if sub in mods else target
                if dep in mods and dep != m and not m.startswith(dep + ".") and dep != "vae_course":
                    graph[m].add(dep)
    return graph


def test_no_import_cycles():
    graph, state, cycles = _graph(), {}, []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycles.append(stack[stack.index(dep):] + [dep] if dep in stack else [node, dep])
            elif dep not in state:
                visit(dep, stack + [dep])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_no_module_imports_from_the_package_init():
    upward = []
    for m, path in _modules().items():
        if m == "vae_course":
            continue
        for target, names in _imports(m, path):
            submodules = {n for n in names if f"vae_course.{n}" in _modules()}
            if target == "vae_course" and set(names) - submodules:
                upward.append(f"{m} imports {sorted(set(names) - submodules)} from vae_course/__init__")
    assert not upward, upward


def test_no_private_name_crosses_a_module_boundary():
    crossings = []
    for m, path in _modules().items():
        for target, names in _imports(m, path):
            for name in names:
                if name.startswith("_") and not name.startswith("__") and target != m:
                    crossings.append(f"{m} imports {target}.{name}")
    assert not crossings, crossings


def test_the_checker_sees_a_cycle(tmp_path, monkeypatch):
    """The cycle detector is not vacuous: a two-module cycle is reported."""
    pkg = tmp_path / "vae_course"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .b import x\n")
    (pkg / "b.py").write_text("def f():\n    from .a import y\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", pkg)
    try:
        test_no_import_cycles()
    except AssertionError as err:
        assert "vae_course.a" in str(err) and "vae_course.b" in str(err)
    else:
        raise AssertionError("the cycle a -> b -> a was not reported")
