"""Train a network of the zoo on a labelled image data set: ``train(settings) -> TrainResult``.

The images are decoded once into a uint8 tensor (:mod:`edgeres.train.tensor_cache`); every
step gathers a batch from it, augments and normalizes it on the training device
(:mod:`edgeres.train.augment`) and takes one SGD step (:mod:`edgeres.train.step`). After every
epoch the held-out images are scored and rank 0 writes, each atomically:

* ``out/best.pt`` when validation accuracy improved, then ``out/last.pt`` (weights plus the
  optimizer, scheduler, epoch and every random state), both edgeres checkpoints whose
  :class:`~edgeres.metadata.ModelMeta` later stages read;
* ``out/metrics.csv`` and ``out/metrics.json``, one row per epoch (:data:`METRIC_COLUMNS`).

``resume=True`` continues from ``out/last.pt`` exactly where the last completed epoch left
off: on the same device and thread count the weights come out bit-identical to an
uninterrupted run. A diverged run (non-finite loss) stops before writing anything.
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgeres.errors import EdgeresError, UsageError
from edgeres.metadata import ModelMeta
from edgeres.models import get_model, get_spec
from edgeres.train import distributed as dist_
from edgeres.train.augment import Augment, input_stats
from edgeres.train.schedule import (
    METRIC_COLUMNS,
    best_row,
    check_same_data,
    content_digest,
    load_resume,
    lr_factor,
    make_scheduler,
    restore_progress,
    save_progress,
    with_epoch,
)
from edgeres.train.settings import TrainResult, TrainSettings
from edgeres.train.step import TrainStep, evaluate, train_epoch
from edgeres.train.tensor_cache import Prepared, prepare_data

__all__ = [
    "METRIC_COLUMNS",
    "TrainData",
    "TrainStep",
    "build_model",
    "evaluate",
    "fit",
    "prepare_run",
    "train",
]

log = logging.getLogger("edgeres.train")


def train(
    settings: TrainSettings,
    *,
    resume: bool | str | os.PathLike[str] = False,
    overwrite: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
) -> TrainResult:
    """Run ``settings``; see the module docstring. Works alone or under torchrun (one process per GPU).

    ``resume``: True continues ``out/last.pt``; a path continues that checkpoint (writing into
    ``out``). Without it, an ``out`` that already holds last.pt/best.pt is refused unless
    ``overwrite``. ``stop_after`` stops after that many epochs of this call (as if killed).
    """
    info = dist_.detect()
    device = dist_.pick_device(settings.device, info)
    amp = settings.amp if settings.amp is not None else device.type == "cuda"
    if amp and device.type != "cuda":
        raise UsageError("mixed precision (amp) needs a CUDA GPU; drop amp or train on 'cuda'")
    if stop_after is not None and stop_after < 1:
        raise UsageError(f"stop_after must be at least 1, got {stop_after}")
    out = settings.out
    source = None if resume is False else out / "last.pt" if resume is True else Path(resume)
    taken = [p.name for p in (out / "last.pt", out / "best.pt") if p.exists()]
    if source is None and taken and not overwrite:
        raise UsageError(
            f"{out} already holds a training run ({', '.join(taken)}); continue it with --resume, "
            "choose another output folder, or start over with --overwrite"
        )
    if out.exists() and not out.is_dir():
        raise UsageError(f"output folder {out} is a file; choose another output folder")
    if info.is_main:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EdgeresError(f"cannot create output folder {out} ({exc.strerror}); choose another") from exc
    dist_.setup(info, device)
    threads = torch.get_num_threads()
    try:
        if settings.threads:
            torch.set_num_threads(settings.threads)
        with warnings.catch_warnings():
            # GradScaler skips the optimizer step when gradients overflow; the schedule still advances.
            warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)` before")
            _warn_without_warmup(settings, info)
            saved = load_resume(source, settings, info) if source is not None else None
            data = prepare_run(settings, info, saved, source, progress)
            model = build_model(settings, data.meta.num_classes)
            return fit(model, settings, data, info=info, device=device, amp=amp, saved=saved,
                       progress=progress, stop_after=stop_after)  # fmt: skip
    finally:
        torch.set_num_threads(threads)


@dataclass(frozen=True)
class TrainData:
    """What :func:`fit` trains on: the decoded images and their split (``prep``), the metadata
    the checkpoints carry (``meta``) and the run's ``record`` (settings, split, data) for them."""

    prep: Prepared
    meta: ModelMeta
    record: dict[str, Any]


