"""The JSON sidecar beside every engine (``model.engine.json``): where and how it was built.

A TensorRT engine runs only with the TensorRT version and on the GPU generation that
built it. The sidecar records both, so :func:`check_compatible` can say so in one line
*before* TensorRT is handed a foreign engine. It also carries the model's
:class:`~edgeres.metadata.ModelMeta` (labels, preprocessing), the precision, the batch
profile, the source ONNX's SHA-256 and the build options. Pure Python: no TensorRT needed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgeres.atomic import write_text_atomic
from edgeres.errors import EdgeresError
from edgeres.metadata import ModelMeta

__all__ = [
    "SIDECAR_FORMAT",
    "SIDECAR_SUFFIX",
    "EngineSidecar",
    "check_compatible",
    "gpu_info",
    "read_sidecar",
    "sha256_file",
    "sidecar_path",
    "write_sidecar",
]

log = logging.getLogger(__name__)

SIDECAR_FORMAT = "edgeres-engine"
SIDECAR_VERSION = 1
SIDECAR_SUFFIX = ".json"
REBUILD_HINT = "rebuild it on this device with `edgeres build-engine`"


@dataclass(frozen=True)
class EngineSidecar:
    """What an engine is: built by which TensorRT on which GPU, from which model, how."""

    tensorrt_version: str
    gpu_name: str | None
    #: "major.minor", e.g. "8.7" for Orin, "9.0" for H100.
    compute_capability: str | None
    #: fp32, fp16, int8 or int8+fp16: what the ONNX that was built declares.
    precision: str
    input_name: str
    output_name: str
    #: NCHW shapes of the optimization profile: {"min": [...], "opt": [...], "max": [...]}.
    profile: Mapping[str, list[int]]
    onnx_path: str
    onnx_sha256: str
    options: Mapping[str, Any] = field(default_factory=dict)
    built_at: str = ""
    build_seconds: float = 0.0
    edgeres_version: str = ""
    meta: ModelMeta | None = None
    dla_core: int | None = None

    @property
    def batch_range(self) -> tuple[int, int]:
        return (int(self.profile["min"][0]), int(self.profile["max"][0]))

    def describe_target(self) -> str:
        return _target(self.tensorrt_version, self.gpu_name, self.compute_capability)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["meta"] = None if self.meta is None else self.meta.to_dict()
        d["profile"] = {k: [int(v) for v in vals] for k, vals in self.profile.items()}
        d["options"] = dict(self.options)
        return {"format": SIDECAR_FORMAT, "version": SIDECAR_VERSION, **d}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EngineSidecar:
        if d.get("format") != SIDECAR_FORMAT:
            raise ValueError(f"not an edgeres engine sidecar (format {d.get('format')!r})")
        if int(d.get("version", 0)) > SIDECAR_VERSION:
            raise ValueError(f"written by a newer edgeres (sidecar version {d['version']}); upgrade edgeres")
        profile = {k: [int(v) for v in d["profile"][k]] for k in ("min", "opt", "max")}
        meta = d.get("meta")
        return cls(
            tensorrt_version=str(d["tensorrt_version"]),
            gpu_name=d.get("gpu_name"),
            compute_capability=None if d.get("compute_capability") is None else str(d["compute_capability"]),
            precision=str(d["precision"]),
            input_name=str(d["input_name"]),
            output_name=str(d["output_name"]),
            profile=profile,
            onnx_path=str(d.get("onnx_path", "")),
            onnx_sha256=str(d.get("onnx_sha256", "")),
            options=dict(d.get("options") or {}),
            built_at=str(d.get("built_at", "")),
            build_seconds=float(d.get("build_seconds", 0.0)),
            edgeres_version=str(d.get("edgeres_version", "")),
            meta=None if meta is None else ModelMeta.from_dict(meta),
            dla_core=None if d.get("dla_core") is None else int(d["dla_core"]),
        )


def sidecar_path(engine_path: str | os.PathLike[str]) -> Path:
    """``model.engine`` -> ``model.engine.json``."""
    engine_path = Path(engine_path)
    return engine_path.with_name(engine_path.name + SIDECAR_SUFFIX)


def write_sidecar(engine_path: str | os.PathLike[str], sidecar: EngineSidecar) -> Path:
    """Write ``sidecar`` next to ``engine_path`` atomically; returns the sidecar's path."""
    path = sidecar_path(engine_path)
    write_text_atomic(path, sidecar.to_json())
    return path


