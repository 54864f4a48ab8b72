"""Phantom families (simulate.families): contract, determinism, 3-D coherence, and real variety."""

import itertools

import numpy as np
import pytest

from simulate.families import CYLINDER_RADIUS, FAMILIES, make

SIZE, SLICES = 48, 48
NAMES = sorted(FAMILIES)


def _radius(size):
    c = np.arange(size) + 0.5 - size / 2
    return np.hypot(*np.meshgrid(c, c, indexing="ij"))


_CACHE = {}


def _vol(name, seed):
    key = (name, seed)
    if key not in _CACHE:
        _CACHE[key] = make(name, size=SIZE, slices=SLICES, seed=seed)
    return _CACHE[key]


def test_registry_has_variety_and_descriptions():
    assert {"foam", "ellipses", "polygons", "fibres"} <= set(FAMILIES)
    for name, fam in FAMILIES.items():
        assert fam.name == name and fam.description and "\n" not in fam.description


@pytest.mark.parametrize("name", NAMES)
def test_contract(name):
    v = _vol(name, 0)
    assert v.shape == (SLICES, SIZE, SIZE) and v.dtype == np.float32
    assert np.isfinite(v).all() and v.min() >= 0
    outside = _radius(SIZE) > CYLINDER_RADIUS * SIZE + 1  # 1-pixel rim for anti-aliasing
    assert np.all(v[:, outside] == 0)
    assert v.max() > v.min() and v.std() > 0.01
    assert all(s.std() > 0 for s in v[SLICES // 4: 3 * SLICES // 4])  # no empty slices in the middle


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_per_seed(name):
    a, b = _vol(name, 0), make(name, size=SIZE, slices=SLICES, seed=0)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, _vol(name, 1))


@pytest.mark.parametrize("name", NAMES)
def test_adjacent_slices_are_correlated(name):
    v = _vol(name, 0).astype(np.float64)
    near = np.abs(np.diff(v, axis=0)).mean()
    far = np.abs(v[:-SLICES // 2] - v[SLICES // 2:]).mean()
    assert near < 0.6 * far, (near, far)


def _stats(v):
    """Simple per-volume statistics, each in a range where relative differences mean something."""
    v = v.astype(np.float64)
    disc = _radius(SIZE) <= CYLINDER_RADIUS * SIZE - 2
    inside = v[:, disc]
    top = inside.max()
    fill = float((inside > 0.02 * top).mean())                   # fraction of non-zero pixels
    gx, gy = np.gradient(v, axis=(1, 2))
    edges = float((np.hypot(gx, gy)[:, disc] > 0.1 * top).mean())  # in-plane edge density
    zdiff = float(np.abs(np.diff(v, axis=0))[:, disc].mean() / (inside.std() + 1e-12))  # z-roughness
    spec = np.abs(np.fft.fftshift(np.fft.fft2((v - inside.mean()) * disc), axes=(1, 2))) ** 2
    k = np.rint(_radius(SIZE)).astype(int).ravel()
    radial = np.bincount(k, spec.mean(axis=0).ravel())[1:SIZE // 2] / np.bincount(k)[1:SIZE // 2]
    freq = float((np.arange(1, SIZE // 2) * radial).sum() / radial.sum())  # mean spatial frequency
    hist = np.bincount(np.rint(inside / top * 50).astype(int).ravel())
    levels = float((hist > 0.005 * inside.size).sum())            # well-populated grey levels
    bright = float((inside > 0.9 * top).mean())                  # brightest phase: majority or minority
    return np.array([fill, edges, zdiff, freq, levels, bright])


def test_families_differ_in_statistics():
    stats = {n: np.mean([_stats(_vol(n, s)) for s in (0, 1)], axis=0) for n in NAMES}
    for a, b in itertools.combinations(NAMES, 2):
        rel = np.abs(stats[a] - stats[b]) / np.maximum(np.abs(stats[a]), np.abs(stats[b]))
        assert rel.max() > 0.3, (a, b, stats[a], stats[b])


def test_statistics_check_would_catch_a_duplicate():
    # the same generator with another seed is not "a different family"
    s0 = np.mean([_stats(_vol("fibres", s)) for s in (0, 1)], axis=0)
    s1 = np.mean([_stats(make("fibres", size=SIZE, slices=SLICES, seed=s)) for s in (2, 3)], axis=0)
    rel = np.abs(s0 - s1) / np.maximum(np.abs(s0), np.abs(s1))
    assert rel.max() < 0.3, (s0, s1)


def test_unknown_family_and_small_sizes_raise():
    with pytest.raises(ValueError, match="allowed: ellipses, fibres, foam"):
        make("sponge", size=SIZE, slices=SLICES, seed=0)
    with pytest.raises(ValueError, match=">= 8"):
        make("ellipses", size=4, slices=SLICES, seed=0)
    with pytest.raises(ValueError, match=">= 8"):
        make("layers", size=SIZE, slices=2, seed=0)


def test_command_writes_a_phantom_file_the_projection_rules_read(tmp_path):
    from simulate.families import main
    from simulate.io import read_array, read_attrs

    out = tmp_path / "ellipses.h5"
    main([str(out), "--family", "ellipses", "--size", "24", "--slices", "8", "--seed", "3", "--dataset", "gen-e1"])
    volume = read_array(out, "/phantom", ndim=3)
    np.testing.assert_array_equal(volume, make("ellipses", size=24, slices=8, seed=3))
    attrs = read_attrs(out)
    assert (attrs["dataset"], attrs["kind"], attrs["family"], int(attrs["seed"])) == ("gen-e1", "family", "ellipses", 3)


def test_command_refuses_bad_arguments_in_one_line(tmp_path, capsys):
    from simulate.families import main

    out = tmp_path / "x.h5"
    with pytest.raises(SystemExit) as exc:
        main([str(out), "--family", "ellipses", "--size", "4", "--slices", "8", "--seed", "0"])
    err = capsys.readouterr().err.strip()
    assert exc.value.code != 0 and len(err.splitlines()) == 1 and err.startswith("error: ") and "size" in err
    assert not out.exists()
