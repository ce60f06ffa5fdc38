"""fit: the training loop on a model it is given (what a fine-tuning stage reuses)."""

from __future__ import annotations

from pathlib import Path

import torch

from edgeres.train import distributed as dist_
from edgeres.train import train
from edgeres.train.loop import build_model, fit, prepare_run
from tests.train import make_npz, tiny_settings


def test_fit_trains_the_given_model_as_train_does(tmp_path: Path) -> None:
    data = make_npz(tmp_path / "tiny.npz", n=48, classes=4)
    reference = train(tiny_settings(data, tmp_path / "train"), progress=False)

    s = tiny_settings(data, tmp_path / "fit")
    s.out.mkdir()
    info, threads = dist_.detect(), torch.get_num_threads()
    torch.set_num_threads(s.threads)
    try:
        prepared = prepare_run(s, info, progress=False)
        model = build_model(s, prepared.meta.num_classes)
        start = {k: v.clone() for k, v in model.state_dict().items()}
        result = fit(model, s, prepared, info=info, device=torch.device("cpu"), amp=False, progress=False)
    finally:
        torch.set_num_threads(threads)

    assert result.model is model and result.finished and (tmp_path / "fit" / "last.pt").is_file()
    assert any(not torch.equal(start[k], v) for k, v in model.state_dict().items())
    assert [r["train_loss"] for r in result.history] == [r["train_loss"] for r in reference.history]
    for key, value in reference.model.state_dict().items():
        assert torch.equal(value, model.state_dict()[key]), key
