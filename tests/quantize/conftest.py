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
        net.eval()
        x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
        x = (x - torch.tensor(IMAGENET_MEAN)[:, None, None]) / torch.tensor(IMAGENET_STD)[:, None, None]
        features: list[torch.Tensor] = []
        hook = net.fc.register_forward_hook(lambda m, i, o: features.append(i[0]))
        net(x)
        hook.remove()
        f = torch.cat([features[0].double(), torch.ones(len(images), 1, dtype=torch.float64)], 1)
        onehot = torch.nn.functional.one_hot(torch.from_numpy(digits.labels[:300]), 10).double()
        coef = torch.linalg.solve(f.T @ f + 1.0 * torch.eye(f.shape[1], dtype=torch.float64), f.T @ onehot)
        net.fc.weight.copy_(coef[:-1].T.float())
        net.fc.bias.copy_(coef[-1].float())
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
