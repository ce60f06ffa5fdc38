"""Refuse model files that would run code from the file, before and while they are read.

TorchScript archives and torch.export programs are programs: TorchScript runs a
scripted ``__setstate__`` while loading, and both run their graph's operations
when called, which may read or write files (``aten::from_file``). A ``.pt2``
archive also holds pickles that ``torch.export.load`` reads with
``weights_only=False``, sympy expressions it parses with ``eval``, and possibly
compiled native code. edgeres reads such a file only when every pickle loads
with ``weights_only=True``, every expression is plain arithmetic and every
operation is one an image classifier uses; ``--unsafe-pickle`` (alias
``--trust-model``) skips these checks for a file the user trusts.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import pickletools
import re
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeres.errors import EdgeresError

if TYPE_CHECKING:
    import torch


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


TRUST_HINT = "pass --unsafe-pickle (or --trust-model) if you trust it"

#: Operations (without their ``aten::`` namespace) that image classifiers use and that
#: touch nothing but tensors: no file, network or process access, no allocation sized
#: by a constant from the file.
ATEN_OPS = _names(
    """
    conv1d conv2d conv3d _convolution convolution conv_transpose2d batch_norm native_batch_norm
    _native_batch_norm_legit_no_training _native_batch_norm_legit layer_norm native_layer_norm group_norm
    instance_norm relu relu_ relu6 hardtanh hardtanh_ silu silu_ gelu sigmoid sigmoid_ hardsigmoid
    hardsigmoid_ hardswish hardswish_ tanh leaky_relu leaky_relu_ elu prelu add add_ sub sub_ mul mul_ div
    div_ rsub neg abs sqrt rsqrt pow exp log clamp clamp_ clamp_min clamp_max matmul mm addmm bmm linear t
    transpose permute contiguous view view_as reshape _unsafe_view flatten squeeze unsqueeze expand
    expand_as cat stack chunk split slice select narrow __getitem__ mean sum amax max min softmax
    log_softmax _softmax _log_softmax adaptive_avg_pool2d _adaptive_avg_pool2d adaptive_max_pool2d
    avg_pool2d max_pool2d max_pool2d_with_indices pad constant_pad_nd dropout dropout_ feature_dropout
    alpha_dropout upsample_nearest2d upsample_bilinear2d clone detach alias to type_as size sym_size dim
    numel len Int Float Bool ScalarImplicit IntImplicit FloatImplicit eq ne lt le gt ge __is__ __isnot__
    __not__ __and__ __or__ floordiv floor_divide remainder format warn str append list
    """
)
#: TorchScript's own control-flow and data-structure nodes; the ``prim::CallMethod`` and
#: ``prim::CallFunction`` that inlining cannot resolve are deliberately absent.
PRIM_OPS = _names(
    """
    Constant GetAttr ListConstruct ListUnpack TupleConstruct TupleUnpack TupleIndex DictConstruct If Loop
    RaiseException unchecked_cast Uninitialized NumToTensor device dtype min max isinstance is_cuda
    shape data requires_grad
    """
)
_ALLOWED_PYTHON_TARGETS = frozenset({"_operator.getitem"})

#: Names torch.export writes into a program's symbolic shapes (sympy's ``srepr`` form, e.g.
#: ``Symbol('s77', positive=True, integer=True)``, and torch's own sympy functions).
_SYMPY_NAMES = _names(
    """
    Symbol Integer Rational Float Add Mul Pow Max Min Abs Eq Ne Lt Le Gt Ge And Or Not True False oo
    StrictLessThan StrictGreaterThan LessThan GreaterThan Equality Unequality Half One Zero NegativeOne
    Infinity NegativeInfinity FloorDiv ModularIndexing Where PythonMod Mod CleanDiv CeilDiv CeilToInt
    FloorToInt IntTrueDiv FloatTrueDiv LShift RShift TruncToFloat TruncToInt RoundToInt RoundDecimal
    ToFloat FloatPow PowByNatural Identity IsNonOverlappingAndDenseIndicator
    positive negative nonnegative nonpositive integer real finite zero nonzero even odd rational commutative
    """
)
_QUOTED_NAME = re.compile(r"'[a-z]+[0-9]+'")
_SYMPY_CHARS = re.compile(r"[A-Za-z0-9_ +\-*/%(),.<>=!&|~^]*")
_SYMPY_DOT = re.compile(r"(?<![0-9])\.|\.(?![0-9])")
_SYMBOL = re.compile(r"[a-z]+[0-9]+")


def needs_code(path: Path, what: str) -> EdgeresError:
    return EdgeresError(
        f"'{path}' {what}, so reading or running it means running code from the file; {TRUST_HINT}"
    )


# -- TorchScript --------------------------------------------------------------------------------


def check_torchscript_archive(path: Path, names: list[str]) -> None:
    """Before ``torch.jit.load``: refuse a scripted ``__setstate__``, which runs while loading."""
    with zipfile.ZipFile(path) as zf:
        for name in names:
            if "/code/" in name and name.endswith(".py") and b"def __setstate__" in zf.read(name):
                raise needs_code(path, "restores its state with its own TorchScript code (__setstate__)")


def torchscript_ops(module: torch.jit.ScriptModule) -> Iterator[str]:
    """Every node kind of every method of ``module`` and its submodules, with calls inlined."""
    import torch

    def walk(block: Any) -> Iterator[str]:
        for node in block.nodes():
            yield node.kind()
            for inner in node.blocks():
                yield from walk(inner)

    for sub in module.modules():
        c: Any = sub._c
        for name in c._method_names():
            graph = c._get_method(name).graph.copy()
            torch._C._jit_pass_inline(graph)
            yield from walk(graph)


def check_torchscript_ops(module: torch.jit.ScriptModule, path: Path) -> None:
    for kind in torchscript_ops(module):
        namespace, _, name = kind.partition("::")
        allowed = ATEN_OPS if namespace == "aten" else PRIM_OPS if namespace == "prim" else frozenset()
        if name not in allowed:
            raise needs_code(path, f"runs the operation {kind}, which image classifiers do not use")


# -- torch.export .pt2 --------------------------------------------------------------------------


def check_pt2_archive(path: Path) -> None:
    """Before ``torch.export.load``: every pickle loads weights-only, every expression is arithmetic."""
    from torch.export.pt2_archive import constants as c

    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        root = names[0].split("/", 1)[0] + "/" if names else ""
        inner = {n[len(root) :]: n for n in names if n.startswith(root)}
        if c.ARCHIVE_VERSION_PATH not in inner:
            raise EdgeresError(
                f"'{path}' is a torch.export archive from an old PyTorch; re-save it with torch.export.save"
            )
        for name in inner:
            if name.startswith((c.AOTINDUCTOR_DIR, c.EXECUTORCH_DIR, c.MTIA_DIR)):
                raise needs_code(path, "holds compiled native code")
            if name.startswith(c.MODELS_DIR) and name.endswith(".json"):
                _check_expressions(json.loads(zf.read(inner[name])), path)
            elif name.startswith(c.SAMPLE_INPUTS_DIR) or name.endswith(".pkl"):
                _check_weights_only(zf.read(inner[name]), path, name)
            elif name.startswith((c.WEIGHTS_DIR, c.CONSTANTS_DIR)) and name.endswith("_config.json"):
                base = c.WEIGHTS_DIR if name.startswith(c.WEIGHTS_DIR) else c.CONSTANTS_DIR
                for entry in json.loads(zf.read(inner[name])).get("config", {}).values():
                    file = str(entry.get("path_name", ""))
                    if file.startswith((c.CUSTOM_OBJ_FILENAME_PREFIX, c.OPAQUE_OBJ_FILENAME_PREFIX)):
                        raise needs_code(path, "holds pickled Python objects")
                    if entry.get("use_pickle"):
                        data = zf.read(inner[base + file]) if base + file in inner else b""
                        _check_weights_only(data, path, base + file)


def _check_weights_only(data: bytes, path: Path, entry: str) -> None:
    import torch

    try:
        torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise needs_code(path, f"holds a pickled Python object ({entry})") from None
    except Exception as exc:  # torch.load raises many types for damaged data
        raise EdgeresError(f"'{path}' is a damaged torch.export program ({entry}: {exc})") from exc


def _check_expressions(value: Any, path: Path) -> None:
    """torch.export parses symbolic shapes with sympy's eval: allow names and arithmetic only."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "expr_str" and not _is_arithmetic(item):
                raise needs_code(path, f"holds a shape expression that is code ({str(item)[:60]!r})")
            _check_expressions(item, path)
    elif isinstance(value, list):
        for item in value:
            _check_expressions(item, path)


