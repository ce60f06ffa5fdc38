from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from edgeres.data import preprocess, preprocess_array, resize_and_crop, to_rgb
from edgeres.errors import UsageError
from edgeres.metadata import CIFAR10_MEAN, CIFAR10_STD, Preprocessing

CIFAR = Preprocessing(input_size=(32, 32), mean=CIFAR10_MEAN, std=CIFAR10_STD)


def test_uniform_image_normalizes_to_expected_value() -> None:
    v = 200
    out = preprocess(Image.new("RGB", (32, 32), (v, v, v)), CIFAR)
    assert out.shape == (3, 32, 32)
    assert out.dtype == np.float32
    assert out.flags["C_CONTIGUOUS"]
    for c in range(3):
        expected = (v / 255 - CIFAR10_MEAN[c]) / CIFAR10_STD[c]
        np.testing.assert_allclose(out[c], expected, rtol=1e-6)


def test_channels_stay_in_rgb_order() -> None:
    pre = Preprocessing(input_size=(8, 8), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    out = preprocess(Image.new("RGB", (8, 8), (255, 0, 51)), pre)
    np.testing.assert_allclose(out[:, 0, 0], [1.0, 0.0, 0.2], rtol=1e-6)


def test_non_square_image_is_resized_then_center_cropped() -> None:
    pre = Preprocessing(input_size=(224, 224))  # resize_to = 256
    # Left third black, middle white, right third black: the center crop keeps mostly white.
    arr = np.zeros((300, 600, 3), np.uint8)
    arr[:, 200:400] = 255
    img = Image.fromarray(arr)
    cropped = resize_and_crop(img, pre)
    assert cropped.size == (224, 224)
    out = preprocess(img, pre)
    assert out.shape == (3, 224, 224)
    # After resizing to 512x256 the white band spans x = 171..341, the crop x = 144..368.
    unnorm = np.asarray(cropped)
    assert unnorm[:, 112].min() == 255
    assert unnorm[:, 0].max() == 0 and unnorm[:, -1].max() == 0


def test_image_at_input_size_is_not_resized() -> None:
    pre = Preprocessing(input_size=(32, 32), resize=40)
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    assert resize_and_crop(img, pre) is img


def test_non_square_input_size_is_covered_not_padded() -> None:
    pre = Preprocessing(input_size=(32, 64))  # resize_to = 32, narrower than the crop
    out = preprocess(Image.new("RGB", (50, 50), (255, 255, 255)), pre)
    assert out.shape == (3, 32, 64)
    expected = (1.0 - np.array(pre.mean)) / np.array(pre.std)
    np.testing.assert_allclose(out[:, :, 0], np.repeat(expected[:, None], 32, 1), rtol=1e-5)


@pytest.mark.parametrize(
    ("mode", "value", "expected"),
    [
        ("L", 128, 128),
        ("1", 1, 255),
        ("I;16", 65535, 255),
        ("I;16", 257 * 100, 100),
        ("I", 40000, round(40000 / 257)),
        ("F", 0.5, 128),
        ("LA", (90, 0), 90),
        ("RGBA", (10, 20, 30, 0), (10, 20, 30)),
        ("CMYK", (0, 0, 0, 0), 255),
    ],
)
def test_to_rgb_modes(mode: str, value: object, expected: int | tuple[int, int, int]) -> None:
    img = Image.new(mode, (4, 4), value)  # type: ignore[arg-type]
    rgb = to_rgb(img)
    assert rgb.mode == "RGB"
    want = expected if isinstance(expected, tuple) else (expected,) * 3
    assert rgb.getpixel((1, 1)) == want


def test_to_rgb_palette_with_transparency_and_16bit_png_file() -> None:
    pal = Image.new("P", (4, 4), 1)
    pal.putpalette([0, 0, 0, 200, 100, 50] + [0] * 762)
    pal.info["transparency"] = 0
    assert to_rgb(pal).getpixel((0, 0)) == (200, 100, 50)

    buf = io.BytesIO()
    Image.new("I;16", (4, 4), 65535).save(buf, "PNG")
    loaded = Image.open(io.BytesIO(buf.getvalue()))
    assert to_rgb(loaded).getpixel((0, 0)) == (255, 255, 255)


def test_preprocess_array_matches_preprocess_exactly() -> None:
    rng = np.random.default_rng(1)
    batch = rng.integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    out = preprocess_array(batch, CIFAR)
    assert out.shape == (5, 3, 32, 32) and out.dtype == np.float32
    for i in range(5):
        np.testing.assert_array_equal(out[i], preprocess(Image.fromarray(batch[i]), CIFAR))


def test_preprocess_array_resizes_other_sizes_through_pil() -> None:
    rng = np.random.default_rng(2)
    batch = rng.integers(0, 256, (3, 40, 48, 3), dtype=np.uint8)
    out = preprocess_array(batch, CIFAR)
    assert out.shape == (3, 3, 32, 32)
    np.testing.assert_array_equal(out[2], preprocess(Image.fromarray(batch[2]), CIFAR))


def test_preprocess_array_grayscale_and_bad_dtype() -> None:
    gray = np.full((2, 32, 32), 51, np.uint8)
    out = preprocess_array(gray, CIFAR)
    assert out.shape == (2, 3, 32, 32)
    np.testing.assert_allclose(out[1, 2, 0, 0], (0.2 - CIFAR10_MEAN[2]) / CIFAR10_STD[2], rtol=1e-6)
    with pytest.raises(UsageError, match="uint8"):
        preprocess_array(gray.astype(np.float32), CIFAR)
    with pytest.raises(UsageError, match="shape"):
        preprocess_array(np.zeros((2, 4, 4, 4), np.uint8), CIFAR)
