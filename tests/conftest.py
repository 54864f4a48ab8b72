"""Shared fixtures: a small foam volume and its projections, made once per test session."""

import numpy as np
import pytest

from simulate.acquire import project_phantom
from simulate.phantoms import FoamSpec, foam_volume


@pytest.fixture
def rng():
    # Seeded: tests that draw noise are reproducible; the expected values below depend on it.
    return np.random.default_rng(20201)


@pytest.fixture(scope="session")
def small_foam():
    """A 96 x 96 x 6 foam (pores 2-8 px) -- the numbers in test_reconstruct were measured on it."""
    spec = FoamSpec(size=96, slices=6, pore_radius_min=0.02, pore_radius_max=0.08, porosity=0.2, seed=5)
    volume, _ = foam_volume(spec)
    return spec, volume


@pytest.fixture(scope="session")
def small_sino(small_foam):
    """Noise-free full-dose projections of ``small_foam``: 144 angles (>= pi/2 * 96, fully sampled)."""
    _, volume = small_foam
    data, theta, scale = project_phantom(volume, 144)
    return data, theta, scale