def _is_arithmetic(text: object) -> bool:
    """Symbols, numbers and allowed sympy names only: nothing that reaches Python's builtins."""
    if not isinstance(text, str):
        return False
    text = _QUOTED_NAME.sub("s0", text)  # Symbol('s77', ...) names its symbol in quotes
    if not _SYMPY_CHARS.fullmatch(text) or _SYMPY_DOT.search(text):
        return False
    words = re.findall(r"[A-Za-z_][A-Za-z0-9_]*", text)
    return all(w in _SYMPY_NAMES or _SYMBOL.fullmatch(w) for w in words)


def check_exported_ops(graph_module: torch.nn.Module, path: Path) -> None:
    """Every call in an exported program's graphs must be an allowed ATen operation."""
    import torch

    for sub in graph_module.modules():
        graph = getattr(sub, "graph", None)
        if not isinstance(graph, torch.fx.Graph):
            continue
        for node in graph.nodes:
            if node.op in ("placeholder", "output", "get_attr"):
                continue
            target = node.target
            if node.op == "call_function" and isinstance(target, torch._ops.OpOverload):
                schema = target._schema.name  # e.g. "aten::conv2d"
                namespace, _, name = schema.partition("::")
                if namespace == "aten" and name in ATEN_OPS:
                    continue
                raise needs_code(path, f"runs the operation {schema}, which image classifiers do not use")
            label = f"{getattr(target, '__module__', '')}.{getattr(target, '__name__', target)}"
            if node.op == "call_function" and label in _ALLOWED_PYTHON_TARGETS:
                continue
            raise needs_code(path, f"runs {label.strip('.')}, which image classifiers do not use")


