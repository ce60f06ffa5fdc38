"""`edgeres eval --backend/--device` and the runtime of its `--compare` reference, on a small real model.

The model is a resnet20 with randomized BatchNorm and a fitted head (its predictions vary), and
the images are labelled with ONNX Runtime's own FP32 predictions, computed here: FP32 on ONNX
Runtime scores 100% top-1 by construction, so another runtime's top-1 is the share of images on
which it predicts exactly what ONNX Runtime does.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from edgeres.records import read_eval

CLASSES = tuple(f"c{i}" for i in range(10))
PER_CLASS = 12
MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


@dataclass(frozen=True)
class Model:
    onnx: Path
    checkpoint: Path
    data: str
    classes_predicted: int


def _images(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Uint8 NHWC 32x32 images: a colour and stripe direction per class, under noise."""
    yy, xx = np.mgrid[0:32, 0:32]
    images, labels = [], []
    for c in range(len(CLASSES)):
        colour = np.array([(37 * c) % 256, (91 * c + 60) % 256, (151 * c + 120) % 256], np.float64)
        stripes = np.sin((xx * np.cos(c) + yy * np.sin(c)) * 0.6)[..., None] * 50
        for _ in range(PER_CLASS):
            images.append(np.clip(colour + stripes + rng.normal(0, 40, (32, 32, 3)), 0, 255).astype(np.uint8))
            labels.append(c)
    return np.stack(images), np.array(labels, np.int64)


def _ort_predictions(model: Path, data: str) -> np.ndarray:
    """Top-1 of ONNX Runtime itself (no edgeres runner) on every image, prepared as eval prepares them."""
    import onnxruntime as ort

    from edgeres.data import iter_batches, open_source
    from edgeres.loading import load_model

    source = open_source(data)
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    pre = load_model(model).meta.preprocessing
    batches = iter_batches(source, None, pre)
    return np.concatenate([session.run(None, {name: x})[0].argmax(1) for x, _ in batches])


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Model:
    import torch

    from edgeres.checkpoint import save_checkpoint
    from edgeres.export.fold import randomize_batchnorm
    from edgeres.export.onnx_export import export_onnx
    from edgeres.metadata import ModelMeta, Preprocessing
    from edgeres.models import get_model
    from tests.fitted import fit_head

    folder = tmp_path_factory.mktemp("eval-backend")
    images, labels = _images(np.random.default_rng(0))
    torch.manual_seed(0)
    net = get_model("resnet20", num_classes=len(CLASSES))
    randomize_batchnorm(net, seed=0)  # and a fitted head: default statistics predict one class
    fit_head(net, images, labels, MEAN, STD)
    meta = ModelMeta(
        arch="resnet20",
        num_classes=len(CLASSES),
        class_names=CLASSES,
        preprocessing=Preprocessing(input_size=(32, 32), mean=MEAN, std=STD),
    )
    onnx_path = export_onnx(net.eval(), meta, folder / "r20.onnx", exporter="torchscript", verify=False).path
    checkpoint = save_checkpoint(net, meta, folder / "r20.pt")
    data = folder / "images.npz"
    names = np.array(CLASSES)
    np.savez(data, images=images, labels=labels, class_names=names)
    predicted = _ort_predictions(onnx_path, str(data))
    assert len(predicted) == len(images)
    np.savez(data, images=images, labels=predicted, class_names=names)  # ORT's FP32 answers as labels
    return Model(onnx_path, checkpoint, str(data), len(set(predicted.tolist())))


def _one_line_error(r, code: int) -> str:
    assert r.code == code, (r.code, r.err)
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.err
    assert "Traceback" not in r.err
    return lines[0]


def test_openvino_scores_fp32_as_onnxruntime_does(run_cli, model: Model, tmp_path: Path) -> None:
    pytest.importorskip("openvino", reason="OpenVINO not installed (pip install edgeres[openvino])")
    assert model.classes_predicted >= 5  # varied predictions: agreeing is not trivial
    scores = {}
    for backend in ("openvino", "onnxruntime"):
        out = tmp_path / f"{backend}.json"
        r = run_cli("eval", str(model.onnx), "--data", model.data, "--backend", backend, "--json", str(out),
                    "--no-progress")  # fmt: skip
        assert r.code == 0, r.err
        assert f"evaluating {model.onnx} on {len(CLASSES) * PER_CLASS} images" in r.err
        assert f"({backend} on cpu)" in r.err
        data = json.loads(out.read_text())
        assert (data["backend"], data["device"], data["precision"]) == (backend, "cpu", "fp32")
        scores[backend] = data["result"]
    # Labelled with ONNX Runtime's predictions: 100% means OpenVINO predicts the same on every image.
    assert scores["onnxruntime"]["top1"] == 1.0
    assert scores["openvino"]["top1"] == 1.0
    assert scores["openvino"]["per_class"] == scores["onnxruntime"]["per_class"]


