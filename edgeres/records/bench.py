"""The bench result file: ``edgeres bench --json`` and the pipeline's ``bench.json``.

``{"kind": "edgeres.bench", "schema": 1, "environment": {...}, "settings": {...},
"noisy_cv", "results": [...]}``: where it ran (``edgeres info`` as data, plus the
threads), how, the coefficient of variation above which a row is noisy, and one row per
model and batch size (a :class:`~edgeres.bench.BenchResult`).

Fields added to the rows since schema 1 was first written (``streams``, ``images_per_s``,
``ms_per_image``, ``caveat``) are read with their defaults from older files.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from edgeres.bench.results import NOISY_CV, BenchResult
from edgeres.records.fields import Fields
from edgeres.records.files import header, read_record, write_record

__all__ = ["BenchEnvironment", "BenchRecord", "Gpu", "read_bench", "write_bench"]


@dataclass(frozen=True)
class Gpu:
    index: int | None
    name: str | None
    compute_capability: str | None
    memory_gib: float | None

    @classmethod
    def read(cls, f: Fields) -> Gpu:
        return cls(f.integer("index"), f.text("name"), f.text("compute_capability"), f.number("memory_gib"))


@dataclass(frozen=True)
class BenchEnvironment:
    """The machine the rows were timed on (``edgeres info``'s fields) and the CPU threads asked for."""

    python: str | None
    platform: str | None
    cpu_model: str | None
    cpu_count: int | None
    cpu_features: tuple[str, ...]
    #: Package -> version (None: not installed), in the order edgeres info lists them.
    libraries: tuple[tuple[str, str | None], ...]
    cuda_devices: tuple[Gpu, ...] = ()
    cuda_driver: str | None = None
    onnxruntime_providers: tuple[str, ...] = ()
    jetson: tuple[tuple[str, str], ...] = ()
    threads: int | None = None

    @classmethod
    def of(cls, system_info: Any, threads: int | None) -> BenchEnvironment:
        """From a :class:`edgeres.sysinfo.SystemInfo` (or its ``to_dict()``) as the file stores it."""
        info = system_info.to_dict() if hasattr(system_info, "to_dict") else dict(system_info)
        plain = json.loads(json.dumps({**info, "threads": threads}, default=str))
        return cls.read(Fields(plain, "environment."))

    def to_dict(self) -> dict[str, Any]:
        return {
            "python": self.python,
            "platform": self.platform,
            "cpu_model": self.cpu_model,
            "cpu_count": self.cpu_count,
            "cpu_features": list(self.cpu_features),
            "libraries": dict(self.libraries),
            "cuda_devices": [dataclasses.asdict(g) for g in self.cuda_devices],
            "cuda_driver": self.cuda_driver,
            "onnxruntime_providers": list(self.onnxruntime_providers),
            "jetson": dict(self.jetson),
            "threads": self.threads,
        }

    @classmethod
    def read(cls, f: Fields) -> BenchEnvironment:
        libraries = f.sub("libraries")
        jetson = f.sub("jetson")
        return cls(
            python=f.text("python"),
            platform=f.text("platform"),
            cpu_model=f.text("cpu_model"),
            cpu_count=f.integer("cpu_count"),
            cpu_features=f.texts("cpu_features"),
            libraries=tuple((str(k), libraries.text(k)) for k in libraries.data),
            cuda_devices=tuple(Gpu.read(g) for g in f.objects("cuda_devices")),
            cuda_driver=f.text("cuda_driver"),
            onnxruntime_providers=f.texts("onnxruntime_providers"),
            jetson=tuple((str(k), jetson.required_text(k)) for k in jetson.data),
            threads=f.integer("threads"),
        )


# How a row's field is read, by its declared type; a new type fails here, not silently.
_ROW_FIELDS = {
    "str": lambda f, k: f.required_text(k) if f.strict or k == "model" else f.text(k) or "",
    "int": lambda f, k: f.required_integer(k) if f.strict or k == "batch" else f.integer(k) or 0,
    "int | None": lambda f, k: f.integer(k),
    "float | None": lambda f, k: f.number(k),
    "str | None": lambda f, k: f.text(k),
    "bool": lambda f, k: f.flag(k),
}


#: Row fields added after the first files were written: optional even in a strict read.
_ADDED = ("streams", "ms_per_image", "images_per_s", "caveat")


def _row(f: Fields) -> BenchResult:
    lax = Fields(f.data, f.where, strict=False)
    row = {
        x.name: _ROW_FIELDS[str(x.type)](lax if x.name in _ADDED else f, x.name)
        for x in dataclasses.fields(BenchResult)
    }
    row["streams"] = row["streams"] or 1
    return BenchResult(**row)


@dataclass(frozen=True)
class BenchRecord:
    """Latency rows and the environment they were measured in."""

    KIND: ClassVar[str] = "edgeres.bench"
    NAME: ClassVar[str] = "bench"
    SCHEMA: ClassVar[int] = 1

    environment: BenchEnvironment
    #: The settings of the run (batches, warm-up, iterations, ...), as plain data.
    settings: Mapping[str, Any]
    noisy_cv: float
    results: tuple[BenchResult, ...]

    @classmethod
    def of(
        cls,
        results: Sequence[BenchResult],
        system_info: Any,
        *,
        threads: int | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> BenchRecord:
        plain = json.loads(json.dumps(dict(settings or {}), default=str))
        return cls(BenchEnvironment.of(system_info, threads), plain, NOISY_CV, tuple(results))

    def to_dict(self) -> dict[str, Any]:
        return {
            **header(self),
            "environment": self.environment.to_dict(),
            "settings": dict(self.settings),
            "noisy_cv": self.noisy_cv,
            "results": [r.to_dict() for r in self.results],
        }

    @classmethod
    def from_dict(cls, data: Any, *, strict: bool = True) -> Self:
        f = Fields(data, strict=strict)
        noisy_cv = f.number("noisy_cv")
        return cls(
            environment=BenchEnvironment.read(f.sub("environment")),
            settings=f.mapping("settings"),
            noisy_cv=NOISY_CV if noisy_cv is None else noisy_cv,
            results=tuple(_row(r) for r in f.objects("results")),
        )


def write_bench(path: str | os.PathLike[str], record: BenchRecord) -> None:
    """Write a bench result file, atomically."""
    write_record(path, record)


def read_bench(path: str | os.PathLike[str], data: Any = None) -> BenchRecord:
    """Read a bench result file (``data``: its JSON, when already loaded); one-line errors."""
    return read_record(path, BenchRecord, data)


def to_json(
    results: Sequence[BenchResult],
    system_info: Any,
    *,
    threads: int | None = None,
    settings: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The report as bench.json holds it (:class:`edgeres.records.BenchRecord`): the environment
    (system info, threads), the settings and every result.

    ``system_info`` is a :class:`edgeres.sysinfo.SystemInfo` or its ``to_dict()``.
    """
    return BenchRecord.of(results, system_info, threads=threads, settings=settings).to_dict()
