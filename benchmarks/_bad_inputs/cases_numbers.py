"""Wrong numbers: results that look fine and are not, and numeric options that make no sense."""

from __future__ import annotations

import json
import math
import subprocess

from _bad_inputs.core import Case, Check, Ctx, Setup, cases, command_env, edgeres_argv, expect, load_json
from _bad_inputs.fixtures import COUNTS, TRUE_TOP1, write_images

#: Unsorted class names are valid: give the right number (by name), or at least refuse.
_RIGHT_OR_REFUSED = expect(0, 1)
_EVAL = ["--data", "in/data", "--json", "out/e.json", "--no-progress"]
_Q = ["--calib", "in/data", "--calib-size", "6", "--no-progress"]


def _top1_is(value: float, json_name: str = "e.json") -> Check:
    def check(ctx: Ctx) -> list[str]:
        assert ctx.proc is not None
        if ctx.proc.rc != 0:
            return []  # refusing is allowed where the case expects it; the exit status is judged
        got = load_json(ctx.out / json_name)["result"]["top1"]
        if not math.isclose(got, value, abs_tol=1e-9):
            return [f"wrong number: top-1 {got:.4f}, right (by class name) {value:.4f}"]
        return []

    return check


def _answered_share(per_class: dict[str, object]) -> float:
    """The right top-1 of the fixture model, which answers 'cat' for every image, on the images evaluated.

    quantize and the pipeline evaluate only the images they held out of calibration, so the
    right value is the share of cats among those, read from the per-class image counts.
    """
    totals = {k: (v["total"] if isinstance(v, dict) else v[1]) for k, v in per_class.items()}
    return totals.get("cat", 0) / max(1, sum(totals.values()))


def _quant_top1(ctx: Ctx) -> list[str]:
    assert ctx.proc is not None
    if ctx.proc.rc != 0:
        return []
    data = load_json(ctx.out / "q.json")
    got, right = data["fp32_top1"], _answered_share(data["targets"][0]["per_class"])
    if got is None or not math.isclose(got, right, abs_tol=1e-9):
        return [f"wrong number: FP32 top-1 {got}, right (by class name) {right:.4f}"]
    return []


def _pipeline_top1(ctx: Ctx) -> list[str]:
    assert ctx.proc is not None
    if ctx.proc.rc != 0:
        return []
    result = load_json(ctx.out / "p" / "eval_fp32.json")["result"]
    got, right = result["top1"], _answered_share(result["per_class"])
    if not math.isclose(got, right, abs_tol=1e-9):
        return [f"wrong number: pipeline FP32 top-1 {got:.4f}, right (by class name) {right:.4f}"]
    return []


def _manifest_top1(ctx: Ctx) -> list[str]:
    assert ctx.proc is not None
    if ctx.proc.rc != 0:
        return []
    lines = [
        ln for ln in (ctx.inputs / "calib.txt").read_text().splitlines() if ln and not ln.startswith("#")
    ]
    right = sum(ln.split()[-1].startswith("cat/") for ln in lines) / len(lines)
    return _top1_is(right)(ctx)


def _extra_class(ctx: Ctx) -> None:
    write_images(ctx.inputs / "data", {"fish": 2}, seed=5)


def _thousand(ctx: Ctx) -> None:
    subprocess.run(
        edgeres_argv(["create", "resnet20", "--num-classes", "1000", "-o", "in/k.pt"]),
        cwd=ctx.case_dir,
        env=command_env(),
        check=True,
        capture_output=True,
    )


def _cache_with(field: str, value: object) -> Setup:
    def setup(ctx: Ctx) -> None:
        path = ctx.inputs / "q.calib.json"
        data = json.loads(path.read_text())
        data["tensors"][3][field] = value
        (ctx.inputs / "bad.calib.json").write_text(json.dumps(data))  # json writes inf/nan as Infinity/NaN

    return setup


def _q_cache(name: str, field: str, value: object, why: str) -> Case:
    return Case(
        name,
        "numbers",
        ["quantize", "in/m.onnx", "--calib-cache", "in/bad.calib.json", "-o", "out/q.onnx"],
        expect(1),
        why,
        setup=_cache_with(field, value),
    )


