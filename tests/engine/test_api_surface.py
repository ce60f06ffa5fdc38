"""Every TensorRT name edgeres uses exists in TensorRT 10.3 (JetPack 6) and in 11.4.

TensorRT cannot run here, so this test reads edgeres's TensorRT code with :mod:`ast` and
checks the names it uses against lists of the names each version's Python bindings define
(``tests/engine/data/tensorrt-*.names.txt``, made from the binding wheels by
``scripts/tensorrt_api_names.py``, whose docstring tells how). It needs no TensorRT and no
network.

What is checked, in every module under ``edgeres/`` that imports ``tensorrt`` or calls
``import_tensorrt()``:

* every attribute of a chain rooted at the module object (``trt.X``, ``trt.X.Y``), an enum
  member against the enum's own members where the list knows them (``BuilderFlag.INT8`` is
  gone in 11.x although ``DataType.INT8`` is not);
* every attribute used on a TensorRT object: a variable assigned from such a chain or from a
  method of another TensorRT object (``config = builder.create_builder_config()``), a
  ``s["context"]`` subscript, or a variable of one of the names in :data:`TRT_OBJECTS`;
* the public methods of a class that subclasses a TensorRT class (TensorRT calls them).

A name is present in a version when it is a line of its list or the end of one (the linker
stores ``INPUT`` inside ``CONDITIONAL_INPUT``). A name that the code only reaches through
``hasattr(obj, "name")`` or ``getattr(obj, "name", default)`` in the same top-level function
is optional: it must exist in one version. Every other name must exist in both, and one that
10.3 has and 11.4 lost (calibrators, ``int8_calibrator``, ``BuilderFlag.FP16``...) is
reported as removed in TensorRT 11.
"""

from __future__ import annotations

import ast
import importlib.util
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data"
LISTS = {"10.3": DATA / "tensorrt-10.3.0.names.txt", "11.4": DATA / "tensorrt-11.4.0.names.txt"}
MODULE_NAMES = {"trt", "tensorrt"}
#: Variable names that hold TensorRT objects in edgeres's code, wherever they are bound.
TRT_OBJECTS = frozenset(
    {
        "builder",
        "network",
        "config",
        "engine",
        "context",
        "runtime",
        "parser",
        "profile",
        "refitter",
        "inspector",
        "serialized",
        "cache",
        "tensor",
        "errors",
    }
)
#: Names edgeres uses that a version lacks, unguarded: real gaps, to be fixed in edgeres/.
#: Each entry is "module:name"; test_known_gaps_are_still_gaps fails once one is fixed.
KNOWN_GAPS: frozenset[str] = frozenset()


# -- the lists ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ApiNames:
    """One version's names: plain ``NAME`` lines and ``ENUM.MEMBER`` lines."""

    version: str
    plain: frozenset[str]
    qualified: frozenset[str]

    @property
    def enums(self) -> frozenset[str]:
        return frozenset(q.split(".")[0] for q in self.qualified)

    def name_present(self, name: str) -> bool:
        """``name`` is a line, or the end of one (the linker merges string tails)."""
        return name in self.plain or any(s.endswith(name) for s in self.plain)

    def present(self, name: str, owner: str | None = None) -> bool:
        """``owner.name`` checked as an enum member when ``owner`` is an enum of the list."""
        if owner in self.enums and not name.startswith("__"):
            return f"{owner}.{name}" in self.qualified
        return self.name_present(name)


def read_list(path: Path, version: str) -> ApiNames:
    lines = [s for s in path.read_text(encoding="utf-8").splitlines() if s and not s.startswith("#")]
    return ApiNames(
        version, frozenset(s for s in lines if "." not in s), frozenset(s for s in lines if "." in s)
    )


@cache
def api() -> dict[str, ApiNames]:
    return {v: read_list(p, v) for v, p in LISTS.items()}


# -- edgeres's uses -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Use:
    where: str  # "edgeres/engine/build.py:123"
    name: str
    owner: str | None  # the attribute before ``name`` in a ``trt.A.B`` chain
    guarded: bool

    @property
    def module(self) -> str:
        return self.where.split(":")[0]

    def show(self) -> str:
        return f"{self.owner}.{self.name}" if self.owner else self.name


