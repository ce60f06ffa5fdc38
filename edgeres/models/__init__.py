"""The networks of He et al. 2015, "Deep Residual Learning for Image Recognition".

``get_model("resnet50")`` builds a torchvision-compatible ResNet-50;
``get_model("resnet20")`` the paper's CIFAR-10 ResNet-20 (option A shortcuts);
``plain*`` names give the plain networks without shortcuts. ``list_models()``
lists them all and ``describe(name)`` counts parameters and multiply-adds.
"""

from __future__ import annotations

from edgeres.models.complexity import ModelSummary, count_macs, count_parameters, describe
from edgeres.models.registry import ModelSpec, get_model, get_spec, list_models

__all__ = [
    "ModelSpec",
    "ModelSummary",
    "count_macs",
    "count_parameters",
    "describe",
    "get_model",
    "get_spec",
    "list_models",
]
