"""What this machine can run: library versions, CPU features, GPUs, ONNX Runtime providers, OpenVINO devices.

Every benchmark result records this, and ``edgeres info`` prints it.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import platform
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# CPU flags that decide how fast INT8 and FP16 run, by the name /proc/cpuinfo gives them.
_X86_FEATURES = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_int8")
_ARM_FEATURES = ("asimd", "asimddp", "i8mm", "sve", "sve2", "bf16")
LIBRARIES = ("torch", "onnx", "onnxruntime", "tensorrt", "openvino", "numpy", "click")


@dataclass(frozen=True)
class CudaDevice:
    index: int
    name: str
    compute_capability: str
    memory_gib: float


@dataclass(frozen=True)
class SystemInfo:
    python: str
    platform: str
    cpu_model: str
    cpu_count: int
    cpu_features: tuple[str, ...]
    libraries: dict[str, str | None]
    cuda_devices: tuple[CudaDevice, ...] = ()
    cuda_driver: str | None = None
    onnxruntime_providers: tuple[str, ...] = ()
    jetson: dict[str, str] = field(default_factory=dict)
    #: OpenVINO's devices with their names, e.g. "CPU (Intel(R) Xeon(R) ...)"; empty without OpenVINO.
    openvino_devices: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def library_version(name: str) -> str | None:
    """The installed version of ``name``, or None when it is not installed."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        pass
    try:  # e.g. TensorRT from JetPack, installed without pip metadata
        module = importlib.import_module(name)
    except Exception:  # a broken install must not break `edgeres info`
        return None
    return str(getattr(module, "__version__", "unknown"))


def cpu_model_and_features(cpuinfo: str | None = None) -> tuple[str, tuple[str, ...]]:
    """Parse /proc/cpuinfo (or the given text) for the CPU name and its vector extensions."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            return platform.processor() or platform.machine(), ()
    model, flags = "", set[str]()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "hardware", "cpu model") and not model:
            model = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = set(value.split())
    wanted = _X86_FEATURES + _ARM_FEATURES
    return model or platform.processor() or platform.machine(), tuple(f for f in wanted if f in flags)


#: Any of these gives an x86 CPU int8 dot products that accumulate in int32 (no int16 pair sums).
_INT8_DOT_FEATURES = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})


def int8_pairs_saturate(machine: str | None = None, features: tuple[str, ...] | None = None) -> bool:
    """True on an x86 CPU without VNNI or AMX (AVX2, AVX-512 without VNNI).

    ONNX Runtime's and OpenVINO's u8 x s8 kernels there add pairs of products in int16
    (``vpmaddubsw``), which saturates once two neighbouring products of 8-bit weights are large:
    a cpu-layout model with 8-bit weights then computes less exactly than its Q/DQ graph says,
    and one with 7-bit weights (``edgeres quantize --weight-bits 7``) does not. Arm CPUs and x86
    CPUs with VNNI or AMX accumulate in int32.
    """
    machine = (machine or platform.machine()).lower()
    if machine not in ("x86_64", "amd64", "i386", "i686", "x86"):
        return False
    if features is None:
        features = cpu_model_and_features()[1]
    return not (_INT8_DOT_FEATURES & set(features))


def _cuda() -> tuple[tuple[CudaDevice, ...], str | None]:
    try:
        import torch
    except ImportError:
        return (), None
    if not torch.cuda.is_available():
        return (), None
    devices = []
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        devices.append(CudaDevice(i, p.name, f"{p.major}.{p.minor}", round(p.total_memory / 2**30, 1)))
    return tuple(devices), torch.version.cuda


def _ort_providers() -> tuple[str, ...]:
    try:
        import onnxruntime
    except ImportError:
        return ()
    return tuple(onnxruntime.get_available_providers())


def _openvino_devices() -> tuple[str, ...]:
    try:
        if importlib.util.find_spec("openvino") is None:
            return ()
        import openvino

        core = openvino.Core()
        return tuple(f"{d} ({core.get_property(d, 'FULL_DEVICE_NAME')})" for d in core.available_devices)
    except Exception:  # a broken or blocked install, a plugin without its driver: not `edgeres info`'s end
        return ()


def _jetson() -> dict[str, str]:
    info: dict[str, str] = {}
    release = Path("/etc/nv_tegra_release")
    if release.exists():
        info["l4t"] = release.read_text(errors="replace").splitlines()[0].strip("# ").strip()
        nvp = Path("/etc/nvpmodel.conf")
        if nvp.exists():
            info["nvpmodel_conf"] = str(nvp)
    return info


def collect() -> SystemInfo:
    model, features = cpu_model_and_features()
    devices, driver = _cuda()
    return SystemInfo(
        python=sys.version.split()[0],
        platform=f"{platform.system()} {platform.release()} {platform.machine()}",
        cpu_model=model,
        cpu_count=os.cpu_count() or 1,
        cpu_features=features,
        libraries={name: library_version(name) for name in LIBRARIES},
        cuda_devices=devices,
        cuda_driver=driver,
        onnxruntime_providers=_ort_providers(),
        jetson=_jetson(),
        openvino_devices=_openvino_devices(),
    )


def format_info(info: SystemInfo) -> str:
    lines = [f"edgeres {library_version('edgeres') or 'dev'}", f"python       {info.python}"]
    for name, version in info.libraries.items():
        lines.append(f"{name:<12} {version or 'not installed'}")
    lines.append(f"platform     {info.platform}")
    lines.append(f"cpu          {info.cpu_model} ({info.cpu_count} logical cores)")
    lines.append(f"cpu features {' '.join(info.cpu_features) or 'none of the INT8/FP16 extensions'}")
    if info.cuda_devices:
        lines.append(f"cuda         {info.cuda_driver}")
        for d in info.cuda_devices:
            lines.append(f"  cuda:{d.index}     {d.name}, sm {d.compute_capability}, {d.memory_gib} GiB")
    else:
        lines.append("cuda         no CUDA device visible to torch")
    lines.append(f"onnxruntime  providers: {', '.join(info.onnxruntime_providers) or 'none'}")
    if info.libraries.get("openvino"):
        lines.append(f"openvino     devices: {', '.join(info.openvino_devices) or 'none'}")
    for key, value in info.jetson.items():
        lines.append(f"jetson       {key}: {value}")
    return "\n".join(lines)
