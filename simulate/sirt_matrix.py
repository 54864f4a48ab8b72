"""astra's SIRT as sparse matrix products: many slices, and many sets of views of one scan, in one pass.

astra's CPU SIRT runs one slice at a time, and every iteration reads the projector twice. Here the same update,
``x += C A^T R (p - A x)`` (``R``, ``C`` the inverse row and column sums of astra's own ``linear`` projector
matrix ``A``), runs as torch products over a block of columns: the slices of a volume, and, for the held-out
ranking, the slices of every fold at once. A fold is a subset of the scan's views, so it is the full scan's
``A`` with the other views' rays weighted zero; its ``C`` counts only its own rays. One pass over ``A`` then
serves every fold, where separate runs would each read their own matrix (the cost of a ranking:
``bench/scan_cost.py``).

:class:`SirtProducts` keeps its iterates between calls, so a search that asks for 50 iterations, then 100, then
400 continues one run. The equality with astra's own SIRT, run slice by slice, is tested
(``tests/test_reconstruct.py``). Where the matrix and its transpose would exceed :data:`MATRIX_MAX_GIB`
(:func:`matrix_fits`), :mod:`simulate.reconstruct` runs astra slice by slice instead.
"""

from __future__ import annotations

import warnings
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

__all__ = ["MATRIX_MAX_GIB", "COLUMNS_PER_PRODUCT", "matrix_fits", "SirtProducts"]

MATRIX_MAX_GIB = 4.0  # the projector matrix and its transpose (float32 values, int32 indices) at most this
COLUMNS_PER_PRODUCT = 8  # slices multiplied together: more stops paying (the product leaves the cache)
_NNZ_PER_PIXEL_ANGLE = 2.0  # bound on the 'linear' projector's entries per pixel and angle (measured: 1.8)


def matrix_fits(n_angles: int, n_det: int, size: int) -> bool:
    """Whether SIRT on astra runs as sparse products: its projector matrix and the transpose fit
    :data:`MATRIX_MAX_GIB`.

    >>> matrix_fits(180, 640, 640), matrix_fits(1500, 2048, 2048)
    (True, False)
    """
    nnz = _NNZ_PER_PIXEL_ANGLE * n_angles * max(n_det, size) * size
    return 2 * 8 * nnz <= MATRIX_MAX_GIB * 2 ** 30


class _ProjectorRows:
    """astra's 'linear' projector as a sparse matrix, kept per angle for the next call of the same grid.

    The held-out folds of one scan share most of their angles, so each angle's rows are built once (by
    ``astra.projector.matrix``) and a matrix is stacked from them. The rows of one grid are kept, at most
    :data:`MATRIX_MAX_GIB`/2; another grid, or more, starts afresh.
    """

    def __init__(self):
        self._grid = None
        self._rows = {}

    def matrix(self, theta, n_det: int, size: int):
        import astra
        import scipy.sparse as sp

        grid = (int(n_det), int(size))
        if grid != self._grid:
            self._grid, self._rows = grid, {}
        theta = np.asarray(theta, dtype=np.float64)
        missing = [t for t in dict.fromkeys(theta.tolist()) if t not in self._rows]
        if missing:
            vol_geom = astra.create_vol_geom(size, size)
            proj_geom = astra.create_proj_geom("parallel", 1.0, n_det, np.asarray(missing))
            pid = astra.create_projector("linear", proj_geom, vol_geom)
            mid = astra.projector.matrix(pid)
            try:
                built = astra.matrix.get(mid).astype(np.float32).tocsr()
            finally:
                astra.matrix.delete(mid)
                astra.projector.delete(pid)
            if sum(m.nnz for m in self._rows.values()) + built.nnz > MATRIX_MAX_GIB * 2 ** 30 / 16:
                self._rows = {t: self._rows[t] for t in theta.tolist() if t in self._rows}  # keep this call's
            for j, t in enumerate(missing):  # astra orders the rows angle by angle
                self._rows[t] = built[j * n_det:(j + 1) * n_det]
        return sp.vstack([self._rows[t] for t in theta.tolist()], format="csr")


_PROJECTOR_ROWS = _ProjectorRows()


def _inverse(v) -> np.ndarray:
    """``1 / v`` where ``v > 0``, else 0 (astra's SIRT weights), float32."""
    v = np.asarray(v, dtype=np.float64).ravel()
    return np.where(v > 0, 1.0 / np.where(v > 0, v, 1.0), 0.0).astype(np.float32)


def _torch_csr(x):
    import torch

    with warnings.catch_warnings():  # "sparse CSR support is in beta": the products used here are tested
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(torch.from_numpy(x.indptr), torch.from_numpy(x.indices),
                                       torch.from_numpy(x.data), size=x.shape, check_invariants=False)


def _union(members) -> Optional[Tuple[np.ndarray, List[np.ndarray]]]:
    """The angles of all ``members`` (first-seen order) and each member's rows among them; None where they cannot
    share one matrix: a member repeats an angle, or two disagree on the projections of an angle they share. A lone
    member is its own union, repeated angles and all (as astra takes them)."""
    if len(members) == 1:
        theta = np.asarray(members[0][1], dtype=np.float64)
        return theta, [np.arange(theta.size)]
    where: Dict[float, Tuple[int, int]] = {}
    for i, (sino, theta, _) in enumerate(members):
        if len(set(theta.tolist())) < theta.size:
            return None
        for j, t in enumerate(theta.tolist()):
            where.setdefault(t, (i, j))
    index = {t: a for a, t in enumerate(where)}
    rows = [np.array([index[t] for t in theta.tolist()], dtype=np.int64) for _, theta, _ in members]
    for sino, theta, _ in members:
        for j, t in enumerate(theta.tolist()):
            i, k = where[t]
            if members[i][0] is not sino and not np.array_equal(members[i][0][k], sino[j]):
                return None
    return np.fromiter(where, dtype=np.float64, count=len(where)), rows


