"""7-bit weights for the cpu layout: ONNX Runtime then computes what the Q/DQ graph says on every CPU.

x86 CPUs without VNNI (AVX2) add pairs of u8 x s8 products in int16, which saturates: 255 * 127 * 2
is 64770, beyond int16's 32767; with 7-bit weights the pair is at most 255 * 64 * 2 = 32640. The
model here makes every pair large (inputs at the top of their range, every weight its channel's
largest), so the 8-bit model comes out far from its exact result on such a CPU and the 7-bit one
does not. "Exact" is ONNX Runtime with graph optimizations off, which runs each QuantizeLinear
and DequantizeLinear as written (integer math in float, no int8 kernels).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeres.quantize.collect import collect_ranges
from edgeres.quantize.qdq import write_qdq
from edgeres.quantize.settings import CalibrationSettings
from edgeres.runners import OnnxRuntimeRunner
from edgeres.sysinfo import int8_pairs_saturate
from tests.quantize.feeds import Batches

CHANNELS = 32


def conv_model(path: Path) -> Path:
    """input [N, 32, 6, 6] -> Conv 3x3 with every weight 1 -> output (a classifier-shaped graph)."""
    weight = numpy_helper.from_array(np.ones((8, CHANNELS, 3, 3), np.float32), "w")
    bias = numpy_helper.from_array(np.zeros(8, np.float32), "b")
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["input", "w", "b"], ["conv"], name="conv", pads=[1, 1, 1, 1]),
            helper.make_node("GlobalAveragePool", ["conv"], ["pool"], name="pool"),
            helper.make_node("Flatten", ["pool"], ["output"], name="flatten"),
        ],
        "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", CHANNELS, 6, 6])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 8])],
        [weight, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def quantized(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[int, Path], np.ndarray]:
    folder = tmp_path_factory.mktemp("bits")
    fp32 = conv_model(folder / "conv.onnx")
    rng = np.random.default_rng(0)
    calib = [rng.uniform(0, 1, (4, CHANNELS, 6, 6)).astype(np.float32) for _ in range(2)]
    calib.append(np.ones((1, CHANNELS, 6, 6), np.float32))  # the conv's range covers its largest sum
    ranges = collect_ranges(fp32, Batches(calib), CalibrationSettings(method="minmax"), progress=False).ranges
    paths = {
        bits: write_qdq(fp32, ranges, "cpu", folder / f"conv.w{bits}.onnx", weight_bits=bits).path
        for bits in (8, 7)
    }
    x = rng.uniform(0.9, 1.0, (2, CHANNELS, 6, 6)).astype(np.float32)  # near the top: every pair is large
    return paths, x


def exact(path: Path, x: np.ndarray) -> np.ndarray:
    with OnnxRuntimeRunner(path, threads=1, optimize=False) as runner:
        return runner.infer(x)


def run(runtime: str, path: Path, x: np.ndarray) -> np.ndarray:
    """``x`` through the runtime's int8 CPU kernels."""
    if runtime == "openvino":
        pytest.importorskip("openvino", reason="OpenVINO is not installed")
        from edgeres.runners.openvino_runner import OpenVinoRunner

        with OpenVinoRunner(path, threads=1, precision_hint="f32") as ov:
            return ov.infer(x)
    with OnnxRuntimeRunner(path, threads=1) as runner:
        return runner.infer(x)


RUNTIMES = pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])


@RUNTIMES
def test_seven_bit_weights_run_exactly_on_this_cpu(
    runtime: str, quantized: tuple[dict[int, Path], np.ndarray]
) -> None:
    paths, x = quantized
    want, got = exact(paths[7], x), run(runtime, paths[7], x)
    assert np.abs(want).min() > 200  # the sums are large, so a saturated pair would show
    np.testing.assert_allclose(got, want, rtol=0.01)


@RUNTIMES
def test_eight_bit_weights_saturate_only_where_the_cpu_adds_pairs_in_int16(
    runtime: str, quantized: tuple[dict[int, Path], np.ndarray]
) -> None:
    paths, x = quantized
    want, fast = exact(paths[8], x), run(runtime, paths[8], x)
    ratio = float(np.median(fast / want))
    if int8_pairs_saturate():
        assert ratio < 0.8, ratio  # saturated pairs: about half of each sum is lost (0.53 here)
    else:
        np.testing.assert_allclose(fast, want, rtol=0.01)


