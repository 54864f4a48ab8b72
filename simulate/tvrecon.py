"""TV-regularised iterative reconstruction: corrct's PDHG on the projector of our own SIRT and FBP.

:func:`tv_reconstruct` solves, for each slice at once,

.. math::

    \\hat u = \\arg\\min_u \\; \\frac{1}{2 n_\\theta} \\sum_i \\hat w_i \\, (A u - p / s)_i^2 + \\lambda \\, TV(u),
    \\qquad \\hat x = s \\hat u

with ``A`` astra's ``linear`` projector matrix -- the one :mod:`simulate.sirt_matrix` runs SIRT with, so the
geometry, the pixel-edge rotation axis (``center``, ``detector / 2`` a centred axis) and the ray weights are those
of :func:`simulate.reconstruct.sirt` and :func:`simulate.reconstruct.fbp` -- ``p`` the line integrals,
``TV`` the isotropic total variation of each slice (``corrct.regularizers.Regularizer_TV2D``: forward differences,
the grid bordered by zeros) and ``\\lambda`` the ``weight``. The solver is corrct's preconditioned primal-dual
hybrid gradient (``corrct.solvers.PDHG``, Chambolle-Pock with diagonal step sizes), from zero or from ``x0``. Its
iteration is run by our own loop over corrct's pieces (the same iterates as ``corrct.solvers.PDHG``, tested), for
two things corrct's solver does not offer:

- a stop: every :data:`STOP_WINDOW` iterations the iterate is compared with the one a window before, and the run
  ends when no slice has moved by more than ``tol`` times its norm (:data:`DEFAULT_TOL`), or at ``n_iter``, the cap.
  corrct's own tolerance is on the data residual, which at a TV optimum is not small; the iterate's change is
  scale-free and measures what a search scores, the image;
- a warm start that continues PDHG's state, not its image alone (:class:`TVProblem`, ``warm=True``): the primal
  iterate and its extrapolation, the data term's dual (a residual, in the data's unit) and the TV term's dual (kept
  at its place in the ball of the new weight's radius). A restart from ``x0`` alone sets the duals to zero, which
  throws PDHG back; continued at the same weight, the state gives one run's iterates (tested).

Two more details are ours:

- the unknown is solved for in a unit that balances the steps of the TV term's dual against its bound
  (:data:`UNIT_BALANCE`): the same minimiser, reached in fewer iterations at large weights;
- the gradient pads with zeros (TV counts the step from the grid's border to zero, as the field of view's outside
  is), not with corrct 3.0's default edge padding, whose divergence is not the gradient's adjoint (it drops the
  first row's dual; tested in ``tests/test_baselines.py``), which leaves PDHG drifting at large weights.

The weight is scale-free, as :func:`simulate.reconstruct.tv_denoise`'s is:

- ``s`` is the robust range (99.5th minus 0.5th percentile) of the FBP of the same projections, the scale that
  FBP+TV's weight is relative to; the problem is solved for ``u = x / s``, so projections ``k`` times larger give
  a volume ``k`` times larger at the same weight (tested);
- the data term is averaged over the ``n_theta`` views (``A^T A`` grows with their number), so a weight means
  the same balance however many views there are (not the same optimum: that moves with the noise);
- the data weights ``w_i`` are the inverse variances of Poisson line integrals, ``I0 exp(-p_i)``, where
  ``incident`` (``I0``, photons per pixel) is given, and 1 otherwise (plain least squares); they are divided by
  their mean (``\\hat w``), so that weighting changes which rays are trusted, not the weight's scale.

The matrix holds every slice as a column: one sparse product per projection and one per back-projection each
iteration, whatever the number of slices (:class:`StackProjector`). Where the matrix does not fit
(:func:`simulate.sirt_matrix.matrix_fits` is false, e.g. 1500 views on a 2048-pixel detector) :func:`tv_reconstruct`
raises ValueError rather than fall back: corrct's astra projector needs CUDA, and without it corrct silently uses
scikit-image's ``radon``, another geometry (another pixel model and axis convention) than our SIRT and FBP.

Examples
--------
>>> import numpy as np
>>> from simulate.acquire import angles
>>> from simulate.reconstruct import project
>>> vol = np.zeros((2, 32, 32), np.float32); vol[:, 10:22, 8:20] = 0.05
>>> theta = angles(30)
>>> rec = tv_reconstruct(project(vol, theta), theta, weight=0.01, n_iter=50)
>>> rec.shape, rec.dtype
((2, 32, 32), dtype('float32'))
>>> bool(np.abs(rec - vol).mean() < 0.1 * np.abs(vol).mean())
True
>>> tv_reconstruct(project(vol, theta), theta[:-1], weight=0.01)
Traceback (most recent call last):
    ...
ValueError: need one angle per projection: 29 angles for 30 projections
"""

