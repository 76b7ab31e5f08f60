"""What the result pictures show."""

from __future__ import annotations

import numpy as np

from pipeline import overlay

THRESHOLDS = {"balanced": 0.34, "strict": 0.44}


def marker_column(scale: np.ndarray) -> float:
    """Mean column of the marker (the red or green triangle under the value)."""
    band = scale[16:28].astype(int)
    coloured = (np.abs(band - overlay.RED).sum(axis=2) < 60) | (np.abs(band - overlay.GREEN).sum(axis=2) < 60)
    return float(np.nonzero(coloured)[1].mean())


def test_the_similarity_scale_places_negative_scores_below_zero() -> None:
    """Different people often score below 0: the marker must not sit on 0 as if they scored 0."""
    at_zero = marker_column(overlay.similarity_scale(0.0, THRESHOLDS, "balanced"))
    below = marker_column(overlay.similarity_scale(-0.15, THRESHOLDS, "balanced"))
    above = marker_column(overlay.similarity_scale(0.76, THRESHOLDS, "balanced"))
    assert below < at_zero - 20 and above > at_zero + 200
