"""The tiny real fixture set every case starts from, built once with edgeres itself."""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

from _bad_inputs.core import command_env, edgeres_argv

#: Class names on purpose not in sorted order, and unequal image counts, so a label mix-up shows.
CLASSES = ("cat", "dog", "bird")
COUNTS = {"cat": 2, "dog": 3, "bird": 5}
#: The model always answers CLASSES[0]; the right top-1 on data/ is then COUNTS["cat"] / total.
TRUE_TOP1 = COUNTS["cat"] / sum(COUNTS.values())


def _edgeres(folder: Path, *args: str) -> None:
    r = subprocess.run(
        edgeres_argv(list(args)), cwd=folder, env=command_env(), capture_output=True, text=True
    )
    if r.returncode != 0:
        raise SystemExit(f"building the fixtures failed: edgeres {' '.join(args)}\n{r.stderr[-3000:]}")


def write_images(
    folder: Path, counts: dict[str, int], *, size: tuple[int, int] = (32, 32), seed: int = 0
) -> None:
    """Class subfolders of random-noise images, PNG and JPEG alternating."""
    from PIL import Image

    rng = random.Random(seed)
    for cls, n in counts.items():
        (folder / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            pixels = bytes(rng.randrange(256) for _ in range(size[0] * size[1] * 3))
            img = Image.frombytes("RGB", size, pixels)
            img.save(folder / cls / (f"{i}.png" if i % 2 == 0 else f"{i}.jpg"))


def bias_towards_first_class(path: Path) -> None:
    """Make the checkpoint answer class 0 for every image: its right accuracy is then known exactly."""
    import torch

    payload = torch.load(path, weights_only=True)
    state = payload["state_dict"]
    bias = [
        k for k in state if k.endswith("bias") and state[k].ndim == 1 and state[k].numel() == len(CLASSES)
    ]
    state[bias[-1]] = torch.tensor([100.0] + [0.0] * (len(CLASSES) - 1))
    weight = bias[-1][: -len("bias")] + "weight"
    state[weight] = torch.zeros_like(state[weight])
    torch.save(payload, path)


def build(folder: Path) -> Path:
    """Write the fixture set into ``folder`` (made empty) and return it."""
    folder.mkdir(parents=True)
    write_images(folder / "data", COUNTS)
    (folder / "classes.txt").write_text("\n".join(CLASSES) + "\n", encoding="utf-8")
    _edgeres(folder, "create", "resnet20", "--num-classes", "3", "--classes", ",".join(CLASSES), "-o", "m.pt")
    bias_towards_first_class(folder / "m.pt")
    _edgeres(folder, "export", "m.pt", "-o", "m.onnx")
    _edgeres(folder, "calib-set", "data", "--size", "6", "-o", "calib.txt")
    _edgeres(
        folder,
        "quantize",
        "m.onnx",
        "--calib",
        "data",
        "--calib-size",
        "6",
        "-o",
        "q.onnx",
        "--calib-cache",
        "q.calib.json",
        "--json",
        "quant.json",
        "--no-progress",
    )
    _edgeres(folder, "eval", "m.onnx", "--data", "data", "--json", "eval.json", "--no-progress")
    _edgeres(folder, "bench", "m.onnx", "--iters", "3", "--warmup", "1", "--json", "bench.json")
    sorted_classes_copy(folder / "m.onnx", folder / "s.onnx")
    (folder / "victim.bin").write_bytes(b"\0" * 64)
    return folder


def sorted_classes_copy(src: Path, dst: Path) -> None:
    """The ONNX model with its class names in sorted order: what every stage accepts with data/."""
    import json

    import onnx

    model = onnx.load(str(src))
    for prop in model.metadata_props:
        if prop.key == "edgeres.meta":
            meta = json.loads(prop.value)
            meta["class_names"] = sorted(meta["class_names"])
            prop.value = json.dumps(meta)
        elif prop.key == "edgeres.class_names":
            prop.value = json.dumps(sorted(json.loads(prop.value)))
    onnx.save(model, str(dst))
