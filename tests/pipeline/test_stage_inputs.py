"""What each stage reads: a change to exactly one input reruns the stages that read it, and no other.

Each test starts from a copy of one finished run on image folders (calibration and evaluation
data as real files, so adding an image is a real change), changes one thing, runs again, and
compares the status of every stage with what must happen. A stage whose input list lost a file
or a data folder, a fingerprint that lost a setting, or a missing output read as "skip" fails
one of these tests.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from edgeres.pipeline import PipelineConfig, PipelineResult, run_pipeline
from edgeres.pipeline.context import has_module

FP16 = has_module("onnxconverter_common")
NO_TRT = "skipped"  # engines: never built here (no TensorRT), in every test
RAN, UP = "ran", "up to date"


def _fp16(status: str) -> str:
    return status if FP16 else "skipped"


def _write_digits(folder: Path, indices: range) -> Path:
    """Digits images as PNG files in class folders '0'..'9' (the checkpoint's class names)."""
    from edgeres.data import open_source

    source = open_source("digits")
    for i in indices:
        label = int(source.labels[i])
        target = folder / str(label) / f"{i:04d}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        source.load(i).save(target)
    return folder


def _statuses(result: PipelineResult) -> dict[str, str]:
    assert result.ok, [(s.name, s.status.value, s.reason) for s in result.stages]
    return {s.name: s.status.value for s in result.stages}


def _later(path: Path, seconds: float = 5.0) -> None:
    """Move a file's modification time forward (a touch that cannot fall in the same clock tick)."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + int(seconds * 1e9)))


def _expected(**changed: str) -> dict[str, str]:
    base = {
        "export": UP,
        "fp16": _fp16(UP),
        "quantize": UP,
        "engines": NO_TRT,
        "eval": UP,
        "bench": UP,
        "report": UP,
    }
    base.update({k: (_fp16(v) if k == "fp16" else v) for k, v in changed.items()})
    return base


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(calibration folder, evaluation folder): 40 and 30 digits images, no image in both."""
    pytest.importorskip("sklearn", reason="the digits data needs scikit-learn (pip install edgeres[demo])")
    root = tmp_path_factory.mktemp("stage-inputs")
    return _write_digits(root / "calib", range(40)), _write_digits(root / "val", range(100, 130))


@pytest.fixture(scope="module")
def base_run(
    folders: tuple[Path, Path], digits_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """One finished run with separate calibration and evaluation folders."""
    from tests.pipeline.conftest import _fast_config

    calib, val = folders
    out = tmp_path_factory.mktemp("base") / "out"
    first = run_pipeline(
        digits_checkpoint, out, _fast_config(), calib=str(calib), eval_data=str(val), progress=False
    )
    assert _statuses(first)["quantize"] == RAN
    return out


@pytest.fixture
def run_again(
    base_run: Path,
    folders: tuple[Path, Path],
    digits_checkpoint: Path,
    fast_config: PipelineConfig,
    tmp_path: Path,
):
    """Copy the base run (and its inputs, so they may be changed) and return a function that reruns it."""
    calib, val = (Path(shutil.copytree(f, tmp_path / f.name)) for f in folders)
    model = Path(shutil.copy2(digits_checkpoint, tmp_path / digits_checkpoint.name))
    out = Path(shutil.copytree(base_run, tmp_path / "out"))
    # The copies have new paths: one run records them, and after it everything is up to date.
    settle = run_pipeline(model, out, fast_config, calib=str(calib), eval_data=str(val), progress=False)
    assert _statuses(settle)["export"] == RAN  # a new model path is a new input

    def again(config: PipelineConfig | None = None) -> dict[str, str]:
        result = run_pipeline(
            model, out, config or fast_config, calib=str(calib), eval_data=str(val), progress=False
        )
        return _statuses(result)

    again.model, again.out, again.calib, again.val = model, out, calib, val  # type: ignore[attr-defined]
    assert again() == _expected()
    return again


def test_a_touched_checkpoint_exports_again(run_again) -> None:
    _later(run_again.model)
    # model.fp32.onnx is rewritten, so everything that reads it runs too
    assert run_again() == _expected(export=RAN, fp16=RAN, quantize=RAN, eval=RAN, bench=RAN, report=RAN)


def test_a_touched_fp32_model_quantizes_and_converts_again(run_again) -> None:
    _later(run_again.out / "model.fp32.onnx")
    assert run_again() == _expected(fp16=RAN, quantize=RAN, eval=RAN, bench=RAN, report=RAN)


def test_new_calibration_images_quantize_again(run_again) -> None:
    _write_digits(run_again.calib, range(40, 45))
    assert run_again() == _expected(quantize=RAN, eval=RAN, bench=RAN, report=RAN)


def test_new_evaluation_images_evaluate_again(run_again) -> None:
    _write_digits(run_again.val, range(130, 133))
    assert run_again() == _expected(eval=RAN, report=RAN)


def test_a_changed_export_setting_reruns_what_depends_on_the_export(run_again, fast_config) -> None:
    config = fast_config.override("export", fold_bn=False)
    assert run_again(config) == _expected(export=RAN, fp16=RAN, quantize=RAN, eval=RAN, bench=RAN, report=RAN)
    assert run_again(config) == _expected()


def test_a_changed_eval_setting_reruns_eval_only(run_again, fast_config) -> None:
    # The evaluation folder is not the calibration folder: quantize does not depend on eval settings.
    assert run_again(fast_config.override("eval", size=20)) == _expected(eval=RAN, report=RAN)


@pytest.mark.parametrize(
    ("output", "reruns"),
    [
        (
            "model.fp32.onnx",
            {"export": RAN, "fp16": RAN, "quantize": RAN, "eval": RAN, "bench": RAN, "report": RAN},
        ),
        ("model.int8.cpu.onnx", {"quantize": RAN, "eval": RAN, "bench": RAN, "report": RAN}),
        ("model.int8.calib.json", {"quantize": RAN, "eval": RAN, "bench": RAN, "report": RAN}),
        ("eval_int8-cpu.json", {"eval": RAN, "report": RAN}),
        ("bench.json", {"bench": RAN, "report": RAN}),
        ("report/report.md", {"report": RAN}),
    ],
)
def test_a_deleted_output_reruns_its_stage(run_again, output: str, reruns: dict[str, str]) -> None:
    (run_again.out / output).unlink()
    assert run_again() == _expected(**reruns)
    assert (run_again.out / output).is_file()


def test_eval_settings_are_part_of_quantize_when_it_holds_eval_images_out(
    folders: tuple[Path, Path], digits_checkpoint: Path, fast_config: PipelineConfig, tmp_path: Path
) -> None:
    """On one folder for both, quantize leaves the evaluated images out: their number is its input."""
    calib = Path(shutil.copytree(folders[0], tmp_path / "calib"))
    out = tmp_path / "out"

    def run(config: PipelineConfig) -> dict[str, str]:
        return _statuses(
            run_pipeline(
                digits_checkpoint, out, config, calib=str(calib), eval_data=str(calib), progress=False
            )
        )

    config = fast_config.override("eval", size=8)
    assert run(config)["quantize"] == RAN
    assert run(config)["quantize"] == UP
    assert run(config.override("eval", size=4)) == _expected(quantize=RAN, eval=RAN, bench=RAN, report=RAN)
    # which images the sample takes decides which ones calibration leaves out
    assert run(config.override("eval", size=4, seed=1))["quantize"] == RAN


def test_a_stale_output_is_never_taken_for_up_to_date(run_again) -> None:
    """An output older than the input it was made from (restored from a backup) runs its stage again."""
    out = run_again.out
    int8 = out / "model.int8.cpu.onnx"
    st = (out / "model.fp32.onnx").stat()
    os.utime(int8, ns=(st.st_atime_ns, st.st_mtime_ns - 10**9))
    assert run_again() == _expected(quantize=RAN, eval=RAN, bench=RAN, report=RAN)


def test_an_image_replaced_in_place_is_a_change(run_again) -> None:
    """Same file name, new content (and time): calibration must see it."""
    victim = next(iter(sorted((run_again.calib / "0").iterdir())))
    Image.new("RGB", (32, 32), (255, 255, 255)).save(victim)
    _later(victim)
    assert run_again() == _expected(quantize=RAN, eval=RAN, bench=RAN, report=RAN)
