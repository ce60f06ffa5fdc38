"""What a pipeline run did, stage by stage, and the summary table printed at its end."""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edgeres.report.data import ReportPaths

__all__ = ["PipelineResult", "StageResult", "Status", "format_summary"]


class Status(str, enum.Enum):
    """How a stage ended."""

    RAN = "ran"
    #: Its outputs exist, are newer than its inputs, and settings and inputs are unchanged.
    UP_TO_DATE = "up to date"
    #: Not run: unavailable here (TensorRT, a package, data), skipped on request, or after a failure.
    SKIPPED = "skipped"
    FAILED = "failed"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class StageResult:
    """One stage: its status, the seconds it took, the files it wrote (or holds) and why.

    ``reason`` says why a stage was skipped or failed; for a stage that ran or was up to
    date it is a note (e.g. variants left out) or empty. ``error`` is the exception of a
    failed stage, for callers that want its traceback.
    """

    name: str
    status: Status
    seconds: float = 0.0
    outputs: tuple[Path, ...] = ()
    reason: str = ""
    error: BaseException | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.status is not Status.FAILED


@dataclass(frozen=True)
class PipelineResult:
    """Every stage in order, and the report's paths when the report stage ran in this run."""

    out_dir: Path
    stages: tuple[StageResult, ...]
    report: ReportPaths | None = None

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.stages)

    @property
    def failed(self) -> StageResult | None:
        return next((s for s in self.stages if s.status is Status.FAILED), None)

    def __getitem__(self, name: str) -> StageResult:
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(name)

    def __iter__(self) -> Iterator[StageResult]:
        return iter(self.stages)


def _shown(path: Path, out_dir: Path) -> str:
    try:
        return path.relative_to(out_dir).as_posix()
    except ValueError:
        return str(path)


def format_summary(result: PipelineResult) -> str:
    """The stages as a fixed-width table: stage, status, seconds, outputs or reason."""
    rows = [("stage", "status", "seconds", "outputs / reason")]
    for s in result.stages:
        seconds = "-"
        if s.status in (Status.RAN, Status.FAILED):
            seconds = f"{s.seconds:.2f}" if s.seconds < 1 else f"{s.seconds:.1f}"
        files = ", ".join(_shown(p, result.out_dir) for p in s.outputs)
        if s.status in (Status.SKIPPED, Status.FAILED):
            detail = s.reason
        else:
            detail = "; ".join(x for x in (files, s.reason) if x) or "-"
        rows.append((s.name, str(s.status), seconds, detail))
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    w2 = max(len(r[2]) for r in rows)
    lines = [f"{a:<{w0}}  {b:<{w1}}  {c:>{w2}}  {d}".rstrip() for a, b, c, d in rows]
    if result.out_dir.is_dir():
        lines.append(f"all outputs in {result.out_dir}")
    else:  # a fresh folder in which nothing was made is removed again
        lines.append(f"no outputs: nothing was made, so {result.out_dir} was removed again")
    return "\n".join(lines)
