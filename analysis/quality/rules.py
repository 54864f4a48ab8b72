"""The rules every quality measure follows, in one place: sizes in pixels of the slice's grid, levels, and the
shared geometry helpers (see :mod:`analysis.quality`)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["MATRIX_BAND", "UNIFORM_ERODE", "NPS_ROI", "EDGE_MIN_RADIUS", "EDGE_HALF_WIDTH", "EDGE_STEP", "EDGE_GUARD",
           "FRC_THRESHOLD", "FRC_TAPER", "PORE_LEVEL", "PORE_MIN_AREA", "DETECT_IOU", "SMALL_PORE_RADIUS",
           "RADIUS_BINS", "PORE_MASK_ERODE", "COLUMNS"]

MATRIX_BAND = 0.25         # uniform region: reference within this fraction of its median (the main material) ...
UNIFORM_ERODE = 3          # px: ... eroded this far from its edges
NPS_ROI = 16               # px: side of the square ROIs of the noise power spectrum
EDGE_MIN_RADIUS = 6.0      # px: smallest pore section whose edge is profiled
EDGE_HALF_WIDTH = 6.0      # px: radial profiles run from r - this to r + this
EDGE_STEP = 0.25           # px: sampling step along a radial profile
EDGE_GUARD = 2.0           # px: a profile is dropped when it comes this close to another pore
FRC_THRESHOLD = 0.5        # FRC level that defines the cutoff frequency
FRC_TAPER = 8.0            # px: cosine taper inside the field of view's rim before the FFT
PORE_LEVEL = 0.5           # pores: below this fraction of the image's median in the sample
PORE_MIN_AREA = 4          # px: connected pore components smaller than this are removed (and not counted as true)
DETECT_IOU = 0.5           # a true pore is found when a component covers its centre or has IoU >= this with it
SMALL_PORE_RADIUS = 4.0    # px: pores below this radius are "small" (pore_detection_small)
RADIUS_BINS = (0.0, 2.0, 4.0, 6.0, 8.0, 12.0, np.inf)   # px: default bins of detection_rate_by_radius
PORE_MASK_ERODE = 2        # px: the pore search region is the object mask eroded this far (partial-volume rim)

_EIGHT = np.ones((3, 3), bool)   # pores are 8-connected: diagonal neighbours belong to one pore

COLUMNS = ("nps_mean_freq", "nps_freq_ratio", "noise_power_ratio", "noise_rel", "nps_rois",
           "frc_cutoff", "edge_width", "edge_width_ref", "n_edges",
           "porosity", "porosity_error", "pore_detection", "pore_detection_small", "false_pores",
           "psd_wasserstein", "n_pores")
"""The per-slice columns of :func:`slice_quality`, in order (their meaning: :func:`slice_quality`)."""


def _disc(radius: float) -> np.ndarray:
    r = int(np.ceil(radius))
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    return yy ** 2 + xx ** 2 <= radius ** 2


def _erode(mask, radius: float) -> np.ndarray:
    if radius <= 0:
        return np.asarray(mask, bool)
    return ndimage.binary_erosion(mask, structure=_disc(radius), border_value=0)


def _centre(shape) -> np.ndarray:
    return (np.asarray(shape[-2:], float) - 1) / 2
