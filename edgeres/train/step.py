"""One training step and one pass over batches: what :func:`edgeres.train.train` runs per batch.

:class:`TrainStep` is also what ``benchmarks/train_throughput.py`` times, so the benchmark
measures exactly the training code.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn

from edgeres.train.augment import Augment

__all__ = ["TrainStep", "evaluate", "train_epoch"]


class TrainStep:
    """One training step, exactly as :func:`train` takes it: augment, forward, loss, backward, SGD
    step, schedule step, and running loss/accuracy sums kept on the device (no sync per step)."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        augment: Augment,
        *,
        label_smoothing: float = 0.0,
        amp: bool = False,
        scaler: torch.amp.GradScaler | None = None,
    ) -> None:
        self.model, self.optimizer, self.scheduler, self.augment = model, optimizer, scheduler, augment
        self.device = augment.device
        self.criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        self.amp, self.scaler = amp, scaler
        self.sums = torch.zeros(2, dtype=torch.float64, device=self.device)  # loss sum, correct
        self.seen = 0  # images, counted on the host: a device scalar would cost a copy and a sync per step

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        x = self.augment.train(images)
        y = labels.to(self.device, non_blocking=True)
        with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.amp):
            logits = self.model(x)
            loss = self.criterion(logits, y)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            self.optimizer.step()
        self.scheduler.step()
        with torch.no_grad():
            correct = (logits.argmax(1) == y).sum()
            self.sums += torch.stack([loss.detach().double() * len(y), correct.double()])
        self.seen += len(y)

    def reset(self) -> None:
        self.sums.zero_()
        self.seen = 0

    def totals(self) -> torch.Tensor:
        """(loss sum, correct, images) on the device, ready for an all-reduce."""
        return torch.cat([self.sums, self.sums.new_tensor([float(self.seen)])])


@torch.no_grad()
def evaluate(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, augment: Augment, batch_size: int, amp: bool
) -> torch.Tensor:
    """(loss sum, correct, count) of ``model`` on uint8 ``images``, plain cross-entropy, eval mode."""
    was_training = model.training
    model.eval()
    sums = torch.zeros(2, dtype=torch.float64, device=augment.device)
    for start in range(0, len(labels), batch_size):
        x = augment.eval(images[start : start + batch_size])
        y = labels[start : start + batch_size].to(augment.device)
        with torch.autocast(augment.device.type, dtype=torch.float16, enabled=amp):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y, reduction="sum")
        sums += torch.stack([loss.double(), (logits.argmax(1) == y).sum().double()])
    model.train(was_training)
    return torch.cat([sums, sums.new_tensor([float(len(labels))])])


def train_epoch(
    step: TrainStep,
    images: torch.Tensor,
    labels: torch.Tensor,
    batches: tuple[torch.Tensor, ...],
    desc: str,
    show: bool,
    world_size: int,
    t0: float,
) -> None:
    """One step per batch of indices, with a progress bar (``show``) of the running numbers."""
    from edgeres.progress import progress_bar

    bar = progress_bar(batches, desc=desc, unit="batch", enabled=show)
    shown = t0
    for idx in bar:
        step(images[idx], labels[idx])
        if show and time.perf_counter() - shown > 0.5:
            shown = time.perf_counter()
            loss, correct = step.sums.tolist()
            seen = step.seen
            rate = seen * world_size / (shown - t0)
            bar.set_postfix_str(f"loss {loss / seen:.4f} acc {correct / seen:.2%} {rate:.0f} img/s")
    bar.close()