def _root(node: ast.AST) -> ast.AST:
    while isinstance(node, (ast.Attribute, ast.Call, ast.Subscript, ast.Starred)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node


def _trt_chain(node: ast.AST, roots: set[str]) -> list[str] | None:
    """``trt.A.B`` -> ["A", "B"]; None when ``node`` is not a pure chain on the module object."""
    names: list[str] = []
    while isinstance(node, ast.Attribute):
        names.append(node.attr)
        node = node.value
    return names[::-1] if isinstance(node, ast.Name) and node.id in roots else None


class _Scope:
    """The TensorRT objects and guarded names of one top-level statement (a function, a class)."""

    def __init__(self, tree: ast.AST, roots: set[str]) -> None:
        self.tree, self.roots = tree, roots
        self.tainted = set(roots) | self._bound(TRT_OBJECTS)
        self.guarded = self._guards()
        self._spread()

    def _bound(self, names: Iterable[str]) -> set[str]:
        wanted, found = set(names), set()
        for node in ast.walk(self.tree):
            if isinstance(node, ast.arg) and node.arg in wanted:
                found.add(node.arg)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store) and node.id in wanted:
                found.add(node.id)
        return found

    def derived(self, node: ast.AST | None) -> bool:
        """Whether ``node``'s value comes from TensorRT."""
        if node is None:
            return False
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
            return node.slice.value in TRT_OBJECTS or self.derived(node.value)
        if isinstance(node, ast.IfExp):
            return self.derived(node.body) or self.derived(node.orelse)
        if isinstance(node, (ast.ListComp, ast.GeneratorExp, ast.SetComp)):
            return self.derived(node.elt)
        if isinstance(node, (ast.Tuple, ast.List)):
            return any(self.derived(e) for e in node.elts)
        base = _root(node)
        return isinstance(base, ast.Name) and base.id in self.tainted

    def _taint(self, target: ast.AST, value: ast.AST | None) -> bool:
        if isinstance(target, (ast.Tuple, ast.List)):
            if isinstance(value, (ast.Tuple, ast.List)) and len(value.elts) == len(target.elts):
                return any([self._taint(t, v) for t, v in zip(target.elts, value.elts, strict=True)])
            return any([self._taint(t, value) for t in target.elts])
        if isinstance(target, ast.Name) and target.id not in self.tainted and self.derived(value):
            self.tainted.add(target.id)
            return True
        return False

    def _spread(self) -> None:
        changed = True
        while changed:
            changed = False
            for node in ast.walk(self.tree):
                if isinstance(node, ast.Assign):
                    changed |= any([self._taint(t, node.value) for t in node.targets])
                elif isinstance(node, (ast.AnnAssign, ast.NamedExpr)):
                    changed |= self._taint(node.target, node.value)
                elif isinstance(node, (ast.For, ast.comprehension)):
                    changed |= self._taint(node.target, node.iter)
                elif isinstance(node, ast.withitem) and node.optional_vars is not None:
                    changed |= self._taint(node.optional_vars, node.context_expr)

    def _guards(self) -> set[str]:
        self.loops: dict[str, set[str]] = {}  # `for attr in ("a", "b")` -> {"a", "b"}
        for node in ast.walk(self.tree):
            if not isinstance(node, (ast.For, ast.comprehension)) or not isinstance(node.target, ast.Name):
                continue
            if isinstance(node.iter, (ast.Tuple, ast.List)):
                consts = [e.value for e in node.iter.elts if isinstance(e, ast.Constant)]
                self.loops.setdefault(node.target.id, set()).update(str(c) for c in consts)
        guarded: set[str] = set()
        for call in self.attribute_calls():
            if isinstance(call.func, ast.Name) and (call.func.id == "hasattr" or len(call.args) == 3):
                guarded |= self.names_of(call.args[1])
        return guarded

    def names_of(self, node: ast.AST) -> set[str]:
        """The attribute names that ``getattr``'s second argument ``node`` can be."""
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return {node.value}
        return set(self.loops.get(node.id, ())) if isinstance(node, ast.Name) else set()

    def attribute_calls(self) -> Iterator[ast.Call]:
        """``getattr(obj, name...)`` and ``hasattr(obj, name)`` calls."""
        for node in ast.walk(self.tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("getattr", "hasattr")
                and len(node.args) >= 2
            ):
                yield node


