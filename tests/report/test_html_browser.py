"""report.html in a real browser: headless Chromium loads it from disk, fetches nothing, logs no
error and paints the plots. Skipped where Chromium is not installed (apt-get install chromium)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from edgeres.report import build_report
from edgeres.report.plots import COLORS
from tests.report.fixtures import Results, rewrite

PLOTS = ("latency", "accuracy-latency", "per-class", "sensitivity", "sizes")
CONTROL = (
    '<html><body><img src="http://example.invalid/x.png">'
    '<script>console.error("control error")</script></body></html>'
)


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("chromium not installed: apt-get install chromium")
    return found


def _load(browser: str, page: Path, tmp: Path, *extra: str) -> tuple[str, str, list[str]]:
    """Open ``page`` headless: its DOM after loading, the browser's log, and the URLs the page fetched."""
    net = tmp / f"{page.stem}.netlog.json"
    cmd = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--host-resolver-rules=MAP * ~NOTFOUND",  # nothing outside the file can load
        f"--user-data-dir={tmp / 'profile'}",
        "--enable-logging=stderr",
        "--v=0",
        f"--log-net-log={net}",
        *extra,
        page.resolve().as_uri(),
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if r.returncode != 0 and page.name == "control.html":  # the browser itself cannot run here
        pytest.skip(f"{browser} does not run headless here: {r.stderr.strip()[-300:]}")
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout, r.stderr, _page_requests(net)


def _page_requests(net: Path) -> list[str]:
    """URLs fetched over the network on behalf of a page opened from a file (not the browser's own)."""
    log = json.loads(net.read_text())
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return [
        e["params"]["url"]
        for e in log["events"]
        if e["type"] == start and str(e["params"].get("network_isolation_key", "")).startswith("file://")
    ]


def _console(stderr: str, page: Path) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line and page.name in line]


def test_the_report_loads_offline_without_errors_and_shows_its_plots(copied: Results, tmp_path: Path) -> None:
    browser = _chromium()
    pytest.importorskip("matplotlib")
    from PIL import Image

    # the checks can fail: a page that fetches from the network and logs an error is caught
    control = tmp_path / "control.html"
    control.write_text(CONTROL)
    _, stderr, fetched = _load(browser, control, tmp_path, "--dump-dom")
    assert fetched == ["http://example.invalid/x.png"]
    assert any("control error" in line for line in _console(stderr, control))

    rewrite(
        copied.quant, lambda d: d["targets"][0].update(sensitivity={"/conv1/Conv": 0.02, "/fc/Gemm": 0.01})
    )
    paths = build_report(copied.all, tmp_path / "report")
    dom, stderr, fetched = _load(browser, paths.html, tmp_path, "--dump-dom")
    assert fetched == []
    assert _console(stderr, paths.html) == []
    assert "<h1>resnet20: FP32" in dom
    figures = dict(re.findall(r'<figure id="plot-([\w-]+)">(.*?)</figure>', dom, flags=re.S))
    assert list(figures) == list(PLOTS)
    for name, body in figures.items():
        assert body.count("<svg") == 1 and body.count("<path") >= 5, name  # parsed as SVG, with its shapes

    shot = tmp_path / "shot.png"
    _load(browser, paths.html, tmp_path, f"--screenshot={shot}", "--window-size=1200,4200")
    pixels = Image.open(shot).convert("RGB").getcolors(maxcolors=1 << 24) or []
    colors = {rgb: n for n, rgb in pixels}
    for i, variant in enumerate(paths.data.variants):  # every variant's color is painted (bars, points)
        rgb = tuple(int(COLORS[i][j : j + 2], 16) for j in (1, 3, 5))
        assert colors.get(rgb, 0) > 500, (variant.label, COLORS[i])


def test_a_hundred_class_report_shows_at_most_ten_classes_in_its_figure(tmp_path: Path) -> None:
    browser = _chromium()
    pytest.importorskip("matplotlib")
    from edgeres.report.changes import TOP_CLASSES
    from tests.report import handmade

    base = {f"class{i:02d}": (18, 18) for i in range(100)}
    int8 = {k: (17 - i % 3, 18) for i, k in enumerate(base)}  # every class changed
    e32 = handmade.evaluation(tmp_path / "e32.json", "m.onnx", base)
    e8 = handmade.evaluation(tmp_path / "e8.json", "m.int8.onnx", int8, reference=("m.onnx", base, 0.9))
    paths = build_report([e32, e8], tmp_path / "report")
    dom, stderr, fetched = _load(browser, paths.html, tmp_path, "--dump-dom")
    assert fetched == [] and _console(stderr, paths.html) == []
    figure = dict(re.findall(r'<figure id="plot-([\w-]+)">(.*?)</figure>', dom, flags=re.S))["per-class"]
    assert 0 < len(set(re.findall(r">(class\d\d)<", figure))) <= TOP_CLASSES
    table = dom.split("<h2>Per-class accuracy change against FP32 (points)</h2>")[1].split("<h2>")[0]
    assert table.count("<tr>") == 1 + TOP_CLASSES and "90 more classes" in table
