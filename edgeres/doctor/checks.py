"""The rows of ``edgeres doctor``: one :class:`Check` per thing checked, the report and its table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = ["KIND", "SCHEMA", "STATUSES", "Check", "DoctorReport", "Status", "format_table"]

Status = Literal["ok", "missing", "failed", "skipped"]
STATUSES: tuple[str, ...] = ("ok", "missing", "failed", "skipped")
#: The JSON record's ``kind`` and ``schema`` (raised when a field changes meaning).
KIND = "doctor"
SCHEMA = 1


@dataclass(frozen=True)
class Check:
    """One row: what was checked, how it went, and the numbers behind a round trip.

    ``required`` marks a package or device the run cannot do without: missing, it fails the
    run; a missing optional one (TensorRT on a machine without a GPU) does not. A ``failed``
    check always fails the run. ``agreement`` is the share of images on which the checked
    model and its reference predict the same class; ``min_agreement`` the share asked for.
    """

    name: str
    status: Status
    detail: str = ""
    required: bool = False
    agreement: float | None = None
    min_agreement: float | None = None
    max_abs_diff: float | None = None
    #: Median milliseconds of one batch-1 inference, host to host.
    latency_ms: float | None = None
    #: What the check itself took (an engine build, an export), seconds.
    seconds: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"unknown check status {self.status!r}")

    @property
    def is_failure(self) -> bool:
        return self.status == "failed" or (self.status == "missing" and self.required)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["is_failure"] = self.is_failure
        return d


@dataclass(frozen=True)
class DoctorReport:
    """Every check of one run, in order, with the machine's description."""

    checks: tuple[Check, ...]
    system: dict[str, Any]
    settings: dict[str, Any]
    edgeres_version: str
    seconds: float
    #: Where the built models were kept (``--keep``), else None.
    kept: str | None = None

    @property
    def failures(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.is_failure)

    @property
    def ok(self) -> bool:
        return not self.failures

    def check(self, name: str) -> Check:
        """The row called ``name``; KeyError when there is none."""
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def summary(self) -> str:
        """One line: all good, or which checks failed and why."""
        counts = {s: sum(c.status == s for c in self.checks) for s in STATUSES}
        tally = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        if self.ok:
            return f"all checks that can run here passed ({tally}, {self.seconds:.0f} s)"
        reasons = "; ".join(f"{c.name}: {c.detail}" for c in self.failures)
        n = len(self.failures)
        return f"{n} check{'s' if n > 1 else ''} failed: {reasons}"

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` record: ``kind`` "doctor", ``schema`` 1."""
        return {
            "kind": KIND,
            "schema": SCHEMA,
            "edgeres": self.edgeres_version,
            "ok": self.ok,
            "seconds": round(self.seconds, 3),
            "settings": self.settings,
            "kept": self.kept,
            "checks": [c.to_dict() for c in self.checks],
            "system": self.system,
        }


def format_table(checks: Sequence[Check]) -> str:
    """The checks as a plain-text table: check, status, detail."""
    width = max([len("check"), *(len(c.name) for c in checks)])
    lines = [f"{'check':<{width}}  {'status':<8}  detail"]
    lines.append(f"{'-' * width}  {'-' * 8}  {'-' * 6}")
    for c in checks:
        lines.append(f"{c.name:<{width}}  {c.status:<8}  {c.detail}".rstrip())
    return "\n".join(lines)
