"""Progress bars on a terminal only; in a log, the lines saying what starts and nothing redrawn."""

from __future__ import annotations

import io
import re
import sys
from pathlib import Path

import pytest

import edgeres
from edgeres.progress import announce, progress_bar


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_no_bar_when_stderr_is_not_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    log = io.StringIO()
    monkeypatch.setattr(sys, "stderr", log)
    assert list(progress_bar(range(3), desc="calibrating")) == [0, 1, 2]
    assert log.getvalue() == ""


def test_a_bar_on_a_terminal_unless_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    tty = _Terminal()
    monkeypatch.setattr(sys, "stderr", tty)
    list(progress_bar(range(3), desc="calibrating"))
    assert "calibrating" in tty.getvalue()
    off = _Terminal()
    monkeypatch.setattr(sys, "stderr", off)
    list(progress_bar(range(3), desc="calibrating", enabled=False))
    assert off.getvalue() == ""


def test_announce_is_one_line_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    announce("exporting resnet20 to ONNX (opset 17)")
    assert capsys.readouterr() == ("", "info: exporting resnet20 to ONNX (opset 17)\n")


def test_every_bar_goes_through_progress_bar() -> None:
    """tqdm is created in edgeres.progress only (TensorRT's build phases, on a terminal, aside)."""
    root = Path(edgeres.__file__).parent
    allowed = {root / "progress.py", root / "engine" / "build.py"}
    direct = [
        str(path.relative_to(root))
        for path in sorted(root.rglob("*.py"))
        if path not in allowed and re.search(r"\btqdm\(", path.read_text(encoding="utf-8"))
    ]
    assert direct == []
