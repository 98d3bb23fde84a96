"""Ideal network outputs drawn from ground truth: what a perfect associative-embedding network would output.

Used to find what limits a trained model (``edgepose train diagnose`` swaps the model's heatmaps or tags for
these) and by the decoder's tests and benchmarks. numpy only.
"""

from __future__ import annotations

import math

import numpy as np

from edgepose.types import NUM_JOINTS

SIGMA = 2.0  # the Gaussian the networks are trained to draw (DATASET.SIGMA of the official configs)


def render_maps(joints, shape, tag_values, sigma: float = SIGMA, background_tag: float = 0.0):
    """Heatmaps (17, H, W) and tags (17, H, W, L) for people.

    joints: (n, 17, 3) x, y in continuous map coordinates (pixel i spans [i, i+1)), visibility (> 0 drawn).
    tag_values: (n, L) each person's tag. A Gaussian of peak 1 is drawn per visible joint, overlapping people
    keep the maximum, and each person's constant tag is written wherever that person owns the joint's heatmap.
    """
    joints = np.asarray(joints, np.float64).reshape(-1, NUM_JOINTS, 3)
    tag_values = np.asarray(tag_values, np.float32).reshape(len(joints), -1)
    h, w = shape
    heat = np.zeros((NUM_JOINTS, h, w), np.float32)
    tags = np.full((NUM_JOINTS, h, w, tag_values.shape[1]), background_tag, np.float32)
    radius = int(math.ceil(3 * sigma)) + 1
    for person, tag in zip(joints, tag_values):
        for j, (x, y, vis) in enumerate(person):
            cx, cy = x - 0.5, y - 0.5  # Gaussian centre in pixel-index coordinates
            if vis <= 0 or not (-0.5 <= cx < w - 0.5 and -0.5 <= cy < h - 0.5):
                continue
            x0, x1 = max(int(cx) - radius, 0), min(int(cx) + radius + 1, w)
            y0, y1 = max(int(cy) - radius, 0), min(int(cy) + radius + 1, h)
            yy, xx = np.mgrid[y0:y1, x0:x1]
            g = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2)).astype(np.float32)
            patch = heat[j, y0:y1, x0:x1]
            owner = g > patch
            patch[owner] = g[owner]
            tags[j, y0:y1, x0:x1][owner] = tag
    return heat, tags


def person_tags(n: int, rng: np.random.Generator | None = None, dims: int = 1) -> np.ndarray:
    """(n, dims) distinct constant tags 2 apart (twice the decoder's default tag threshold), shuffled when
    ``rng`` is given so that no test can depend on the annotation order."""
    order = rng.permutation(n) if rng is not None else np.arange(n)
    return 2.0 * (1 + order)[:, None] + np.zeros((1, dims))
