"""Training the paper's ResNets: train, and the degradation experiment."""

from __future__ import annotations

import logging
from typing import Any

import click

from edgeres.commands.options import compose
from edgeres.metadata import NORMALIZATIONS

#: The recipe, shared by `train` and `experiment degradation`. Defaults: the paper's CIFAR recipe.
recipe_options = compose(
    click.option(
        "--data", required=True, help="Image folder (class subfolders), CIFAR batches, .npz, or 'digits'."
    ),
    click.option("--epochs", type=click.IntRange(min=1), required=True, help="Epochs to train."),
    click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True),
    click.option("--lr", type=float, default=0.1, show_default=True, help="Initial learning rate."),
    click.option("--momentum", type=float, default=0.9, show_default=True),
    click.option("--weight-decay", type=float, default=1e-4, show_default=True),
    click.option(
        "--schedule",
        type=click.Choice(["step", "cosine"]),
        default="step",
        show_default=True,
        help="step: lr/10 at 50% and 75% of training (the paper's); cosine: anneal to 0.",
    ),
    click.option("--warmup-epochs", type=click.IntRange(min=0), default=0, show_default=True),
    click.option("--label-smoothing", type=float, default=0.0, show_default=True),
    click.option(
        "--val-split",
        type=float,
        default=0.1,
        show_default=True,
        help="Held-out share (0.1 = 45k/5k on CIFAR).",
    ),
    click.option(
        "--val-data", help="Separate validation images with the same classes (overrides --val-split)."
    ),
    click.option(
        "--seed",
        type=click.IntRange(min=0),
        default=0,
        show_default=True,
        help="Seed of split, init and augmentation.",
    ),
    click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True),
    click.option("--threads", type=click.IntRange(min=1), help="torch CPU threads [default: torch's]."),
    click.option(
        "--workers", type=click.IntRange(min=0), default=0, help="Image-decoding threads (0 = auto)."
    ),
    click.option("--amp/--no-amp", default=None, help="Mixed precision [default: on with CUDA]."),
    click.option("--channels-last/--no-channels-last", default=None, help="[default: on with CUDA]."),
    click.option(
        "--normalize",
        type=click.Choice(list(NORMALIZATIONS)),
        default="auto",
        show_default=True,
        help="Input mean/std: the training images' own (data), ImageNet's or CIFAR-10's; "
        "auto is CIFAR-10's for CIFAR-10's classes, else data.",
    ),
    click.option(
        "--cache",
        type=click.Choice(["auto", "memory", "disk"]),
        default="auto",
        show_default=True,
        help="Where decoded images are kept between runs.",
    ),
    click.option("--cache-dir", type=click.Path(file_okay=False), help="Folder for the decoded-image cache."),
    click.option(
        "--shortcut", type=click.Choice(["A", "B"]), help="CIFAR nets: shortcut option [default: A]."
    ),
    click.option("--no-progress", is_flag=True, help="No progress bars (logs stay)."),
)


def _epoch_lines(progress: bool) -> None:
    """Without progress bars, still print one line per epoch (the library logs it at INFO)."""
    if not progress:
        logging.getLogger("edgeres.train").setLevel(logging.INFO)


def _settings_kwargs(opts: dict[str, Any]) -> dict[str, Any]:
    shortcut = opts.pop("shortcut", None)
    opts.pop("no_progress", None)
    opts["arch_options"] = {"shortcut": shortcut} if shortcut else {}
    return opts


