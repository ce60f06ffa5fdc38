"""Two CPU processes under torchrun train one model: same weights on both ranks, files from rank 0."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from tests.train import make_npz

WORKER = textwrap.dedent(
    """
    import hashlib, os, sys
    from pathlib import Path
    import torch
    from edgeres.train import TrainSettings, train

    data, out, hashes = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])

    def digest(model):
        h = hashlib.sha256()
        for key, value in sorted(model.state_dict().items()):
            h.update(key.encode())
            h.update(value.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()

    def settings(name):
        return TrainSettings(
            arch="resnet20", data=data, out=out / name, epochs=2, batch_size=8, threads=1, val_split=0.25,
            cache="memory", device="cpu",
        )

    whole = train(settings("whole"), progress=False)
    assert torch.distributed.get_world_size() == 2  # the group stays up for the next run
    first = train(settings("killed"), progress=False, stop_after=1)
    resumed = train(settings("killed"), resume=True, progress=False)
    rank = os.environ["RANK"]
    epochs = f"{first.epochs_completed} {resumed.epochs_completed}"
    (hashes / f"rank{rank}.txt").write_text(f"{digest(whole.model)} {digest(resumed.model)} {epochs}")
    """
)


def state_hash(state: dict[str, torch.Tensor]) -> str:
    import hashlib

    digest = hashlib.sha256()
    for key, value in sorted(state.items()):
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


@pytest.mark.slow
def test_two_processes_end_with_identical_weights(tmp_path: Path) -> None:
    data = make_npz(tmp_path / "d.npz", n=40, classes=4)
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    hashes = tmp_path / "hashes"
    hashes.mkdir()
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone"]
    proc = subprocess.Popen(
        [*cmd, str(script), str(data), str(out), str(hashes)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,  # so a hung run can be stopped with all its workers
    )
    try:
        output, _ = proc.communicate(timeout=150)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"torchrun did not finish in 150 s: {output[-3000:]}")
    assert proc.returncode == 0, output[-3000:]
    ranks = [(hashes / f"rank{k}.txt").read_text().split() for k in range(2)]
    assert ranks[0] == ranks[1]  # both ranks hold the same weights
    whole, resumed, first_epochs, resumed_epochs = ranks[0]
    assert whole == resumed and (first_epochs, resumed_epochs) == (
        "1",
        "2",
    )  # resuming under torchrun is exact
    payload = torch.load(out / "whole" / "last.pt", weights_only=True)
    assert state_hash(payload["state_dict"]) == whole
    extra = payload["extra"]
    assert extra["train"]["world_size"] == 2 and len(extra["data_rng"]) == 2
    assert not torch.equal(extra["data_rng"][0], extra["data_rng"][1])  # each rank augments differently
    assert sorted(p.name for p in (out / "whole").iterdir()) == [
        "best.pt",
        "last.pt",
        "metrics.csv",
        "metrics.json",
    ]
    assert len((out / "whole" / "metrics.csv").read_text().splitlines()) == 3
