"""Rotation-centre finding: a known sub-pixel centre offset is recovered from noisy projections."""

import sys
import types

import numpy as np
import pytest
from scipy import ndimage

from simulate import center as center_mod
from simulate.acquire import angles, read_projections, write_projections
from simulate.center import center_scores, find_center, histogram_entropy
from simulate.reconstruct import project

N = 128          # detector pixels (= phantom grid)
N_ANGLES = 180


def _phantom(n=N, slices=4):
    """A cheap off-centre phantom: an elliptic body with discs and ellipses of other values."""
    y, x = (np.mgrid[:n, :n] - (n - 1) / 2) / n
    vol = np.zeros((slices, n, n), np.float32)
    features = [(0.15, -0.1, 0.08, 0.05, 0.8), (-0.2, 0.1, 0.05, 0.1, -0.6), (0.05, 0.2, 0.03, 0.03, 1.5),
                (-0.05, -0.2, 0.06, 0.02, -0.9), (0.25, 0.12, 0.02, 0.04, 0.5)]
    for s in range(slices):
        img = (((x - 0.03) / 0.42) ** 2 + (y / 0.36) ** 2 <= 1).astype(np.float32)
        for cx, cy, a, b, v in features:
            img += v * (((x - cx - 0.01 * s) / a) ** 2 + ((y - cy) / b) ** 2 <= 1)
        vol[s] = img
    return vol


@pytest.fixture(scope="module")
def clean():
    """Noise-free line integrals (largest 2) of the phantom, axis at detector/2."""
    theta = angles(N_ANGLES)
    p = project(_phantom(), theta)
    return p * (2.0 / p.max()), theta


def _scan(clean, offset, seed=0, incident=1e4):
    """Projections whose rotation axis lies at ``N / 2 + offset``, with Poisson noise at ``incident``."""
    p, theta = clean
    shifted = ndimage.shift(p, (0, 0, offset), order=3, mode="constant")
    counts = np.random.default_rng(seed).poisson(incident * np.exp(-np.maximum(shifted, 0)))
    return (-np.log(np.maximum(counts, 1) / incident)).astype(np.float32), theta


@pytest.mark.parametrize("offset", [-7.3, 0.0, 4.6])
def test_find_center_recovers_a_known_offset(clean, offset):
    proj, theta = _scan(clean, offset, seed=int(offset * 10) % 7)
    found = find_center(proj, theta, backend="astra")
    assert abs(found - (N / 2 + offset)) < 0.5, found


@pytest.mark.parametrize("rows", [(2, 3), (1, 3)])
def test_find_center_with_one_or_two_rows(clean, rows):
    proj, theta = _scan(clean, 4.6, seed=3)
    found = find_center(proj, theta, rows=rows, backend="astra")
    assert abs(found - (N / 2 + 4.6)) < 0.5, found
    one_row = np.ascontiguousarray(proj[:, 2:3])   # a scan of a single row
    assert abs(find_center(one_row, theta, backend="astra") - (N / 2 + 4.6)) < 0.5


@pytest.mark.parametrize("offset, incident", [(-7.3, 300.0), (13.7, 1e4)])
def test_find_center_at_low_dose_and_with_truncated_projections(clean, offset, incident):
    """300 photons per pixel (noise rules a ramp-filtered FBP); a body 13.7 px off centre runs off the detector."""
    proj, theta = _scan(clean, offset, seed=5, incident=incident)
    found = find_center(proj, theta, backend="astra")
    assert abs(found - (N / 2 + offset)) < 0.5, found


def test_wrong_centres_score_worse(clean):
    """The criterion can fail: a centre 1 or 3 pixels off gives a higher entropy than the truth."""
    proj, theta = _scan(clean, -7.3, seed=1)
    true = N / 2 - 7.3
    s = center_scores(proj, theta, [true, true - 1, true + 1, true - 3, true + 3], backend="astra")
    assert s[0] < s[1:].min(), s
    assert max(s[3], s[4]) > min(s[1], s[2])


def test_histogram_entropy():
    assert histogram_entropy(np.array([0.1, 0.1, 0.9, 0.9]), 0.0, 1.0, bins=2) == pytest.approx(1.0)
    assert histogram_entropy(np.full(10, 0.5), 0.0, 1.0) == 0.0
    assert histogram_entropy(np.linspace(0, 1, 6400, endpoint=False), 0.0, 1.0) == pytest.approx(6.0)


def test_a_search_range_without_the_centre_fails(clean):
    proj, theta = _scan(clean, -7.3, seed=2)
    with pytest.raises(ValueError, match="no minimum inside the search range"):
        find_center(proj, theta, search=(N / 2 + 5, N / 2 + 25), backend="astra")
    with pytest.raises(ValueError, match="inside the detector"):
        find_center(proj, theta, search=(-3, N / 2), backend="astra")
    with pytest.raises(ValueError, match="one angle per projection"):
        find_center(proj, theta[1:], backend="astra")
    with pytest.raises(ValueError, match="constant"):
        find_center(np.zeros_like(proj), theta, backend="astra")


def test_tomopy_branch_converts_to_pixel_edges(clean, monkeypatch):
    """With tomopy importable its find_center is used; its pixel-index centre is ours - 0.5."""
    calls = []

    def fake_find_center(tomo, theta, ind=None, init=None, tol=0.5, mask=True, ratio=1.0, **kw):
        calls.append((ind, init, mask, ratio))
        return np.array([70.25])          # tomopy's pixel-index coordinate

    monkeypatch.setitem(sys.modules, "tomopy", types.SimpleNamespace(find_center=fake_find_center))
    proj, theta = _scan(clean, 6.0)
    assert find_center(proj, theta, rows=(1, 3), backend="tomopy") == pytest.approx(70.75)
    assert [c[0] for c in calls] == [1, 2]
    ind, init, mask, ratio = calls[0]
    assert init == pytest.approx(N / 2 + 6.0 - 0.5, abs=1.0)   # the sinogram-symmetry start, tomopy's convention
    assert mask is True and 0.5 < ratio <= 1.0
    monkeypatch.setattr(center_mod, "_tomopy_center", lambda *a: N / 2 + 40.0)
    with pytest.raises(ValueError, match="outside the search range"):
        find_center(proj, theta, backend="tomopy")


def test_cli_prints_the_centre(clean, tmp_path, capsys):
    proj, theta = _scan(clean, 4.6, seed=4)
    path = tmp_path / "proj.h5"
    write_projections(path, proj, theta, {"source": "test"})
    center_mod.main([str(path), "--rows", "1", "3", "--backend", "astra"])
    assert abs(float(capsys.readouterr().out.strip()) - (N / 2 + 4.6)) < 0.5
    assert read_projections(path)[0].shape == proj.shape
    with pytest.raises(SystemExit) as exc:
        center_mod.main([str(path), "--rows", "1", "9", "--backend", "astra"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(path) in err and "rows" in err
    with pytest.raises(SystemExit) as exc:
        center_mod.main([str(tmp_path / "missing.h5")])
    assert exc.value.code == 2
