"""Hostile model and data files: loading them must not run their code or touch other files."""

from __future__ import annotations

import numpy as np

from _bad_inputs import hostile
from _bad_inputs.core import Case, Check, Ctx, Setup, cases, expect

_DATA = ["--data", "in/data", "--no-progress"]


def _says_damaged(ctx: Ctx) -> list[str]:
    """A damaged file must be called damaged, not a pickled module that needs --unsafe-pickle."""
    assert ctx.proc is not None
    if ctx.proc.rc == 0:
        return []
    err = ctx.proc.stderr.lower()
    problems = []
    if not any(w in err for w in ("damaged", "corrupt", "truncated")):
        problems.append("message does not say the file is damaged")
    if "pickled" in err or "unsafe-pickle" in err:
        problems.append("message blames a pickled module / suggests --unsafe-pickle")
    return problems


def _names_flag(ctx: Ctx) -> list[str]:
    assert ctx.proc is not None
    if ctx.proc.rc != 0 and "--unsafe-pickle" not in ctx.proc.stderr:
        return ["refusal does not name --unsafe-pickle"]
    return []


def _evil_npz(ctx: Ctx) -> None:
    x = np.empty(2, dtype=object)
    x[0] = hostile.Evil()
    np.savez(ctx.inputs / "evil.npz", x=x, y=np.array([0, 1]))


def _external_outside(ctx: Ctx) -> None:
    import onnx

    model = onnx.load(str(ctx.inputs / "m.onnx"))
    onnx.save_model(
        model, str(ctx.inputs / "ext.onnx"), save_as_external_data=True, location="ext.bin", size_threshold=0
    )
    model = onnx.load(str(ctx.inputs / "ext.onnx"), load_external_data=False)
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = "../victim.bin" if tensor.name < "m" else "/etc/hostname"
    onnx.save_model(model, str(ctx.inputs / "ext.onnx"))
    (ctx.inputs / "ext.bin").unlink()


def _make(fn_name: str, target: str) -> Setup:
    def setup(ctx: Ctx) -> None:
        getattr(hostile, fn_name)(ctx.inputs / target)

    return setup


def _variants(
    stem: str,
    model: str,
    setup: Setup,
    why: str,
    check: Check | None = None,
    export: bool = False,
    inspect_ok: frozenset[int] = expect(1),
) -> list[Case]:
    """The same hostile file given to inspect and eval (and export): each loads it its own way."""
    calls = {"inspect": ["inspect", model], "eval": ["eval", model, *_DATA]}
    fail = expect(1)
    if export:
        calls["export"] = ["export", model, "-o", "out/x.onnx"]
    return [
        Case(f"{stem}-{cmd}", "hostile", args, inspect_ok if cmd == "inspect" else fail, why, setup, check)
        for cmd, args in calls.items()
    ]


def _damaged(name: str, build: Setup) -> list[Case]:
    return [
        Case(
            f"{name}-inspect",
            "hostile",
            ["inspect", "in/bad.pt"],
            expect(1),
            "damaged checkpoint",
            setup=build,
            check=_says_damaged,
        ),
        Case(
            f"{name}-eval",
            "hostile",
            ["eval", "in/bad.pt", *_DATA],
            expect(1),
            "damaged checkpoint",
            setup=build,
            check=_says_damaged,
        ),
    ]


