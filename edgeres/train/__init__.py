"""Training the ResNets of He et al. 2015: the paper's CIFAR recipe, resumable, on CPU, GPU or torchrun.

``train(TrainSettings(arch="resnet20", data="path/to/cifar10/train", out="runs/r20", epochs=182))``
trains and writes ``out/best.pt``, ``out/last.pt`` (edgeres checkpoints) and
``out/metrics.csv``/``.json``; ``run_degradation(...)`` reproduces the paper's Figure 6
(plain nets get worse with depth, ResNets better). Imports torch; nothing outside this
package imports it.
"""

from __future__ import annotations

from edgeres.train.degradation import run_degradation
from edgeres.train.loop import train
from edgeres.train.settings import TrainResult, TrainSettings

__all__ = ["TrainResult", "TrainSettings", "run_degradation", "train"]
