"""Foam phantoms: 3-D consistent, reproducible to the bit, and what the spec asks for."""

import h5py
import numpy as np
import pytest

from simulate.acquire import main as acquire_main
from simulate.phantoms import FoamSpec, foam_volume, main as phantoms_main, place_pores, pore_sections


def _corr(a, b):
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def test_adjacent_slices_are_more_alike_than_distant_ones():
    spec = FoamSpec(size=64, slices=24, pore_radius_min=0.03, pore_radius_max=0.1, porosity=0.15, seed=3)
    volume, _ = foam_volume(spec)
    near = np.mean([_corr(volume[k], volume[k + 1]) for k in range(20)])
    far = np.mean([_corr(volume[k], volume[k + 12]) for k in range(12)])
    assert near > far + 0.1, (near, far)


def test_pores_do_not_overlap_and_stay_in_the_cylinder():
    spec = FoamSpec(size=128, slices=16, porosity=0.2, seed=4)
    pores = place_pores(spec)
    assert len(pores) > 20
    d = np.linalg.norm(pores[:, None, :3] - pores[None, :, :3], axis=-1)
    np.fill_diagonal(d, np.inf)
    assert np.all(d >= pores[:, None, 3] + pores[None, :, 3] + spec.gap * spec.size - 1e-9)
    assert np.all(np.hypot(pores[:, 0], pores[:, 1]) + pores[:, 3] <= spec.cylinder_radius * spec.size)


def test_measured_porosity_is_close_to_the_target():
    spec = FoamSpec(size=96, slices=32, porosity=0.2, seed=6)
    volume, _ = foam_volume(spec)
    cylinder = np.pi * (spec.cylinder_radius * spec.size) ** 2 * spec.slices
    assert 1 - volume.sum() / cylinder == pytest.approx(0.2, abs=0.03)
    assert volume.min() >= 0 and volume.max() <= 1


def test_pore_sections_are_the_sphere_cuts():
    pores = np.array([[0.0, 0.0, 5.0, 3.0]])
    assert pore_sections(pores, 5.0)[0, 2] == pytest.approx(3.0)
    assert pore_sections(pores, 7.0)[0, 2] == pytest.approx(np.sqrt(5.0))
    assert len(pore_sections(pores, 9.0)) == 0


def test_same_seed_bit_identical_phantoms_and_sinograms(tmp_path):
    args = ["--size", "48", "--slices", "4", "--porosity", "0.15", "--pore-radius-min", "0.03",
            "--pore-radius-max", "0.09"]
    for name in ("a", "b"):
        phantoms_main([str(tmp_path / f"{name}.h5"), "--seed", "9"] + args)
        acquire_main(["project", str(tmp_path / f"{name}.h5"), str(tmp_path / f"{name}_full.h5"), "--n-angles", "30"])
        acquire_main(["lowdose", str(tmp_path / f"{name}_full.h5"), str(tmp_path / f"{name}_low.h5"),
                      "--label", "photons-100", "--mode", "photons", "--incident", "100", "--seed", "9"])
    for suffix, key in (("", "/phantom"), ("_full", "/exchange/data"), ("_low", "/exchange/data")):
        with h5py.File(tmp_path / f"a{suffix}.h5") as fa, h5py.File(tmp_path / f"b{suffix}.h5") as fb:
            assert fa[key][()].tobytes() == fb[key][()].tobytes(), suffix
    phantoms_main([str(tmp_path / "c.h5"), "--seed", "10"] + args)
    with h5py.File(tmp_path / "a.h5") as fa, h5py.File(tmp_path / "c.h5") as fc:
        assert not np.array_equal(fa["/phantom"][()], fc["/phantom"][()])
        assert fa.attrs["source"].startswith("simulated")
        assert fa.attrs["seed"] == 9


def test_spec_rejects_impossible_geometry():
    with pytest.raises(ValueError, match="pore_radius"):
        FoamSpec(pore_radius_min=0.1, pore_radius_max=0.05)
    with pytest.raises(ValueError, match="porosity"):
        FoamSpec(porosity=0.7)