@click.command("train")
@click.option("--arch", required=True, help="Architecture (see `edgeres models`).")
@click.option(
    "-o",
    "--out",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder for the run (checkpoints, metrics), e.g. runs/r20.",
)
@recipe_options
@click.option(
    "--resume",
    is_flag=False,
    flag_value="last",
    default=None,
    help="Continue a stopped run: bare --resume takes OUT/last.pt, or give a checkpoint.",
)
@click.option("--overwrite", is_flag=True, help="Start over in an OUT that already holds a run.")
def train_cmd(arch: str, out: str, resume: str | None, overwrite: bool, **opts: Any) -> None:
    """Train a ResNet with the paper's recipe and write edgeres checkpoints.

    Every epoch writes OUT/last.pt (and OUT/best.pt when validation improves),
    metrics.csv and metrics.json, each atomically; the checkpoints carry the
    classes, input size, mean/std, the train/validation split and the accuracy,
    so export and quantize need no flags. --resume continues a killed run
    exactly. For several GPUs or nodes run it under torchrun
    (`torchrun --nproc_per_node 4 -m edgeres train ...`; --batch-size is per process).

    \b
    Examples:
      edgeres train --arch resnet20 --data ./cifar10/train --epochs 160 -o runs/r20
      edgeres train --arch resnet20 --data digits --epochs 5 -o runs/digits
      edgeres train --arch resnet56 --data ./cifar10/train --epochs 160 -o runs/r56 --resume
      edgeres train --arch resnet20 --data ./cifar10/train --epochs 30 --normalize imagenet -o runs/r20-in
      torchrun --nproc_per_node 2 -m edgeres train --arch resnet110 --data ./c10 --epochs 164 -o runs/r110
    """
    from edgeres.commands.options import refuse_overwrite
    from edgeres.train import TrainSettings, train

    refuse_overwrite([("-o", out)], [("--data", opts.get("data")), ("--val-data", opts.get("val_data"))])
    progress = not opts.get("no_progress")
    _epoch_lines(progress)
    settings = TrainSettings(arch=arch, out=out, **_settings_kwargs(opts))  # type: ignore[arg-type]
    result = train(
        settings,
        resume=(True if resume == "last" else resume or False),
        overwrite=overwrite,
        progress=progress,
    )
    best = (
        f"{result.best_val_acc:.2%} at epoch {result.best_epoch}"
        if result.best_val_acc is not None
        else "n/a"
    )
    epochs = f"{result.epochs_completed} epoch{'' if result.epochs_completed == 1 else 's'}"
    click.echo(f"trained {epochs}; best validation top-1 {best}")
    click.echo(f"wrote {result.best} and {result.last}; metrics in {result.metrics_csv}")


@click.group("experiment")
def experiment_group() -> None:
    """Reproduce the paper's experiments.

    \b
    Examples:
      edgeres experiment degradation --data ./cifar10/train --epochs 20 -o runs/degradation
    """


@experiment_group.command("degradation")
@click.option(
    "-o", "--out", default="runs/degradation", show_default=True, type=click.Path(file_okay=False),
    help="Folder for the runs, the figure and its CSV.",
)  # fmt: skip
@click.option(
    "--archs",
    default="plain20,plain56,resnet20,resnet56",
    show_default=True,
    help="Comma-separated architectures, trained one after another with the same recipe.",
)
@recipe_options
@click.option("--resume", is_flag=True, help="Continue: finished runs are kept, a stopped one resumes.")
def degradation_cmd(out: str, archs: str, resume: bool, **opts: Any) -> None:
    """The paper's degradation experiment (its Figures 1 and 6).

    Trains plain-20, plain-56, ResNet-20 and ResNet-56 with the same recipe and
    draws their training and validation error in one figure (OUT/degradation.png,
    with OUT/degradation.csv): the deeper plain net trains worse, the deeper
    ResNet better.

    \b
    Examples:
      edgeres experiment degradation --data ./cifar10/train --epochs 20
      edgeres experiment degradation --data digits --epochs 5 --archs plain20,plain56 -o runs/deg-digits
    """
    from edgeres.train import run_degradation

    progress = not opts.get("no_progress")
    _epoch_lines(progress)
    kwargs = _settings_kwargs(opts)
    data, epochs = kwargs.pop("data"), kwargs.pop("epochs")
    names = [a.strip() for a in archs.split(",") if a.strip()]
    figure = run_degradation(data, epochs, out, names, resume=resume, progress=progress, **kwargs)
    click.echo(f"wrote {figure} and {figure.with_suffix('.csv')}")
