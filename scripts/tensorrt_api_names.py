#!/usr/bin/env python3
"""The names TensorRT's Python API defines, read from the binding wheels without importing them.

edgeres supports TensorRT 10.3 (JetPack 6) and 11.x. TensorRT itself cannot be installed on
most machines (it needs CUDA and a GPU), but its binding wheels can be downloaded anywhere,
and their ``tensorrt.so`` holds every name that pybind11 registers as a string. This script
lists them, one file per version, for ``tests/engine/test_api_surface.py``, which checks every
name edgeres's TensorRT code uses against both lists without TensorRT or a network:

    python scripts/tensorrt_api_names.py                 # the wheels from the cache, else pip download
    python scripts/tensorrt_api_names.py --wheel A.whl --wheel B.whl
    python scripts/tensorrt_api_names.py --check         # exit 1 when a checked-in list is out of date

The wheels are ``tensorrt-cu12-bindings`` (:data:`VERSIONS`), x86-64 CPython 3.11 builds, kept
in ``--cache`` (default ``$EDGERES_TENSORRT_WHEELS``, else ``~/.cache/edgeres/tensorrt-wheels``)
so that the lists can be made again and compared; pip downloads the missing ones there.

What a list holds (sorted, one name a line, after ``#`` comment lines naming the wheel):

* ``NAME``: an identifier-like NUL-terminated string of the ``.rodata`` section of
  ``tensorrt.so`` (the strings that pybind11 registers: class, method, property, argument and
  enum member names; C++ type-info names are left out), and every name that the wheel's
  ``__init__.py`` defines (``__version__``, ``nptype``, ``DataType.itemsize``...). The linker
  merges a string into the tail of a longer one that ends with it, so ``INPUT`` may be stored
  only inside ``CONDITIONAL_INPUT``: **a name is present when it is a whole line or the end of
  a line** (``name_present`` in the test).
* ``ENUM.MEMBER``: the members of each pybind11 enum, found where the code calls
  ``pybind11::enum_<T>::value(name, ...)`` (the call's target is found in the symbol table,
  the name in the ``lea`` that loads its first argument). A flat list cannot tell that
  ``INT8`` left ``BuilderFlag`` in 11.x while staying in ``DataType``; these lines can.
  An enum whose members cannot all be read, or whose C++ name two enums share
  (``nvinfer1::ErrorCode``, ``nvonnxparser::ErrorCode``), gets no such lines, and the test
  checks its members as plain names.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import os
import re
import struct
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "engine" / "data"
PACKAGE = "tensorrt-cu12-bindings"
#: version -> the name of its list under tests/engine/data
VERSIONS = {"10.3.0": "tensorrt-10.3.0.names.txt", "11.4.0.106": "tensorrt-11.4.0.names.txt"}
#: pip download options that pick the same wheel on any machine
PLATFORM = ["--python-version", "3.11", "--platform", "manylinux_2_28_x86_64"]
PLATFORM += ["--platform", "manylinux_2_17_x86_64", "--only-binary", ":all:"]

IDENT = re.compile(rb"[A-Za-z_][A-Za-z0-9_]*")
ENUM_FUNC = re.compile(r"_ZN8pybind115enum_I(N(?:\d+\w+?)+E|\d+\w+?)E5valueEPKc")
LEA_RSI = b"\x48\x8d\x35"  # lea rsi, [rip + disp32]: the first argument after `this`
CALL = re.compile(b"\xe8")  # call rel32


def default_cache() -> Path:
    env = os.environ.get("EDGERES_TENSORRT_WHEELS")
    return Path(env) if env else Path.home() / ".cache" / "edgeres" / "tensorrt-wheels"


def cached_wheel(cache: Path, version: str) -> Path | None:
    """The wheel of ``version`` in ``cache``, or None."""
    found = sorted(cache.glob(f"{PACKAGE.replace('-', '_')}-{version}-*.whl"))
    return found[0] if found else None


def download(cache: Path, version: str) -> Path:
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:  # a failed download leaves nothing behind
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp, *PLATFORM]
        subprocess.run([*cmd, f"{PACKAGE}=={version}"], check=True)
        (wheel,) = Path(tmp).glob("*.whl")
        target = cache / wheel.name
        os.replace(wheel, target)
    return target


# -- ELF ------------------------------------------------------------------------------------------
class Elf:
    """The few parts of a little-endian ELF64 shared object that this script reads."""

    def __init__(self, data: bytes) -> None:
        if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
            raise ValueError("not a little-endian 64-bit ELF file")
        self.data = data
        (shoff,) = struct.unpack_from("<Q", data, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
        heads = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
        names = heads[shstrndx][4]
        self.sections: dict[str, tuple[int, int, int]] = {}  # name -> (address, file offset, size)
        for h in heads:
            name = data[names + h[0] : data.index(b"\0", names + h[0])].decode()
            self.sections[name] = (h[3], h[4], h[5])

    def section(self, name: str) -> tuple[int, bytes]:
        addr, off, size = self.sections[name]
        return addr, self.data[off : off + size]

    def symbols(self) -> Iterator[tuple[str, int]]:
        """(name, address) of each defined symbol of ``.symtab`` (none when it is stripped)."""
        if ".symtab" not in self.sections:
            return
        _, table = self.section(".symtab")
        _, names = self.section(".strtab")
        for i in range(0, len(table), 24):
            name, _, _, _, value, _ = struct.unpack_from("<IBBHQQ", table, i)
            if value:
                yield names[name : names.index(b"\0", name)].decode("latin-1"), value


def _cpp_name(mangled: str) -> tuple[str, ...]:
    """``N8nvinfer17ILogger8SeverityE`` -> ("nvinfer1", "ILogger", "Severity")."""
    parts, k = [], 1 if mangled.startswith("N") else 0
    while k < len(mangled) and mangled[k].isdigit():
        digits = re.match(r"\d+", mangled[k:])
        assert digits is not None
        k += len(digits.group())
        parts.append(mangled[k : k + int(digits.group())])
        k += int(digits.group())
    return tuple(parts)


def rodata_names(elf: Elf) -> set[str]:
    """Identifier-like whole strings of ``.rodata``, without the C++ type-info names."""
    addr, ro = elf.section(".rodata")
    typeinfo = {value - addr for name, value in elf.symbols() if name.startswith("_ZTS")}
    names, start = set(), 0
    for text in ro.split(b"\0"):
        if start not in typeinfo and IDENT.fullmatch(text):
            names.add(text.decode())
        start += len(text) + 1
    return names


def enum_members(elf: Elf) -> dict[str, set[str]]:
    """{enum: members} read from the calls to ``pybind11::enum_<T>::value`` (see the docstring)."""
    funcs: dict[int, tuple[str, ...]] = {}
    for name, value in elf.symbols():
        m = ENUM_FUNC.match(name)
        if m:
            funcs[value] = _cpp_name(m.group(1))
    taddr, text = elf.section(".text")
    raddr, ro = elf.section(".rodata")
    found: dict[tuple[str, ...], list[str | None]] = {}
    for call in re.finditer(CALL, text[:-4]):
        i = call.start()
        target = taddr + i + 5 + struct.unpack_from("<i", text, i + 1)[0]
        if target not in funcs:
            continue
        window = text[max(0, i - 48) : i]
        j = window.rfind(LEA_RSI)
        member: str | None = None
        if j >= 0:
            at = taddr + i - len(window) + j + 7 + struct.unpack_from("<i", window, j + 3)[0] - raddr
            string = ro[at : ro.find(b"\0", at)] if 0 <= at < len(ro) else b""
            member = string.decode() if IDENT.fullmatch(string) else None
        found.setdefault(funcs[target], []).append(member)
    by_name: dict[str, list[tuple[tuple[str, ...], list[str | None]]]] = {}
    for cpp, members in found.items():
        by_name.setdefault(cpp[-1], []).append((cpp, members))
    out = {}
    for enum, entries in by_name.items():
        if len(entries) == 1 and None not in entries[0][1]:
            out[enum] = {m for m in entries[0][1] if m is not None}
    return out


def init_names(source: str) -> set[str]:
    """Names that the wheel's ``__init__.py`` defines at module level (``X.attr = ...`` too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                if isinstance(t, ast.Name):
                    names.add(t.id)
                elif isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name):
                    names.update((t.attr, f"{t.value.id}.{t.attr}"))
    return names


