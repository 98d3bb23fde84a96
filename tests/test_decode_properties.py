"""Property-based checks of the decoder on arbitrary heatmaps and tags (hypothesis)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from edgepose.decode import group


@st.composite
def maps(draw):
    h = draw(st.integers(1, 12))
    w = draw(st.integers(1, 12))
    dims = draw(st.integers(1, 3))
    values = st.floats(-2, 2, width=32, allow_nan=False)
    heat = draw(arrays(np.float32, (17, h, w), elements=values))
    tags = draw(arrays(np.float32, (17, h, w, dims), elements=st.floats(-5, 5, width=32)))
    params = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "adjust": st.booleans(),
                "refine": st.booleans(),
                "use_detection_val": st.booleans(),
                "ignore_too_much": st.booleans(),
                "max_people": st.integers(1, 5),
                "detection_threshold": st.floats(0, 1),
                "nms_kernel": st.sampled_from([1, 3, 5]),
            },
        )
    )
    return heat, tags, params


@settings(max_examples=150, deadline=None)
@given(maps())
def test_decoder_invariants(case):
    heat, tags, params = case
    poses = group(heat, tags, **params)
    again = group(heat.copy(), tags.copy(), **params)
    h, w = heat.shape[1:]
    assert np.isfinite(poses.xy).all() and np.isfinite(poses.conf).all() and np.isfinite(poses.score).all()
    assert (poses.xy[..., 0] >= 0).all() and (poses.xy[..., 0] <= w).all()
    assert (poses.xy[..., 1] >= 0).all() and (poses.xy[..., 1] <= h).all()
    assert ((poses.conf > 0).sum(axis=1) >= 1).all(), "a person without joints"
    assert len(poses) <= params.get("max_people", 30)
    np.testing.assert_array_equal(poses.xy, again.xy)
    np.testing.assert_array_equal(poses.conf, again.conf)
    np.testing.assert_array_equal(poses.score, again.score)
