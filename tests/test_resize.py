"""The network-input downscale filters like an area resize (anti-aliased) at the cost of bilinear, from BGR or
straight from a decoder's I420 planes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgepose.capture import open_source
from edgepose.resize import I420Image, resize


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


def as_i420(bgr: np.ndarray) -> I420Image:
    h, w = bgr.shape[:2]
    data = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420).reshape(-1)
    return I420Image(data, w, h, (0, w * h, w * h * 5 // 4), (w, w // 2, w // 2))


def test_i420_packed_converts_as_opencv(photo):
    img = photo[: photo.shape[0] // 2 * 2, : photo.shape[1] // 2 * 2]
    pic = as_i420(img)
    expected = cv2.cvtColor(pic.data.reshape(-1, img.shape[1]), cv2.COLOR_YUV2BGR_I420)
    assert np.array_equal(pic.to_bgr(), expected)
    assert pic.shape == img.shape


@pytest.mark.parametrize("size", [(341, 192), (256, 171), (600, 400)])
def test_i420_shrinks_planes_first_close_to_converting_the_whole_frame(video_aisle, size):
    """The network input made from I420 planes against converting the frame to BGR and resizing that: a
    real decoded frame (odd-sized target, padded planes, upscales too), within what chroma subsampling allows."""
    with open_source(video_aisle, width=481, height=271) as source:  # odd size: padded, odd-sized planes
        frames = [next(source) for _ in range(3)]
    pictures = [f.pixels for f in frames]
    assert all(isinstance(p, I420Image) for p in pictures)
    for pic in pictures:
        whole = resize(pic.to_bgr(), size)
        buffer = np.zeros((1, size[1] + 5, size[0] + 7, 3), np.uint8)
        ours = resize(pic, size, dst=buffer[0, : size[1], : size[0]])
        assert np.shares_memory(ours, buffer) and not buffer[0, size[1]:].any() and not buffer[0, :, size[0]:].any()
        assert psnr(ours, whole) > 35.0
        # And against the textbook area filter, as good as the BGR path within 3 dB.
        area = cv2.resize(pic.to_bgr(), size, interpolation=cv2.INTER_AREA)
        if size[0] < pic.width:
            assert psnr(ours, area) > psnr(whole, area) - 3.0


def test_frames_convert_to_bgr_only_when_asked(video_aisle):
    with open_source(video_aisle) as source:
        frame = next(source)
    assert "image" not in frame.__dict__  # nothing converted yet
    assert frame.size == (frame.pixels.width, frame.pixels.height)
    image = frame.image
    assert image.shape == (frame.pixels.height, frame.pixels.width, 3) and image.flags.c_contiguous
    assert frame.image is image  # converted once