from __future__ import annotations

import contextlib
import io

import numpy as np

with contextlib.redirect_stdout(io.StringIO()):  # without CUDA, corrct prints a warning about its own astra
    from corrct import data_terms, operators, projectors, regularizers, solvers  # projector, not used here

from .reconstruct import _center_sinogram, _check_sino, _robust_range, fbp
from .sirt_matrix import _PROJECTOR_ROWS, _torch_csr, matrix_fits

__all__ = ["DEFAULT_ITER", "DEFAULT_TOL", "STOP_WINDOW", "tv_reconstruct", "TVProblem", "misfit", "StackProjector"]

DEFAULT_ITER = 1200  # PDHG iterations by default: analysis.classical.TV_RECON_ITER, where the reason is
DEFAULT_TOL = 5e-5  # the stop's tolerance by default: analysis.classical.TV_RECON_TOL, where the reason is
STOP_WINDOW = 50  # iterations over which the stop measures the iterate's change (and between its checks)
# The unknown is solved for in units of UNIT_BALANCE / sqrt(lambda * n_theta) (of the scaled volume): corrct's
# preconditioned PDHG takes fixed steps for the TV term's dual, which then needs about lambda * n_theta times more
# iterations to reach its bound at large weights. Measured on a 128-pixel foam, 23 and 180 views, lambda 0.003 to
# 1: 0.25 reached the objective's minimum in fewest iterations of 0.06, 0.12, 0.25, 0.5 and 1.
UNIT_BALANCE = 0.25


class StackProjector(projectors.ProjectorMatrix):
    """astra's projector matrix applied to a stack of slices at once, as a corrct projector.

    ``vol_shape`` is ``(slices, size, size)``; ``prj_shape`` ``(angles, slices, detector)``, our projections'
    layout. The slices are the columns of one dense operand: one torch sparse product per projection (and one with
    the transposed matrix per back-projection), on ``threads`` torch threads.
    """

    def __init__(self, matrix, n_slices: int, n_angles: int, n_det: int, size: int, *, threads: int = 1):
        if matrix.shape != (n_angles * n_det, size * size):
            raise ValueError(f"a matrix of shape {matrix.shape} is not {n_angles} angles x {n_det} detector "
                             f"pixels by a {size} x {size} grid")
        if matrix.nnz and float(matrix.data.min()) < 0:
            raise ValueError("the projector matrix has negative entries; absolute() assumes none")
        self._m, self._mt = _torch_csr(matrix), _torch_csr(matrix.T.tocsr())
        self._angles, self._det, self._size, self._slices = int(n_angles), int(n_det), int(size), int(n_slices)
        self.threads = max(1, int(threads))
        self.gain = 1.0  # the matrix times this: a change of the primal variable's unit (tv_reconstruct)
        super().__init__(matrix, (n_slices, size, size), (n_angles, n_slices, n_det))

    def _product(self, m, columns):
        import torch

        previous = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            out = m @ torch.from_numpy(columns)
            return (out if self.gain == 1.0 else out * self.gain).numpy()
        finally:
            torch.set_num_threads(previous)

    def fp(self, x):
        x = np.asarray(x, dtype=np.float32).reshape(self._slices, self._size * self._size)
        y = self._product(self._m, np.ascontiguousarray(x.T))  # (angles * detector, slices)
        return np.ascontiguousarray(y.reshape(self._angles, self._det, self._slices).transpose(0, 2, 1))

    def bp(self, y):
        y = np.asarray(y, dtype=np.float32).reshape(self._angles, self._slices, self._det)
        x = self._product(self._mt, np.ascontiguousarray(y.transpose(0, 2, 1)).reshape(-1, self._slices))
        return np.ascontiguousarray(x.T).reshape(self._slices, self._size, self._size)

    def _transpose(self):
        # this object with its directions swapped (corrct's BaseTransform way), sharing the matrices;
        # ProjectorMatrix's own would make a plain single-slice ProjectorMatrix of A^T
        return operators.BaseTransform._transpose(self)

    def absolute(self):
        return self  # astra's linear projector weights are non-negative (checked above)


