"""Which outputs are bit-identical from run to run, and which only close (docs/data-model.md, "Determinism").

Bit-identical: the simulation chain (phantom, projections, low-dose variants), FBP, SIRT, TV, and a training run
on the CPU with a given seed and thread count. Close only: BM3D (its binary's thread pool sums in varying order)
and anything downstream of it; training on other thread counts or on a GPU.
"""

import numpy as np

from simulate.acquire import low_dose
from simulate.phantoms import FoamSpec, foam_volume
from simulate.reconstruct import bm3d_denoise, fbp, project, sirt, tv_denoise


def _chain(seed):
    spec = FoamSpec(size=48, slices=2, seed=seed, pore_radius_min=0.03, pore_radius_max=0.08)
    volume, pores = foam_volume(spec)
    theta = np.linspace(0, np.pi, 60, endpoint=False)
    proj = project(volume * 0.05, theta, backend="astra")
    noisy, _ = low_dose(proj, theta, mode="photons", incident=1000, rng=np.random.default_rng(seed))
    sparse, sparse_theta = low_dose(proj, theta, mode="sparse", factor=4)
    rec = fbp(noisy, theta, backend="astra")
    return {"volume": volume, "pores": pores, "proj": proj, "noisy": noisy, "sparse": sparse, "fbp": rec,
            "sirt": sirt(sparse, sparse_theta, n_iter=20, backend="astra"), "tv": tv_denoise(rec, weight=0.1, n_iter=50)}


def test_the_simulation_chain_and_classical_reconstructions_are_bit_identical():
    a, b = _chain(3), _chain(3)
    for key in a:
        assert np.array_equal(a[key], b[key]), key
    # and the seed matters: another seed draws other pores and other photons
    c = _chain(4)
    assert not np.array_equal(a["volume"], c["volume"]) and not np.array_equal(a["noisy"], c["noisy"])


def test_bm3d_is_close_from_call_to_call():
    rec = _chain(3)["fbp"]
    first, second = bm3d_denoise(rec, sigma=0.1), bm3d_denoise(rec, sigma=0.1)
    # not promised to be bit-identical (a threaded binary); within a millionth of the image's range it is
    span = float(rec.max() - rec.min())
    assert np.max(np.abs(first - second)) <= 1e-6 * span + 1e-7