@pytest.mark.parametrize(
    ("machine", "features", "saturates"),
    [
        ("x86_64", ("avx2", "fma"), True),  # AVX2 only: vpmaddubsw
        ("x86_64", ("avx2", "avx512f"), True),  # AVX-512 without VNNI (Skylake-SP)
        ("x86_64", ("avx2", "avx512f", "avx512_vnni"), False),
        ("x86_64", ("avx2", "avx_vnni"), False),  # Alder Lake's AVX-VNNI
        ("AMD64", ("amx_int8",), False),
        ("aarch64", ("asimd",), False),  # Arm: int32 accumulation
        ("arm64", (), False),
    ],
)
def test_which_cpus_saturate(machine: str, features: tuple[str, ...], saturates: bool) -> None:
    assert int8_pairs_saturate(machine, features) is saturates


@pytest.fixture(scope="module")
def layouts(
    quantized: tuple[dict[int, Path], np.ndarray], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """The conv model in both layouts and both weight widths, and in float."""
    paths, x = quantized
    folder = paths[8].parent
    fp32 = folder / "conv.onnx"
    ranges = collect_ranges(fp32, Batches([x]), CalibrationSettings(method="minmax"), progress=False).ranges
    trt = write_qdq(fp32, ranges, "tensorrt", folder / "conv.trt.onnx").path
    return {"fp32": fp32, "cpu8": paths[8], "cpu7": paths[7], "tensorrt": trt}


def test_the_weight_levels_are_read_from_the_graph(layouts: dict[str, Path]) -> None:
    from edgeres.quantize.saturation import int8_weight_levels

    assert int8_weight_levels(layouts["cpu8"]) == (127, True)  # int8 initializers, u8 activations
    assert int8_weight_levels(layouts["cpu7"]) == (64, True)
    assert int8_weight_levels(layouts["tensorrt"]) == (127, False)  # float weights behind a QuantizeLinear
    assert int8_weight_levels(layouts["fp32"]) is None


@pytest.mark.parametrize(
    ("model", "backend", "device", "saturates", "warned"),
    [
        ("cpu8", "onnxruntime", "cpu", True, True),
        ("cpu8", "openvino", "CPU", True, True),
        ("cpu8", "onnxruntime", "cpu", False, False),  # VNNI, AMX or Arm: exact
        ("cpu7", "onnxruntime", "cpu", True, False),
        ("cpu7", "openvino", "CPU", True, False),
        ("tensorrt", "onnxruntime", "cpu", True, False),  # s8 activations: ORT computes it exactly
        ("tensorrt", "openvino", "CPU", True, True),
        ("cpu8", "onnxruntime", "cuda", True, False),
        ("cpu8", "openvino", "GPU", True, False),
        ("cpu8", "torch", "cpu", True, False),
        ("fp32", "onnxruntime", "cpu", True, False),
    ],
)
def test_which_runs_get_the_caveat(
    layouts: dict[str, Path], model: str, backend: str, device: str, saturates: bool, warned: bool
) -> None:
    from edgeres.quantize.saturation import saturation_caveat

    caveat = saturation_caveat(layouts[model], backend, device, saturates=saturates)
    assert (caveat is not None) is warned
    if caveat:
        assert (
            caveat.startswith(f"this CPU has no VNNI: {backend}'s int8 kernels")
            and "--weight-bits 7" in caveat
        )


def test_auto_is_seven_exactly_where_this_cpu_saturates() -> None:
    from edgeres.errors import UsageError
    from edgeres.quantize.targets import DEFAULT_WEIGHT_BITS, bits_for, resolve_weight_bits, weight_bits

    assert DEFAULT_WEIGHT_BITS == "auto"
    assert bits_for("tensorrt", 7) == bits_for("tensorrt", "auto") == 8
    assert bits_for("cpu", "auto") == bits_for("openvino", "auto") == resolve_weight_bits("auto")
    assert (bits_for("openvino", 7), bits_for("cpu", 7), bits_for("openvino", 8)) == (7, 7, 8)
    assert resolve_weight_bits("auto") == (7 if int8_pairs_saturate() else 8)
    assert (resolve_weight_bits(8), resolve_weight_bits(7)) == (8, 7)
    assert [weight_bits(v) for v in ("auto", "AUTO", " 8", "7", 8, 7)] == ["auto", "auto", 8, 7, 8, 7]
    for bad in (6, "6", True, 8.5, None, "eight"):
        with pytest.raises(UsageError, match="weight bits must be auto, 8 or 7"):
            weight_bits(bad)
