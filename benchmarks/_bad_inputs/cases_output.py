"""What a good run writes: escaped report text, warned-about images, file modes."""

from __future__ import annotations

import json
import stat

from _bad_inputs.core import Case, Check, Ctx, Setup, cases, expect

HOSTILE_NAMES = ("![](http://x)", "[x](javascript:alert(1))", "<script>alert(1)</script>")


def _hostile_results(ctx: Ctx) -> None:
    data = json.loads((ctx.inputs / "eval.json").read_text())
    per_class = data["result"]["per_class"]
    data["result"]["per_class"] = {n: v for n, v in zip(HOSTILE_NAMES, per_class.values(), strict=False)}
    (ctx.inputs / "evil_eval.json").write_text(json.dumps(data))


def _escaped(ctx: Ctx) -> list[str]:
    assert ctx.proc is not None
    if ctx.proc.rc != 0:
        return []
    problems = []
    md = (ctx.out / "r" / "report.md").read_text(encoding="utf-8")
    for raw in ("![](http://x)", "](javascript:", "<script>"):
        if raw in md:
            problems.append(f"report.md holds {raw!r} unescaped")
    html_path = ctx.out / "r" / "report.html"
    if html_path.exists():
        html = html_path.read_text(encoding="utf-8")
        for raw in ("<script>alert", 'src="http://x', 'href="javascript:'):
            if raw in html:
                problems.append(f"report.html holds {raw!r}")
    return problems


def _zero_byte(all_empty: bool) -> Setup:
    def setup(ctx: Ctx) -> None:
        root = ctx.inputs / ("empty_imgs" if all_empty else "data")
        for cls in ("a", "b") if all_empty else ("cat", "dog"):
            (root / cls).mkdir(parents=True, exist_ok=True)
            for i in range(3):
                (root / cls / f"z{i}.png").write_bytes(b"")

    return setup


def _warned(ctx: Ctx) -> list[str]:
    assert ctx.proc is not None
    if ctx.proc.rc == 0 and "warning:" not in ctx.proc.stderr:
        return ["0-byte images were taken without a warning"]
    if ctx.proc.rc == 0 and (ctx.out / "c.txt").exists() and "z0.png" in (ctx.out / "c.txt").read_text():
        return ["the manifest lists 0-byte images"]
    return []


def _mode_644(ctx: Ctx) -> list[str]:
    assert ctx.proc is not None
    path = ctx.out / "c.txt"
    if ctx.proc.rc != 0 or not path.exists():
        return []
    mode = stat.S_IMODE(path.stat().st_mode)
    return [] if mode == 0o644 else [f"manifest mode {mode:o}, want 644 (umask 022)"]


def _modes(names: list[str]) -> Check:
    def check(ctx: Ctx) -> list[str]:
        problems = []
        for name in names:
            path = ctx.out / name
            if path.exists() and stat.S_IMODE(path.stat().st_mode) != 0o644:
                problems.append(f"{name} mode {stat.S_IMODE(path.stat().st_mode):o}, want 644")
        return problems

    return check


@cases
def outputs() -> list[Case]:
    title = "![](http://x) [x](javascript:alert(1))"
    return [
        Case(
            "report-hostile-class-names",
            "output",
            ["report", "in/evil_eval.json", "in/bench.json", "-o", "out/r", "--title", title],
            expect(0),
            "markdown and HTML in class names and the title",
            setup=_hostile_results,
            check=_escaped,
        ),
        Case(
            "calib-set-some-zero-byte-images",
            "output",
            ["calib-set", "in/data", "--size", "16", "-o", "out/c.txt"],
            expect(0),
            "0-byte images among good ones: warn, leave them out",
            setup=_zero_byte(False),
            check=_warned,
        ),
        Case(
            "calib-set-all-zero-byte-images",
            "output",
            ["calib-set", "in/empty_imgs", "--size", "4", "-o", "out/c.txt"],
            expect(0, 1),
            "only 0-byte images: refuse, or warn",
            setup=_zero_byte(True),
            check=_warned,
        ),
        Case(
            "calib-set-manifest-mode",
            "output",
            ["calib-set", "in/data", "--size", "6", "-o", "out/c.txt"],
            expect(0),
            "the manifest gets the mode open() gives (0644 under umask 022)",
            check=_mode_644,
        ),
        Case(
            "quantize-output-modes",
            "output",
            [
                "quantize",
                "in/m.onnx",
                "--calib",
                "in/data",
                "--calib-size",
                "6",
                "-o",
                "out/q.onnx",
                "--json",
                "out/q.json",
                "--no-progress",
            ],
            expect(0),
            "every file written gets mode 0644",
            check=_modes(["q.onnx", "q.calib.json", "q.json"]),
        ),
    ]
