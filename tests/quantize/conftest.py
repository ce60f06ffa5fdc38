"""Fixtures of the quantization tests: a small real model whose predictions vary, with one fragile layer.

The shared checkpoints keep PyTorch's default BatchNorm statistics, so they predict one class
for every image and any INT8 model agrees with them 100%: no test of ``--max-drop`` or
``--method auto`` could fail on them. :func:`fragile_model` is a resnet20 with randomized
BatchNorm whose classifier is fitted (ridge regression, closed form: no training loop) to
300 of scikit-learn's digits on its random features, so its predictions vary from image to
image. One conv is known to be the layer that INT8 breaks: its first input channel is dead (the
ReLU before it always gives 0) and its weights on that channel are 1000x the others. FP32
never sees them; per-channel int8 weights get a step so large that every other weight of the
conv rounds to zero. The images are labelled with the FP32 model's own predictions, so FP32
scores 100% top-1 and an INT8 model's top-1 drop is exactly its disagreement with FP32.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

CLASSES = tuple(str(i) for i in range(10))


@dataclass(frozen=True)
class FragileModel:
    fp32: Path
    #: The ONNX node name of the conv that INT8 breaks.
    fragile: str
    #: 300 digits labelled with FP32's predictions (.npz).
    data: str
    num_classes_predicted: int


@pytest.fixture(scope="session")
def fragile_model(tmp_path_factory: pytest.TempPathFactory) -> FragileModel:
    import onnx
    import torch
    from onnx import numpy_helper

    from edgeres.data.digits import digits_source
    from edgeres.export.fold import randomize_batchnorm
    from edgeres.export.onnx_export import export_onnx
    from edgeres.metadata import IMAGENET_MEAN, IMAGENET_STD, ModelMeta, Preprocessing
    from edgeres.models import get_model
    from edgeres.runners import OnnxRuntimeRunner
    from tests.fitted import fit_head

    digits = digits_source()
    images = np.ascontiguousarray(digits.images[:300])
    torch.manual_seed(0)
    net = get_model("resnet20", num_classes=10)
    randomize_batchnorm(net, seed=0)
    block = net.layer2[1]
    with torch.no_grad():
        block.bn1.weight[0] = 0.0
        block.bn1.bias[0] = -5.0  # channel 0 of relu(bn1(conv1(x))) is always 0
        w = block.conv2.weight
        w[:, 0] = 1000.0 * float(w.abs().max())
    fit_head(net, images, digits.labels[:300], IMAGENET_MEAN, IMAGENET_STD)
    meta = ModelMeta(
        arch="resnet20", num_classes=10, class_names=CLASSES, preprocessing=Preprocessing(input_size=(32, 32))
    )
    out = tmp_path_factory.mktemp("fragile")
    fp32 = export_onnx(net.eval(), meta, out / "resnet20.onnx", exporter="torchscript", verify=False).path
    graph = onnx.load(str(fp32)).graph
    weights = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    fragile = [n.name for n in graph.node if n.op_type == "Conv" and np.abs(weights[n.input[1]]).max() > 100]
    assert len(fragile) == 1, fragile

    data = out / "images.npz"
    np.savez(data, images=images, labels=np.zeros(len(images), np.int64), class_names=np.array(CLASSES))
    from edgeres.data import open_source
    from edgeres.evaluate import evaluate

    result = evaluate(
        OnnxRuntimeRunner(fp32), open_source(str(data)), None, meta.preprocessing, progress=False
    )
    labels = np.zeros(len(images), np.int64)
    labels[result.indices] = result.predictions
    np.savez(data, images=images, labels=labels, class_names=np.array(CLASSES))
    return FragileModel(fp32, fragile[0], str(data), len(set(labels.tolist())))