def prepare_run(
    s: TrainSettings,
    info: dist_.DistInfo,
    saved: dict[str, Any] | None = None,
    source: Path | None = None,
    progress: bool = True,
) -> TrainData:
    """Decode and split ``s``'s data; the metadata is ``saved``'s (a resumed run) or computed anew.

    A resumed run must see the same images and split as its checkpoint ``source``.
    """
    prep = prepare_data(s, get_spec(s.arch).preprocessing.input_size, info, progress)
    record: dict[str, Any] = {"settings": s.to_dict(), "split": prep.split, "world_size": info.world_size}
    record["data"] = {
        "description": prep.data.description,
        "fingerprint": prep.data.fingerprint,
        "content": content_digest(prep.data.images, prep.data.labels, prep.data.class_names),
        "images": len(prep.data),
        "skipped": len(prep.data.skipped),
    }
    if prep.split["kind"] == "val_data":
        names = prep.data.class_names
        prep.split["val_content"] = content_digest(prep.val_images, prep.val_labels, names)
    if saved is not None:
        check_same_data(saved, record, source)
        meta = saved["meta"]
    else:
        mean, std = input_stats(prep.data.class_names, prep.data.images, prep.train_idx, s.normalize)
        meta = s.model_meta(prep.data.class_names, mean, std)
    # what the normalization choice came to, for metrics.json as for the checkpoint's metadata
    pre = meta.preprocessing
    record["normalization"] = {"mean": list(pre.mean), "std": list(pre.std)}
    return TrainData(prep, meta, record)


def build_model(s: TrainSettings, num_classes: int) -> nn.Module:
    """``s.arch`` with fresh weights, after seeding torch, ``random`` and numpy with ``s.seed``."""
    torch.manual_seed(s.seed)
    random.seed(s.seed)
    np.random.seed(s.seed)
    return get_model(s.arch, num_classes=num_classes, **dict(s.arch_options))


def fit(
    model: nn.Module,
    s: TrainSettings,
    data: TrainData,
    *,
    info: dist_.DistInfo,
    device: torch.device,
    amp: bool,
    saved: dict[str, Any] | None = None,
    progress: bool = True,
    stop_after: int | None = None,
) -> TrainResult:
    """Train ``model`` on ``data`` with the recipe of ``s``: the loop :func:`train` runs.

    ``model`` moves to ``device`` (channels-last when ``s`` or a GPU says so) and gets a new
    SGD optimizer, schedule and gradient scaler (``amp``), or those of ``saved``, a checkpoint
    from :func:`~edgeres.train.schedule.load_resume`, with its weights and history. Every
    epoch is scored, checked for divergence and written to ``s.out`` (see the module
    docstring), a folder that must exist; ``stop_after`` stops after that many epochs of this
    call. The caller has set up ``info``'s process group and checked ``amp`` against the
    device, as :func:`train` does.
    """
    prep, meta, show = data.prep, data.meta, progress and info.is_main
    channels_last = s.channels_last if s.channels_last is not None else device.type == "cuda"
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    optimizer = torch.optim.SGD(model.parameters(), s.lr, momentum=s.momentum, weight_decay=s.weight_decay)
    steps = math.ceil(math.ceil(len(prep.train_idx) / info.world_size) / s.batch_size)
    scheduler = make_scheduler(
        optimizer, epochs=s.epochs, steps_per_epoch=steps, warmup_epochs=s.warmup_epochs, schedule=s.schedule
    )
    scaler = torch.amp.GradScaler("cuda") if amp else None
    generator = torch.Generator()
    generator.manual_seed(s.seed * 1_000_003 + info.rank)
    history: list[dict[str, Any]] = []
    if saved is not None:
        history = restore_progress(saved, model, optimizer, scheduler, scaler, generator, info)
    net = dist_.wrap_model(model, info, device)
    augment = Augment(meta.preprocessing.mean, meta.preprocessing.std, device, generator=generator,
                      channels_last=channels_last)  # fmt: skip
    step = TrainStep(
        net, optimizer, scheduler, augment, label_smoothing=s.label_smoothing, amp=amp, scaler=scaler
    )
    images = prep.data.images
    if device.type == "cuda" and images.numel() < (4 << 30):
        images = images.to(device)
    labels = prep.data.labels.to(images.device)
    pool = torch.from_numpy(prep.train_idx)
    mine = slice(info.rank, None, info.world_size)  # this rank's share of the validation images
    val_images, val_labels = prep.val_images[mine].to(images.device), prep.val_labels[mine]
    start = len(history)
    if info.is_main and start < s.epochs:
        _say(_start_line(s, prep, start), show)
    for epoch in range(start, s.epochs):
        t0 = time.perf_counter()
        order = dist_.shard(pool, epoch, s.seed, info).to(images.device)
        step.reset()
        net.train()
        desc = f"epoch {epoch + 1}/{s.epochs}"
        train_epoch(step, images, labels, order.split(s.batch_size), desc, show, info.world_size, t0)
        dist_.average_buffers(model, info)
        train_seconds = time.perf_counter() - t0
        loss, correct, seen = dist_.all_reduce_sum(step.totals(), info).tolist()
        # Never save garbage. Under AMP an overflowing step is skipped (and its loss may be inf),
        # so there only non-finite weights count as divergence.
        if not _finite(model) or (not amp and not math.isfinite(loss)):
            raise EdgeresError(
                f"training diverged at epoch {epoch + 1} (loss {loss}); lower the learning rate or add "
                f"warm-up epochs; {s.out / 'last.pt'} still holds the last good epoch"
            )
        last_step = (epoch + 1) * steps - 1
        lr = s.lr * lr_factor(last_step, s.epochs * steps, s.warmup_epochs * steps, s.schedule)
        row: dict[str, Any] = {"epoch": epoch + 1, "lr": lr, "train_loss": loss / seen}
        row.update(train_acc=correct / seen, val_loss=None, val_acc=None)
        if prep.split["num_val"]:
            v = evaluate(model, val_images, val_labels, augment, 2 * s.batch_size, amp)
            v = dist_.all_reduce_sum(v, info)
            row.update(val_loss=float(v[0] / v[2]), val_acc=float(v[1] / v[2]))
        row.update(seconds=time.perf_counter() - t0, images_per_s=seen / train_seconds)
        history.append(row)
        state: dict[str, Any] = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
        state["data_rng"] = dist_.all_gather(generator.get_state(), info, device)
        if scaler is not None:
            state["scaler"] = scaler.state_dict()
        if info.is_main:
            save_progress(s.out, model, meta, history, data.record, state)
        _report(row, s.epochs, show)
        if stop_after is not None and epoch + 1 - start >= stop_after:
            break
    dist_.barrier(info)
    model.eval()
    return _result(s, history, meta, model, len(prep.data.skipped))


