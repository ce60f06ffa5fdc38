"""Options shared by several commands, defined once, and the helpers that read them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def compose(*decorators: Callable[[F], F]) -> Callable[[F], F]:
    def apply(func: F) -> F:
        for decorator in reversed(decorators):
            func = decorator(func)
        return func

    return apply


#: How to read a model from outside edgeres; shared by every command that loads one.
model_options = compose(
    click.option("--arch", help="Architecture of a bare state_dict (see `edgeres models`)."),
    click.option(
        "--num-classes", type=click.IntRange(min=1), help="Number of outputs, when the file lacks it."
    ),
    click.option(
        "--classes",
        help="Class names: a comma-separated list, or a text file with one name per line.",
    ),
    click.option(
        "--input-size",
        help="Input height and width, e.g. 224 or 32x32 [default: the architecture's, else 224].",
    ),
    click.option("--mean", help="Normalization mean per RGB channel [default: ImageNet 0.485,0.456,0.406]."),
    click.option("--std", help="Normalization std per RGB channel [default: ImageNet 0.229,0.224,0.225]."),
    click.option(
        "--unsafe-pickle",
        "--trust-model",
        "unsafe_pickle",
        is_flag=True,
        help="Trust the model file: read a pickled nn.Module, and TorchScript or .pt2 programs with "
        "operations beyond an image classifier's. Runs code from the file (see docs/security.md).",
    ),
)


#: Evaluation on data with classes the model lacks: skip those images instead of failing.
ignore_unknown_option = click.option(
    "--ignore-unknown-classes",
    is_flag=True,
    help="Skip (and count) images of classes the model does not have, instead of failing.",
)


def classes_file(classes: str | None) -> str | None:
    """``--classes`` when it names a file (an input the command must not overwrite)."""
    return classes if classes and Path(classes).is_file() else None


def refuse_overwrite(
    outputs: Sequence[tuple[str, Any]],
    inputs: Sequence[tuple[str, Any]],
    folders: Sequence[tuple[str, Any]] = (),
) -> None:
    """Refuse, before any work, an output that is one of the inputs (see :mod:`edgeres.outputs`)."""
    from edgeres.outputs import refuse_overwrite_of_inputs

    refuse_overwrite_of_inputs(outputs, inputs, input_folders=folders)


def class_names(classes: str | None) -> tuple[str, ...] | None:
    """``--classes``: a comma-separated list, or a text file with one name per line."""
    if not classes:
        return None
    p = Path(classes)
    if p.is_file():
        try:
            raw = p.read_bytes().decode("utf-8-sig").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            from edgeres.errors import UsageError

            why = "it is not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else exc.strerror or exc
            raise UsageError(f"cannot read the class names file {p}: {why}; save it as UTF-8") from None
    else:
        raw = classes.split(",")
    return tuple(n.strip() for n in raw if n.strip())


def overrides_from_options(**opts: Any) -> Any:
    """The shared model options as :class:`edgeres.loading.MetaOverrides`."""
    from edgeres.loading import MetaOverrides
    from edgeres.metadata import parse_input_size, parse_triple

    return MetaOverrides(
        num_classes=opts.get("num_classes"),
        class_names=class_names(opts.get("classes")),
        input_size=parse_input_size(opts["input_size"]) if opts.get("input_size") else None,
        mean=parse_triple(opts["mean"], "--mean") if opts.get("mean") else None,
        std=parse_triple(opts["std"], "--std") if opts.get("std") else None,
    )


def load_from_options(model: str, **opts: Any) -> Any:
    """Turn the shared model options into a :func:`edgeres.load_model` call."""
    from edgeres.loading import load_model

    overrides = overrides_from_options(**opts)
    return load_model(
        model, opts.get("arch"), overrides=overrides, unsafe_pickle=opts.get("unsafe_pickle", False)
    )


def sample_images(spec: str, meta: Any, size: int) -> Any:
    """A class-stratified sample of ``size`` preprocessed images from any data source."""
    import numpy as np

    from edgeres.data import iter_batches, open_source, stratified_sample

    source = open_source(spec)
    indices = stratified_sample(source.labels, size, seed=0)
    return np.concatenate([x for x, _ in iter_batches(source, indices, meta.preprocessing)])


def method_option(**kwargs: Any) -> Callable[[F], F]:
    """``--method``: every registered calibration method, and auto."""
    from edgeres.quantize.settings import method_choices

    return click.option("--method", type=click.Choice(method_choices()), **kwargs)


def target_option(**kwargs: Any) -> Callable[[F], F]:
    """``--target``: the INT8 layouts by name, auto and all (see :mod:`edgeres.quantize.targets`)."""
    from edgeres.quantize.targets import TARGET_CHOICES

    return click.option("--target", type=click.Choice(TARGET_CHOICES), **kwargs)


def parse_batch_sizes(text: str) -> tuple[int, ...]:
    """``--batch`` where sizes are run (bench): ``"1,8,32"`` -> ``(1, 8, 32)``.

    build-engine's ``MIN:OPT:MAX`` form is accepted too and means the sizes it names
    (``1:8:32`` -> ``(1, 8, 32)``), so one ``--batch`` value works for both commands.
    Repeats are dropped, the order kept; anything else is a one-line :class:`UsageError`.
    """
    from edgeres.errors import UsageError

    if ":" in text and "," not in text:
        from edgeres.engine.options import parse_batch_profile

        p = parse_batch_profile(text)  # its one-line error for a malformed profile
        return tuple(dict.fromkeys((p.min, p.opt, p.max)))
    parts = [p.strip() for p in text.split(",")]
    try:
        batches = tuple(int(p) for p in parts)
    except ValueError:
        batches = ()
    if not batches or any(b < 1 for b in batches):
        raise UsageError(f"--batch takes positive integers separated by commas, like 1,8,32; got '{text}'")
    return tuple(dict.fromkeys(batches))  # drop repeats, keep the order