class SirtProducts:
    """SIRT of several sets of views of one scan (each a *member*), all run as one product.

    Parameters
    ----------
    members : sequence of (sino, theta, init)
        Per member: centred line integrals ``(angles, slices, detector)`` (every member the same slices and
        detector), angles in radians, and a start ``(slices, size, size)`` or None (zero). Members that share an
        angle must hold the same projections there (folds of one scan do); :meth:`group` checks.
    size : int
        Side of the reconstruction grid.
    threads : int
        torch threads for the products.
    keep : bool
        Keep the matrix and the iterates between calls to :meth:`advance` (a run continued); False frees each
        block of columns once it has reached the last count (one call, a whole volume in bounded memory).

    ``made[i][n]`` is member ``i``'s iterate after ``n`` iterations, for every count passed to :meth:`advance`.
    """

    def __init__(self, members, size: int, threads: int = 1, *, keep: bool = True):
        shapes = {m[0].shape[1:] for m in members}
        if len(shapes) != 1:
            raise ValueError(f"the members' projections differ in rows or detector: {sorted(shapes)}")
        joined = _union(members)
        if joined is None:
            raise ValueError("the members cannot share one matrix (an angle repeated, or a shared angle's "
                             "projections differ); run them apart")
        self.theta, self._rows = joined
        (self.n_slices, self.n_det), self.size = shapes.pop(), int(size)
        self.threads, self.keep = max(1, int(threads)), keep
        self._members = members
        self._m = None
        self._blocks: Dict[int, tuple] = {}
        self.done = 0
        self.made: List[Dict[int, np.ndarray]] = [{} for _ in members]
        columns = [(i, s) for i in range(len(members)) for s in range(self.n_slices)]
        self._columns = [columns[lo:lo + COLUMNS_PER_PRODUCT] for lo in range(0, len(columns), COLUMNS_PER_PRODUCT)]

    @staticmethod
    def group(members, size: int, threads: int = 1) -> List[Tuple["SirtProducts", int]]:
        """Per member, the products that run it and its index there: one for all where they can share a matrix,
        else one each."""
        try:
            together = SirtProducts(members, size, threads)
            return [(together, i) for i in range(len(members))]
        except ValueError:
            return [(SirtProducts([m], size, threads), 0) for m in members]

    def _matrices(self):
        if self._m is None:
            import torch

            m = _PROJECTOR_ROWS.matrix(self.theta, self.n_det, self.size)
            row_weight = _inverse(m.sum(axis=1))
            weights = []
            for rows in self._rows:
                seen = np.zeros(self.theta.size, dtype=np.float32)
                seen[rows] = 1.0
                rays = np.repeat(seen, self.n_det)  # astra orders the rays angle by angle
                weights.append((torch.from_numpy(rays * row_weight), torch.from_numpy(_inverse(m.T @ rays))))
            self._m = (_torch_csr(m), _torch_csr(m.T.tocsr()), weights)
        return self._m

    def _block(self, b):
        """A block's state: iterate, projections, ray and pixel weights, each ``(rays or pixels, columns)``."""
        import torch

        if b in self._blocks:
            return self._blocks[b]
        _, _, weights = self._matrices()
        x, p, r, c = [], [], [], []
        for i, s in self._columns[b]:
            sino, _, init = self._members[i]
            full = np.zeros((self.theta.size, self.n_det), dtype=np.float32)  # other members' views: weight 0
            full[self._rows[i]] = sino[:, s, :]
            p.append(torch.from_numpy(full.ravel()))
            x.append(torch.zeros(self.size * self.size) if init is None else
                     torch.from_numpy(np.ascontiguousarray(init[s], dtype=np.float32).ravel()))
            r.append(weights[i][0])
            c.append(weights[i][1])
        return [torch.stack(v, dim=1) for v in (x, p, r, c)]

    def advance(self, counts: Sequence[int]) -> None:
        """Run on to each of ``counts`` (those beyond :attr:`done`), keeping every member's iterate at each."""
        import torch

        counts = sorted({int(n) for n in counts if int(n) > self.done})
        if not counts:
            return
        previous = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            a, at, _ = self._matrices()
            for n in counts:
                for i in range(len(self._members)):
                    self.made[i][n] = np.empty((self.n_slices, self.size, self.size), dtype=np.float32)
            for b, columns in enumerate(self._columns):
                x, p, r, c = self._block(b)
                done = self.done
                for n in counts:
                    for _ in range(n - done):
                        x = x + c * (at @ (r * (p - a @ x)))
                    done = n
                    for j, (i, s) in enumerate(columns):
                        self.made[i][n][s] = x[:, j].reshape(self.size, self.size).numpy()
                if self.keep:
                    self._blocks[b] = (x, p, r, c)
            self.done = counts[-1]
        finally:
            torch.set_num_threads(previous)
            if not self.keep:
                self._m, self._blocks = None, {}
