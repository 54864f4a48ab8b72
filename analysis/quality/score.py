"""One slice, every column: the reference measured once (:func:`quality_context`), then any image.

Part of :mod:`analysis.quality`; every public name is importable from there."""

from __future__ import annotations

import logging
from typing import NamedTuple

import numpy as np
from scipy import stats

from analysis.quality.noise import NoisePowerSpectrum, _roi_corners, mean_frequency, noise_power_spectrum, uniform_region
from analysis.quality.pores import (detect_pores, detect_reference_pores, pore_region, pore_size_distribution,
                                    porosity, render_circles, segment_pores)
from analysis.quality.resolution import EdgeWidth, _taper, edge_width, frc, frc_cutoff
from analysis.quality.rules import COLUMNS, FRC_TAPER, NPS_ROI, PORE_MASK_ERODE, SMALL_PORE_RADIUS, _erode

logger = logging.getLogger(__name__)


class QualityContext(NamedTuple):
    """What :func:`slice_quality` measures on the reference once per slice (:func:`quality_context`)."""

    reference: np.ndarray
    fov: np.ndarray
    circles: np.ndarray | None
    pore_mask: np.ndarray | None          # where pores are segmented (None: no object)
    uniform: np.ndarray                   # uniform region of the NPS
    corners: list                         # its ROIs
    ref_nps: NoisePowerSpectrum
    window: np.ndarray                    # FRC window
    edge_mask: np.ndarray                 # where edge profiles may run
    edge_ref: EdgeWidth | None
    true_seg: np.ndarray | None           # the reference's segmentation (no phantom)
    true_porosity: float
    true_radius: np.ndarray               # radii of the counted true pores


def quality_context(reference, fov, *, circles=None, object_mask=None) -> QualityContext:
    """Measure the reference side of :func:`slice_quality` once, to score many images of one slice.

    ``object_mask`` is the region pores are searched in (already inside the sample's wall, e.g.
    :func:`pore_region`); by default :func:`simulate.scores.object_mask` of the reference, eroded by
    ``OBJECT_DILATE + PORE_MASK_ERODE`` pixels. An empty slice (no object) leaves the pore columns NaN.
    """
    from simulate.scores import OBJECT_DILATE
    from simulate.scores import object_mask as find_object

    reference = np.asarray(reference, dtype=np.float64)
    fov = np.asarray(fov, bool)
    if reference.shape != fov.shape:
        raise ValueError(f"shape mismatch: reference {reference.shape} vs fov {fov.shape}")
    if object_mask is None:
        try:
            object_mask = pore_region(find_object(reference, fov), erode=OBJECT_DILATE + PORE_MASK_ERODE)
        except ValueError:
            object_mask = None
    pore_mask = None if object_mask is None or not np.any(object_mask) else np.asarray(object_mask, bool) & fov
    uniform = uniform_region(reference, fov, mask=pore_mask)
    corners = _roi_corners(uniform, NPS_ROI)
    ref_nps = noise_power_spectrum(reference, uniform, corners=corners)
    window = _taper(fov, FRC_TAPER)
    edge_mask = _erode(fov if pore_mask is None else pore_mask, 1)
    true_seg, true_porosity, true_radius = None, float("nan"), np.empty(0)
    edge_ref = None
    if circles is not None:
        circles = np.asarray(circles, dtype=np.float64).reshape(-1, 3)
        edge_ref = edge_width(reference, circles, mask=edge_mask)
    if pore_mask is not None:
        if circles is not None:
            truth = render_circles(reference.shape, circles) > 0
            true_porosity = porosity(truth, pore_mask)
            true_radius = detect_pores(truth, circles, mask=pore_mask).radius
        else:
            true_seg = segment_pores(reference, pore_mask)
            true_porosity = porosity(true_seg, pore_mask)
            true_radius = pore_size_distribution(true_seg)
    return QualityContext(reference, fov, circles, pore_mask, uniform, corners, ref_nps, window, edge_mask,
                          edge_ref, true_seg, true_porosity, true_radius)


