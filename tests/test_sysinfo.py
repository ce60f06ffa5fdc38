from __future__ import annotations

import importlib.metadata
import importlib.util

from edgeres.sysinfo import collect, cpu_model_and_features, format_info, library_version

X86 = """processor : 0
model name : Intel(R) Xeon(R) Platinum 8480+
flags : fpu sse2 avx2 fma avx512f avx512_vnni avx512_bf16 amx_tile amx_int8
"""
ARM = """processor : 0
Features : fp asimd asimddp i8mm sve
CPU part : 0xd42
Hardware : Jetson Orin
"""


def test_parses_x86_vector_extensions() -> None:
    model, features = cpu_model_and_features(X86)
    assert model == "Intel(R) Xeon(R) Platinum 8480+"
    assert {"avx2", "avx512f", "avx512_vnni", "amx_int8"} <= set(features)
    assert "asimd" not in features


def test_parses_arm_features() -> None:
    model, features = cpu_model_and_features(ARM)
    assert model == "Jetson Orin"
    assert {"asimd", "asimddp", "i8mm"} <= set(features)


def test_missing_library_is_reported_as_none() -> None:
    assert library_version("surely-not-an-installed-package-xyz") is None
    assert library_version("numpy")


def test_collect_describes_this_machine() -> None:
    info = collect()
    text = format_info(info)
    assert info.libraries["onnxruntime"]
    assert "CPUExecutionProvider" in info.onnxruntime_providers
    assert info.cpu_count >= 1
    assert "tensorrt" in text


def test_openvino_version_and_devices() -> None:
    from dataclasses import replace

    info = collect()
    assert "openvino" in info.libraries
    if importlib.util.find_spec("openvino") is None:
        assert info.libraries["openvino"] is None and info.openvino_devices == ()
    else:
        assert info.libraries["openvino"] == importlib.metadata.version("openvino")
        assert any(d.startswith("CPU (") for d in info.openvino_devices)
    named = replace(info, libraries={**info.libraries, "openvino": "2026.4.1"}, openvino_devices=("CPU (x)",))
    assert "openvino     2026.4.1" in format_info(named).splitlines()
    assert "openvino     devices: CPU (x)" in format_info(named).splitlines()
    absent = replace(info, libraries={**info.libraries, "openvino": None}, openvino_devices=())
    lines = format_info(absent).splitlines()
    assert "openvino     not installed" in lines and not any("devices:" in line for line in lines)
