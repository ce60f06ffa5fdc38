"""How a run moves through time: the learning-rate schedule, and saving and restoring its progress.

The schedule steps once per iteration. ``"step"`` is the paper's: the learning rate is
divided by 10 at 50% and at 75% of all iterations (32k and 48k of 64k on CIFAR-10);
``"cosine"`` anneals it from the base rate to 0. An optional warm-up raises it linearly from
``base / warmup_steps`` to ``base`` over the first epochs (Goyal et al. 2017); the paper's
ResNet-110 warm-up at 0.01 is the nearest equivalent.

:func:`save_progress` writes what one epoch produced (best.pt, last.pt, metrics.csv/json);
:func:`load_resume` reads last.pt back. Random states (:func:`capture_rng`) are stored as
plain data, so the checkpoints load with ``weights_only=True``.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
import math
import random
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgeres.atomic import write_text_atomic
from edgeres.checkpoint import is_checkpoint, read_checkpoint, save_checkpoint
from edgeres.errors import EdgeresError, UsageError
from edgeres.metadata import ModelMeta
from edgeres.train.distributed import DistInfo, broadcast_object
from edgeres.train.settings import TrainSettings

__all__ = [
    "METRIC_COLUMNS",
    "best_row",
    "capture_rng",
    "check_same_data",
    "content_digest",
    "load_resume",
    "lr_factor",
    "make_scheduler",
    "restore_progress",
    "restore_rng",
    "save_progress",
    "with_epoch",
]

log = logging.getLogger("edgeres.train")
METRIC_COLUMNS = ("epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "seconds", "images_per_s")


def lr_factor(step: int, total_steps: int, warmup_steps: int = 0, schedule: str = "step") -> float:
    """The multiplier of the base learning rate at iteration ``step`` (0-based) of ``total_steps``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "step":
        drops = int(step >= round(0.5 * total_steps)) + int(step >= round(0.75 * total_steps))
        return 0.1**drops
    if schedule == "cosine":
        t = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(t, 1.0)))
    raise ValueError(f"unknown schedule {schedule!r}")


def make_scheduler(
    optimizer: torch.optim.Optimizer,
    *,
    epochs: int,
    steps_per_epoch: int,
    warmup_epochs: int = 0,
    schedule: str = "step",
) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-iteration :class:`~torch.optim.lr_scheduler.LambdaLR`; its state_dict is plain data."""
    total = epochs * steps_per_epoch
    warmup = warmup_epochs * steps_per_epoch

    def factor(step: int) -> float:
        return lr_factor(step, total, warmup, schedule)

    fn: Callable[[int], float] = factor
    return torch.optim.lr_scheduler.LambdaLR(optimizer, fn)


def capture_rng() -> dict[str, Any]:
    """Python, numpy, torch CPU and (when in use) CUDA random states as tensors, lists and numbers."""
    version, internal, gauss = random.getstate()
    np_state = np.random.get_state(legacy=False)
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy": {
            "bit_generator": np_state["bit_generator"],
            "key": torch.from_numpy(np.asarray(np_state["state"]["key"], dtype=np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def restore_rng(state: Mapping[str, Any]) -> None:
    """Put back what :func:`capture_rng` saved."""
    version, internal, gauss = state["python"]
    random.setstate((int(version), tuple(int(v) for v in internal), gauss))
    n = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": n["bit_generator"],
            "state": {"key": np.asarray(n["key"], dtype=np.uint32), "pos": int(n["pos"])},
            "has_gauss": int(n["has_gauss"]),
            "gauss": float(n["gauss"]),
        }
    )
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda")
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def best_row(history: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The epoch with the highest validation accuracy (the earliest on ties); the last without validation."""
    scored = [r for r in history if r.get("val_acc") is not None]
    if not scored:
        return history[-1] if history else None
    return max(scored, key=lambda r: (r["val_acc"], -r["epoch"]))


def with_epoch(meta: ModelMeta, row: Mapping[str, Any] | None) -> ModelMeta:
    """``meta`` with its provenance saying which epoch (and validation accuracy) the weights are."""
    if row is None:
        return meta
    prov = dataclasses.replace(meta.provenance, epochs=int(row["epoch"]), accuracy=row.get("val_acc"))
    return meta.replace(provenance=prov)


def save_progress(
    out: Path,
    model: nn.Module,
    meta: ModelMeta,
    history: list[dict[str, Any]],
    record: Mapping[str, Any],
    state: Mapping[str, Any],
) -> None:
    """Write best.pt (when the newest epoch is the best), then last.pt, then the metrics files.

    ``record`` is the plain-data description of the run (settings, split, data) stored in
    both checkpoints; ``state`` (optimizer, scheduler, scaler, per-rank data generator
    states) goes into last.pt only, with the global random states. In that order a kill
    between two writes leaves last.pt at the older epoch, and resuming redoes the newer one.
    """
    row, best = history[-1], best_row(history)
    info = {**record, "epoch": row["epoch"], "history": history}
    info.update(best_epoch=best["epoch"] if best else None, best_val_acc=best["val_acc"] if best else None)
    if best is row:
        save_checkpoint(model, with_epoch(meta, row), out / "best.pt", extra={"train": info})
    extra = {"train": info, **_to_cpu(state), "rng": capture_rng()}
    save_checkpoint(model, with_epoch(meta, row), out / "last.pt", extra=extra)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=METRIC_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: "" if r.get(k) is None else r[k] for k in METRIC_COLUMNS} for r in history)
    write_text_atomic(out / "metrics.csv", buf.getvalue())
    summary = {k: v for k, v in info.items() if k not in ("history", "split")}
    summary["split"] = {k: v for k, v in record.get("split", {}).items() if not isinstance(v, torch.Tensor)}
    write_text_atomic(out / "metrics.json", json.dumps({**summary, "epochs": history}, indent=1) + "\n")


