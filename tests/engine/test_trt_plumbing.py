"""edgeres.engine.trt: the version floor, which TensorRT builds DLA engines how, and the routing of
TensorRT's log messages through the process's one logger (pure Python, tested with real messages)."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest

from edgeres.engine.trt import LogRouter, dla_support, parse_version, unsupported_reason

# TensorRT's ILogger.Severity numbers.
INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = range(5)
CROSS_DEVICE = (
    "Using an engine plan file across different models of devices is not recommended and is likely to "
    "affect performance or even cause errors."
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10.3.0.30", (10, 3, 0, 30)),
        ("11.4.1", (11, 4, 1)),
        ("8.6.2.3", (8, 6, 2, 3)),
        ("11.0.0b1", (11, 0, 0)),
        ("10.7.0.post1", (10, 7, 0)),
        ("", ()),
        ("unknown", ()),
    ],
)
def test_parse_version(text: str, expected: tuple[int, ...]) -> None:
    assert parse_version(text) == expected


@pytest.mark.parametrize("version", ["10.3.0.30", "10.7.0.23", "10.16.0", "11.0.0", "11.4.1.2", "12.0"])
def test_supported_versions(version: str) -> None:
    assert unsupported_reason(version, has_io_tensor_api=True) is None


@pytest.mark.parametrize("version", ["8.6.2.3", "8.5.2", "10.0.1", "10.2.0.19", "9.3.0", "", "garbage"])
def test_older_versions_are_refused_in_one_line(version: str) -> None:
    why = unsupported_reason(version, has_io_tensor_api=True)
    assert why is not None and "\n" not in why
    assert why.startswith(f"TensorRT {version or 'of unknown version'} is too old")
    assert "edgeres needs TensorRT 10.3 or newer" in why


def test_a_tensorrt_without_the_io_tensor_api_is_refused_whatever_it_says() -> None:
    why = unsupported_reason("10.3.0.30", has_io_tensor_api=False)
    assert why is not None and "needs TensorRT 10.3 or newer" in why


@pytest.mark.parametrize(
    ("version", "how"),
    [
        ("10.3.0.30", "weak"),
        ("10.4.0", "weak"),
        ("10.7.0.23", "weak"),
        ("11.4.1.5", "strong"),
        ("11.5.0", "strong"),
    ],
)
def test_dla_versions_edgeres_builds_for(version: str, how: str) -> None:
    assert dla_support(version) == (True, how)


@pytest.mark.parametrize(
    ("version", "why"),
    [
        ("10.8.0", "10.7 was the last 10.x release"),
        ("10.16.0", "10.7 was the last 10.x release"),
        ("11.0.0", "11.4.1 brings it back on AGX Orin with JetPack 7.2.2+"),
        ("11.3.0", "11.4.1 brings it back"),
        ("11.4.0", "11.4.1 brings it back"),
        ("10.2.0", "too old"),
        ("8.6.2", "too old"),
        ("nonsense", "unknown version"),
    ],
)
def test_dla_versions_refused(version: str, why: str) -> None:
    ok, text = dla_support(version)
    assert not ok and why in text and "\n" not in text and version in text


# -- the log router -------------------------------------------------------------------------------
def test_errors_go_to_the_innermost_collector_of_this_thread() -> None:
    router = LogRouter()
    router.emit(ERROR, "before anyone collects")
    with router.collect() as outer:
        router.emit(ERROR, "parse\n  failed")
        with router.collect() as inner:
            router.emit(INTERNAL_ERROR, "build failed")
        router.emit(ERROR, "after the build")
    router.emit(ERROR, "nobody listens")
    assert outer.errors == ["parse failed", "after the build"]  # one line each
    assert inner.errors == ["build failed"]
    assert outer.reason("x") == "after the build" and outer.reason("x", first=True) == "parse failed"
    assert inner.reason("x") == "build failed"


def test_two_threads_each_get_their_own_errors() -> None:
    router = LogRouter()
    ready, results = threading.Barrier(2), {}

    def build(name: str) -> None:
        with router.collect() as c:
            ready.wait()  # both collect at once
            router.emit(ERROR, f"{name} failed")
            ready.wait()
            results[name] = list(c.errors)

    threads = [threading.Thread(target=build, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {"a": ["a failed"], "b": ["b failed"]}


def test_a_message_from_a_tensorrt_thread_reaches_the_one_active_collector() -> None:
    router = LogRouter()

    def from_worker(msg: str) -> None:
        t = threading.Thread(target=router.emit, args=(ERROR, msg))
        t.start()
        t.join()

    with router.collect() as only:
        from_worker("worker error")
        with router.collect() as second:  # two active: a stray thread's message belongs to neither
            from_worker("ambiguous")
    assert only.errors == ["worker error"] and second.errors == []


def test_warnings_are_shown_once_and_the_rest_is_debug(caplog: Any) -> None:
    router = LogRouter()
    caplog.set_level(logging.DEBUG, logger="edgeres")
    with router.collect() as c:
        for _ in range(3):
            router.emit(WARNING, CROSS_DEVICE)
        router.emit(INFO, "Loaded engine size: 1 MiB")
        router.emit(VERBOSE, "Tactic 0x1")
        router.emit(ERROR, "bad")
    assert c.warnings == [CROSS_DEVICE] * 3 and c.errors == ["bad"]
    records = [(r.name, r.levelno, r.getMessage()) for r in caplog.records]
    warnings = [r for r in records if r[1] == logging.WARNING]
    assert warnings == [("edgeres.engine.tensorrt", logging.WARNING, f"TensorRT: {CROSS_DEVICE}")]
    assert ("edgeres.engine.tensorrt", logging.DEBUG, "TensorRT: Loaded engine size: 1 MiB") in records
    assert ("edgeres.engine.tensorrt", logging.DEBUG, "TensorRT: Tactic 0x1") in records
    assert all(r[1] <= logging.WARNING for r in records)  # a TensorRT error becomes the one error line


def test_the_cli_shows_a_tensorrt_warning_by_default(capsys: Any) -> None:
    from edgeres.cli import _setup_logging

    package = logging.getLogger("edgeres")
    saved = (list(package.handlers), package.level)
    _setup_logging(logging.WARNING)  # what `edgeres` sets up without --verbose
    try:
        router = LogRouter()
        router.emit(WARNING, CROSS_DEVICE)
        router.emit(WARNING, CROSS_DEVICE)
        router.emit(INFO, "not shown")
    finally:
        package.handlers[:] = saved[0]
        package.setLevel(saved[1])
    assert capsys.readouterr().err == f"warning: TensorRT: {CROSS_DEVICE}\n"


# -- with TensorRT --------------------------------------------------------------------------------
def test_real_tensorrt_gets_one_logger_for_the_process() -> None:
    trt = pytest.importorskip("tensorrt", reason="TensorRT is not installed")
    from edgeres.engine.trt import check_version, get_trt_logger

    check_version(trt)
    assert get_trt_logger(trt) is get_trt_logger(trt)
    assert isinstance(get_trt_logger(trt), trt.ILogger)