def read_sidecar(engine_path: str | os.PathLike[str]) -> EngineSidecar | None:
    """The sidecar of ``engine_path``, or None when it has none; a damaged one raises."""
    path = sidecar_path(engine_path)
    if not path.is_file():
        return None
    try:
        return EngineSidecar.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, KeyError, TypeError, EdgeresError) as exc:  # JSONDecodeError is a ValueError
        raise EdgeresError(
            f"engine sidecar '{path}' is damaged ({exc}); "
            "delete it or rebuild the engine with `edgeres build-engine`"
        ) from exc


def check_compatible(
    sidecar: EngineSidecar,
    trt_version: str,
    gpu_name: str | None,
    compute_capability: str | None,
    *,
    engine: str = "",
) -> None:
    """Raise :class:`EdgeresError` unless the engine can run with this TensorRT on this GPU.

    An engine needs the TensorRT version that built it (major.minor.patch) and a GPU of the
    same compute capability. Another GPU model of the same compute capability runs it, maybe
    slower: that is only a warning. Unknown values (None) are not compared.
    """
    same_trt = _release(sidecar.tensorrt_version) == _release(trt_version)
    cc_known = sidecar.compute_capability is not None and compute_capability is not None
    same_cc = not cc_known or _cc(sidecar.compute_capability) == _cc(compute_capability)
    label = engine or Path(sidecar.onnx_path).stem or "engine"
    if not (same_trt and same_cc):
        raise EdgeresError(
            f"engine {label} was built for {sidecar.describe_target()}; "
            f"this is {_target(trt_version, gpu_name, compute_capability)}: {REBUILD_HINT}"
        )
    if sidecar.gpu_name and gpu_name and sidecar.gpu_name != gpu_name:
        log.warning(
            "engine %s was tuned on %s and runs on %s (same sm %s): it works, but may be slower; %s",
            label,
            sidecar.gpu_name,
            gpu_name,
            compute_capability,
            REBUILD_HINT,
        )


def gpu_info(index: int = 0) -> tuple[str | None, str | None]:
    """(name, compute capability "major.minor") of CUDA device ``index``, from torch or nvidia-smi."""
    try:
        import torch

        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(index)
            return str(props.name), f"{props.major}.{props.minor}"
    except Exception:  # a broken CUDA setup must not stop a build that TensorRT can do
        log.debug("torch cannot describe CUDA device %d", index, exc_info=True)
    query = ["nvidia-smi", f"--id={index}", "--query-gpu=name,compute_cap", "--format=csv,noheader"]
    try:
        out = subprocess.run(query, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None, None
    name, _, cc = (out.stdout.strip().splitlines() or [""])[0].rpartition(",")
    return (name.strip(), cc.strip()) if out.returncode == 0 and name else (None, None)


def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _release(version: str) -> tuple[str, ...]:
    """TensorRT 10.3.0.30 -> ("10", "3", "0"): engines are tied to major.minor.patch."""
    parts = [*str(version).split(".")[:3], "0", "0"]
    return tuple(parts[:3])


def _cc(value: str | None) -> str:
    text = str(value).lower().removeprefix("sm").strip().strip("_")
    return text if "." in text or len(text) < 2 else f"{text[:-1]}.{text[-1]}"


def _short(version: str) -> str:
    parts = str(version).split(".")
    return ".".join(parts[:3]) if len(parts) > 2 and parts[2] != "0" else ".".join(parts[:2])


def _target(trt_version: str, gpu_name: str | None, compute_capability: str | None) -> str:
    gpu = gpu_name or "an unknown GPU"
    sm = f" (sm {_cc(compute_capability)})" if compute_capability else ""
    return f"TensorRT {_short(trt_version)} on {gpu}{sm}"
