"""``edgeres pipeline`` as a library: every stage from a PyTorch model to a report, resumable.

    from edgeres.pipeline import PipelineConfig, format_summary, run_pipeline

    result = run_pipeline("best.pt", "out", PipelineConfig(), calib="digits")
    print(format_summary(result))
    for stage in result.stages:  # name, status (ran / up to date / skipped / failed), reason
        ...

Modules: :mod:`~edgeres.pipeline.settings` (one dataclass per stage),
:mod:`~edgeres.pipeline.config` (edgeres.toml), :mod:`~edgeres.pipeline.state` (the
up-to-date bookkeeping), :mod:`~edgeres.pipeline.stages`, :mod:`~edgeres.pipeline.engines`
and :mod:`~edgeres.pipeline.measure` (the stages), :mod:`~edgeres.pipeline.run` (the order),
:mod:`~edgeres.pipeline.results` (what a run returns). ``import edgeres.pipeline`` is
light; the names below load their module on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgeres.pipeline.config import load_config
    from edgeres.pipeline.results import PipelineResult, StageResult, Status, format_summary
    from edgeres.pipeline.run import run_pipeline
    from edgeres.pipeline.settings import (
        STAGES,
        BenchSettings,
        EngineSettings,
        EvalSettings,
        ExportSettings,
        Fp16Settings,
        ModelSettings,
        PipelineConfig,
        QuantizeSettings,
        ReportSettings,
    )

__all__ = [
    "STAGES",
    "BenchSettings",
    "EngineSettings",
    "EvalSettings",
    "ExportSettings",
    "Fp16Settings",
    "ModelSettings",
    "PipelineConfig",
    "PipelineResult",
    "QuantizeSettings",
    "ReportSettings",
    "StageResult",
    "Status",
    "format_summary",
    "load_config",
    "run_pipeline",
]

_HOMES = {
    "load_config": "config",
    "PipelineResult": "results",
    "StageResult": "results",
    "Status": "results",
    "format_summary": "results",
    "run_pipeline": "run",
    **{
        name: "settings"
        for name in (
            "STAGES",
            "BenchSettings",
            "EngineSettings",
            "EvalSettings",
            "ExportSettings",
            "Fp16Settings",
            "ModelSettings",
            "PipelineConfig",
            "QuantizeSettings",
            "ReportSettings",
        )
    },
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'edgeres.pipeline' has no attribute {name!r}")
    return getattr(importlib.import_module(f"edgeres.pipeline.{home}"), name)
