"""edgeres.toml: the documented example, and one-line errors for unknown keys and wrong types."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from edgeres.errors import EdgeresError, UsageError
from edgeres.pipeline import PipelineConfig, load_config
from edgeres.pipeline.settings import fingerprint

DOCS = Path(__file__).resolve().parents[2] / "docs" / "commands" / "pipeline.md"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "edgeres.toml"
    path.write_text(text)
    return path


def test_the_documented_example_loads(tmp_path: Path) -> None:
    example = re.search(r"```toml\n(.*?)```", DOCS.read_text(), re.S)
    assert example is not None
    config = load_config(write(tmp_path, example.group(1)))
    assert config.quantize.method == "percentile" and config.quantize.max_drop == 0.5
    assert config.bench.batches == (1, 16) and config.bench.threads == 4
    assert config.model.input_size == (32, 32) and len(config.model.classes or ()) == 10
    assert config.engines.precisions == ("fp32", "fp16", "int8") and config.engines.workspace == "2G"
    assert config.eval.size == 2000 and config.report.title == "resnet20 on CIFAR-10"
    assert isinstance(config.quantize.percentile, float)


def test_no_file_and_an_empty_file_give_the_defaults(tmp_path: Path) -> None:
    assert load_config(None) == PipelineConfig() == load_config(write(tmp_path, ""))
    assert PipelineConfig().quantize.target == "auto"


def test_the_default_timing_is_edgeres_benchs() -> None:
    """Time-based as `edgeres bench` is: 200 ms of warm-up, then at least 100 runs and 3 s."""
    from edgeres.commands.bench import bench_cmd

    bench = PipelineConfig().bench
    defaults = {p.name: p.default for p in bench_cmd.params}
    for key in ("warmup", "warmup_ms", "iters", "duration"):
        assert getattr(bench, key) == defaults[key], key
    assert (bench.warmup_ms, bench.iters, bench.duration, bench.batches) == (200.0, 100, 3.0, (1,))


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[quantize]\nmethdo = 'entropy'\n", ["quantize.methdo", "known: method"]),
        ("[quantise]\nmethod = 'entropy'\n", ["[quantise]"]),
        ("[bench]\nbackend = 'torch'\n", ["bench.backend"]),
        ("[pipeline]\nforce = true\n", ["pipeline.force"]),
        ("[openvino]\nenabled = 1\n", ["openvino.enabled", "true or false"]),
        ("[openvino]\ndevice = 'GPU'\n", ["openvino.device", "known: enabled"]),
        ("[bench]\nbatches = '1,8'\n", ["bench.batches", "a list of whole numbers"]),
        ("[quantize]\ncalib_size = '32'\n", ["quantize.calib_size", "a whole number"]),
        ("[eval]\nsize = true\n", ["eval.size"]),
        ("[quantize]\nmethod = 'fast'\n", ["quantize.method", "minmax, percentile, entropy, mse", "'fast'"]),
        ("[model]\nmean = [0.5, 0.5]\n", ["model.mean", "a list of 3 numbers"]),
        ("[bench]\niters = 0\n", ["--iters must be at least 1"]),
        ("[pipeline]\nskip = ['export']\n", ["cannot skip 'export'"]),
        ("[engines]\nbatch = '8:4:2'\n", ["MIN <= OPT <= MAX"]),
        ("quantize = 3\n", ["'quantize' must be a table"]),
        ("[quantize\n", ["not valid TOML"]),
        ("[bench]\nduration = inf\n", ["bench.duration", "finite"]),
        ("[bench]\nduration = nan\n", ["--duration must be a positive number"]),
        ("[quantize]\nseed = -1\n", ["quantize.seed", "0 or more"]),
        ("[eval]\nseed = -3\n", ["eval.seed", "0 or more"]),
        ("[model]\nstd = [0.25, 0.0, 0.25]\n", ["model.std", "above 0"]),
        ("[engines]\nprecisions = []\n", ["engines.precisions", "give at least one"]),
    ],
)
def test_a_bad_file_is_a_one_line_error_naming_the_file_and_key(
    tmp_path: Path, text: str, words: list[str]
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(EdgeresError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message, message
    for word in words:
        assert word in message, message


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        load_config(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    ("file", "iters", "duration"),
    [
        ("", 100, 3.0),  # the defaults: both floors
        ("iters = 7\n", 7, None),  # only iters: a run count
        ("duration = 2\n", None, 2.0),  # only duration: a time
        ("iters = 7\nduration = 2\n", 7, 2.0),  # both: both minimums
        ("warmup = 1\nthreads = 2\n", 100, 3.0),  # other keys leave the default floors
    ],
)
def test_the_files_timing_floors(
    tmp_path: Path, file: str, iters: int | None, duration: float | None
) -> None:
    bench = load_config(write(tmp_path, "[bench]\n" + file)).bench
    assert (bench.iters, bench.duration) == (iters, duration)


@pytest.mark.parametrize(
    ("file", "flags", "iters", "duration"),
    [
        ("duration = 2\n", {"iters": 5}, 5, None),  # --iters alone: a run count
        ("iters = 7\n", {"duration": 1.5}, None, 1.5),  # --duration alone: a time
        ("iters = 7\nduration = 2\n", {"iters": 5}, 5, None),
        ("duration = 2\n", {"iters": 5, "duration": 1.0}, 5, 1.0),  # both flags: both minimums
        ("", {"iters": 5}, 5, None),  # over the defaults too
        ("iters = 7\n", {"threads": 2, "iters": None, "duration": None}, 7, None),  # flags not given
    ],
)
def test_flags_that_set_a_timing_floor_replace_the_files(
    tmp_path: Path, file: str, flags: dict[str, Any], iters: int | None, duration: float | None
) -> None:
    config = load_config(write(tmp_path, "[bench]\n" + file)).override("bench", **flags)
    assert (config.bench.iters, config.bench.duration) == (iters, duration)


def test_warm_up_is_kept_apart_from_the_timing_floors(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "[bench]\nwarmup = 1\niters = 3\n"))
    assert (config.bench.warmup, config.bench.warmup_ms) == (1, 200.0)
    assert load_config(write(tmp_path, "[bench]\nwarmup_ms = 0\n")).bench.warmup_ms == 0.0
    assert config.override("bench", duration=1.0).bench.warmup == 1


def test_flags_override_the_file(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "[bench]\nduration = 2\n[quantize]\nmethod = 'mse'\n"))
    flags = config.override("bench", iters=5).override("quantize", method=None, calib_size=64)
    assert flags.quantize.method == "mse" and flags.quantize.calib_size == 64
    with pytest.raises(UsageError, match="--iters must be at least 1"):
        config.override("bench", iters=0)
    with pytest.raises(UsageError, match="--duration must be a positive number of seconds"):
        config.override("bench", duration=0.0)


def test_the_fingerprint_follows_the_settings() -> None:
    a = PipelineConfig()
    assert fingerprint(a.quantize) == fingerprint(PipelineConfig().quantize)
    assert fingerprint(a.quantize) != fingerprint(a.override("quantize", method="entropy").quantize)
    assert fingerprint(a.bench) != fingerprint(a.override("bench", threads=2).bench)
    # the same run count with and without a time floor, or another warm-up, are other settings
    runs = a.override("bench", iters=100)
    assert len({fingerprint(b) for b in (a.bench, runs.bench, a.override("bench", warmup_ms=0.0).bench)}) == 3


def test_an_engine_profile_must_take_every_bench_batch(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "[engines]\nbatch = '4:8:16'\n[bench]\nbatches = [4, 8]\n"))
    config.check()  # fine as it is
    with pytest.raises(UsageError) as info:
        config.override("bench", batches=(1, 8)).check()  # a flag (--batch 1,8) changes it
    message = str(info.value)
    assert "engines.batch 4:8:16" in message and "bench batch 1" in message and "\n" not in message
    with pytest.raises(UsageError, match="bench batch 32 is larger"):
        config.override("bench", batches=(4, 32)).check()


def test_contradicting_settings_are_refused_before_anything_is_written(
    resnet20_checkpoint: Path, tmp_path: Path
) -> None:
    from edgeres.pipeline import run_pipeline

    out = tmp_path / "out"  # the checkpoint records no training data: no evaluation data
    config = PipelineConfig().override("quantize", max_drop=0.5)
    with pytest.raises(UsageError, match=r"quantize\.max_drop needs evaluation data: give --eval DATA"):
        run_pipeline(resnet20_checkpoint, out, config, calib="digits", progress=False)
    assert not out.exists()
    bad_profile = PipelineConfig().override("engines", batch="2:4:8")
    with pytest.raises(UsageError, match="bench batch 1 is smaller"):
        run_pipeline(resnet20_checkpoint, out, bad_profile, calib="digits", progress=False)
    assert not out.exists()


def test_a_config_file_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "edgeres.toml"
    path.write_bytes(b"[eval]\nsize = 10 # \xff\xfe\n")
    with pytest.raises(EdgeresError, match="is not UTF-8 text; save the config file as UTF-8") as info:
        load_config(path)
    assert info.value.exit_code == 1
