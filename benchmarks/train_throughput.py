"""Training throughput: edgeres' training step vs a bare PyTorch loop, on the same in-memory images.

Both loops train the same network (same initial weights, SGD with momentum 0.9 and weight
decay 1e-4) on random uint8 images of CIFAR's shape held in memory, ``--batch-size`` images a
step:

* ``bare``: gather a batch, ``x.float() / 255``, forward, cross-entropy, backward, step;
* ``edgeres``: exactly the per-step code :func:`edgeres.train.train` runs (:class:`TrainStep`):
  gather, random crop + flip, normalize, forward, loss, backward, step, learning-rate
  schedule step, running loss/accuracy sums, plus the progress-bar clock check.

Timings are interleaved in rounds (bare, edgeres, edgeres, bare, ...) so both see the same
machine; each loop's best round (the least disturbed by other processes) gives its images/s
and the overhead, the median is reported beside it. The goal is an overhead under 5%. Run it
alone on the machine::

    python benchmarks/train_throughput.py --iters 100 --out train_throughput.json
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from edgeres.metadata import CIFAR10_MEAN, CIFAR10_STD
from edgeres.models import get_model
from edgeres.train.augment import Augment
from edgeres.train.schedule import make_scheduler
from edgeres.train.step import TrainStep

Step = Callable[[torch.Tensor, torch.Tensor], None]


def sgd(model: torch.nn.Module) -> torch.optim.SGD:
    return torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)


def bare_step(model: torch.nn.Module, device: torch.device) -> Step:
    opt = sgd(model)

    def step(images: torch.Tensor, labels: torch.Tensor) -> None:
        x = images.to(device).float() / 255.0
        loss = F.cross_entropy(model(x), labels.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def edgeres_step(model: torch.nn.Module, device: torch.device, steps: int) -> Step:
    opt = sgd(model)
    sched = make_scheduler(opt, epochs=1, steps_per_epoch=steps)
    aug = Augment(CIFAR10_MEAN, CIFAR10_STD, device, generator=torch.Generator().manual_seed(0))
    train_step = TrainStep(model, opt, sched, aug)
    shown = [time.perf_counter()]

    def step(images: torch.Tensor, labels: torch.Tensor) -> None:
        train_step(images, labels)
        if time.perf_counter() - shown[0] > 0.5:  # train()'s progress bar refresh: one sync
            shown[0] = time.perf_counter()
            train_step.sums.tolist()

    return step


def timed(step: Step, images: torch.Tensor, labels: torch.Tensor, order: torch.Tensor, args: Any) -> float:
    """Images per second over ``args.iters`` steps after ``args.warmup`` untimed ones."""
    b = args.batch_size
    sync = torch.cuda.synchronize if images.is_cuda else (lambda: None)

    def run(first: int, count: int) -> None:
        for i in range(first, first + count):
            idx = order[(i * b) % (len(order) - b + 1) :][:b]
            step(images[idx], labels[idx])

    run(0, args.warmup)
    sync()
    t0 = time.perf_counter()
    run(args.warmup, args.iters)
    sync()
    return args.iters * b / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--arch", default="resnet20")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--iters", type=int, default=100, help="timed steps per round")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps before each round")
    p.add_argument("--rounds", type=int, default=3, help="rounds per loop, interleaved")
    p.add_argument("--images", type=int, default=10_000, help="random images held in memory")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads [default: torch's]")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--out", type=Path, help="write the results as JSON here")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    g = torch.Generator().manual_seed(0)
    n = max(args.images, args.batch_size)
    images = torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8).to(device)
    labels = torch.randint(0, 10, (n,), generator=g).to(device)
    order = torch.randperm(n, generator=g).to(device)
    torch.manual_seed(0)
    base = get_model(args.arch, num_classes=10)
    models = {
        "bare": copy.deepcopy(base).to(device).train(),
        "edgeres": copy.deepcopy(base).to(device).train(),
    }
    total_steps = args.rounds * (args.iters + args.warmup)
    steps = {
        "bare": bare_step(models["bare"], device),
        "edgeres": edgeres_step(models["edgeres"], device, total_steps),
    }
    rates: dict[str, list[float]] = {"bare": [], "edgeres": []}
    for r in range(args.rounds):
        for name in ("bare", "edgeres") if r % 2 == 0 else ("edgeres", "bare"):
            rates[name].append(timed(steps[name], images, labels, order, args))
            print(f"round {r + 1}/{args.rounds} {name:8s} {rates[name][-1]:9.1f} images/s", file=sys.stderr)
    best = {k: max(v) for k, v in rates.items()}
    median = {k: statistics.median(v) for k, v in rates.items()}
    overhead = 100.0 * (best["bare"] / best["edgeres"] - 1.0)
    overhead_median = 100.0 * (median["bare"] / median["edgeres"] - 1.0)
    print(f"\n{args.arch}, batch {args.batch_size}, {args.device}, {torch.get_num_threads()} threads")
    print(f"{'loop':10s} {'best img/s':>11s} {'median':>9s} {'ms/step':>8s}")
    for k in ("bare", "edgeres"):
        print(f"{k:10s} {best[k]:11.1f} {median[k]:9.1f} {1000 * args.batch_size / best[k]:8.1f}")
    verdict = "within" if overhead < 5.0 else "OVER"
    print(f"overhead {overhead:+.1f}% (median {overhead_median:+.1f}%), {verdict} the 5% goal")
    result = {
        "arch": args.arch,
        "batch_size": args.batch_size,
        "iters": args.iters,
        "warmup": args.warmup,
        "rounds": args.rounds,
        "device": args.device,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "images_per_s": {"best": best, "median": median, "rounds": rates},
        "overhead_pct": overhead,
        "overhead_pct_median": overhead_median,
    }
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
