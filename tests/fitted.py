"""Untrained models that still make varied predictions, for tests that compare predictions.

A network with PyTorch's default BatchNorm statistics predicts one class for every image, so
any INT8 copy agrees with it 100% and no test of agreement can fail. :func:`fit_head` gives
such a network varied, data-dependent answers without a training loop: the final linear layer
is fitted in closed form (ridge regression) to the labels, on the features the rest of the
network computes.
"""

from __future__ import annotations

import numpy as np


def fit_head(net, images: np.ndarray, labels: np.ndarray, mean, std, ridge: float = 1.0) -> None:
    """Fit ``net.fc`` to one-hot ``labels`` on ``net``'s features of uint8 NHWC ``images``."""
    import torch

    net.eval()
    with torch.no_grad():
        x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0
        x = (x - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
        features: list[torch.Tensor] = []
        hook = net.fc.register_forward_hook(lambda m, i, o: features.append(i[0]))
        net(x)
        hook.remove()
        f = torch.cat([features[0].double(), torch.ones(len(images), 1, dtype=torch.float64)], 1)
        onehot = torch.nn.functional.one_hot(
            torch.from_numpy(np.asarray(labels)), net.fc.out_features
        ).double()
        coef = torch.linalg.solve(f.T @ f + ridge * torch.eye(f.shape[1], dtype=torch.float64), f.T @ onehot)
        net.fc.weight.copy_(coef[:-1].T.float())
        net.fc.bias.copy_(coef[-1].float())
