"""The degradation experiment (the paper's Figure 6) on tiny data: one figure and one table."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from edgeres.errors import UsageError
from edgeres.train import run_degradation
from edgeres.train.degradation import CSV_COLUMNS, DEFAULT_ARCHS, plot_degradation
from tests.train import make_npz

pytest.importorskip("matplotlib")


def test_tiny_degradation_run(tmp_path: Path) -> None:
    data = make_npz(tmp_path / "d.npz", n=32, classes=4)
    out = tmp_path / "deg"
    kw = dict(batch_size=16, threads=1, val_split=0.25, cache="memory", progress=False)
    png = run_degradation(str(data), 2, out, archs=("plain20", "resnet20"), **kw)  # type: ignore[arg-type]
    assert png == out / "degradation.png"
    with Image.open(png) as img:
        assert img.format == "PNG" and img.size[0] > img.size[1] > 200
    with (out / "degradation.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [(r["arch"], r["kind"], r["depth"], r["epoch"]) for r in rows] == [
        ("plain20", "plain", "20", "1"),
        ("plain20", "plain", "20", "2"),
        ("resnet20", "resnet", "20", "1"),
        ("resnet20", "resnet", "20", "2"),
    ]
    assert all(
        0.0 <= float(r["train_error"]) <= 100.0 and 0.0 <= float(r["val_error"]) <= 100.0 for r in rows
    )
    assert (out / "plain20" / "best.pt").is_file() and (out / "resnet20" / "metrics.csv").is_file()
    with pytest.raises(UsageError, match="already hold training runs"):
        run_degradation(str(data), 2, out, archs=("plain20", "resnet20"), **kw)  # type: ignore[arg-type]
    # resuming finished runs trains nothing and redraws the same table
    before = (out / "degradation.csv").read_text()
    run_degradation(str(data), 2, out, archs=("plain20", "resnet20"), resume=True, **kw)  # type: ignore[arg-type]
    assert (out / "degradation.csv").read_text() == before


def test_the_default_figure_has_both_panels(tmp_path: Path) -> None:
    histories: dict[str, list[dict[str, Any]]] = {
        arch: [{"epoch": e, "train_acc": 0.1 * e, "val_acc": 0.08 * e} for e in range(1, 4)]
        for arch in DEFAULT_ARCHS
    }
    histories["resnet56"][-1]["val_acc"] = None  # a missing validation point is skipped, not drawn as 0
    path = plot_degradation(histories, tmp_path / "fig.png")
    with Image.open(path) as img:
        assert img.size == (1320, 504)
    left, right = _line_pixels(path, "#1f77b4")  # depth 20's colour, in both panels
    assert left > 50 and right > 50


def _line_pixels(path: Path, colour: str) -> tuple[int, int]:
    """Pixels of one line colour in the left (plain) and the right (ResNet) half of the figure."""
    import numpy as np

    with Image.open(path) as img:
        rgb = np.asarray(img.convert("RGB"), dtype=np.int64)
    target = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])
    hits = np.abs(rgb - target).sum(axis=-1) < 30
    half = rgb.shape[1] // 2
    return int(hits[:, :half].sum()), int(hits[:, half:].sum())


@pytest.mark.parametrize(("arch", "panel"), [("plain20", 0), ("resnet20", 1)])
def test_each_architecture_is_drawn_in_its_own_panel(tmp_path: Path, arch: str, panel: int) -> None:
    rows = [{"epoch": e, "train_acc": 0.1 * e, "val_acc": 0.08 * e} for e in range(1, 4)]
    counts = _line_pixels(plot_degradation({arch: rows}, tmp_path / "fig.png"), "#1f77b4")
    assert counts[panel] > 50 and counts[1 - panel] == 0, counts


def test_bad_architecture_lists(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="unknown model"):
        run_degradation("digits", 1, tmp_path, archs=("plain21",))
    with pytest.raises(UsageError, match="repeat"):
        run_degradation("digits", 1, tmp_path, archs=("resnet20", "ResNet-20"))
    with pytest.raises(UsageError, match="at least one"):
        run_degradation("digits", 1, tmp_path, archs=())
