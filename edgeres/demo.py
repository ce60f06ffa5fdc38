"""The whole story on data that ships with edgeres: train, export, quantize, measure, report.

``edgeres demo`` trains a small CIFAR-style ResNet on the handwritten digits embedded in
scikit-learn (1,797 images, 10 classes, no download), then runs :func:`edgeres.pipeline.run_pipeline`
on its checkpoint: export, FP16 and INT8 variants, TensorRT engines where TensorRT and a GPU
exist, evaluation on the images training held out, latency, and the report. Everything is
written under one folder (``./edgeres-demo`` by default). A second run reuses what is already
there and up to date, so it finishes in seconds.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from edgeres.errors import UsageError

if TYPE_CHECKING:
    from edgeres.bench.measure import BenchSettings
    from edgeres.pipeline import PipelineResult
    from edgeres.train import TrainSettings

__all__ = ["DemoResult", "DemoSettings", "run_demo"]

log = logging.getLogger("edgeres.demo")

#: The embedded data set (see :mod:`edgeres.data.digits`).
DATA = "digits"


@dataclass(frozen=True)
class DemoSettings:
    """What the demo trains and measures; the defaults finish in about a minute on 2 cores.

    Eight epochs of resnet20 with batch 64 and a cosine schedule reach about 96% on the
    held-out digits; the latency is timed at batch 1 and 16, ``bench_iters`` runs each after
    5 runs of warm-up (:meth:`bench`), not the pipeline's default of at least 3 s each.
    """

    out: Path = Path("edgeres-demo")
    arch: str = "resnet20"
    epochs: int = 8
    batch_size: int = 64
    lr: float = 0.1
    threads: int | None = None
    bench_batches: tuple[int, ...] = (1, 16)
    bench_iters: int = 50
    force: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "out", Path(self.out))
        for name in ("epochs", "batch_size", "bench_iters"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UsageError(f"{name.replace('_', ' ')} must be at least 1, got {value!r}")
        from edgeres.models import get_spec

        spec = get_spec(self.arch)  # an unknown name is a one-line error listing the known ones
        if spec.family != "cifar":
            raise UsageError(
                f"the demo trains on 32x32 digits; {self.arch} is an ImageNet net: "
                "pick a CIFAR one (resnet20, resnet32, plain20, ...)"
            )
        if self.threads is not None and self.threads < 1:
            raise UsageError(f"threads must be at least 1, got {self.threads}")

    def bench(self) -> BenchSettings:
        """The demo's own short timing: a run count, no time floor, so the demo stays quick."""
        from edgeres.bench.measure import BenchSettings

        return BenchSettings(
            batches=self.bench_batches,
            warmup=5,
            warmup_ms=0.0,
            iters=self.bench_iters,
            duration=None,
            threads=self.threads,
        )


@dataclass(frozen=True)
class DemoResult:
    checkpoint: Path
    #: False when a finished training run from an earlier demo was reused.
    trained: bool
    train_seconds: float
    val_top1: float | None
    pipeline: PipelineResult
    seconds: float


def run_demo(settings: DemoSettings | None = None) -> DemoResult:
    """Train on the embedded digits (or reuse the finished run), then run the pipeline on it."""
    from edgeres.pipeline import PipelineConfig, run_pipeline

    s = settings or DemoSettings()
    start = time.perf_counter()
    _prepare_folder(s.out)
    checkpoint, trained, train_seconds, top1 = _train(s)
    config = PipelineConfig(bench=s.bench())
    config = config.override("report", title=f"edgeres demo: {s.arch} on the embedded digits")
    log.info("pipeline: export, quantize, evaluate, benchmark and report into %s", s.out)
    # A retrained checkpoint is newer than the pipeline's outputs: those stages rerun by themselves.
    result = run_pipeline(
        checkpoint, s.out, config, calib=DATA, eval_data=DATA, force=s.force, progress=s.progress
    )
    return DemoResult(checkpoint, trained, train_seconds, top1, result, time.perf_counter() - start)


def _prepare_folder(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UsageError(f"'{out}' is a file; give --out a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create '{out}' ({exc.strerror or exc}); choose another --out") from exc
    if not os.access(out, os.W_OK):
        raise UsageError(f"'{out}' is not writable; choose another --out")


def _train(s: DemoSettings) -> tuple[Path, bool, float, float | None]:
    """The trained checkpoint: reused when an earlier demo finished the same recipe."""
    from edgeres.train import TrainSettings, train

    settings = TrainSettings(
        arch=s.arch,
        data=DATA,
        out=s.out / "train",
        epochs=s.epochs,
        batch_size=s.batch_size,
        lr=s.lr,
        schedule="cosine",
        threads=s.threads,
        cache="memory",
    )
    best = settings.out / "best.pt"
    done = None if s.force else _finished(settings)
    if done is not None:
        log.info("training: reusing %s (%d epochs, validation top-1 %.2f%%)", best, s.epochs, 100 * done)
        return best, False, 0.0, done
    log.info("training: %s on the embedded digits for %d epochs into %s", s.arch, s.epochs, settings.out)
    start = time.perf_counter()
    result = train(settings, overwrite=True, progress=s.progress)
    return result.best, True, time.perf_counter() - start, result.best_val_acc


#: Settings that change how fast training runs, not what it learns.
_SPEED_ONLY = ("threads", "workers", "cache", "cache_dir")


def _finished(settings: TrainSettings) -> float | None:
    """The best validation top-1 of a finished run of the same recipe in its folder, else None."""
    metrics = settings.out / "metrics.json"
    if not (settings.out / "best.pt").is_file() or not metrics.is_file():
        return None
    try:
        data = json.loads(metrics.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("settings"), dict):
        return None
    from edgeres.train.settings import TrainSettings as Settings

    saved = Settings.with_defaults(data["settings"])  # a run older than a field had its default
    recorded = {k: v for k, v in saved.items() if k not in _SPEED_ONLY}
    wanted = {k: v for k, v in settings.to_dict().items() if k not in _SPEED_ONLY}
    epochs = data.get("epochs")
    if recorded != wanted or not isinstance(epochs, list) or len(epochs) < settings.epochs:
        return None
    best = data.get("best_val_acc")
    return float(best) if isinstance(best, (int, float)) else None