def test_the_reference_runs_on_auto_and_cpu_unless_told(run_cli, model: Model, tmp_path: Path) -> None:
    pytest.importorskip("openvino", reason="OpenVINO not installed (pip install edgeres[openvino])")
    out = tmp_path / "compare.json"
    r = run_cli("eval", str(model.onnx), "--data", model.data, "--backend", "openvino", "--compare",
                str(model.onnx), "--json", str(out), "--no-progress")  # fmt: skip
    assert r.code == 0, r.err
    assert "top-1 agreement with the reference: 100.00%" in r.out
    assert "(onnxruntime on cpu)" in r.err.splitlines()[-1]
    data = json.loads(out.read_text())
    assert (data["backend"], data["device"]) == ("openvino", "cpu")
    ref = data["reference"]
    assert (ref["backend"], ref["device"], ref["agreement"], ref["flips"]) == ("onnxruntime", "cpu", 1.0, [])
    record = read_eval(out)
    assert record.device == "cpu" and record.reference is not None and record.reference.device == "cpu"

    # --compare-backend moves the reference; --backend stays where it was.
    told = tmp_path / "told.json"
    r = run_cli("eval", str(model.onnx), "--data", model.data, "--compare", str(model.onnx),
                "--compare-backend", "openvino", "--json", str(told), "--no-progress")  # fmt: skip
    assert r.code == 0, r.err
    data = json.loads(told.read_text())
    assert (data["backend"], data["reference"]["backend"]) == ("onnxruntime", "openvino")
    assert data["reference"]["agreement"] == 1.0

    # --device reaches the model only: OpenVINO's AUTO would be an error for ONNX Runtime's reference.
    auto = tmp_path / "auto.json"
    r = run_cli("eval", str(model.onnx), "--data", model.data, "--backend", "openvino", "--device", "AUTO",
                "--compare", str(model.onnx), "--json", str(auto), "--no-progress")  # fmt: skip
    assert r.code == 0, r.err
    data = json.loads(auto.read_text())
    assert (data["device"], data["reference"]["backend"], data["reference"]["device"]) == (
        "auto",
        "onnxruntime",
        "cpu",
    )


def test_an_openvino_device_that_is_not_there_is_one_line(run_cli, model: Model, tmp_path: Path) -> None:
    pytest.importorskip("openvino", reason="OpenVINO not installed (pip install edgeres[openvino])")
    args = ("--data", model.data, "--no-progress")
    r = run_cli("eval", str(model.onnx), *args, "--backend", "openvino", "--device", "NOSUCH")
    assert "NOSUCH" in _one_line_error(r, 2)
    r = run_cli("eval", str(model.onnx), *args, "--compare", str(model.onnx), "--compare-backend", "openvino",
                "--compare-device", "NOSUCH")  # fmt: skip
    assert "NOSUCH" in _one_line_error(r, 2)


def test_a_backend_that_cannot_run_the_file_is_one_line(run_cli, model: Model, tmp_path: Path) -> None:
    args = ("--data", model.data, "--no-progress", "--json", str(tmp_path / "e.json"))
    pt = str(model.checkpoint)
    line = _one_line_error(run_cli("eval", pt, *args, "--backend", "openvino"), 2)
    assert "--backend openvino" in line and "'r20.pt'" in line and "ONNX" in line
    line = _one_line_error(run_cli("eval", str(model.onnx), *args, "--compare", pt, "--compare-backend",
                                   "onnxruntime"), 2)  # fmt: skip
    assert "--compare-backend onnxruntime" in line and "'r20.pt'" in line
    line = _one_line_error(run_cli("eval", str(model.onnx), *args, "--backend", "torch"), 2)
    assert "r20.onnx" in line
    line = _one_line_error(run_cli("eval", str(model.onnx), *args, "--compare-backend", "openvino"), 2)
    assert "--compare" in line
    line = _one_line_error(run_cli("eval", str(model.onnx), *args, "--backend", "nosuch"), 2)
    assert "nosuch" in line
    if importlib.util.find_spec("tensorrt") is None:  # the machine lacks it: exit 1, how to install it
        line = _one_line_error(run_cli("eval", str(model.onnx), *args, "--backend", "tensorrt"), 1)
        assert "TensorRT" in line and "not installed" in line
    assert not (tmp_path / "e.json").exists()