@cases
def numbers() -> list[Case]:
    total = sum(COUNTS.values())
    return [
        Case(
            "eval-unsorted-classes-onnx",
            "numbers",
            ["eval", "in/m.onnx", *_EVAL],
            _RIGHT_OR_REFUSED,
            "class names cat,dog,bird (not sorted): folders must be matched by name",
            check=_top1_is(TRUE_TOP1),
        ),
        Case(
            "eval-unsorted-classes-pt",
            "numbers",
            ["eval", "in/m.pt", *_EVAL],
            _RIGHT_OR_REFUSED,
            "same, torch checkpoint",
            check=_top1_is(TRUE_TOP1),
        ),
        Case(
            "eval-unsorted-classes-int8",
            "numbers",
            ["eval", "in/q.onnx", *_EVAL],
            _RIGHT_OR_REFUSED,
            "same, INT8 ONNX",
            check=_top1_is(TRUE_TOP1),
        ),
        Case(
            "eval-unsorted-classes-manifest",
            "numbers",
            ["eval", "in/m.onnx", "--data", "in/calib.txt", "--json", "out/e.json", "--no-progress"],
            _RIGHT_OR_REFUSED,
            "a manifest's labels are class names too",
            check=_manifest_top1,
        ),
        Case(
            "quantize-eval-unsorted-classes",
            "numbers",
            ["quantize", "in/m.onnx", *_Q, "--eval", "in/data", "-o", "out/q.onnx", "--json", "out/q.json"],
            _RIGHT_OR_REFUSED,
            "quantize --eval reports FP32 top-1 by class name",
            check=_quant_top1,
        ),
        Case(
            "pipeline-unsorted-classes",
            "numbers",
            [
                "pipeline",
                "in/m.onnx",
                *_Q,
                "--eval",
                "in/data",
                "-o",
                "out/p",
                "--skip",
                "bench",
                "--skip",
                "fp16",
            ],
            _RIGHT_OR_REFUSED,
            "the pipeline's eval stage",
            check=_pipeline_top1,
            timeout=180,
        ),
        Case(
            "eval-folder-class-model-lacks",
            "numbers",
            ["eval", "in/m.onnx", *_EVAL],
            expect(0, 1),
            "a 'fish' folder the model has no class for: refuse, or count it wrong",
            setup=_extra_class,
            check=_top1_is(COUNTS["cat"] / (total + 2)),
        ),
        Case(
            "eval-3-folders-1000-class-model",
            "numbers",
            ["eval", "in/k.pt", *_EVAL],
            expect(1),
            "a 1000-class model without names cannot be matched to named folders",
            setup=_thousand,
        ),
        Case(
            "eval-classes-flag-reorders",
            "numbers",
            ["eval", "in/m.pt", "--classes", "bird,cat,dog", *_EVAL],
            expect(0, 2),
            "--classes renames the outputs: output 0 is then 'bird'",
            check=_top1_is(COUNTS["bird"] / total),
        ),
        Case(
            "quantize-max-drop-nan",
            "numbers",
            ["quantize", "in/m.onnx", *_Q, "--eval", "in/data", "--max-drop", "nan", "-o", "out/q.onnx"],
            expect(2),
            "nan is not a number of points",
        ),
        Case(
            "quantize-max-drop-negative",
            "numbers",
            ["quantize", "in/m.onnx", *_Q, "--eval", "in/data", "--max-drop", "-1", "-o", "out/q.onnx"],
            expect(2),
            "a negative drop cannot be met",
        ),
        Case(
            "quantize-percentile-nan",
            "numbers",
            ["quantize", "in/m.onnx", *_Q, "--percentile", "nan", "-o", "out/q.onnx"],
            expect(2),
        ),
        _q_cache("calib-cache-inf-range", "hi", math.inf, "an infinite range gives an infinite scale"),
        _q_cache("calib-cache-1e38-range", "hi", 1e38, "a 1e38 range quantizes every value to 0"),
        _q_cache("calib-cache-nan-range", "lo", math.nan, "NaN bound"),
        _q_cache("calib-cache-lo-above-hi", "lo", 1e3, "lo above hi"),
        Case(
            "bench-good-and-missing",
            "numbers",
            ["bench", "in/m.onnx", "in/missing.onnx", "--iters", "3", "--warmup", "1"],
            expect(1, 2),
            "a model that does not exist must not give exit 0",
        ),
        Case("bench-iters-zero", "numbers", ["bench", "in/m.onnx", "--iters", "0"], expect(2)),
        Case("bench-iters-negative", "numbers", ["bench", "in/m.onnx", "--iters", "-5"], expect(2)),
        Case("bench-duration-nan", "numbers", ["bench", "in/m.onnx", "--duration", "nan"], expect(2)),
        Case(
            "bench-batch-zero", "numbers", ["bench", "in/m.onnx", "--batch", "0", "--iters", "3"], expect(2)
        ),
        Case(
            "pipeline-calib-size-zero",
            "numbers",
            ["pipeline", "in/m.onnx", "--calib", "in/data", "--calib-size", "0", "-o", "out/p"],
            expect(2),
        ),
    ]
