"""Memory bombs: tiny files that ask for gigabytes."""

from __future__ import annotations

import json

import torch

from _bad_inputs.core import Case, Ctx, Setup, cases, expect

_DATA = ["--data", "in/data", "--no-progress"]


def _tall_png(ctx: Ctx) -> None:
    from PIL import Image

    Image.new("RGB", (1, 1_000_000), (120, 60, 30)).save(ctx.inputs / "data" / "cat" / "tall.png")


def _ckpt_meta(key: str, value: object, name: str = "big.pt") -> Setup:
    def setup(ctx: Ctx) -> None:
        payload = torch.load(ctx.inputs / "m.pt", weights_only=True)
        if key == "input_size":
            payload["meta"]["preprocessing"]["input_size"] = value
        else:
            payload["meta"][key] = value
        torch.save(payload, ctx.inputs / name)

    return setup


def _onnx_meta(**changes: object) -> Setup:
    def setup(ctx: Ctx) -> None:
        import onnx

        model = onnx.load(str(ctx.inputs / "m.onnx"))
        for prop in model.metadata_props:
            if prop.key == "edgeres.meta":
                meta = json.loads(prop.value)
                for k, v in changes.items():
                    if k == "input_size":
                        meta["preprocessing"]["input_size"] = v
                    else:
                        meta[k] = v
                prop.value = json.dumps(meta)
            if prop.key == "edgeres.input_size" and "input_size" in changes:
                prop.value = "100000x100000"
        onnx.save(model, str(ctx.inputs / "big.onnx"))

    return setup


def _toml(ctx: Ctx) -> None:
    (ctx.inputs / "edgeres.toml").write_text("[model]\ninput_size = [100000, 100000]\n")


@cases
def memory() -> list[Case]:
    huge = _ckpt_meta("num_classes", 300_000_000)
    big_in = _ckpt_meta("input_size", [100000, 100000])
    return [
        Case(
            "tall-png-eval",
            "memory",
            ["eval", "in/m.onnx", *_DATA],
            expect(0, 1),
            "a 1x1,000,000 PNG in the data folder: skip it or refuse, within 4 GB",
            setup=_tall_png,
        ),
        Case(
            "tall-png-calib-set",
            "memory",
            ["calib-set", "in/data", "--size", "10", "-o", "out/c.txt"],
            expect(0, 1),
            setup=_tall_png,
        ),
        Case(
            "tall-png-quantize",
            "memory",
            [
                "quantize",
                "in/m.onnx",
                "--calib",
                "in/data",
                "--calib-size",
                "10",
                "-o",
                "out/q.onnx",
                "--no-progress",
            ],
            expect(0, 1),
            setup=_tall_png,
        ),
        Case(
            "ckpt-300M-classes-inspect",
            "memory",
            ["inspect", "in/big.pt"],
            expect(1),
            "metadata says 3e8 classes; the weights say 3",
            setup=huge,
        ),
        Case("ckpt-300M-classes-eval", "memory", ["eval", "in/big.pt", *_DATA], expect(1), setup=huge),
        Case(
            "ckpt-input-100000-eval",
            "memory",
            ["eval", "in/big.pt", *_DATA],
            expect(1),
            "metadata input size 100000x100000",
            setup=big_in,
        ),
        Case(
            "onnx-meta-input-100000-eval",
            "memory",
            ["eval", "in/big.onnx", *_DATA],
            expect(1),
            "ONNX metadata input size 100000x100000 (the graph says 32x32)",
            setup=_onnx_meta(input_size=[100000, 100000]),
        ),
        Case(
            "onnx-meta-input-100000-quantize",
            "memory",
            ["quantize", "in/big.onnx", "--calib", "in/data", "-o", "out/q.onnx", "--no-progress"],
            expect(1),
            setup=_onnx_meta(input_size=[100000, 100000]),
        ),
        Case(
            "onnx-meta-300M-classes-eval",
            "memory",
            ["eval", "in/big.onnx", *_DATA],
            expect(1),
            setup=_onnx_meta(num_classes=300_000_000),
        ),
        Case(
            "input-size-flag-100000-eval",
            "memory",
            ["eval", "in/m.pt", "--input-size", "100000x100000", *_DATA],
            expect(1, 2),
        ),
        Case(
            "toml-input-100000-pipeline",
            "memory",
            [
                "pipeline",
                "in/m.onnx",
                "--config",
                "in/edgeres.toml",
                "--calib",
                "in/data",
                "-o",
                "out/p",
                "--no-progress",
            ],
            expect(1, 2),
            setup=_toml,
        ),
        Case(
            "bench-batch-100M",
            "memory",
            ["bench", "in/m.onnx", "--batch", "100000000", "--iters", "1", "--warmup", "0"],
            expect(1),
            "a batch of 1e8 images (1.2 TB) must be a row with its error",
        ),
    ]
