"""The packages' lazy exports: each name in one mapping, which the type checker's imports follow."""

from __future__ import annotations

import ast
import importlib
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import edgeres
from edgeres._lazy import lazy_exports

ROOT = Path(edgeres.__file__).parent
LAZY_PACKAGES = sorted(
    ".".join(("edgeres", *init.parent.relative_to(ROOT).parts))
    for init in ROOT.rglob("__init__.py")
    if "lazy_exports(" in init.read_text(encoding="utf-8")
)


def test_the_lazy_packages_are_found() -> None:
    assert {"edgeres", "edgeres.engine", "edgeres.export", "edgeres.pipeline"} <= set(LAZY_PACKAGES)


def _type_checking_imports(package: str) -> dict[str, str]:
    """Name -> module of the imports under ``if TYPE_CHECKING:`` in ``package``'s __init__."""
    tree = ast.parse(inspect.getsource(importlib.import_module(package)))
    found: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for stmt in node.body:
                assert isinstance(stmt, ast.ImportFrom) and stmt.module and not stmt.level
                found.update({alias.asname or alias.name: stmt.module for alias in stmt.names})
    return found


@pytest.mark.parametrize("package", LAZY_PACKAGES)
def test_type_checking_imports_are_the_lazy_exports(package: str) -> None:
    assert _type_checking_imports(package) == importlib.import_module(package)._EXPORTS


@pytest.mark.parametrize("package", LAZY_PACKAGES)
def test_every_name_in_all_resolves(package: str) -> None:
    module = importlib.import_module(package)
    assert len(set(module.__all__)) == len(module.__all__)
    for name in module.__all__:
        value = getattr(module, name)
        home = module._EXPORTS.get(name)
        if home is not None:
            assert value == getattr(importlib.import_module(home), name)  # ==: BACKENDS is made anew
    assert set(module.__all__) <= set(dir(module))


def test_unknown_names_are_attribute_errors() -> None:
    getattr_, dir_ = lazy_exports("edgeres", {"thing": "edgeres.errors"})
    with pytest.raises(AttributeError, match="module 'edgeres' has no attribute 'nothing'"):
        getattr_("nothing")
    with pytest.raises(AttributeError):
        getattr_("thing")  # the module has no such name
    assert "thing" in dir_() and "__version__" in dir_()


def test_a_lazy_name_loads_its_module_only_on_use() -> None:
    code = (
        "import sys, edgeres.export\n"
        "before = 'edgeres.export.verify' in sys.modules\n"
        "edgeres.export.InputCheck\n"
        "print(before, 'edgeres.export.verify' in sys.modules)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False", "True"]
