"""Each method's image at its held-out choice, kept beside the ranking and drawn best first.
"""

from __future__ import annotations

from typing import List, NamedTuple, Optional, Sequence

import numpy as np

from simulate.plumbing import InputError


class RankedImages(NamedTuple):
    """What ``--images`` writes (:func:`write_images`) and :func:`read_images` reads back, one entry per method.

    ``recon`` ``(methods, rows, cols)``: each method's image at its holdout choice, made from all the views, of
    one detector row; ``method``, ``label`` (the method at its value, :func:`candidate_label`), ``score`` (held
    out), ``rank`` (by score, 1 = best); ``ssim`` and ``reference`` (that row of the reference) when the scan was
    scored against one, else None; ``attrs``, the file's attributes (``dataset``, ``dose``, ``row``, ...).
    """

    recon: np.ndarray
    method: List[str]
    label: List[str]
    score: np.ndarray
    rank: np.ndarray
    ssim: Optional[np.ndarray]
    reference: Optional[np.ndarray]
    attrs: dict


def _ranks(scores) -> np.ndarray:
    """Rank by score, 1 = the smallest (equal scores: in order).

    >>> _ranks([1.2, 0.9, 1.2, 1.0]).tolist()
    [3, 1, 4, 2]
    """
    ranks = np.empty(len(scores), np.int32)
    ranks[np.argsort(np.asarray(scores, dtype=np.float64), kind="stable")] = np.arange(1, len(scores) + 1)
    return ranks


def write_images(path, methods: Sequence[str], labels: Sequence[str], images: Sequence[np.ndarray],
                 scores: Sequence[float], *, ssim: Optional[Sequence[float]] = None,
                 reference: Optional[np.ndarray] = None, attrs: Optional[dict] = None) -> None:
    """Write the methods' images with their names, labels, scores and ranks (:class:`RankedImages`) atomically.

    Datasets ``/recon`` (float32), ``/method`` and ``/label`` (UTF-8 text), ``/score``, ``/rank``, and with a
    reference ``/ssim`` and ``/reference``; ``attrs`` become the root attributes (its ``reference`` names the
    reference file given there, ``"none"`` without one).
    """
    from simulate.io import write_arrays

    arrays = {"/recon": np.stack([np.asarray(im, dtype=np.float32) for im in images]),
              "/method": np.array([m.encode() for m in methods]), "/label": np.array([t.encode() for t in labels]),
              "/score": np.asarray(scores, dtype=np.float64), "/rank": _ranks(scores)}
    if reference is not None:
        arrays.update({"/ssim": np.asarray(ssim, dtype=np.float64),
                       "/reference": np.asarray(reference, dtype=np.float32)})
    attrs = dict(attrs or {})
    attrs["reference"] = "none" if reference is None else str(attrs.get("reference") or "unnamed")
    write_arrays(path, arrays, attrs)


def read_images(path) -> RankedImages:
    """What :func:`write_images` wrote, checked: a missing or unreadable file, a missing dataset, or arrays that
    do not agree in length, size or ranks are an :class:`InputError` naming the file."""
    from simulate.io import read_array, read_attrs

    recon = read_array(path, "/recon", ndim=3, dtype_kind="f")
    text = {name: [b.decode(errors="replace") for b in read_array(path, f"/{name}", ndim=1, dtype_kind="S",
                                                                     dtype=None, finite=False).tolist()]
            for name in ("method", "label")}
    score = read_array(path, "/score", ndim=1, dtype_kind="f", dtype=np.float64, finite=False)
    rank = read_array(path, "/rank", ndim=1, dtype_kind="iu", dtype=np.int64)
    attrs = read_attrs(path)
    ssim = reference = None
    if attrs.get("reference", "none") != "none":
        ssim = read_array(path, "/ssim", ndim=1, dtype_kind="f", dtype=np.float64, finite=False)
        reference = read_array(path, "/reference", ndim=2, dtype_kind="f")
    n = recon.shape[0]
    lengths = {"method": len(text["method"]), "label": len(text["label"]), "score": len(score), "rank": len(rank),
               **({} if ssim is None else {"ssim": len(ssim)})}
    if n == 0 or any(v != n for v in lengths.values()):
        raise InputError(path, f"{n} images in /recon for " + ", ".join(f"{v} {k}" for k, v in lengths.items()))
    if sorted(rank.tolist()) != list(range(1, n + 1)):
        raise InputError(path, f"/rank holds {rank.tolist()}, expected the ranks 1..{n} once each")
    if reference is not None and reference.shape != recon.shape[1:]:
        raise InputError(path, f"/reference of shape {reference.shape} for images of shape {recon.shape[1:]}")
    return RankedImages(recon, text["method"], text["label"], score, rank, ssim, reference, attrs)


def images_figure(path, out) -> None:
    """The methods' images ranked best first (:func:`read_images`), the reference last when there is one.

    Each panel is titled with its rank, label, held-out score and SSIM when known; all share one grey scale, the
    0.5..99.5 percentile range of the reference, else of the FBP, else of the best method's image
    (:mod:`analysis.figures`' window). Written as PNG at ``out`` and PDF beside it, atomically.
    """
    images = read_images(path)
    from analysis.figures import UNITS, grey_window, save_figure  # matplotlib, on the Agg backend
    import matplotlib.pyplot as plt

    order = np.argsort(images.rank, kind="stable")
    panels = []
    for i in order:
        text = f"{images.rank[i]}. {images.label[i]}\nscore {images.score[i]:.4g}"
        if images.ssim is not None:
            text += f", SSIM {images.ssim[i]:.3f}"
        panels.append((text, images.recon[i]))
    if images.reference is not None:
        panels.append(("reference (normal dose)", images.reference))
    window = (images.reference if images.reference is not None else
              images.recon[images.method.index("fbp")] if "fbp" in images.method else panels[0][1])
    vmin, vmax = grey_window(window)
    ncols = min(len(panels), 4)
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.6 * ncols, 2.8 * nrows), squeeze=False, layout="constrained")
    for ax, (text, img) in zip(axes.flat, panels):
        im = ax.imshow(img, cmap="gray", vmin=vmin, vmax=vmax)
        ax.set_title(text, fontsize=8)
        ax.set_xticks([]), ax.set_yticks([])
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    fig.colorbar(im, ax=axes.ravel().tolist(), fraction=0.02, pad=0.01).set_label(UNITS, fontsize=7)
    a = images.attrs
    fig.suptitle(f"{a.get('dataset', '')} {a.get('dose', '')}, detector row {a.get('row', '?')}: ranked by held-out "
                 "score (lower is better)", fontsize=9)
    save_figure(fig, out)


