"""``quantize --exclude``: layers kept in float by name or glob; a name that matches nothing fails early."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeres.errors import UsageError
from tests.quantize.conftest import FragileModel


def _weighted(path: Path) -> list[str]:
    import onnx

    return [n.name for n in onnx.load(str(path)).graph.node if n.op_type in ("Conv", "Gemm")]


def test_names_and_globs_pick_nodes_once_in_order(fragile_model: FragileModel) -> None:
    from edgeres.quantize.exclude import resolve_excludes

    nodes = _weighted(fragile_model.fp32)
    assert resolve_excludes(fragile_model.fp32, ()) == ()
    assert resolve_excludes(fragile_model.fp32, [fragile_model.fragile]) == (fragile_model.fragile,)
    second_convs = [n for n in nodes if n.startswith("/conv2")]
    assert len(second_convs) == 9
    assert resolve_excludes(fragile_model.fp32, ["/conv2*", second_convs[0]]) == tuple(second_convs)
    assert resolve_excludes(fragile_model.fp32, ["/fc/Gemm", "/conv2*"]) == ("/fc/Gemm", *second_convs)


def test_a_name_that_matches_nothing_lists_close_names(fragile_model: FragileModel) -> None:
    from edgeres.quantize.exclude import resolve_excludes

    with pytest.raises(UsageError) as err:
        resolve_excludes(fragile_model.fp32, ["/fc/Gem"])
    message = str(err.value)
    assert message.startswith("--exclude '/fc/Gem' names no node of ") and "close names: /fc/Gemm" in message
    assert "\n" not in message


def test_quantize_keeps_the_excluded_layer_float(
    fragile_model: FragileModel, tmp_path: Path, run_cli
) -> None:
    import onnx

    from edgeres.records import read_quantize

    out, js = tmp_path / "m.onnx", tmp_path / "q.json"
    r = run_cli(
        "quantize", str(fragile_model.fp32), "--calib", fragile_model.data, "--calib-size", "32",
        "--target", "cpu", "-o", str(out), "--exclude", fragile_model.fragile, "--json", str(js),
        "--no-progress",
    )  # fmt: skip
    assert r.code == 0, r.err
    assert f"kept in float: {fragile_model.fragile}" in r.out
    assert read_quantize(js).targets[0].excluded_nodes == (fragile_model.fragile,)
    graph = onnx.load(str(out)).graph
    producers = {o: n for n in graph.node for o in n.output}
    weight_from = {n.name: producers.get(n.input[1]) for n in graph.node if n.op_type in ("Conv", "Gemm")}
    assert weight_from[fragile_model.fragile] is None  # its float weight is an initializer
    assert sum(1 for w in weight_from.values() if w is not None and w.op_type == "DequantizeLinear") == 19


def test_a_typo_fails_before_calibration(fragile_model: FragileModel, tmp_path: Path, run_cli) -> None:
    r = run_cli(
        "quantize", str(fragile_model.fp32), "--calib", fragile_model.data, "-o", str(tmp_path / "m.onnx"),
        "--exclude", "/conv9/*",
    )  # fmt: skip
    assert r.code == 2
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"error: --exclude '/conv9/*' names no node of {fragile_model.fp32}"
    )
    assert list(tmp_path.iterdir()) == []  # no calibration cache: it failed first


def test_max_drop_tunes_around_the_excluded_layers(fragile_model: FragileModel, tmp_path: Path) -> None:
    from edgeres.quantize.workflow import QuantizeOptions, quantize

    first = _weighted(fragile_model.fp32)[0]
    opts = QuantizeOptions(
        calib=fragile_model.data, eval_data=fragile_model.data, target="cpu", calib_size=64,
        max_drop=5.0, exclude=(first,), progress=False,
    )  # fmt: skip
    report = quantize(fragile_model.fp32, tmp_path / "m.onnx", opts)
    t = report.targets[0]
    assert t.excluded_nodes[0] == first
    assert fragile_model.fragile in t.excluded_nodes  # the tuning still found the fragile layer
    assert first not in t.sensitivity and fragile_model.fragile in t.sensitivity