def test_the_torch_backend_runs_a_checkpoint_as_auto_does(run_cli, model: Model, tmp_path: Path) -> None:
    out = tmp_path / "torch.json"
    r = run_cli("eval", str(model.checkpoint), "--data", model.data, "--backend", "torch", "--json", str(out),
                "--no-progress")  # fmt: skip
    assert r.code == 0, r.err
    data = json.loads(out.read_text())
    assert (data["backend"], data["device"], data["precision"]) == ("torch", "cpu", "fp32")


def test_an_eval_file_without_device_still_reads_strictly(run_cli, model: Model, tmp_path: Path) -> None:
    """Files of an older edgeres (schema 1, no ``device``) read as before: device unknown."""
    out = tmp_path / "eval.json"
    r = run_cli("eval", str(model.onnx), "--data", model.data, "--compare", str(model.onnx),
                "--json", str(out), "--no-progress")  # fmt: skip
    assert r.code == 0, r.err
    data = json.loads(out.read_text())
    assert list(data)[:8] == [
        "kind",
        "schema",
        "model",
        "precision",
        "backend",
        "device",
        "size_bytes",
        "result",
    ]
    assert data["schema"] == 1
    new = read_eval(out)
    assert new.device == "cpu" and new.reference is not None and new.reference.device == "cpu"
    del data["device"], data["reference"]["device"]
    out.write_text(json.dumps(data))
    old = read_eval(out)
    assert old.device is None and old.reference is not None and old.reference.device is None
    assert old.result == new.result and old.backend == new.backend == "onnxruntime"
    data["device"] = 3
    out.write_text(json.dumps(data))
    from edgeres.errors import EdgeresError

    with pytest.raises(EdgeresError, match="field 'device' should be a string"):
        read_eval(out)


def test_eval_states_the_caveat_exactly_where_this_cpu_saturates(
    run_cli, model: Model, tmp_path: Path
) -> None:
    """An 8-bit cpu-layout model on a CPU without VNNI gets a caveat, printed and in the file; a
    7-bit one, or any model on a CPU with VNNI, does not. Runs on this machine, for real."""
    from edgeres.quantize.workflow import QuantizeOptions, quantize
    from edgeres.sysinfo import int8_pairs_saturate

    for bits in (8, 7):
        out = tmp_path / f"w{bits}.onnx"
        options = QuantizeOptions(
            calib=model.data, target="cpu", calib_size=60, weight_bits=bits, progress=False
        )
        quantize(model.onnx, out, options)
        js = tmp_path / f"w{bits}.json"
        r = run_cli("eval", str(out), "--data", model.data, "--json", str(js), "--no-progress")
        assert r.code == 0, r.err
        record = read_eval(js)
        warned = bits == 8 and int8_pairs_saturate()
        assert ("caveat: this CPU has no VNNI" in r.out) is warned, r.out
        assert (record.caveat is not None) is warned
        assert json.loads(js.read_text())["caveat"] == record.caveat


def test_a_cpu_layout_model_on_openvino_gets_a_note_the_openvino_layout_does_not(
    run_cli, model: Model, tmp_path: Path
) -> None:
    pytest.importorskip("openvino", reason="OpenVINO not installed (pip install edgeres[openvino])")
    from edgeres.quantize.targets import layout_note

    out = tmp_path / "q.onnx"
    r = run_cli("quantize", str(model.onnx), "--calib", model.data, "--target", "all", "--calib-size", "16",
                "-o", str(out), "--no-bias-correction")  # fmt: skip
    assert r.code == 0, r.err
    notes = {}
    for layout in ("cpu", "openvino"):
        for backend in ("openvino", "onnxruntime"):
            path = str(tmp_path / f"q.{layout}.onnx")
            r = run_cli("eval", path, "--data", model.data, "--backend", backend, "--no-progress")
            assert r.code == 0, r.err
            notes[layout, backend] = [line for line in r.err.splitlines() if line.startswith("note: ")]
    assert notes.pop(("cpu", "openvino")) == [f"note: {layout_note('cpu', 'openvino')}"]
    assert notes == {k: [] for k in notes}
    assert layout_note("tensorrt", "openvino") is None and layout_note(None, "openvino") is None
