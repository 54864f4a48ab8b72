"""The downstream task: pores segmented by one rule, porosity, sizes, and which true pores are found.

Part of :mod:`analysis.quality`; every public name is importable from there."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import ndimage
from skimage.filters import threshold_otsu

from analysis.quality.rules import (DETECT_IOU, PORE_LEVEL, PORE_MASK_ERODE, PORE_MIN_AREA, RADIUS_BINS, _EIGHT,
                                    _centre, _erode)


def pore_threshold(image, object_mask, *, rule: str = "half-median") -> float:
    """The grey level below which a pixel of the sample is pore: ``PORE_LEVEL`` x the median of ``image`` over
    ``object_mask`` (``"half-median"``), or Otsu's threshold [4]_ of the same pixels (``"otsu"``, not the default:
    docs/claims.md, "Primary and secondary metrics", says why).

    Examples
    --------
    >>> img = np.full((10, 10), 2.0); img[:3] = 0.0; img[9, 9] = 40.0    # pores, matrix, one dense grain
    >>> pore_threshold(img, np.ones((10, 10), bool))
    1.0
    """
    values = np.asarray(image, dtype=np.float64)[np.asarray(object_mask, bool)]
    if values.size == 0:
        raise ValueError("the object mask is empty")
    if rule == "half-median":
        return float(PORE_LEVEL * np.median(values))
    if rule == "otsu":
        return float(values.min()) if values.min() == values.max() else float(threshold_otsu(values))
    raise ValueError(f"rule must be 'half-median' or 'otsu', got {rule!r}")


def segment_pores(image, object_mask, *, min_area: int = PORE_MIN_AREA, rule: str = "half-median") -> np.ndarray:
    """Pores of a slice by one fixed rule (docs/claims.md): the pixels of ``object_mask`` (the sample inside its
    wall, :func:`pore_region`) strictly below :func:`pore_threshold` of the image, without the 8-connected
    components of fewer than ``min_area`` pixels. No smoothing. Returns a bool mask of the slice's shape.

    Examples
    --------
    >>> img = np.ones((20, 20)); img[5:9, 5:9] = 0; img[15, 15] = 0     # a 4x4 pore and a 1-pixel speck
    >>> seg = segment_pores(img, np.ones((20, 20), bool))
    >>> int(seg.sum()), bool(seg[15, 15])
    (16, False)
    """
    mask = np.asarray(object_mask, bool)
    pores = (np.asarray(image, dtype=np.float64) < pore_threshold(image, mask, rule=rule)) & mask
    if min_area > 1:
        labels, n = ndimage.label(pores, structure=_EIGHT)
        area = np.bincount(labels.ravel(), minlength=n + 1)
        small = area < min_area
        small[0] = False
        pores[small[labels]] = False
    return pores


def porosity(segmentation, object_mask) -> float:
    """Pore fraction of the object: pore pixels inside ``object_mask`` over the mask's pixels."""
    mask = np.asarray(object_mask, bool)
    if not mask.any():
        return float("nan")
    return float(np.asarray(segmentation, bool)[mask].sum() / mask.sum())


def pore_size_distribution(segmentation) -> np.ndarray:
    """Equivalent radii ``sqrt(area / pi)`` in pixels of the 8-connected pore components, largest first.

    Examples
    --------
    >>> seg = np.zeros((10, 10), bool); seg[1:3, 1:3] = True; seg[6, 6] = True
    >>> pore_size_distribution(seg).round(3).tolist()
    [1.128, 0.564]
    """
    labels, n = ndimage.label(np.asarray(segmentation, bool), structure=_EIGHT)
    area = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    return np.sort(np.sqrt(area / np.pi))[::-1]


def render_circles(shape, circles) -> np.ndarray:
    """Label image of circles: pixel ``(i, j)`` gets ``k + 1`` when its centre lies inside circle ``k``, else 0.

    Circles are ``(x, y, r)`` (:mod:`analysis.quality`); a later circle wins where two overlap.

    Examples
    --------
    >>> render_circles((5, 5), [[0, 0, 1.0]])
    array([[0, 0, 0, 0, 0],
           [0, 0, 1, 0, 0],
           [0, 1, 1, 1, 0],
           [0, 0, 1, 0, 0],
           [0, 0, 0, 0, 0]], dtype=int32)
    """
    rows, cols = shape[-2:]
    out = np.zeros((rows, cols), np.int32)
    centre = _centre((rows, cols))
    for k, (x, y, r) in enumerate(np.asarray(circles, dtype=np.float64).reshape(-1, 3)):
        cr, cc = centre[0] + x, centre[1] + y
        r0, r1 = max(0, int(np.floor(cr - r))), min(rows, int(np.ceil(cr + r)) + 1)
        c0, c1 = max(0, int(np.floor(cc - r))), min(cols, int(np.ceil(cc + r)) + 1)
        if r0 >= r1 or c0 >= c1:
            continue
        yy, xx = np.mgrid[r0:r1, c0:c1]
        inside = (yy - cr) ** 2 + (xx - cc) ** 2 <= r * r
        out[r0:r1, c0:c1][inside] = k + 1
    return out


class PoreDetection(NamedTuple):
    """Which true pores a segmentation finds, and what it invents (:func:`detect_pores`)."""

    radius: np.ndarray     # radius of each counted true pore, pixels
    detected: np.ndarray   # bool per counted true pore
    false_pores: int       # segmented components that match no true pore
    n_components: int      # segmented components in all


