"""Every module imports without the optional packages, and `import edgeres` stays light."""

from __future__ import annotations

import subprocess
import sys
import textwrap

OPTIONAL = (
    "tensorrt",
    "sklearn",
    "matplotlib",
    "onnxscript",
    "onnxconverter_common",
    "openvino",
    "pycuda",
    "cuda",
)

BLOCKER = f"""
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {OPTIONAL!r}:
            raise ImportError(f"{{name}} is blocked for this test")
        return None
sys.meta_path.insert(0, Block())
"""


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCKER + textwrap.dedent(code)], capture_output=True, text=True, timeout=300
    )


def test_every_module_imports_with_optional_packages_absent() -> None:
    r = _run(
        """
        import pkgutil, importlib, edgeres
        names = [m.name for m in pkgutil.walk_packages(edgeres.__path__, "edgeres.")]
        for name in names:
            importlib.import_module(name)
        print(len(names))
        """
    )
    assert r.returncode == 0, r.stderr
    assert int(r.stdout.split()[-1]) >= 10


def test_import_and_cli_do_not_load_torch_or_onnxruntime() -> None:
    r = _run(
        """
        import sys, edgeres, edgeres.cli, edgeres.runners, edgeres.data
        heavy = [m for m in ("torch", "onnxruntime", "onnx", "tensorrt") if m in sys.modules]
        print(heavy)
        """
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_commands_that_need_no_optional_package_run_without_them() -> None:
    r = _run(
        """
        from edgeres.cli import main
        try:
            main(["info"])
        except SystemExit as exc:
            assert exc.code == 0, exc.code
        """
    )
    assert r.returncode == 0, r.stderr
    assert "tensorrt     not installed" in r.stdout
