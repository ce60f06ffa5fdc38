"""Data loss: outputs that land on inputs, concurrent runs, and a run killed mid-write."""

from __future__ import annotations

import os
import signal
import time

from _bad_inputs.core import Case, Ctx, Proc, Setup, cases, expect, finish, run_edgeres, start

_Q = ["--calib", "in/data", "--calib-size", "6", "--no-progress"]
_PIPE = [
    "pipeline",
    "in/s.onnx",
    *_Q,
    "--eval",
    "in/data",
    "-o",
    "out/p",
    "--skip",
    "bench",
    "--skip",
    "fp16",
]


def _alias(ctx: Ctx) -> None:
    (ctx.inputs / "alias.onnx").symlink_to("m.onnx")


def _hard(ctx: Ctx) -> None:
    os.link(ctx.inputs / "m.onnx", ctx.inputs / "hard.onnx")


def _out_link(ctx: Ctx) -> None:
    (ctx.out / "link.onnx").symlink_to("../in/m.onnx")


def _two_pipelines(case: Case, ctx: Ctx) -> Proc:
    """Start one pipeline, then a second into the same folder: the second must fail fast (lock / pid)."""
    t0 = time.monotonic()
    first = start(ctx, _PIPE)
    deadline = time.monotonic() + 20
    while not (ctx.out / "p").exists() and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)
    second_started = first.poll() is None
    second = run_edgeres(ctx, _PIPE, timeout=60)
    a = finish(first, t0, case.timeout)
    if not second_started:
        ctx.notes.append("the first run ended before the second started: no overlap tested")
    if a.rc != 0:
        ctx.notes.append(f"the first run failed (exit {a.rc}): {a.stderr.strip().splitlines()[-1:]}")
    if second.rc == 0:
        ctx.notes.append("the second run into the same folder succeeded while the first was running")
    elif second.seconds > 10:
        ctx.notes.append(f"the second run took {second.seconds:.0f} s to fail (not fast)")
    elif not any(w in second.stderr.lower() for w in ("lock", "pid", "another", "running")):
        ctx.notes.append("the second run's message mentions no lock or pid")
    second.stderr = second.stderr + ("" if "Traceback" not in a.stderr else "\n[first run]\n" + a.stderr)
    return second


def _kill_export(case: Case, ctx: Ctx) -> Proc:
    """kill -9 an export while it writes, count the temp files it left, then export again."""
    t0 = time.monotonic()
    p = start(ctx, ["export", "in/m.pt", "-o", "out/m.onnx"])
    killed = False
    while p.poll() is None and time.monotonic() - t0 < 90:
        if any(n.startswith(".") for n in os.listdir(ctx.out)):
            os.killpg(p.pid, signal.SIGKILL)
            killed = True
            break
        time.sleep(0.02)
    p.communicate()
    left = sorted(n for n in os.listdir(ctx.out) if n.startswith(".") or n.endswith(".tmp"))
    if not killed:
        ctx.notes.append("export finished before a temporary file was seen: nothing killed")
    ctx.notes += (
        [f"after kill -9: target exists ({(ctx.out / 'm.onnx').stat().st_size} bytes)"]
        if (ctx.out / "m.onnx").exists()
        else []
    )
    again = run_edgeres(ctx, ["export", "in/m.pt", "-o", "out/m.onnx"], timeout=case.timeout)
    still = sorted(n for n in os.listdir(ctx.out) if n.startswith(".") or n.endswith(".tmp"))
    again.stdout += f"\n[kill -9 left {len(left)} temp file(s): {left}; after a rerun {len(still)}: {still}]"
    return again


def _same(
    name: str, args: list[str], why: str, setup: Setup | None = None, ok: tuple[int, ...] = (2,)
) -> Case:
    return Case(name, "data-loss", args, expect(*ok), why, setup=setup)


@cases
def data_loss() -> list[Case]:
    q = ["quantize", "in/m.onnx", *_Q]
    return [
        _same("quantize-output-is-input", [*q, "-o", "in/m.onnx"], "-o names the model being read"),
        _same("quantize-output-dot-slash", [*q, "-o", "./in/m.onnx"], "same file, spelled ./in/m.onnx"),
        _same("quantize-output-dotdot", [*q, "-o", "in/../in/m.onnx"], "same file, spelled in/../in/m.onnx"),
        _same(
            "quantize-input-symlink-output-target",
            ["quantize", "in/alias.onnx", *_Q, "-o", "in/m.onnx"],
            "the model is a symlink to the output",
            setup=_alias,
        ),
        _same(
            "quantize-input-hardlink-output",
            ["quantize", "in/hard.onnx", *_Q, "-o", "in/m.onnx"],
            "the model is a hard link of the output",
            setup=_hard,
        ),
        _same(
            "quantize-output-symlink-to-input",
            [*q, "-o", "out/link.onnx"],
            "-o is a symlink to the model: refuse, or replace the link, never the model",
            setup=_out_link,
            ok=(0, 2),
        ),
        _same(
            "quantize-json-onto-model",
            [*q, "-o", "out/q.onnx", "--json", "in/m.onnx"],
            "--json names the model",
        ),
        _same(
            "quantize-cache-onto-model",
            [*q, "-o", "out/q.onnx", "--calib-cache", "in/m.onnx"],
            "--calib-cache names the model",
            ok=(1, 2),
        ),
        _same(
            "quantize-output-onto-manifest",
            ["quantize", "in/m.onnx", "--calib", "in/calib.txt", "-o", "in/calib.txt", "--no-progress"],
            "-o names the calibration manifest being read",
        ),
        _same("export-output-is-input", ["export", "in/m.pt", "-o", "in/m.pt"], "-o names the checkpoint"),
        _same(
            "convert-fp16-output-is-input",
            ["convert-fp16", "in/m.onnx", "-o", "in/m.onnx"],
            "-o is the model",
        ),
        _same(
            "eval-json-onto-model",
            ["eval", "in/m.onnx", "--data", "in/data", "--json", "in/m.onnx", "--no-progress"],
            "--json names the model",
        ),
        _same(
            "bench-json-onto-model",
            ["bench", "in/m.onnx", "--iters", "2", "--json", "in/m.onnx"],
            "--json names the model",
        ),
        _same(
            "calib-set-output-onto-image",
            ["calib-set", "in/data", "--size", "4", "-o", "in/data/cat/0.png"],
            "the manifest would replace an image it lists",
        ),
        _same(
            "report-out-is-a-file",
            ["report", "in/eval.json", "-o", "in/eval.json"],
            "-o names a result file being read",
            ok=(1, 2),
        ),
        Case(
            "pipeline-two-runs-one-folder",
            "data-loss",
            _PIPE,
            expect(1),
            "a second run into a folder in use must fail fast naming the lock",
            run=_two_pipelines,
            timeout=240,
        ),
        Case(
            "export-kill-9-leaves-temp",
            "data-loss",
            ["export", "in/m.pt", "-o", "out/m.onnx"],
            expect(0),
            "kill -9 mid-write, then export again: no temp file may be left behind",
            run=_kill_export,
            timeout=150,
        ),
    ]
