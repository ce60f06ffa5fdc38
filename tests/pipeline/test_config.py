"""edgeres.toml: the documented example, and one-line errors for unknown keys and wrong types."""

from __future__ import annotations

import re
from pathlib import Path

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
    assert PipelineConfig().bench.iters == 100 and PipelineConfig().quantize.target == "auto"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[quantize]\nmethdo = 'entropy'\n", ["quantize.methdo", "known: method"]),
        ("[quantise]\nmethod = 'entropy'\n", ["[quantise]"]),
        ("[bench]\nbackend = 'torch'\n", ["bench.backend"]),
        ("[pipeline]\nforce = true\n", ["pipeline.force"]),
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


def test_duration_replaces_iters_and_flags_override_the_file(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "[bench]\nduration = 2\n[quantize]\nmethod = 'mse'\n"))
    assert config.bench.iters is None and config.bench.duration == 2.0
    flags = config.override("bench", iters=5).override("quantize", method=None, calib_size=64)
    assert flags.bench.iters == 5 and flags.bench.duration is None
    assert flags.quantize.method == "mse" and flags.quantize.calib_size == 64
    with pytest.raises(UsageError, match="--iters must be at least 1"):
        config.override("bench", iters=0)


def test_the_fingerprint_follows_the_settings() -> None:
    a = PipelineConfig()
    assert fingerprint(a.quantize) == fingerprint(PipelineConfig().quantize)
    assert fingerprint(a.quantize) != fingerprint(a.override("quantize", method="entropy").quantize)
    assert fingerprint(a.bench) != fingerprint(a.override("bench", threads=2).bench)


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