@cases
def hostile_files() -> list[Case]:
    out: list[Case] = []
    out += _variants(
        "pt2-pickled-weight",
        "in/evil.pt2",
        _make("evil_pt2", "evil.pt2"),
        "torch.export archive whose weight entry is a code-running pickle",
        export=True,
    )
    out += _variants(
        "torchscript-from-file",
        "in/ts.pt",
        _make("side_effect_torchscript", "ts.pt"),
        "TorchScript forward maps files shared and writes them",
        inspect_ok=expect(0, 1),  # inspect need not run forward
    )
    out.append(
        Case(
            "torchscript-from-file-bench",
            "hostile",
            ["bench", "in/ts.pt", "--backend", "torch", "--iters", "2", "--warmup", "1"],
            expect(1),
            "bench runs forward",
            setup=_make("side_effect_torchscript", "ts.pt"),
        )
    )
    out += _variants(
        "pickled-module",
        "in/mod.pt",
        _make("pickled_module", "mod.pt"),
        "a whole pickled nn.Module with a code-running attribute: refuse without --unsafe-pickle",
        _names_flag,
    )
    out += _variants(
        "pickle-reduce-zip",
        "in/evil.pt",
        _make("evil_torch_save", "evil.pt"),
        "torch.save file with a __reduce__ payload",
    )
    out.append(
        Case(
            "pickle-reduce-legacy-inspect",
            "hostile",
            ["inspect", "in/legacy.pt"],
            expect(1),
            "legacy (pre-zip) torch.save format",
            setup=lambda c: hostile.evil_torch_save(c.inputs / "legacy.pt", legacy=True),
        )
    )
    out.append(
        Case(
            "raw-pickle-inspect",
            "hostile",
            ["inspect", "in/raw.pt"],
            expect(1),
            "plain pickle.dumps",
            setup=lambda c: (c.inputs / "raw.pt").write_bytes(hostile.evil_pickle()),
        )
    )
    out.append(
        Case(
            "raw-pickle-as-onnx-eval",
            "hostile",
            ["eval", "in/raw.onnx", *_DATA],
            expect(1),
            "a pickle named .onnx",
            setup=lambda c: (c.inputs / "raw.onnx").write_bytes(hostile.evil_pickle()),
        )
    )
    out.append(
        Case(
            "npz-object-array-eval",
            "hostile",
            ["eval", "in/m.onnx", "--data", "in/evil.npz"],
            expect(1),
            ".npz with a pickled object array",
            setup=_evil_npz,
        )
    )
    out.append(
        Case(
            "onnx-external-data-outside",
            "hostile",
            ["eval", "in/ext.onnx", *_DATA],
            expect(1),
            "external data locations '../victim.bin' and '/etc/hostname'",
            setup=_external_outside,
        )
    )
    out.append(
        Case(
            "onnx-external-data-outside-fp16",
            "hostile",
            ["convert-fp16", "in/ext.onnx", "-o", "out/f.onnx"],
            expect(1),
            "same, convert-fp16",
            setup=_external_outside,
        )
    )
    out += _damaged("truncated-pt", lambda c: hostile.truncated(c.inputs / "m.pt", c.inputs / "bad.pt"))
    out += _damaged("random-bytes-pt", lambda c: hostile.random_bytes(c.inputs / "bad.pt"))
    out += _damaged(
        "scrambled-data-pkl-pt", lambda c: hostile.flipped(c.inputs / "m.pt", c.inputs / "bad.pt")
    )
    out.append(
        Case(
            "zero-byte-pt-inspect",
            "hostile",
            ["inspect", "in/bad.pt"],
            expect(1),
            "empty file",
            setup=lambda c: (c.inputs / "bad.pt").write_bytes(b""),
            check=_says_damaged,
        )
    )
    out.append(
        Case(
            "truncated-pt-export",
            "hostile",
            ["export", "in/bad.pt", "-o", "out/x.onnx"],
            expect(1),
            setup=lambda c: hostile.truncated(c.inputs / "m.pt", c.inputs / "bad.pt"),
            check=_says_damaged,
        )
    )
    trunc_onnx = lambda c: hostile.truncated(c.inputs / "m.onnx", c.inputs / "bad.onnx")  # noqa: E731
    for cmd, extra in (
        ("inspect", []),
        ("eval", _DATA),
        ("quantize", ["--calib", "in/data", "-o", "out/q.onnx", "--no-progress"]),
        ("bench", ["--iters", "2", "--warmup", "1"]),
    ):
        out.append(
            Case(
                f"truncated-onnx-{cmd}",
                "hostile",
                [cmd, "in/bad.onnx", *extra],
                expect(1),
                "half an ONNX file",
                setup=trunc_onnx,
            )
        )
    return out
