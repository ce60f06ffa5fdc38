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

from typing import TYPE_CHECKING

from edgeres._lazy import lazy_exports

# The type checker's view of _EXPORTS (tests/test_lazy_exports.py keeps the two equal).
if TYPE_CHECKING:
    from edgeres.pipeline.config import load_config  # noqa: F401
    from edgeres.pipeline.results import PipelineResult, StageResult, Status, format_summary  # noqa: F401
    from edgeres.pipeline.run import run_pipeline  # noqa: F401
    from edgeres.pipeline.settings import (  # noqa: F401
        STAGES,
        BenchSettings,
        EngineSettings,
        EvalSettings,
        ExportSettings,
        Fp16Settings,
        ModelSettings,
        OpenVinoSettings,
        PipelineConfig,
        QuantizeSettings,
        ReportSettings,
    )

_EXPORTS = {
    "load_config": "edgeres.pipeline.config",
    "PipelineResult": "edgeres.pipeline.results",
    "StageResult": "edgeres.pipeline.results",
    "Status": "edgeres.pipeline.results",
    "format_summary": "edgeres.pipeline.results",
    "run_pipeline": "edgeres.pipeline.run",
    "STAGES": "edgeres.pipeline.settings",
    "BenchSettings": "edgeres.pipeline.settings",
    "EngineSettings": "edgeres.pipeline.settings",
    "EvalSettings": "edgeres.pipeline.settings",
    "ExportSettings": "edgeres.pipeline.settings",
    "Fp16Settings": "edgeres.pipeline.settings",
    "ModelSettings": "edgeres.pipeline.settings",
    "OpenVinoSettings": "edgeres.pipeline.settings",
    "PipelineConfig": "edgeres.pipeline.settings",
    "QuantizeSettings": "edgeres.pipeline.settings",
    "ReportSettings": "edgeres.pipeline.settings",
}

__all__ = [*_EXPORTS]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