def _result(
    s: TrainSettings, history: list[dict[str, Any]], meta: ModelMeta, model: nn.Module, skipped: int
) -> TrainResult:
    best = best_row(history)
    return TrainResult(
        out=s.out, last=s.out / "last.pt", best=s.out / "best.pt", metrics_csv=s.out / "metrics.csv",
        metrics_json=s.out / "metrics.json", epochs_completed=len(history), finished=len(history) == s.epochs,
        best_epoch=best["epoch"] if best else None, best_val_acc=best["val_acc"] if best else None,
        history=tuple(history), meta=with_epoch(meta, history[-1] if history else None),
        skipped_images=skipped, model=model,
    )  # fmt: skip


def _warn_without_warmup(s: TrainSettings, info: dist_.DistInfo) -> None:
    """Deep residual CIFAR nets can die in their first steps at lr 0.1 (docs/commands/train.md)."""
    spec = get_spec(s.arch)
    deep = spec.family == "cifar" and spec.residual and spec.depth >= 56
    if info.is_main and deep and s.warmup_epochs == 0 and s.lr >= 0.05:
        log.warning(
            "%s at lr %g without warm-up can stall at chance in its first steps; "
            "add --warmup-epochs 1 (the paper warms up its deepest nets)",
            s.arch,
            s.lr,
        )


def _finite(model: nn.Module) -> bool:
    values = [t.isfinite().all() for t in model.state_dict().values() if t.is_floating_point()]
    return bool(torch.stack(values).all()) if values else True


def _start_line(s: TrainSettings, prep: Any, start: int) -> str:
    """What starts, before the first epoch's bar: the net, the data, the split, the epochs."""
    epochs = f"epochs {start + 1}-{s.epochs}" if s.epochs > start + 1 else f"epoch {s.epochs}"
    return (
        f"training {s.arch} on {prep.data.description}: {len(prep.train_idx)} images to train on, "
        f"{len(prep.val_labels)} to validate on, {epochs}"
    )


def _say(line: str, show: bool) -> None:
    """A line in the log (INFO) and, with progress bars, on stderr above them."""
    log.info("%s", line)
    if show:
        from edgeres.progress import announce

        announce(line)


def _report(row: dict[str, Any], epochs: int, show: bool) -> None:
    val = "" if row["val_acc"] is None else f", val loss {row['val_loss']:.4f} acc {row['val_acc']:.2%}"
    line = (
        f"epoch {row['epoch']}/{epochs}: lr {row['lr']:.4g}, train loss {row['train_loss']:.4f} "
        f"acc {row['train_acc']:.2%}{val}, {row['seconds']:.1f} s, {row['images_per_s']:.0f} img/s"
    )
    log.info("%s", line)
    if show:
        from tqdm import tqdm

        tqdm.write(line)