def _prepare(sino, theta, center, size, incident):
    """Centred float32 projections, angles, grid size, the projector matrix, and the normalised data weights
    (None without ``incident``)."""
    sino, theta = _check_sino(sino, theta)
    if not np.isfinite(sino).all():
        raise ValueError("the projections contain NaN or Inf")
    sino = _center_sinogram(sino, center)
    n_angles, _, n_det = sino.shape
    size = int(size or n_det)
    if size < 1:
        raise ValueError(f"the grid size must be >= 1, got {size}")
    if not matrix_fits(n_angles, n_det, size):
        raise ValueError(f"the projector matrix of {n_angles} angles, {n_det} detector pixels and a {size}-pixel "
                         "grid does not fit simulate.sirt_matrix.MATRIX_MAX_GIB; TV reconstruction runs only on "
                         "the matrix (corrct's astra projector needs CUDA): reconstruct fewer views or a smaller "
                         "grid")
    weights = None
    if incident is not None:
        incident = np.asarray(incident, dtype=np.float64)
        if not (np.isfinite(incident).all() and (incident > 0).all()):
            raise ValueError("incident (photons per pixel) must be finite and > 0")
        try:
            weights = np.broadcast_to(incident, sino.shape) * np.exp(-sino.astype(np.float64))
        except ValueError:
            raise ValueError(f"incident of shape {incident.shape} does not broadcast to the projections' "
                             f"{sino.shape}") from None
        weights = (weights / weights.mean()).astype(np.float32)
    matrix = _PROJECTOR_ROWS.matrix(theta, n_det, size)
    return sino, theta, size, matrix, weights


def _check_weight(weight) -> float:
    try:
        weight = float(weight)
    except (TypeError, ValueError):
        raise ValueError(f"the TV weight must be a number >= 0, got {weight!r}") from None
    if not (np.isfinite(weight) and weight >= 0):
        raise ValueError(f"the TV weight must be a finite number >= 0, got {weight}")
    return weight


def _relative_change(new, old) -> float:
    """The largest over the slices of ``||new - old|| / ||new||`` (0 where both are zero, inf where only new is)."""
    new, old = new.reshape(new.shape[0], -1), old.reshape(old.shape[0], -1)
    step = np.linalg.norm((new - old).astype(np.float64), axis=1)
    size = np.linalg.norm(new.astype(np.float64), axis=1)
    ratio = np.where(step == 0, 0.0, step / np.where(size > 0, size, 1.0))
    return float(np.max(np.where((size == 0) & (step > 0), np.inf, ratio)))


