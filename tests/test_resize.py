"""The network-input downscale filters like an area resize (anti-aliased) at the cost of bilinear."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgepose.resize import resize


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255.0**2 / np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)))


@pytest.fixture(scope="module")
def photo(coco_mini) -> np.ndarray:
    return cv2.imread(str(coco_mini / "images" / "000000000785.jpg"))


def test_halving_averages_each_2x2_block(photo):
    h, w = (d - d % 2 for d in photo.shape[:2])
    img = photo[:h, :w]
    blocks = img.reshape(h // 2, 2, w // 2, 2, 3).astype(np.float64).mean(axis=(1, 3))
    assert np.abs(resize(img, (w // 2, h // 2)) - blocks).max() <= 1.0


@pytest.mark.parametrize("factor", [2.5, 3.3, 5.6])
def test_large_downscales_stay_close_to_an_area_resize(photo, factor):
    """Plain bilinear skips pixels beyond 2x and aliases; halving first keeps it near INTER_AREA."""
    size = (round(photo.shape[1] / factor), round(photo.shape[0] / factor))
    area = cv2.resize(photo, size, interpolation=cv2.INTER_AREA)
    ours = resize(photo, size)
    bilinear = cv2.resize(photo, size, interpolation=cv2.INTER_LINEAR)
    assert ours.shape == area.shape
    assert psnr(ours, area) > psnr(bilinear, area) + 2.0


def test_resize_into_a_padded_buffer_view(photo):
    buffer = np.zeros((1, 192, 320, 3), np.uint8)
    out = resize(photo, (256, 192), dst=buffer[0, :, :256])
    assert out.base is buffer or np.shares_memory(out, buffer)
    assert buffer[0, :, :256].any() and not buffer[0, :, 256:].any()  # padding left as it was
    assert np.array_equal(buffer[0, :, :256], resize(photo, (256, 192)))