def _to_cpu(obj: Any) -> Any:
    """Optimizer state and the like with every tensor on the CPU, so the file loads anywhere."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, Mapping):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


def load_resume(path: Path, settings: TrainSettings, info: DistInfo) -> dict[str, Any]:
    """Read a last.pt to continue (on rank 0, then broadcast): {"meta", "state_dict", "extra"}.

    A missing, corrupt or foreign file, or one written with another recipe, is a one-line
    error on every rank.
    """
    outcome: tuple[str, Any] = ("ok", None)
    if info.is_main:
        try:
            outcome = ("ok", _read_resume(path, settings))
        except EdgeresError as exc:
            outcome = ("usage" if isinstance(exc, UsageError) else "error", str(exc))
    kind, value = broadcast_object(outcome, info)
    if kind != "ok":
        raise (UsageError if kind == "usage" else EdgeresError)(value)
    return dict(value)


def _read_resume(path: Path, settings: TrainSettings) -> dict[str, Any]:
    if not path.is_file():
        raise UsageError(f"nothing to resume: {path} does not exist; start the run without resume")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a damaged file fails in many ways (zip, pickle, EOF, storage)
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise EdgeresError(
            f"cannot resume from {path}: it is truncated or corrupt ({reason}); delete it to start afresh"
        ) from exc
    if not is_checkpoint(payload):
        raise EdgeresError(f"cannot resume from {path}: it is not an edgeres checkpoint")
    meta, state = read_checkpoint(payload, path)
    extra = payload.get("extra") or {}
    if not isinstance(extra.get("train"), Mapping) or "optimizer" not in extra or "rng" not in extra:
        raise EdgeresError(
            f"cannot resume from {path}: it holds weights but no training state; resume from last.pt"
        )
    changes = settings.recipe_changes(extra["train"].get("settings") or {})
    if changes:
        raise UsageError(
            f"cannot resume from {path}: it was trained with other settings ({'; '.join(changes)}); "
            "use the same settings, or start a new run in another output folder"
        )
    return {"meta": meta, "state_dict": state, "extra": extra}


def content_digest(images: torch.Tensor, labels: torch.Tensor, class_names: Sequence[str]) -> str:
    """sha256 of decoded images, their labels and the class names: the same whatever the files'
    modification times (a dataset copied, restored or mounted anew)."""
    import hashlib

    h = hashlib.sha256(json.dumps(list(class_names)).encode())
    h.update(np.ascontiguousarray(labels.numpy()).astype("<i8").tobytes())
    h.update(np.ascontiguousarray(images.numpy()).tobytes())
    return h.hexdigest()


def check_same_data(saved: Mapping[str, Any], record: Mapping[str, Any], source: Path | None) -> None:
    """Refuse to resume when the images or the validation split differ from the checkpoint's.

    Checkpoints that record the decoded content are compared by it; older ones by their files'
    sizes and modification times."""
    saved = saved["extra"]["train"]
    old, new = saved.get("data") or {}, record["data"]
    old_split = {k: v for k, v in (saved.get("split") or {}).items() if not isinstance(v, torch.Tensor)}
    new_split = {k: v for k, v in record["split"].items() if not isinstance(v, torch.Tensor)}
    if "content" in old:
        same = old["content"] == new.get("content")
        if "val_content" in old_split:  # the validation folder's files' times do not count either
            old_split.pop("val_fingerprint", None)
            new_split.pop("val_fingerprint", None)
    else:
        same = old.get("fingerprint") == new["fingerprint"]
    if not same or old_split != new_split:
        what = (
            f"the validation images of {new_split.get('val_data')}"
            if same
            else f"the images of {new['description']}"
        )
        if same and old_split.get("num_val") != new_split.get("num_val"):
            counts = f"{old_split.get('num_val')} validation images then, {new_split.get('num_val')} now"
        elif not same and old.get("images") != new.get("images"):
            counts = f"{old.get('images')} images then, {new.get('images')} now"
        else:
            counts = "as many images, but not the same pixels or labels"
        raise UsageError(
            f"the data changed since {source} was written: {what} differ "
            f"({counts}); resume with the same images, or start a new run"
        )


def restore_progress(
    saved: dict[str, Any],
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler | None,
    generator: torch.Generator,
    info: DistInfo,
) -> list[dict[str, Any]]:
    """Load weights, optimizer, scheduler, scaler and random states from ``saved``; return the history."""
    extra = saved["extra"]
    model.load_state_dict(saved["state_dict"])
    optimizer.load_state_dict(extra["optimizer"])
    scheduler.load_state_dict(extra["scheduler"])
    if scaler is not None and "scaler" in extra:
        scaler.load_state_dict(extra["scaler"])
    restore_rng(extra["rng"])
    states = extra.get("data_rng") or []
    if len(states) == info.world_size:
        generator.set_state(states[info.rank])
    else:
        log.warning(
            "resuming on %d processes, not %d: augmentation will differ", info.world_size, len(states)
        )
    return [dict(r) for r in extra["train"]["history"]]
