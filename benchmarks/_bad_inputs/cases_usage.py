"""Called wrongly: click's usage errors must be one 'error:' line with exit status 2."""

from __future__ import annotations

from _bad_inputs.core import Case, cases, expect


@cases
def usage() -> list[Case]:
    calls = {
        "unknown-option": ["eval", "--bogus"],
        "missing-argument": ["eval"],
        "missing-required-option": ["eval", "in/m.onnx"],
        "bad-choice": ["bench", "in/m.onnx", "--backend", "xx"],
        "unknown-command": ["nosuchcommand"],
        "not-an-integer": ["export", "in/m.pt", "--opset", "abc"],
        "below-range": ["create", "resnet20", "--num-classes", "0", "-o", "out/c.pt"],
        "train-missing-arch": ["train", "--data", "in/data", "--epochs", "1", "-o", "out/t"],
        "experiment-unknown-option": ["experiment", "degradation", "--bogus"],
        "export-opset-too-old": ["export", "in/m.pt", "--opset", "9", "-o", "out/x.onnx"],
        "build-engine-bad-batch": ["build-engine", "in/m.onnx", "--batch", "8:1:x", "-o", "out/x.engine"],
        "info-extra-argument": ["info", "extra"],
    }
    return [
        Case(f"usage-{name}", "usage", args, expect(2), "click usage error") for name, args in calls.items()
    ]
