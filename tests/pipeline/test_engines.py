"""The engines stage's batch profile and what makes its engines out of date."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeres.pipeline import PipelineConfig
from edgeres.pipeline.context import Context, Variant, tensorrt_unavailable
from edgeres.pipeline.engines import engine_batch, engines_stage, tensorrt_identity
from edgeres.pipeline.settings import fingerprint
from edgeres.pipeline.state import PipelineState


def _context(tmp_path: Path, config: PipelineConfig) -> Context:
    return Context(Path("m.pt"), tmp_path, config, None, None, False, PipelineState(tmp_path))


def test_the_batch_profile(tmp_path: Path) -> None:
    config = PipelineConfig().override("bench", batches=(1, 16))
    ctx = _context(tmp_path, config)
    assert engine_batch(ctx) == "1:16:64"
    assert engine_batch(_context(tmp_path, config.override("engines", batch="1:8:16"))) == "1:8:16"
    ctx.fixed_batch = 4  # the only profile a model with a fixed batch can have
    assert engine_batch(ctx) == "4:4:4"


def test_the_engines_are_rebuilt_for_another_tensorrt_or_gpu(tmp_path: Path) -> None:
    why = tensorrt_unavailable()
    if why is not None:
        pytest.skip(why)
    import tensorrt

    from edgeres.engine.sidecar import gpu_info

    identity = tensorrt_identity()
    assert identity == {"tensorrt": tensorrt.__version__, "gpu": gpu_info()[0], "compute": gpu_info()[1]}
    ctx = _context(tmp_path, PipelineConfig().override("engines", precisions=("fp32",)))
    ctx.variants["fp32"] = Variant("fp32", ctx.fp32, "fp32")
    plan = engines_stage.plan(ctx)
    assert not isinstance(plan, str)
    assert plan.settings == fingerprint(ctx.config.engines, engine_batch(ctx), ["engine-fp32"], identity)
    assert plan.settings != fingerprint(ctx.config.engines, engine_batch(ctx), ["engine-fp32"])
