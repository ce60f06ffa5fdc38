"""A real resnet20 checkpoint that classifies solid colours, with its classes in a chosen order.

Its weights are set by hand: the stem copies the red, green and blue channels, every residual
branch is zero (each block passes its input on), and the classifier reads the three colour
channels. With mean and std 0.5, a pure red, green or blue image becomes a one-hot feature, so
the model is right on every such image; which output a colour gets follows ``class_names``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

#: The colour of each class name the tests use.
COLOURS: dict[str, tuple[int, int, int]] = {
    "apple": (255, 0, 0),
    "mango": (0, 255, 0),
    "zebra": (0, 0, 255),
    "kiwi": (255, 255, 255),
}
#: Class names out of sorted order: sorted folder order would put every image in a wrong class.
UNSORTED = ("zebra", "apple", "mango")


def colour_checkpoint(path: Path, class_names: Sequence[str] = UNSORTED, *, named: bool = True) -> Path:
    """Save the colour classifier for ``class_names`` (colours from :data:`COLOURS`) at ``path``.

    ``named=False`` leaves the class names out of the checkpoint (the outputs keep that order).
    """
    import torch

    from edgeres.checkpoint import save_checkpoint
    from edgeres.metadata import ModelMeta, Preprocessing
    from edgeres.models import get_model

    model = get_model("resnet20", num_classes=len(class_names))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.weight.zero_()
            elif isinstance(m, torch.nn.BatchNorm2d):
                m.weight.fill_(1.0)
                m.bias.zero_()
                m.running_mean.zero_()
                m.running_var.fill_(1.0 - m.eps)
        for c in range(3):
            model.conv1.weight[c, c, 1, 1] = 1.0
        model.fc.weight.zero_()
        model.fc.bias.zero_()
        for k, name in enumerate(class_names):
            # option A shortcuts move channels 0..2 to 8..10 (stage 2), then to 24..26 (stage 3)
            colour = np.asarray(COLOURS[name], dtype=np.float32) / 255.0
            model.fc.weight[k, 24:27] = torch.from_numpy(2.0 * colour - 1.0)
    meta = ModelMeta(
        arch="resnet20",
        num_classes=len(class_names),
        class_names=tuple(class_names) if named else (),
        preprocessing=Preprocessing(input_size=(32, 32), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
    )
    return save_checkpoint(model, meta, path)


def colour_folder(root: Path, counts: dict[str, int]) -> Path:
    """An image folder: one subfolder per name in ``counts``, that many solid-colour PNGs in each."""
    for name, n in counts.items():
        (root / name).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (32, 32), COLOURS[name]).save(root / name / f"{i}.png")
    return root