def slice_quality(image, reference, fov, *, circles=None, object_mask=None,
                  context: QualityContext | None = None) -> dict:
    """Every quality column of one slice (:data:`COLUMNS`), NaN where a measure does not apply.

    Columns (pixels and cycles/pixel of the slice's grid; how each is taken: docs/claims.md, "Primary and
    secondary metrics"):

    - ``nps_mean_freq`` -- power-weighted mean frequency of the image's NPS in the uniform region
      (:func:`noise_power_spectrum`). Not better either way: lower than the low-dose input's means blotchier
      noise; compare with the FBP row of the same dose.
    - ``nps_freq_ratio`` -- ``nps_mean_freq`` over the reference's, on the same ROIs (:func:`nps_frequency_ratio`).
    - ``noise_power_ratio`` -- the image's noise variance in the uniform region over the reference's.
    - ``noise_rel`` -- the image's noise standard deviation over the reference's mean level in the uniform
      region (1 / SNR of the matrix); comparable across datasets.
    - ``nps_rois`` -- ROIs that fit the uniform region (0: the NPS columns are NaN).
    - ``frc_cutoff`` -- where the Fourier ring correlation with the reference first falls below one half
      (:func:`frc_cutoff`).
    - ``edge_width``, ``edge_width_ref``, ``n_edges`` -- 10-90 % width of the mean edge-spread function across
      the true pore edges (:func:`edge_width`) of the image and of the reference, and the edges used; NaN
      without a phantom (``circles``).
    - ``porosity`` -- pore fraction of the image's segmentation (:func:`segment_pores`) in the pore region;
      ``porosity_error`` that minus the truth's (the phantom's circles, else the reference's segmentation): the
      sign says pores lost (<0) or added (>0).
    - ``pore_detection``, ``pore_detection_small`` -- fraction of the true pores (:func:`detect_pores`, or
      :func:`detect_reference_pores` without a phantom), of all and of those below ``SMALL_PORE_RADIUS``, found.
    - ``false_pores`` -- segmented pores that match no true pore (invented).
    - ``psd_wasserstein`` -- 1-D Wasserstein distance in pixels between the equivalent radii of the segmented
      pores (:func:`pore_size_distribution`) and the radii of the true pores.
    - ``n_pores`` -- true pores counted in ``pore_detection``.

    ``circles`` are this slice's true pore sections (foam: :func:`simulate.phantoms.pore_sections` at
    ``z = k + 0.5``); ``object_mask`` as for :func:`quality_context`; a ``context`` of this reference replaces
    ``reference``, ``fov``, ``circles`` and ``object_mask``. Returns ``{column: float}`` in :data:`COLUMNS` order.
    """
    ctx = context if context is not None else quality_context(reference, fov, circles=circles,
                                                              object_mask=object_mask)
    image = np.asarray(image, dtype=np.float64)
    if image.shape != ctx.reference.shape:
        raise ValueError(f"shape mismatch: image {image.shape} vs reference {ctx.reference.shape}")
    out = dict.fromkeys(COLUMNS, float("nan"))
    out.update(_noise_columns(image, ctx))
    out["frc_cutoff"] = frc_cutoff(*frc(image, ctx.reference, window=ctx.window))
    if ctx.circles is not None:
        e = edge_width(image, ctx.circles, mask=ctx.edge_mask)
        out.update(edge_width=e.width, edge_width_ref=ctx.edge_ref.width, n_edges=e.n_edges)
    else:
        out["n_edges"] = 0
    out.update(_pore_columns(image, ctx))
    return {k: float(v) for k, v in out.items()}


def _noise_columns(image, ctx: QualityContext) -> dict:
    """The NPS columns of :func:`slice_quality` (none but ``nps_rois`` when no ROI fits the uniform region)."""
    s = noise_power_spectrum(image, ctx.uniform, corners=ctx.corners)
    if not s.n_rois:
        logger.debug("no %d-pixel ROI fits the uniform region: NPS columns NaN", NPS_ROI)
        return {"nps_rois": 0}
    nan = float("nan")
    f_img = mean_frequency(s.freqs, s.nps)
    return {"nps_rois": s.n_rois, "nps_mean_freq": f_img,
            "nps_freq_ratio": f_img / mean_frequency(ctx.ref_nps.freqs, ctx.ref_nps.nps),
            "noise_power_ratio": s.variance / ctx.ref_nps.variance if ctx.ref_nps.variance > 0 else nan,
            "noise_rel": np.sqrt(s.variance) / abs(ctx.ref_nps.mean) if ctx.ref_nps.mean != 0 else nan}


def _pore_columns(image, ctx: QualityContext) -> dict:
    """The porosity-task columns of :func:`slice_quality` (``n_pores = 0`` where the slice has no object)."""
    if ctx.pore_mask is None:
        return {"n_pores": 0}
    seg = segment_pores(image, ctx.pore_mask)
    out = {"porosity": porosity(seg, ctx.pore_mask)}
    out["porosity_error"] = out["porosity"] - ctx.true_porosity
    if ctx.circles is not None:
        det = detect_pores(seg, ctx.circles, mask=ctx.pore_mask)
    else:
        det = detect_reference_pores(seg, ctx.true_seg)
    out["n_pores"] = len(det.radius)
    out["false_pores"] = det.false_pores
    if len(det.radius):
        out["pore_detection"] = float(det.detected.mean())
        small = det.radius < SMALL_PORE_RADIUS
        if small.any():
            out["pore_detection_small"] = float(det.detected[small].mean())
    radii = pore_size_distribution(seg)
    if radii.size and ctx.true_radius.size:
        out["psd_wasserstein"] = float(stats.wasserstein_distance(radii, ctx.true_radius))
    return out