def _match(segmentation, true_labels, n_true, centres, eligible, iou: float) -> tuple[np.ndarray, int, int]:
    """Detection of labelled true pores by the components of a segmentation (the rule of :func:`detect_pores`)."""
    seg_labels, n_seg = ndimage.label(np.asarray(segmentation, bool), structure=_EIGHT)
    both = (seg_labels > 0) & (true_labels > 0)
    pair = seg_labels[both].astype(np.int64) * (n_true + 1) + true_labels[both]
    inter = np.bincount(pair, minlength=(n_seg + 1) * (n_true + 1)).reshape(n_seg + 1, n_true + 1)
    seg_area = np.bincount(seg_labels.ravel(), minlength=n_seg + 1)
    true_area = np.bincount(true_labels.ravel(), minlength=n_true + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        overlap = inter / (seg_area[:, None] + true_area[None, :] - inter)
    overlap[0, :] = 0
    overlap[:, 0] = 0
    good = overlap >= iou                                        # (n_seg + 1, n_true + 1)
    rows, cols = true_labels.shape
    ci = np.clip(np.rint(centres[:, 0]).astype(np.int64), 0, rows - 1)
    cj = np.clip(np.rint(centres[:, 1]).astype(np.int64), 0, cols - 1)
    covering = seg_labels[ci, cj]                               # component at each true pore's centre (0: none)
    detected = (covering > 0) | good[:, 1:].any(axis=0)
    matched = good[:, 1:].any(axis=1)
    matched[covering[covering > 0]] = True
    matched |= 2 * inter[:, 1:].sum(axis=1) >= seg_area          # at least half of it lies in true pores
    false = int((~matched[1:]).sum())
    return detected[eligible], false, int(n_seg)


def detect_pores(segmentation, circles, *, mask=None, iou: float = DETECT_IOU,
                 min_area: int = PORE_MIN_AREA) -> PoreDetection:
    """Per true pore, whether the segmentation finds it; and how many segmented pores match no true one.

    The found and false-pore rules: docs/claims.md, "Primary and secondary metrics". True pores are ``circles``
    rendered on the pixel grid (:func:`render_circles`); one is counted when its rendering has at least
    ``min_area`` pixels and lies wholly inside ``mask`` (the region given to :func:`segment_pores`), but every
    true pore, counted or not, can match a component. ``radius`` and ``detected`` are of the counted pores.

    Examples
    --------
    >>> circles = np.array([[-10.0, 0, 4], [10, 0, 4]])
    >>> seg = render_circles((48, 48), circles) == 1                # finds only the first pore
    >>> seg[40:43, 40:43] = True                                    # ... and invents one
    >>> d = detect_pores(seg, circles)
    >>> d.detected.tolist(), d.false_pores
    ([True, False], 1)
    """
    seg = np.asarray(segmentation, bool)
    circles = np.asarray(circles, dtype=np.float64).reshape(-1, 3)
    labels = render_circles(seg.shape, circles)
    n = len(circles)
    area = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    eligible = area >= min_area
    if mask is not None:
        outside = np.bincount(labels[~np.asarray(mask, bool)].ravel(), minlength=n + 1)[1:]
        eligible &= outside == 0
    centres = _centre(seg.shape) + circles[:, :2]
    detected, false, n_seg = _match(seg, labels, n, centres, eligible, iou)
    return PoreDetection(circles[eligible, 2], detected, false, n_seg)


def detect_reference_pores(segmentation, reference_segmentation, *, iou: float = DETECT_IOU) -> PoreDetection:
    """:func:`detect_pores` against the 8-connected components of a reference's segmentation, when no phantom is
    known (shale): a pore's radius is ``sqrt(area / pi)``, its centre the pixel nearest its centroid."""
    ref = np.asarray(reference_segmentation, bool)
    labels, n = ndimage.label(ref, structure=_EIGHT)
    area = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    centres = np.asarray(ndimage.center_of_mass(ref, labels, np.arange(1, n + 1))).reshape(-1, 2)
    detected, false, n_seg = _match(segmentation, labels, n, centres, np.ones(n, bool), iou)
    return PoreDetection(np.sqrt(area / np.pi), detected, false, n_seg)


def detection_rate_by_radius(radius, detected, bins=RADIUS_BINS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(bins, rate, count)``: the fraction of true pores detected (NaN for an empty bin) and their number in
    radius bins ``[bins[i], bins[i + 1])`` (pixels).

    Examples
    --------
    >>> _, rate, count = detection_rate_by_radius([1.5, 3, 3.5, 7], [False, True, False, True], bins=[0, 2, 4, 8])
    >>> rate.tolist(), count.tolist()
    ([0.0, 0.5, 1.0], [1, 2, 1])
    """
    radius = np.asarray(radius, dtype=np.float64)
    detected = np.asarray(detected, bool)
    bins = np.asarray(bins, dtype=np.float64)
    idx = np.digitize(radius, bins) - 1
    nb = len(bins) - 1
    ok = (idx >= 0) & (idx < nb)
    count = np.bincount(idx[ok], minlength=nb)
    hits = np.bincount(idx[ok], detected[ok].astype(np.float64), minlength=nb)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(count > 0, hits / np.maximum(count, 1), np.nan)
    return bins, rate, count


def pore_region(object_mask, *, erode: float = PORE_MASK_ERODE) -> np.ndarray:
    """Where pores are looked for: the object mask eroded by ``erode`` pixels.

    The erosion drops the object's partial-volume rim, and with :func:`simulate.scores.object_mask` (dilated
    by :data:`simulate.scores.OBJECT_DILATE` pixels) pass ``erode = OBJECT_DILATE + 2`` so that the dark
    background around the sample is not taken for a pore.
    """
    return _erode(object_mask, erode)
