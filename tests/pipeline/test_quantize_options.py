"""The pipeline's [quantize] bias_correction, exclude and weight_bits reach quantize, are checked, and
rerun quantize."""

from __future__ import annotations

import pytest

from edgeres.errors import UsageError


def test_the_options_are_read_from_toml_and_checked() -> None:
    from edgeres.pipeline.config import config_from_mapping

    config = config_from_mapping({"quantize": {"bias_correction": True, "exclude": ["/fc/Gemm", "/conv2*"]}})
    assert config.quantize.bias_correction is True
    assert config.quantize.exclude == ("/fc/Gemm", "/conv2*")
    for bad, message in (
        ({"bias_correction": "yes"}, "quantize.bias_correction"),
        ({"exclude": "/fc/Gemm"}, "quantize.exclude must be a list"),
        ({"exclude": [""]}, "quantize.exclude must be a list"),
        ({"weight_bits": 6}, "quantize.weight_bits must be one of 'auto', 8, 7, got 6"),
        ({"weight_bits": "7"}, "quantize.weight_bits must be one of 'auto', 8, 7, got '7'"),
        ({"weight_bits": True}, "quantize.weight_bits must be"),
    ):
        with pytest.raises(UsageError, match=message):
            config_from_mapping({"quantize": bad})


def test_they_change_the_quantize_fingerprint() -> None:
    from edgeres.pipeline.settings import QuantizeSettings, fingerprint

    base = fingerprint(QuantizeSettings())
    assert fingerprint(QuantizeSettings(bias_correction=False)) != base
    assert fingerprint(QuantizeSettings(exclude=("/fc/Gemm",))) != base
    assert fingerprint(QuantizeSettings(weight_bits=7)) != base
    assert fingerprint(QuantizeSettings(weight_bits=8)) != base
    assert fingerprint(QuantizeSettings(weight_bits="auto")) == base
    assert fingerprint(QuantizeSettings(exclude=("/fc/Gemm",))) == fingerprint(
        QuantizeSettings(exclude=["/fc/Gemm"])
    )


def test_python_callers_get_the_same_checks() -> None:
    from edgeres.pipeline.settings import QuantizeSettings

    with pytest.raises(UsageError, match=r"quantize\.bias_correction must be true or false"):
        QuantizeSettings(bias_correction=1)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match=r"quantize\.exclude must be a list of node names or globs"):
        QuantizeSettings(exclude="/fc/Gemm")  # type: ignore[arg-type]


def test_the_pipeline_passes_them_to_quantize(digits_checkpoint, fast_config, tmp_path) -> None:
    import dataclasses
    import json

    from edgeres.pipeline import run_pipeline

    config = dataclasses.replace(
        fast_config,
        quantize=dataclasses.replace(
            fast_config.quantize, target="cpu", bias_correction=True, exclude=("/fc/*",), weight_bits=7
        ),
        skip=("fp16", "eval", "bench", "report"),
    )
    result = run_pipeline(digits_checkpoint, tmp_path / "out", config, calib="digits", progress=False)
    assert result.ok, [(s.name, s.status.value, s.reason) for s in result.stages]
    target = json.loads((tmp_path / "out" / "quantize.json").read_text())["targets"][0]
    assert target["excluded_nodes"] == ["/fc/Gemm"]
    assert target["bias_correction"]["layers"] == 19 and target["bias_correction"]["images"] == 32
    assert target["weight_bits"] == 7
    import onnx

    props = {p.key: p.value for p in onnx.load(str(tmp_path / "out" / "model.int8.cpu.onnx")).metadata_props}
    assert json.loads(props["edgeres.quantization"])["layout"]["weight_bits"] == 7
