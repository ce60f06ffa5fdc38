"""The degradation experiment of He et al. 2015 (Figure 6): deeper plain nets train worse, ResNets better.

:func:`run_degradation` trains each network with the same recipe, one after another, in
``out/<arch>/`` (each an ordinary training run with its own checkpoints and metrics), then
writes every epoch's training and validation error to ``out/degradation.csv`` and draws
them in ``out/degradation.png``: plain networks on the left, ResNets on the right, thin
lines for training error and bold lines for validation error, one colour per depth.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from edgeres.atomic import atomic_path, write_text_atomic
from edgeres.errors import MissingDependencyError, UsageError
from edgeres.models import get_spec
from edgeres.train.distributed import detect
from edgeres.train.loop import train
from edgeres.train.settings import TrainSettings

__all__ = ["CSV_COLUMNS", "DEFAULT_ARCHS", "plot_degradation", "run_degradation"]

DEFAULT_ARCHS: tuple[str, ...] = ("plain20", "plain56", "resnet20", "resnet56")
CSV_COLUMNS = ("arch", "kind", "depth", "epoch", "train_error", "val_error")


def run_degradation(
    data: str,
    epochs: int,
    out: str | os.PathLike[str],
    archs: Sequence[str] = DEFAULT_ARCHS,
    *,
    resume: bool = False,
    progress: bool = True,
    **train_kwargs: Any,
) -> Path:
    """Train ``archs`` on ``data`` for ``epochs`` each; return the path of the figure.

    ``train_kwargs`` are further :class:`TrainSettings` fields shared by every run (batch_size,
    lr, val_split, seed, device, ...). ``resume=True`` continues (or skips, when finished)
    runs already in ``out/<arch>/``. Errors are in percent (100 - accuracy).
    """
    if importlib.util.find_spec("matplotlib") is None:
        raise MissingDependencyError("the degradation figure needs matplotlib; pip install edgeres[demo]")
    names = [get_spec(a).name for a in archs]
    if not names:
        raise UsageError("no architectures given; name at least one, e.g. plain20,resnet20")
    if len(set(names)) != len(names):
        raise UsageError(f"architectures repeat in {', '.join(names)}; name each once")
    out = Path(out)
    runs = [TrainSettings(arch=a, data=data, out=out / a, epochs=epochs, **train_kwargs) for a in names]
    taken = [str(r.out) for r in runs if (r.out / "last.pt").exists() or (r.out / "best.pt").exists()]
    if taken and not resume:
        raise UsageError(
            f"{', '.join(taken)} already hold training runs; resume them or choose another folder"
        )
    histories: dict[str, tuple[Mapping[str, Any], ...]] = {}
    for settings in runs:
        again = resume and (settings.out / "last.pt").is_file()
        histories[settings.arch] = train(settings, resume=again, progress=progress).history
    png = out / "degradation.png"
    if detect().is_main:
        write_text_atomic(out / "degradation.csv", _csv(histories))
        plot_degradation(histories, png)
    return png


def _error(acc: float | None) -> float | None:
    return None if acc is None else 100.0 * (1.0 - acc)


def _csv(histories: Mapping[str, Sequence[Mapping[str, Any]]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for arch, history in histories.items():
        spec = get_spec(arch)
        for row in history:
            val = _error(row.get("val_acc"))
            train_err = _error(row["train_acc"])
            kind = "resnet" if spec.residual else "plain"
            writer.writerow(
                [
                    arch,
                    kind,
                    spec.depth,
                    row["epoch"],
                    f"{train_err:.4f}",
                    "" if val is None else f"{val:.4f}",
                ]
            )
    return buf.getvalue()


def _label(arch: str) -> str:
    spec = get_spec(arch)
    return f"{'ResNet' if spec.residual else 'plain'}-{spec.depth}"


def plot_degradation(histories: Mapping[str, Sequence[Mapping[str, Any]]], path: Path) -> Path:
    """Draw Figure 6 from per-architecture histories (rows with epoch, train_acc, val_acc) to ``path``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    depths = sorted({get_spec(a).depth for a in histories})
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2, sharey=True)
    for ax, residual, title in zip(axes, (False, True), ("plain networks", "ResNets"), strict=True):
        members = sorted(
            (a for a in histories if get_spec(a).residual == residual), key=lambda a: get_spec(a).depth
        )
        for arch in members:
            rows = histories[arch]
            color = f"C{depths.index(get_spec(arch).depth)}"
            epochs = [r["epoch"] for r in rows]
            ax.plot(epochs, [_error(r["train_acc"]) for r in rows], color=color, linewidth=0.9, alpha=0.8)
            val = [(r["epoch"], _error(r.get("val_acc"))) for r in rows if r.get("val_acc") is not None]
            if val:
                ax.plot(*zip(*val, strict=True), color=color, linewidth=2.4, label=_label(arch))
            else:
                ax.lines[-1].set_label(_label(arch))
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if members:
            ax.legend(title="thin: train, bold: validation", fontsize="small", title_fontsize="small")
        else:
            ax.text(0.5, 0.5, "none trained", ha="center", va="center", transform=ax.transAxes)
    axes[0].set_ylabel("error (%)")
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    return path