def wheel_names(wheel: Path) -> set[str]:
    """Every line of the list for ``wheel`` except the comments."""
    with zipfile.ZipFile(wheel) as z:
        so = [n for n in z.namelist() if re.fullmatch(r"tensorrt\w*/tensorrt\.so", n)]
        init = [n for n in z.namelist() if re.fullmatch(r"tensorrt\w*/__init__\.py", n)]
        if len(so) != 1 or len(init) != 1:
            raise ValueError(f"{wheel.name} has no tensorrt*/tensorrt.so and __init__.py")
        elf = Elf(z.read(so[0]))
        source = z.read(init[0]).decode("utf-8")
    enums = enum_members(elf)
    names = rodata_names(elf) | {f"{e}.{m}" for e, ms in enums.items() for m in ms}
    from_init = init_names(source)
    # ``DataType.itemsize``: qualified only on an enum, where the test checks qualified names
    names |= {n for n in from_init if "." not in n or n.split(".")[0] in enums}
    return names


def render(wheel: Path, version: str) -> str:
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    head = [
        f"# TensorRT {version} Python API names, from {PACKAGE}=={version}",
        f"# {wheel.name} sha256 {digest}",
        "# made by scripts/tensorrt_api_names.py; NAME is present as a whole line or a line's end",
    ]
    return "\n".join([*head, *sorted(wheel_names(wheel))]) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheel", action="append", type=Path, default=[], help="a bindings wheel")
    parser.add_argument("--cache", type=Path, default=default_cache(), help="where the wheels are kept")
    parser.add_argument("--out", type=Path, default=DATA, help="the folder of the lists")
    parser.add_argument("--check", action="store_true", help="compare with the lists, write nothing")
    args = parser.parse_args(argv)
    wheels: dict[str, Path] = {}
    for w in args.wheel:
        version = next((v for v in VERSIONS if w.name.startswith(f"{PACKAGE.replace('-', '_')}-{v}-")), None)
        if version is None:
            parser.error(f"{w.name} is not a {PACKAGE} wheel of {', '.join(VERSIONS)}")
        wheels[version] = w
    for version in VERSIONS:
        if version not in wheels:
            wheels[version] = cached_wheel(args.cache, version) or download(args.cache, version)
    stale = []
    for version, list_name in VERSIONS.items():
        text, target = render(wheels[version], version), args.out / list_name
        if args.check:
            if not target.is_file() or target.read_text(encoding="utf-8") != text:
                stale.append(str(target))
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target)
        print(f"{target}: {text.count(chr(10)) - 3} names from {wheels[version].name}")
    if stale:
        print("out of date: " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except subprocess.CalledProcessError as exc:
        sys.exit(f"error: pip could not download the wheel ({' '.join(exc.cmd[-1:])}); is PyPI reachable?")
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        sys.exit(f"error: {exc}")
