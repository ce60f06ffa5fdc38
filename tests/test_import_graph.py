"""No import cycles between edgeres's modules.

Every module under edgeres/ is parsed (not imported): its module-level and function-level
imports are edges, those under ``if TYPE_CHECKING:`` are not (they never run), and so are
a package's lazy exports (the ``{"name": "edgeres.module"}`` mapping given to
``edgeres._lazy.lazy_exports``). A cycle is a strongly connected component of more than one
module; each is listed on failure.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

import edgeres

ROOT = Path(edgeres.__file__).parent

# Cycles allowed to remain: none. A new one fails the test, listing its modules.
KNOWN_CYCLES: frozenset[frozenset[str]] = frozenset()


def module_files(root: Path = ROOT) -> dict[str, Path]:
    """``edgeres.x.y`` -> its file, for every module and package under ``root``."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = (root.name, *path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom | ast.Dict]:
    """Every import statement that can run (all but those under ``if TYPE_CHECKING:``) and dict."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom, ast.Dict)):
            yield node
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
        else:
            stack.extend(ast.iter_child_nodes(node))


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base[: len(base) - node.level + (1 if is_package else 0)]
    return ".".join([*base, node.module] if node.module else base)


def import_graph(modules: Mapping[str, Path]) -> dict[str, set[str]]:
    """Module -> the edgeres modules it imports."""
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        targets = graph.setdefault(module, set())
        for node in _imports(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Dict):  # lazy exports: every value names a module
                values = [v.value for v in node.values if isinstance(v, ast.Constant)]
                if values and len(values) == len(node.values) and all(v in modules for v in values):
                    targets.update(values)
                continue
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names if alias.name in modules)
                continue
            source = _resolve(module, path.name == "__init__.py", node)
            for alias in node.names:
                name = f"{source}.{alias.name}"
                if name in modules:
                    targets.add(name)
                elif source in modules:
                    targets.add(source)
        targets.discard(module)
    return graph


def cycles(graph: Mapping[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _describe(components: list[frozenset[str]]) -> str:
    return "\n".join("  " + " <-> ".join(sorted(c)) for c in sorted(components, key=sorted))


def test_no_import_cycles() -> None:
    found = cycles(import_graph(module_files()))
    unexpected = [c for c in found if c not in KNOWN_CYCLES]
    assert not unexpected, "import cycles:\n" + _describe(unexpected)
    stale = [c for c in KNOWN_CYCLES if c not in found]
    assert not stale, "no longer cycles, remove them from KNOWN_CYCLES:\n" + _describe(stale)


def _graph_of(tmp_path: Path, files: Mapping[str, str]) -> dict[str, set[str]]:
    for name, text in files.items():
        path = tmp_path / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return import_graph(module_files(tmp_path / "pkg"))


def test_edges_follow_the_rules(tmp_path: Path) -> None:
    graph = _graph_of(
        tmp_path,
        {
            "__init__.py": '_EXPORTS = {"x": "pkg.b"}\nOTHER = {"k": "pkg.nowhere"}\n',
            "a.py": (
                "from typing import TYPE_CHECKING\n"
                "import os\n"
                "if TYPE_CHECKING:\n    from pkg import sub\nelse:\n    from pkg import c\n"
                "def f():\n    from .b import g\n"
            ),
            "b.py": "import os.path\n",
            "c.py": "from . import a, missing\n",
            "sub/__init__.py": "from .mod import x\nfrom .. import b\n",
            "sub/mod.py": "from ..sub import thing\nimport pkg.b\n",
        },
    )
    # `from . import missing` is an edge to the package; TYPE_CHECKING imports are none.
    assert graph == {
        "pkg": {"pkg.b"},
        "pkg.a": {"pkg.b", "pkg.c"},
        "pkg.b": set(),
        "pkg.c": {"pkg", "pkg.a"},
        "pkg.sub": {"pkg.b", "pkg.sub.mod"},
        "pkg.sub.mod": {"pkg.b", "pkg.sub"},
    }
    assert sorted(map(sorted, cycles(graph))) == [["pkg.a", "pkg.c"], ["pkg.sub", "pkg.sub.mod"]]


_IMPORT_EACH = """
import importlib, sys, traceback
failed = []
for name in sys.argv[1:]:
    for loaded in [m for m in sys.modules if m == "edgeres" or m.startswith("edgeres.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except ImportError as exc:
        if "circular import" in str(exc) or "partially initialized" in str(exc):
            failed.append(f"{name}: {exc}")
print("\\n".join(failed))
"""


def test_every_module_imports_first_in_a_fresh_interpreter_state() -> None:
    """Importing ``a.b.c`` first runs ``a`` and ``a.b``: a cycle through a package's ``__init__``
    that the parsed graph does not see shows up as a partially initialized module."""
    import subprocess
    import sys

    names = sorted(module_files())
    out = subprocess.run(
        [sys.executable, "-c", _IMPORT_EACH, *names], capture_output=True, text=True, timeout=600, check=True
    ).stdout.strip()
    assert not out, "modules that fail when imported first:\n" + out