@contextmanager
def forced_weights_only() -> Iterator[None]:
    """Make every ``torch.load`` inside the block weights-only, even one that asks otherwise."""
    key = "TORCH_FORCE_WEIGHTS_ONLY_LOAD"
    old = os.environ.get(key)
    os.environ[key] = "1"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = old


# -- pickles ------------------------------------------------------------------------------------


def is_wellformed_pickle(path: Path) -> bool:
    """Whether a file that weights-only loading refused holds well-formed pickles (an object), not damage.

    A zip-format ``torch.save`` file keeps its pickle in ``data.pkl``; a legacy one is
    a run of pickles (magic number, protocol, system info, the object) then raw storage.
    """
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                name = next(n for n in zf.namelist() if n.endswith("data.pkl"))
                return _parses(io.BytesIO(zf.read(name)), 1)
        with path.open("rb") as f:
            return _parses(f, 4)
    except (StopIteration, zipfile.BadZipFile, OSError, EOFError, KeyError):
        return False


def _parses(stream: Any, count: int) -> bool:
    """Whether the first ``count`` pickles in ``stream`` parse, or those that do import a global."""
    imports = False
    for _ in range(count):
        try:
            for op, _arg, _pos in pickletools.genops(stream):
                imports = imports or op.name in _IMPORTING
        except Exception:  # pickletools raises ValueError and others on damaged data
            return imports
    return True


_IMPORTING = frozenset({"GLOBAL", "STACK_GLOBAL", "INST", "OBJ"})
