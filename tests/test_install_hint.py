"""One text says how to install TensorRT: build-engine's error, doctor, the runners and the docs quote it."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeres.errors import TENSORRT_INSTALL

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("page", ["README.md", "docs/commands/build-engine.md"])
def test_docs_quote_the_install_hint(page: Path) -> None:
    text = (ROOT / page).read_text(encoding="utf-8").replace("`", "").replace("\n", " ")
    assert TENSORRT_INSTALL in text


def test_every_message_uses_it() -> None:
    from edgeres.doctor.versions import TENSORRT_MISSING
    from edgeres.engine.trt import NOT_INSTALLED
    from edgeres.runners.registry import get_backend

    assert NOT_INSTALLED.endswith(TENSORRT_INSTALL) and TENSORRT_MISSING.endswith(TENSORRT_INSTALL)
    assert get_backend("tensorrt").install == TENSORRT_INSTALL