class TVProblem:
    """One set of projections' TV reconstruction, ready to solve at any weight (:func:`tv_reconstruct`'s).

    The projector matrix, the FBP scale and the data weights are made once, so a search over weights pays for them
    once; :meth:`solve` runs PDHG at one weight until :func:`tv_reconstruct`'s stop, and with ``warm=True`` starts
    from the previous solve's primal and dual iterates (a search along a grid). ``iterations`` and ``converged``
    tell how the last solve ended.

    >>> import numpy as np
    >>> from simulate.acquire import angles
    >>> from simulate.reconstruct import project
    >>> vol = np.zeros((1, 24, 24), np.float32); vol[:, 6:16, 8:18] = 0.05
    >>> theta = angles(20)
    >>> problem = TVProblem(project(vol, theta), theta)
    >>> a = problem.solve(0.01); problem.iterations, problem.converged
    (450, True)
    >>> b = problem.solve(0.02, warm=True); problem.iterations, problem.converged
    (450, True)
    >>> cold = TVProblem(project(vol, theta), theta); b0 = cold.solve(0.02); cold.iterations
    750
    """

    def __init__(self, sino, theta, *, center=None, size=None, incident=None, threads: int = 1):
        sino, theta, size, matrix, weights = _prepare(sino, theta, center, size, incident)
        n_angles, n_slices, n_det = sino.shape
        self.shape = (n_slices, size, size)
        self.n_angles = n_angles
        self.scale = _robust_range(fbp(sino, theta, size=size, backend="astra", threads=threads))  # already centred
        self.projector = StackProjector(matrix, n_slices, n_angles, n_det, size, threads=threads)
        self.data = sino / np.float32(self.scale)
        self.weights = weights
        self.iterations, self.converged = 0, False
        self._last = None  # (weight, gain, x, x_relax, p, q) of the last solve, in its internal unit

    def _gain(self, weight: float) -> float:
        # corrct minimises 1/2 ||A v - b||^2_W + w TV(v). With u = x / scale = gain * v, that is the module's
        # objective times n_theta for w = n_theta * lambda * gain. The gain changes the minimiser's unit, not the
        # minimiser: it balances PDHG's primal and dual steps (UNIT_BALANCE)
        return 1.0 if weight == 0 else UNIT_BALANCE / np.sqrt(weight * self.n_angles)

    def _solver(self, weight: float):
        """corrct's pieces for one weight: data term, regularisers and the diagonal steps (sigma, tau)."""
        self.projector.gain = self._gain(weight)
        fidelity = (data_terms.DataFidelity_l2() if self.weights is None else
                    data_terms.DataFidelity_l2w(self.weights))
        # pad_mode "constant": corrct's default "edge" gradient is not the adjoint of its divergence (tested)
        regs = [] if weight == 0 else [
            regularizers.Regularizer_TV2D(weight * self.n_angles * self.projector.gain, pad_mode="constant",
                                          norm=data_terms.DataFidelity_l21())]
        # corrct.solvers.PDHG's preconditioned set-up, relaxation 0.95 on both steps (its default)
        sigma, tau, _, _ = solvers.compute_diagonal_scaling(self.projector.absolute(), self.projector.T.absolute(),
                                                            self.data, regs=regs, relaxation_sigma=0.95,
                                                            relaxation_tau=0.95)
        fidelity.assign_data(self.data, sigma)
        return fidelity, regs, tau

    def solve(self, weight: float, *, n_iter: int = DEFAULT_ITER, tol=DEFAULT_TOL, x0=None,
              warm: bool = False, monitor=None) -> np.ndarray:
        """The reconstruction at ``weight``; the arguments are :func:`tv_reconstruct`'s. ``warm``: start from the
        last solve's iterates (ignored before the first; not with ``x0``). ``monitor(iterations, change, volume)``,
        if given, is called at each check of the stop (every :data:`STOP_WINDOW` iterations, with ``tol=None``
        too): for measuring the stop."""
        weight = _check_weight(weight)
        if int(n_iter) != n_iter or int(n_iter) < 1:
            raise ValueError(f"n_iter must be an integer >= 1, got {n_iter}")
        if tol is not None and not (np.isfinite(tol) and tol >= 0):
            raise ValueError(f"tol must be a finite number >= 0 or None, got {tol}")
        if x0 is not None:
            if warm:
                raise ValueError("give x0 or warm, not both")
            x0 = np.asarray(x0, dtype=np.float32)
            if x0.shape != self.shape:
                raise ValueError(f"x0 has shape {x0.shape}, expected {self.shape}")
        fidelity, regs, tau = self._solver(weight)
        gain = self.projector.gain
        q = [reg.initialize_dual() for reg in regs]
        p = fidelity.initialize_dual()
        if warm and self._last is not None:
            # the same point in the new unit (v = u / gain); the data dual is a residual in the data's unit, and the
            # TV dual keeps its place in the ball it is projected on, whose radius is the regulariser's weight
            w0, g0, x, x_relax, p0, q0 = self._last
            x, x_relax, p = x * np.float32(g0 / gain), x_relax * np.float32(g0 / gain), p0.copy()
            if q and q0:
                q = [q0[0] * np.float32(regs[0].weight / w0)]
        elif x0 is not None:
            x = x0 / np.float32(self.scale * gain)
            x_relax = x.copy()
        else:
            x = np.zeros(self.shape, np.float32)
            x_relax = x.copy()
        window = STOP_WINDOW if tol is not None or monitor is not None else int(n_iter)
        done, converged, previous = 0, False, x.copy()
        while done < n_iter:
            for _ in range(min(window, int(n_iter) - done)):  # corrct.solvers.PDHG's iteration
                fidelity.update_dual(p, self.projector(x_relax))
                fidelity.apply_proximal_dual(p)
                for q_r, reg in zip(q, regs):
                    reg.update_dual(q_r, x_relax)
                    reg.apply_proximal_dual(q_r)
                upd = self.projector.T(p)
                for q_r, reg in zip(q, regs):
                    upd += reg.compute_update_primal(q_r)
                x_new = x - upd * tau
                x_relax = x_new + (x_new - x)
                x = x_new
                done += 1
            if done % window == 0 and (tol is not None or monitor is not None):
                change = _relative_change(x, previous)
                if monitor is not None:
                    monitor(done, change, x * np.float32(gain * self.scale))
                if tol is not None and change <= tol:
                    converged = True
                    break
                previous = x.copy()
        self.iterations, self.converged = done, converged
        self._last = (regs[0].weight if regs else 0.0, gain, x, x_relax, p, q)
        return (x * np.float32(gain * self.scale)).astype(np.float32)


