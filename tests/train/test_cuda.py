"""Training on a CUDA GPU: mixed precision, channels_last, exact resume. Skipped without a GPU.

Run them where there is one: ``pytest tests/train/test_cuda.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from edgeres import load_model
from edgeres.train import train
from tests.train import make_npz, tiny_settings

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU: torch sees none")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_npz(tmp_path_factory.mktemp("data") / "tiny.npz", n=48, classes=4)


def test_cuda_defaults_to_amp_and_channels_last(data: Path, tmp_path: Path) -> None:
    run = train(tiny_settings(data, tmp_path / "out", device="auto"), progress=False)
    assert run.finished and all(torch.isfinite(torch.tensor(r["train_loss"])) for r in run.history)
    param = next(run.model.parameters())
    assert param.is_cuda and param.dtype == torch.float32  # AMP keeps float32 master weights
    conv = run.model.conv1.weight
    assert conv.is_contiguous(memory_format=torch.channels_last)
    payload = torch.load(run.last, weights_only=True)
    assert payload["extra"]["train"]["settings"]["device"] == "auto"
    assert "scaler" in payload["extra"]  # the GradScaler state, for an exact resume
    loaded = load_model(run.last)  # a GPU-trained checkpoint loads on the CPU
    assert next(loaded.require_module().parameters()).device.type == "cpu"


def test_cuda_resume_continues_where_it_stopped(data: Path, tmp_path: Path) -> None:
    whole = train(tiny_settings(data, tmp_path / "whole", epochs=3, device="cuda"), progress=False)
    killed = tiny_settings(data, tmp_path / "killed", epochs=3, device="cuda")
    assert not train(killed, progress=False, stop_after=2).finished
    resumed = train(killed, resume=True, progress=False)
    assert resumed.finished and resumed.epochs_completed == 3
    # cuDNN may pick non-deterministic kernels, so compare closely rather than bit for bit
    a, b = whole.model.state_dict(), resumed.model.state_dict()
    for key in a:
        if a[key].is_floating_point():
            torch.testing.assert_close(a[key], b[key], rtol=1e-3, atol=1e-3, msg=key)