def uses_in_source(source: str, where: str) -> list[Use]:
    """The TensorRT names that ``source`` (one module, shown as ``where``) uses."""
    tree = ast.parse(source)
    roots = set(MODULE_NAMES)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {a.asname for a in node.names if a.name == "tensorrt" and a.asname}
    out: list[Use] = []
    for top in tree.body:
        scope = _Scope(top, roots)

        def add(node: ast.AST, name: str, owner: str | None, scope: _Scope = scope) -> None:
            line = getattr(node, "lineno", 0)
            out.append(Use(f"{where}:{line}", name, owner, name in scope.guarded))

        for node in ast.walk(top):
            if isinstance(node, ast.Attribute) and scope.derived(node.value):
                chain = _trt_chain(node.value, roots)
                add(node, node.attr, chain[-1] if chain else None)
            elif isinstance(node, ast.ClassDef) and any(_trt_chain(b, roots) for b in node.bases):
                for item in node.body:
                    if isinstance(item, ast.FunctionDef) and not item.name.startswith("_"):
                        add(item, item.name, None)
        for call in scope.attribute_calls():
            obj = call.args[0]
            if scope.derived(obj):
                chain = _trt_chain(obj, roots)
                for name in sorted(scope.names_of(call.args[1])):
                    add(call, name, chain[-1] if chain else None)
    return sorted(out, key=lambda u: int(u.where.rsplit(":", 1)[1]))