def tv_reconstruct(sino, theta, *, weight: float, n_iter: int = DEFAULT_ITER, tol=DEFAULT_TOL, center=None,
                   size=None, incident=None, threads: int = 1, x0=None) -> np.ndarray:
    """TV-regularised least-squares reconstruction of each slice (PDHG, corrct); see the module's objective.

    Parameters
    ----------
    sino : ndarray, shape (angles, slices, detector)
        Line integrals.
    theta : ndarray, shape (angles,)
        Angles in radians.
    weight : float
        ``\\lambda`` >= 0, relative to the FBP's robust range and per view (module docstring): scale-free. 0 is
        plain (weighted) least squares.
    n_iter : int
        The most PDHG iterations run (all of them with ``tol=None``).
    tol : float or None
        Stop when, over the last :data:`STOP_WINDOW` iterations, no slice's iterate moved by more than ``tol``
        times its norm (the module's stop). None: run ``n_iter`` iterations.
    center : float, optional
        Rotation axis on the detector, pixels (default ``detector / 2``), as for :func:`simulate.reconstruct.fbp`.
    size : int, optional
        Side of the square grid (default: the detector width).
    incident : float or ndarray, optional
        Photons per pixel ``I0`` (broadcast to the projections): the data term is weighted by the Poisson inverse
        variances ``I0 exp(-p)``. None: unweighted.
    threads : int
        torch threads for the sparse products.
    x0 : ndarray, shape (slices, size, size), optional
        A start, in the units of the result. The dual variables start from zero whatever ``x0`` is; a search over
        weights that continues primal and dual iterates is :meth:`TVProblem.solve` with ``warm=True``.

    Returns
    -------
    ndarray of float32, shape (slices, size, size)
    """
    weight = _check_weight(weight)
    if int(n_iter) != n_iter or int(n_iter) < 1:
        raise ValueError(f"n_iter must be an integer >= 1, got {n_iter}")
    return TVProblem(sino, theta, center=center, size=size, incident=incident, threads=threads).solve(
        weight, n_iter=n_iter, tol=tol, x0=x0)


def misfit(volume, sino, theta, *, center=None, incident=None) -> float:
    """The data term of :func:`tv_reconstruct` at ``volume``: ``sum_i w_i (A x - p)_i^2 / sum_i w_i`` (the mean
    squared residual of the line integrals, Poisson-weighted where ``incident`` is given), on the same matrix.

    >>> import numpy as np
    >>> from simulate.acquire import angles
    >>> from simulate.reconstruct import project
    >>> vol = np.zeros((1, 16, 16), np.float32); vol[:, 4:10, 5:12] = 1.0
    >>> theta = angles(12)
    >>> misfit(vol, project(vol, theta), theta) < 1e-10, misfit(0 * vol, project(vol, theta), theta) > 1
    (True, True)
    """
    volume = np.asarray(volume, dtype=np.float32)
    sino, theta, size, matrix, weights = _prepare(sino, theta, center, volume.shape[-1], incident)
    if volume.shape != (sino.shape[1], size, size):
        raise ValueError(f"the volume has shape {volume.shape}, the projections need {(sino.shape[1], size, size)}")
    residual = (matrix @ volume.reshape(volume.shape[0], -1).T.astype(np.float64)).reshape(
        sino.shape[0], sino.shape[2], sino.shape[1]).transpose(0, 2, 1) - sino
    w = np.ones_like(residual) if weights is None else weights
    return float((w * residual ** 2).sum() / w.sum())
