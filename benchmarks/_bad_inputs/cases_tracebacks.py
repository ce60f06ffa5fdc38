"""Inputs and machines that used to end in a traceback: each must be one 'error:' line."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import torch

from _bad_inputs.core import Case, Ctx, Setup, Skip, cases, expect, mount_tmpfs

_DATA = ["--data", "in/data", "--no-progress"]
_Q = ["--calib", "in/data", "--calib-size", "6", "--no-progress"]


def _state_dict(ctx: Ctx) -> None:
    payload = torch.load(ctx.inputs / "m.pt", weights_only=True)
    torch.save(payload["state_dict"], ctx.inputs / "sd.pt")


def _full(ctx: Ctx) -> None:
    target = ctx.out / "full"
    mount_tmpfs(target, "256k")
    try:
        with open(target / "filler", "wb") as f:
            while True:
                f.write(b"\0" * 4096)
                f.flush()
    except OSError:
        pass  # the file system is full now


def _read_only(ctx: Ctx) -> None:
    target = ctx.out / "ro"
    if os.geteuid() == 0:
        mount_tmpfs(target, "1m", read_only=True)
    else:
        target.mkdir()
        target.chmod(0o555)


def _meta(change: dict[str, object], top: dict[str, object] | None = None) -> Setup:
    def setup(ctx: Ctx) -> None:
        payload = torch.load(ctx.inputs / "m.pt", weights_only=True)
        payload["meta"].update(change)
        payload.update(top or {})
        torch.save(payload, ctx.inputs / "bad.pt")

    return setup


def _onnx_meta(value: str) -> Setup:
    def setup(ctx: Ctx) -> None:
        import onnx

        model = onnx.load(str(ctx.inputs / "m.onnx"))
        for prop in model.metadata_props:
            if prop.key == "edgeres.meta":
                prop.value = value
        onnx.save(model, str(ctx.inputs / "bad.onnx"))

    return setup


def _onnx_meta_obj(**changes: object) -> Setup:
    meta = {
        "arch": "resnet20",
        "num_classes": 3,
        "class_names": ["cat", "dog", "bird"],
        "preprocessing": {"input_size": [32, 32], "mean": [0.5] * 3, "std": [0.25] * 3},
    }
    meta.update(changes)
    return _onnx_meta(json.dumps(meta))


def _loops(ctx: Ctx) -> None:
    (ctx.inputs / "data" / "cat" / "loop.png").symlink_to("loop.png")
    (ctx.inputs / "data" / "dog" / "up").symlink_to("..", target_is_directory=True)


def _non_utf8_name(ctx: Ctx) -> None:
    src = ctx.inputs / "data" / "cat" / "0.png"
    shutil.copy(os.fsencode(src), os.path.join(os.fsencode(src.parent), b"\xff\xfe-bad.png"))


def _write(name: str, data: bytes) -> Setup:
    def setup(ctx: Ctx) -> None:
        (ctx.inputs / name).write_bytes(data)

    return setup


def _npz(ctx: Ctx) -> None:
    rng = np.random.default_rng(0)
    np.savez(
        ctx.inputs / "t.npz", x=rng.integers(0, 255, (40, 32, 32, 3), dtype=np.uint8), y=np.arange(40) % 3
    )
    data = (ctx.inputs / "t.npz").read_bytes()
    (ctx.inputs / "t.npz").write_bytes(data[: len(data) // 2])


def _result(mutate: str) -> Setup:
    def setup(ctx: Ctx) -> None:
        data = json.loads((ctx.inputs / "eval.json").read_text())
        if mutate == "top1-string":
            data["result"]["top1"] = "high"
        elif mutate == "list":
            data = [data]
        elif mutate == "per-class-list":
            data["result"]["per_class"] = [1, 2]
        elif mutate == "model-number":
            data["model"] = 5
        elif mutate == "result-null":
            data["result"] = None
        elif mutate == "num-images-inf":
            data["result"]["num_images"] = float("inf")
        (ctx.inputs / "bad.json").write_text(json.dumps(data))

    return setup


def _external_missing(ctx: Ctx) -> None:
    import onnx

    model = onnx.load(str(ctx.inputs / "m.onnx"))
    onnx.save_model(
        model, str(ctx.inputs / "ext.onnx"), save_as_external_data=True, location="ext.bin", size_threshold=0
    )
    (ctx.inputs / "ext.bin").unlink()


def _need_tmpfs(_: Ctx) -> None:
    if not Path("/proc/mounts").exists():
        raise Skip("no /proc/mounts")


@cases
def tracebacks() -> list[Case]:
    sd = _state_dict
    full = ["out/full"]
    out = [
        Case(
            "state-dict-wrong-arch-export",
            "tracebacks",
            ["export", "in/sd.pt", "--arch", "resnet32", "-o", "out/x.onnx"],
            expect(1),
            "resnet20 weights for --arch resnet32",
            setup=sd,
        ),
        Case(
            "state-dict-wrong-arch-inspect",
            "tracebacks",
            ["inspect", "in/sd.pt", "--arch", "resnet56"],
            expect(1),
            setup=sd,
        ),
        Case(
            "state-dict-wrong-classes-eval",
            "tracebacks",
            ["eval", "in/sd.pt", "--arch", "resnet20", "--num-classes", "10", *_DATA],
            expect(1),
            "3-class weights, --num-classes 10",
            setup=sd,
        ),
        Case(
            "state-dict-right-arch-inspect",
            "tracebacks",
            ["inspect", "in/sd.pt", "--arch", "resnet20", "--num-classes", "3"],
            expect(0),
            "control: the right architecture works",
            setup=sd,
        ),
        Case("unknown-arch-create", "tracebacks", ["create", "resnet9000", "-o", "out/x.pt"], expect(2)),
    ]
    for cmd in (
        ["export", "in/m.pt", "-o", "out/full/m.onnx"],
        ["quantize", "in/m.onnx", *_Q, "-o", "out/full/q.onnx"],
        ["eval", "in/m.onnx", *_DATA, "--json", "out/full/e.json"],
        ["calib-set", "in/data", "--size", "4", "-o", "out/full/c.txt"],
        ["pipeline", "in/s.onnx", *_Q, "-o", "out/full/p", "--skip", "bench"],
    ):
        out.append(Case(f"disk-full-{cmd[0]}", "tracebacks", cmd, expect(1), "a full tmpfs", setup=_full))
    for cmd in (
        ["export", "in/m.pt", "-o", "out/big.onnx"],
        ["create", "resnet56", "-o", "out/c.pt"],
    ):
        out.append(
            Case(
                f"file-size-limit-{cmd[0]}",
                "tracebacks",
                cmd,
                expect(1),
                "writes fail with EFBIG after 64 kB, like a full disk",
                file_size_limit=64 << 10,
            )
        )
    for cmd in (
        ["export", "in/m.pt", "-o", "out/ro/m.onnx"],
        ["quantize", "in/m.onnx", *_Q, "-o", "out/ro/q.onnx"],
        ["pipeline", "in/s.onnx", *_Q, "-o", "out/ro/p", "--skip", "bench"],
    ):
        out.append(
            Case(
                f"read-only-{cmd[0]}",
                "tracebacks",
                cmd,
                expect(1),
                "read-only output folder",
                setup=_read_only,
            )
        )
    out += [
        Case(
            "output-folder-missing",
            "tracebacks",
            ["export", "in/m.pt", "-o", "out/nope/x.onnx"],
            expect(1, 2),
        ),
        Case(
            "ckpt-meta-list-inspect",
            "tracebacks",
            ["inspect", "in/bad.pt"],
            expect(1),
            "meta is a list",
            setup=_meta({}, {"meta": [1, 2]}),
        ),
        Case(
            "ckpt-meta-list-eval",
            "tracebacks",
            ["eval", "in/bad.pt", *_DATA],
            expect(1),
            setup=_meta({}, {"meta": [1, 2]}),
        ),
        Case(
            "ckpt-num-classes-inf",
            "tracebacks",
            ["inspect", "in/bad.pt"],
            expect(1),
            setup=_meta({"num_classes": float("inf")}),
        ),
        Case(
            "ckpt-num-classes-negative",
            "tracebacks",
            ["eval", "in/bad.pt", *_DATA],
            expect(1),
            setup=_meta({"num_classes": -3}),
        ),
        Case(
            "ckpt-arch-not-string",
            "tracebacks",
            ["inspect", "in/bad.pt"],
            expect(1),
            setup=_meta({"arch": 5}),
        ),
        Case(
            "ckpt-class-names-string",
            "tracebacks",
            ["eval", "in/bad.pt", *_DATA],
            expect(1),
            setup=_meta({"class_names": "catdogbird"}),
        ),
        Case(
            "ckpt-mean-not-numbers",
            "tracebacks",
            ["eval", "in/bad.pt", *_DATA],
            expect(1),
            setup=_meta({"preprocessing": {"input_size": [32, 32], "mean": "abc", "std": [1, 1, 1]}}),
        ),
        Case(
            "ckpt-state-dict-not-mapping",
            "tracebacks",
            ["eval", "in/bad.pt", *_DATA],
            expect(1),
            setup=_meta({}, {"state_dict": [1, 2, 3]}),
        ),
        Case(
            "onnx-meta-list-eval",
            "tracebacks",
            ["eval", "in/bad.onnx", *_DATA],
            expect(1),
            setup=_onnx_meta("[1, 2]"),
        ),
        Case(
            "onnx-meta-not-json",
            "tracebacks",
            ["eval", "in/bad.onnx", *_DATA],
            expect(1),
            setup=_onnx_meta("{not json"),
        ),
        Case(
            "onnx-meta-num-classes-inf",
            "tracebacks",
            ["inspect", "in/bad.onnx"],
            expect(1),
            setup=_onnx_meta('{"arch": "resnet20", "num_classes": Infinity}'),
        ),
        Case(
            "onnx-meta-arch-number",
            "tracebacks",
            ["eval", "in/bad.onnx", *_DATA],
            expect(1),
            setup=_onnx_meta_obj(arch=5),
        ),
        Case(
            "onnx-meta-input-size-string",
            "tracebacks",
            ["eval", "in/bad.onnx", *_DATA],
            expect(1),
            setup=_onnx_meta_obj(preprocessing={"input_size": "big", "mean": [0.5] * 3, "std": [0.2] * 3}),
        ),
        Case(
            "data-symlink-loops-eval",
            "tracebacks",
            ["eval", "in/m.onnx", *_DATA],
            expect(0, 1),
            "a self-referencing file link and a link to the parent folder",
            setup=_loops,
        ),
        Case(
            "data-symlink-loops-calib-set",
            "tracebacks",
            ["calib-set", "in/data", "--size", "6", "-o", "out/c.txt"],
            expect(0, 1),
            setup=_loops,
        ),
        Case(
            "data-non-utf8-name-eval",
            "tracebacks",
            ["eval", "in/m.onnx", *_DATA],
            expect(0, 1),
            "an image named b'\\xff\\xfe-bad.png'",
            setup=_non_utf8_name,
        ),
        Case(
            "data-non-utf8-name-calib-set",
            "tracebacks",
            ["calib-set", "in/data", "--size", "10", "-o", "out/c.txt"],
            expect(0, 1),
            setup=_non_utf8_name,
        ),
        Case(
            "toml-non-utf8",
            "tracebacks",
            ["pipeline", "in/m.onnx", "--config", "in/edgeres.toml", *_Q, "-o", "out/p"],
            expect(1, 2),
            setup=_write("edgeres.toml", b'[model]\nclasses = ["\xff\xfe"]\n'),
        ),
        Case(
            "toml-syntax-error",
            "tracebacks",
            ["pipeline", "in/m.onnx", "--config", "in/edgeres.toml", *_Q, "-o", "out/p"],
            expect(1, 2),
            setup=_write("edgeres.toml", b"[bench\nbatches = [1,\n"),
        ),
        Case(
            "toml-wrong-types",
            "tracebacks",
            ["pipeline", "in/m.onnx", "--config", "in/edgeres.toml", *_Q, "-o", "out/p"],
            expect(1, 2),
            setup=_write("edgeres.toml", b'[bench]\nbatches = "many"\niters = []\n'),
        ),
        Case(
            "classes-file-non-utf8-create",
            "tracebacks",
            ["create", "resnet20", "--classes", "in/cls.txt", "-o", "out/c.pt"],
            expect(1, 2),
            setup=_write("cls.txt", b"caf\xe9\nd\xf6g\nbird\n"),
        ),
        Case(
            "classes-duplicates-create",
            "tracebacks",
            ["create", "resnet20", "--classes", "cat,cat,dog", "-o", "out/c.pt"],
            expect(2),
            "two classes with one name",
        ),
        Case(
            "npz-truncated-eval",
            "tracebacks",
            ["eval", "in/m.onnx", "--data", "in/t.npz", "--no-progress"],
            expect(1),
            setup=_npz,
        ),
        Case(
            "npz-truncated-train",
            "tracebacks",
            [
                "train",
                "--arch",
                "resnet20",
                "--data",
                "in/t.npz",
                "--epochs",
                "1",
                "-o",
                "out/t",
                "--no-progress",
                "--device",
                "cpu",
            ],
            expect(1),
            setup=_npz,
        ),
        Case(
            "train-seed-negative",
            "tracebacks",
            [
                "train",
                "--arch",
                "resnet20",
                "--data",
                "in/data",
                "--epochs",
                "1",
                "-o",
                "out/t",
                "--seed",
                "-1",
                "--device",
                "cpu",
                "--no-progress",
            ],
            expect(2),
        ),
        Case(
            "train-lr-nan",
            "tracebacks",
            [
                "train",
                "--arch",
                "resnet20",
                "--data",
                "in/data",
                "--epochs",
                "1",
                "-o",
                "out/t",
                "--lr",
                "nan",
                "--device",
                "cpu",
                "--no-progress",
            ],
            expect(2),
        ),
        Case(
            "eval-std-zero",
            "tracebacks",
            ["eval", "in/m.pt", "--std", "0,0,0", *_DATA],
            expect(2),
            "dividing by a zero std",
        ),
        Case(
            "eval-mean-two-values", "tracebacks", ["eval", "in/m.pt", "--mean", "0.5,0.5", *_DATA], expect(2)
        ),
        Case(
            "eval-input-size-garbage",
            "tracebacks",
            ["eval", "in/m.pt", "--input-size", "-5x3", *_DATA],
            expect(2),
        ),
        Case("eval-model-is-folder", "tracebacks", ["eval", "in/data", *_DATA], expect(1, 2)),
        Case("eval-model-missing", "tracebacks", ["eval", "in/nope.onnx", *_DATA], expect(1, 2)),
        Case("inspect-text-file", "tracebacks", ["inspect", "in/classes.txt"], expect(1)),
        Case(
            "eval-data-empty-folder",
            "tracebacks",
            ["eval", "in/m.onnx", "--data", "in/empty", "--no-progress"],
            expect(1),
            setup=lambda c: (c.inputs / "empty").mkdir(),
        ),
    ]
    for mutate in ("top1-string", "list", "model-number", "num-images-inf"):
        out.append(
            Case(
                f"report-result-{mutate}",
                "tracebacks",
                ["report", "in/bad.json", "-o", "out/r"],
                expect(1),
                "a result JSON with wrong types",
                setup=_result(mutate),
            )
        )
    out += [
        Case(
            "report-result-not-json",
            "tracebacks",
            ["report", "in/bad.json", "-o", "out/r"],
            expect(1),
            setup=_write("bad.json", b'{"model": '),
        ),
        Case(
            "report-result-non-utf8",
            "tracebacks",
            ["report", "in/bad.json", "-o", "out/r"],
            expect(1),
            setup=_write("bad.json", b'{"model": "\xff"}'),
        ),
        Case(
            "report-no-results",
            "tracebacks",
            ["report", "in/empty", "-o", "out/r"],
            expect(1, 2),
            setup=lambda c: (c.inputs / "empty").mkdir(),
        ),
        Case(
            "external-data-missing-fp16",
            "tracebacks",
            ["convert-fp16", "in/ext.onnx", "-o", "out/f.onnx"],
            expect(1),
            "the ONNX's weights file is gone",
            setup=_external_missing,
        ),
        Case(
            "external-data-missing-pipeline",
            "tracebacks",
            ["pipeline", "in/ext.onnx", *_Q, "-o", "out/p"],
            expect(1),
            setup=_external_missing,
        ),
        Case(
            "external-data-missing-eval",
            "tracebacks",
            ["eval", "in/ext.onnx", *_DATA],
            expect(1),
            setup=_external_missing,
        ),
    ]
    del full
    return out