def tensorrt_modules() -> list[Path]:
    """The modules under edgeres/ that import ``tensorrt`` or call ``import_tensorrt()``."""
    found = []
    for path in sorted((REPO / "edgeres").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            imports = isinstance(node, ast.Import) and any(a.name == "tensorrt" for a in node.names)
            calls = (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "import_tensorrt"
            )
            if imports or calls:
                found.append(path)
                break
    return found


@cache
def edgeres_uses() -> tuple[Use, ...]:
    out: list[Use] = []
    for path in tensorrt_modules():
        rel = path.relative_to(REPO).as_posix()
        out += uses_in_source(path.read_text(encoding="utf-8"), rel)
    return tuple(out)


def problems(uses: Iterable[Use], names: dict[str, ApiNames]) -> list[str]:
    """One line per use that a version lacks (either, unguarded; both, guarded)."""
    out = []
    for use in uses:
        missing = [v for v, n in names.items() if not n.present(use.name, use.owner)]
        if use.guarded and len(missing) < len(names):
            continue
        if missing:
            versions = " and ".join(f"TensorRT {v}" for v in missing)
            guard = " (guarded, but in no version)" if use.guarded else ""
            out.append(f"{use.where}: {use.show()} is not in {versions}{guard}")
    return out


def removed_in_11(uses: Iterable[Use], names: dict[str, ApiNames]) -> list[str]:
    """Unguarded uses of names that TensorRT 10.3 has and 11.4 lost."""
    old, new = names["10.3"], names["11.4"]
    return [
        f"{u.where}: {u.show()} was removed in TensorRT 11; guard it with getattr/hasattr or drop it"
        for u in uses
        if not u.guarded and old.present(u.name, u.owner) and not new.present(u.name, u.owner)
    ]


def _gap_key(use: Use) -> str:
    return f"{use.module}:{use.show()}"


# -- the lists themselves -------------------------------------------------------------------------
def test_the_lists_tell_the_versions_apart() -> None:
    old, new = api()["10.3"], api()["11.4"]
    for gone in ("IInt8Calibrator", "IInt8EntropyCalibrator2", "int8_calibrator", "set_calibration_profile"):
        assert old.present(gone) and not new.present(gone), gone
    for member in ("FP16", "INT8"):
        assert old.present(member, "BuilderFlag") and not new.present(member, "BuilderFlag"), member
        assert new.present(member, "DataType") or member == "FP16"
    assert new.present("INT8") and old.present("INT8")  # as a DataType member: why enums are qualified
    for both in ("Builder", "OnnxParser", "execute_async_v3", "set_tensor_address", "__version__"):
        assert old.present(both) and new.present(both), both
    assert not old.present("execute_async_v2") and not new.present("no_such_method")


def test_a_merged_string_tail_counts_as_a_name() -> None:
    old = api()["10.3"]
    assert "INPUT" not in old.plain and "CONDITIONAL_INPUT" in old.plain  # stored inside it
    assert old.name_present("INPUT") and old.present("INPUT", "TensorIOMode")
    assert not old.name_present("CONDITIONAL_INPUTS")


# -- edgeres against the lists --------------------------------------------------------------------
def test_the_tensorrt_modules_are_found() -> None:
    modules = {p.relative_to(REPO).as_posix() for p in tensorrt_modules()}
    expected = {
        "edgeres/engine/build.py",
        "edgeres/runners/tensorrt_runner.py",
        "edgeres/pipeline/engines.py",
    }
    assert expected <= modules
    used = {u.show() for u in edgeres_uses()}
    for name in (
        "Builder",
        "build_serialized_network",
        "ILogger",
        "NetworkDefinitionCreationFlag.STRONGLY_TYPED",
        "set_memory_pool_limit",
        "deserialize_cuda_engine",
        "execute_async_v3",
        "set_tensor_address",
        "TensorIOMode.INPUT",
        "phase_start",
        "desc",
        "node_operator",
        "combine",
    ):
        assert name in used, name


def test_every_tensorrt_name_edgeres_uses_exists_in_10_3_and_11_4() -> None:
    found = [p for u, p in _problems_by_use() if _gap_key(u) not in KNOWN_GAPS]
    assert not found, "TensorRT names missing:\n" + "\n".join(found)


def test_nothing_removed_in_tensorrt_11_is_used_unguarded() -> None:
    found = [line for line in removed_in_11(edgeres_uses(), api()) if _gap_key_of(line) not in KNOWN_GAPS]
    assert not found, "\n".join(found)


def test_known_gaps_are_still_gaps() -> None:
    """An entry of KNOWN_GAPS that edgeres no longer has must leave the set."""
    gaps = {_gap_key(u) for u, _ in _problems_by_use()}
    assert gaps >= KNOWN_GAPS, f"fixed, remove from KNOWN_GAPS: {sorted(KNOWN_GAPS - gaps)}"


def _problems_by_use() -> list[tuple[Use, str]]:
    return [(u, p) for u in edgeres_uses() for p in problems([u], api())]


def _gap_key_of(line: str) -> str:
    where, _, rest = line.partition(": ")
    return f"{where.split(':')[0]}:{rest.split(' ')[0]}"


# -- the checker on planted misuses ---------------------------------------------------------------
PLANTED = """
def build(trt, builder, calibrator):
    config = builder.create_builder_config()
    config.int8_calibrator = calibrator
    config.set_flag(trt.BuilderFlag.INT8)
    config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    fp16 = getattr(trt.BuilderFlag, "FP16", None)
    if hasattr(config, "no_such_setting"):
        config.no_such_setting = 1
    plan = builder.build_serialized_network(None, config)
    return plan.nbytes, fp16

class Monitor(trt.IProgressMonitor):
    def phase_start(self, name, parent, steps):
        pass
    def on_no_such_event(self):
        pass
"""


def test_the_checker_catches_planted_misuses() -> None:
    uses = uses_in_source(PLANTED, "planted.py")
    assert {u.show() for u in uses} >= {"int8_calibrator", "BuilderFlag.INT8", "BuilderFlag.FP16", "nbytes"}
    found = problems(uses, api())
    nowhere = "is not in TensorRT 10.3 and TensorRT 11.4"
    assert found == [
        "planted.py:4: int8_calibrator is not in TensorRT 11.4",
        "planted.py:5: BuilderFlag.INT8 is not in TensorRT 11.4",
        f"planted.py:8: no_such_setting {nowhere} (guarded, but in no version)",
        f"planted.py:9: no_such_setting {nowhere} (guarded, but in no version)",
        f"planted.py:16: on_no_such_event {nowhere}",
    ]
    removed = removed_in_11(uses, api())
    assert [line.split(" was ")[0] for line in removed] == [
        "planted.py:4: int8_calibrator",
        "planted.py:5: BuilderFlag.INT8",
    ]


# -- the lists are what the script makes ----------------------------------------------------------
def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "tensorrt_api_names", REPO / "scripts" / "tensorrt_api_names.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_lists_are_what_the_script_makes() -> None:
    script = _script()
    cache_dir = script.default_cache()
    wheels = {v: script.cached_wheel(cache_dir, v) for v in script.VERSIONS}
    if None in wheels.values():
        pytest.skip(
            f"the TensorRT binding wheels are not in {cache_dir} (EDGERES_TENSORRT_WHEELS): "
            "run python scripts/tensorrt_api_names.py once, with PyPI reachable"
        )
    for version, list_name in script.VERSIONS.items():
        made = script.render(wheels[version], version)
        assert (DATA / list_name).read_text(encoding="utf-8") == made, f"{list_name} is out of date"
    assert os.path.samefile(DATA, script.DATA)
