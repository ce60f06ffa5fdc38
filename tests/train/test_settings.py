"""Settings validation, the learning-rate schedule, and the sharding of data across processes."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from edgeres.errors import UsageError
from edgeres.train import TrainSettings
from edgeres.train.distributed import DistInfo, detect, shard
from edgeres.train.schedule import lr_factor, make_scheduler


def make(**changes: object) -> TrainSettings:
    base: dict[str, object] = dict(arch="resnet20", data="digits", out=Path("runs/x"), epochs=10)
    base.update(changes)
    return TrainSettings(**base)  # type: ignore[arg-type]


def test_defaults_are_the_papers_cifar_recipe() -> None:
    s = make(arch="ResNet-56", out="runs/r56")
    assert s.arch == "resnet56" and s.out == Path("runs/r56")
    assert (s.batch_size, s.lr, s.momentum, s.weight_decay) == (128, 0.1, 0.9, 1e-4)
    assert (s.schedule, s.warmup_epochs, s.label_smoothing, s.val_split) == ("step", 0, 0.0, 0.1)
    assert s.amp is None and s.channels_last is None and s.device == "auto"
    d = s.to_dict()
    assert d["out"] == "runs/r56" and d["arch_options"] == {}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"epochs": 0}, "epochs must be a whole number of at least 1"),
        ({"batch_size": 2.5}, "batch size"),
        ({"lr": 0}, "learning rate"),
        ({"lr": float("nan")}, "learning rate"),
        ({"momentum": 1.0}, "momentum"),
        ({"weight_decay": -1}, "weight decay"),
        ({"schedule": "poly"}, "schedule must be one of step, cosine"),
        ({"warmup_epochs": 10}, "warm-up (10 epochs) must be shorter"),
        ({"label_smoothing": 1.0}, "label smoothing"),
        ({"val_split": 1.0}, "validation split"),
        ({"device": "tpu"}, "device must be one of"),
        ({"device": "cpu", "amp": True}, "needs a CUDA GPU"),
        ({"amp": "yes"}, "amp must be true, false or unset"),
        ({"threads": 0}, "threads"),
        ({"arch": "resnet21"}, "unknown model 'resnet21'"),
        ({"data": " "}, "no training data given"),
        ({"normalize": "coco"}, "normalization must be one of auto, data, imagenet, cifar10"),
    ],
)
def test_bad_settings_are_one_line_usage_errors(changes: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError) as info:
        make(**changes)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_recipe_changes_name_what_differs() -> None:
    s = make()
    assert s.recipe_changes(s.to_dict()) == []
    assert s.recipe_changes({**s.to_dict(), "device": "cpu", "threads": 3, "out": "elsewhere"}) == []
    changes = s.recipe_changes({**s.to_dict(), "epochs": 5, "lr": 0.1})
    assert changes == ["epochs: 5 -> 10"]
    assert s.replace(normalize="imagenet").recipe_changes(s.to_dict()) == ["normalize: 'auto' -> 'imagenet'"]


def test_a_checkpoint_older_than_a_recipe_field_had_its_default() -> None:
    s = make()
    old = {k: v for k, v in s.to_dict().items() if k not in ("normalize", "arch_options")}
    assert s.recipe_changes(old) == []
    assert s.replace(arch_options={"shortcut": "B"}).recipe_changes(old) == [
        "arch_options: {} -> {'shortcut': 'B'}"
    ]
    assert s.replace(normalize="data").recipe_changes(old) == ["normalize: 'auto' -> 'data'"]


def test_step_schedule_divides_by_ten_at_half_and_three_quarters() -> None:
    total = 64_000
    assert lr_factor(0, total) == 1.0
    assert lr_factor(31_999, total) == 1.0
    assert lr_factor(32_000, total) == pytest.approx(0.1)
    assert lr_factor(47_999, total) == pytest.approx(0.1)
    assert lr_factor(48_000, total) == pytest.approx(0.01)
    assert lr_factor(63_999, total) == pytest.approx(0.01)


def test_warmup_and_cosine() -> None:
    assert [lr_factor(s, 100, 4, "cosine") for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_factor(4, 100, 4, "cosine") == 1.0
    assert lr_factor(52, 100, 4, "cosine") == pytest.approx(0.5)
    assert lr_factor(99, 100, 4, "cosine") == pytest.approx(0.5 * (1 + math.cos(math.pi * 95 / 96)))
    assert lr_factor(1, 100, 4, "step") == 0.5


def test_scheduler_steps_per_iteration_and_its_state_is_plain_data() -> None:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = make_scheduler(opt, epochs=4, steps_per_epoch=10)
    lrs = []
    for _ in range(40):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[19] == 0.1 and lrs[20] == pytest.approx(0.01) and lrs[30] == pytest.approx(0.001)
    state = sched.state_dict()
    assert state["last_epoch"] == 40 and state["lr_lambdas"] == [None]


def test_shard_is_a_distributed_sampler() -> None:
    idx = torch.arange(100, 111)  # 11 items over 3 ranks: padded to 12
    parts = [shard(idx, epoch=0, seed=5, info=DistInfo(3, r, r)) for r in range(3)]
    assert [len(p) for p in parts] == [4, 4, 4]
    assert set(torch.cat(parts).tolist()) == set(idx.tolist())
    again = [shard(idx, epoch=0, seed=5, info=DistInfo(3, r, r)) for r in range(3)]
    assert all(torch.equal(a, b) for a, b in zip(parts, again, strict=True))
    other = shard(idx, epoch=1, seed=5, info=DistInfo(3, 0, 0))
    assert not torch.equal(other, parts[0])  # set_epoch: a new order every epoch
    alone = shard(idx, epoch=0, seed=5, info=DistInfo())
    assert sorted(alone.tolist()) == idx.tolist()
    assert torch.equal(shard(torch.arange(2), 0, 0, DistInfo(4, 3, 3), shuffle=False), torch.tensor([1]))


def test_detect_reads_torchrun_environment() -> None:
    assert detect({}) == DistInfo(1, 0, 0)
    info = detect({"WORLD_SIZE": "4", "RANK": "2", "LOCAL_RANK": "0"})
    assert info.enabled and not info.is_main and info.world_size == 4
    with pytest.raises(UsageError, match="not a number"):
        detect({"WORLD_SIZE": "two"})
    with pytest.raises(UsageError, match="inconsistent"):
        detect({"WORLD_SIZE": "2", "RANK": "2"})


@pytest.mark.parametrize(
    ("changes", "warned"),
    [
        ({"arch": "resnet56"}, True),
        ({"arch": "resnet110", "lr": 0.1}, True),
        ({"arch": "resnet56", "warmup_epochs": 1, "epochs": 4}, False),
        ({"arch": "resnet56", "lr": 0.01}, False),
        ({"arch": "resnet20"}, False),
        ({"arch": "plain56"}, False),
    ],
)
def test_deep_residual_nets_without_warmup_get_a_warning(
    changes: dict[str, object], warned: bool, caplog: pytest.LogCaptureFixture
) -> None:
    from edgeres.train.loop import _warn_without_warmup

    with caplog.at_level("WARNING", logger="edgeres.train"):
        _warn_without_warmup(make(**changes), DistInfo())
    assert ("--warmup-epochs 1" in caplog.text) is warned
