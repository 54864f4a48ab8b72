"""Low-dose acquisition: short exposure (Poisson photon noise) and sparse views.

The forward model (:func:`short_exposure`) and what its noise is: docs/methods.md, "The low-dose conditions". Every
draw takes an explicit :class:`numpy.random.Generator`; nothing here touches global random state.
"""

from __future__ import annotations

import logging

import numpy as np

__all__ = ["poisson_counts", "counts_to_line_integrals", "short_exposure", "subsample_views"]

logger = logging.getLogger(__name__)


def poisson_counts(line_integrals, incident_photons, *, rng):
    """Draw detector photon counts for one dose level.

    Parameters
    ----------
    line_integrals : ndarray, shape (angles, rows, detector)
        Noise-free attenuation line integrals, non-negative up to rounding.
    incident_photons : float
        Mean photons per detector pixel with an empty beam (I0); sets the dose.
    rng : numpy.random.Generator
        Random source, seeded by the caller from the config.

    Returns
    -------
    counts : ndarray of float32, same shape as ``line_integrals``
        Poisson draws with mean ``incident_photons * exp(-line_integrals)``.

    Examples
    --------
    >>> poisson_counts(np.zeros((2, 1, 3), np.float32), 1e4, rng=np.random.default_rng(0)).shape
    (2, 1, 3)
    """
    if not incident_photons > 0:
        raise ValueError(f"incident_photons must be > 0, got {incident_photons}")
    p = np.asarray(line_integrals, dtype=np.float64)
    if not np.isfinite(p).all():
        raise ValueError("line integrals contain NaN/Inf")
    mean = incident_photons * np.exp(-np.maximum(p, 0.0))
    return rng.poisson(mean).astype(np.float32)


def counts_to_line_integrals(counts, incident_photons):
    """``-log(max(counts, 1) / I0)``, float32: the measured line integrals."""
    counts = np.maximum(np.asarray(counts, dtype=np.float64), 1.0)
    return (-np.log(counts / float(incident_photons))).astype(np.float32)


def short_exposure(line_integrals, incident_photons, *, rng):
    """Line integrals as measured with ``incident_photons`` per pixel: :func:`poisson_counts`, then
    :func:`counts_to_line_integrals`."""
    return counts_to_line_integrals(poisson_counts(line_integrals, incident_photons, rng=rng),
                                    incident_photons)


def subsample_views(projections, theta, factor: int):
    """Keep every ``factor``-th projection, starting with the first.

    Parameters
    ----------
    projections : ndarray, shape (angles, rows, detector)
    theta : ndarray, shape (angles,)
    factor : int
        1 keeps all views; 8 keeps 1/8 of them (angles 0, 8, 16, ...).

    Returns
    -------
    projections, theta : the kept views and their angles (copies)

    Examples
    --------
    >>> p, t = subsample_views(np.zeros((8, 1, 2)), np.arange(8.0), 4)
    >>> t
    array([0., 4.])
    """
    factor = int(factor)
    if factor < 1:
        raise ValueError(f"view subsampling factor must be >= 1, got {factor}")
    projections = np.asarray(projections)
    theta = np.asarray(theta)
    if theta.shape[0] != projections.shape[0]:
        raise ValueError(f"{theta.shape[0]} angles for {projections.shape[0]} projections")
    if projections.shape[0] // factor < 2:
        raise ValueError(f"factor {factor} leaves fewer than 2 of {projections.shape[0]} views")
    return projections[::factor].copy(), theta[::factor].copy()
