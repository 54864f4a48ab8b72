"""A learned route made consistent with the views (analysis.consistent): SIRT from the network's image corrects what
the views contradict, its parameters are tuned on held-out views only, and tuning and reconstructing agree.

The scan is the disc phantom of tests/test_crossval.py (48 x 48 x 2, largest line integral 2) at 1/4 of 72 views
with Poisson noise; the 'network' is a stand-in: the truth with a bright blob that is not in the object."""

import numpy as np
import pytest

from analysis import consistent as cs
from analysis import crossval as cv
from simulate.reconstruct import project, sirt, sirt_iterates
from test_crossval import _discs, _noisy

N, ANGLES = 48, 72


@pytest.fixture(scope="module")
def sparse_scan():
    vol = _discs(N, 2, seed=3)
    theta_all = np.linspace(0, np.pi, ANGLES, endpoint=False)
    clean = project(vol, theta_all, backend="astra")
    scale = 2.0 / float(clean.max())
    truth, clean = vol * scale, clean * scale
    keep = np.arange(0, ANGLES, 4)  # the scan as acquired: 18 views
    return truth, theta_all[keep], _noisy(clean[keep], 2e4, seed=5)


def _network(truth):
    """The truth with a blob of +40 % of the range that no view supports: what a denoiser may invent."""
    y, x = np.mgrid[:N, :N] - (N - 1) / 2
    blob = ((x - 6) ** 2 + (y + 4) ** 2 <= 16).astype(np.float32) * 0.4 * float(truth.max())
    wrong = (truth + blob[None]).astype(np.float32)

    def rec(data, theta, center, size, *, backend="auto", threads=1):
        return wrong[:data.shape[1]]
    return rec, wrong


def _err(a, b):
    return float(np.sqrt(np.mean((a - b) ** 2)))


def test_sirt_from_an_image_starts_there_and_moves_toward_the_views(sparse_scan):
    truth, theta, data = sparse_scan
    _, wrong = _network(truth)
    from_truth = sirt_iterates(data, theta, [5], init=truth)[5]
    from_zero = sirt(data, theta, n_iter=5)
    assert _err(from_truth, truth) < 0.5 * _err(from_zero, truth)  # it starts where it is told
    fixed = sirt_iterates(data, theta, [2, 20], init=wrong)
    assert _err(fixed[20], truth) < _err(fixed[2], truth) < _err(wrong, truth)  # the invented blob fades
    with pytest.raises(ValueError, match="init has shape"):
        sirt_iterates(data, theta, [5], init=truth[:1])


def test_the_tuned_route_beats_the_network_alone_and_reads_no_left_out_view(sparse_scan):
    truth, theta, data = sparse_scan
    network, wrong = _network(truth)
    seen = []

    def spy(d, t, c, s, *, backend="auto", threads=1):
        seen.append(np.round(t, 9))
        return network(d, t, c, s)

    common = dict(k=4, incident=2e4)
    tuned = cs.tune_consistent(data, theta, spy, n_iters=[2, 10, 40], weights=[0.0, 0.05], **common)
    # every fold's start saw its kept views only: 4 folds, each missing its own quarter of the angles
    folds = cv.folds(len(theta), 4)
    assert len(seen) == 4
    for held, angles in zip(folds, seen):
        assert not set(np.round(theta[held], 9)) & set(angles) and len(angles) == len(theta) - len(held)
    alone = cv.holdout_residual(data, theta, network, **common)
    assert tuned.scores[tuned.chosen].score < alone.score  # the views prefer the corrected image
    assert tuned.chosen[0] > 2
    rec = cs.consistent_reconstructor(network, *tuned.chosen)(data, theta, data.shape[-1] / 2, N)
    assert _err(rec, truth) < _err(wrong, truth)
    # one pair's tuned score is the held-out residual of the reconstructor at that pair
    again = cv.holdout_residual(data, theta, cs.consistent_reconstructor(network, *tuned.chosen), **common)
    assert again.score == pytest.approx(tuned.scores[tuned.chosen].score, rel=1e-6)


def test_a_descent_over_both_parameters_chooses_the_grids_pair_at_fewer_tv_runs(sparse_scan, monkeypatch):
    import analysis.consistent as module

    truth, theta, data = sparse_scan
    network, _ = _network(truth)
    common = dict(n_iters=[2, 5, 10, 20, 40], weights=[0.0, 0.01, 0.03, 0.1], k=4, incident=2e4)
    grid = cs.tune_consistent(data, theta, network, **common)
    runs = []
    real = module.tv_denoise
    monkeypatch.setattr(module, "tv_denoise", lambda *a, **kw: runs.append(kw["weight"]) or real(*a, **kw))
    descent = cs.tune_consistent(data, theta, network, search="descent", **common)
    assert descent.chosen == grid.chosen
    assert all(descent.scores[g] == grid.scores[g] for g in descent.scores)
    tv_pairs = [g for g in descent.scores if g[1] > 0]
    assert len(runs) == 4 * len(tv_pairs) < 4 * 5 * 3  # one TV run per fold and pair visited, not per pair


def test_a_search_by_tvs_stand_in_chooses_as_the_full_tv_then_scores_the_choice_with_it(sparse_scan, monkeypatch):
    # tomogan-scan's route (proxy=True): the pairs are ranked with a few Chambolle iterations. Fails if the stand-in
    # chooses another pair than the full TV on this scan, if the chosen pair's score is not the full TV's, or if
    # the full TV runs for more than the chosen pair (once per fold).
    import analysis.consistent as module
    from analysis.classical import TV_ITER, TV_PROXY_ITER

    truth, theta, data = sparse_scan
    network, _ = _network(truth)
    common = dict(n_iters=[2, 5, 10, 20, 40], weights=[0.0, 0.01, 0.03, 0.1, 0.3], k=4, incident=2e4)
    full = cs.tune_consistent(data, theta, network, **common)
    assert full.chosen[1] > 0, "the test needs a route that chooses some TV"
    iterations = []
    real = module.tv_denoise
    monkeypatch.setattr(module, "tv_denoise", lambda *a, **kw: iterations.append(kw["n_iter"]) or real(*a, **kw))
    fast = cs.tune_consistent(data, theta, network, proxy=True, **common)
    assert fast.by_proxy and not full.by_proxy
    assert fast.chosen == full.chosen
    assert fast.scores[fast.chosen].score == pytest.approx(full.scores[full.chosen].score, rel=1e-6)
    assert iterations.count(TV_ITER) == 4 and iterations.count(TV_PROXY_ITER) == len(iterations) - 4


def test_values_round_trip_and_bad_grids_are_refused(sparse_scan):
    truth, theta, data = sparse_scan
    assert cs.parse_value(cs.format_value((20, 0.05))) == (20, 0.05)
    network, _ = _network(truth)
    with pytest.raises(ValueError, match="iteration counts"):
        cs.tune_consistent(data, theta, network, n_iters=[0, 5])
